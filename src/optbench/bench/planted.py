"""A planted regression for the gate's tests and self-test: Adam plus one extra read-modify-write
pass over the first moment per step (8 B/param).

Against fused Adam, whose traffic matches the 28 B/param model, that is +29% modelled step bytes;
measured here at 1e6 params on one CPU thread it costs +20% step time (fused step 0.83 ms, one
``mul_`` pass over 1e6 floats 0.165 ms). Numerically it is Adam (the pass multiplies by 1.0).
Usable as ``--optimizer adam=optbench.bench.planted:SlowAdam``.
"""

from __future__ import annotations

import torch


class SlowAdam(torch.optim.Adam):
    """torch.optim.Adam with ~20% extra memory traffic per epoch (see module docstring)."""

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = super().step(closure)
        bufs = [self.state[p]["exp_avg"] for g in self.param_groups for p in g["params"] if p in self.state]
        if bufs:
            torch._foreach_mul_(bufs, 1.0)  # the planted pass: read and write every first moment once
        return loss
