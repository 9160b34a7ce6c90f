"""A planted regression for the gate's tests and self-test: Adam plus two extra read-modify-write
passes over parameter-sized state per step (16 B/param).

torch's foreach Adam makes about ten passes over parameter-sized tensors per step (lerp, mul,
addcmul, sqrt, div, add, addcdiv ...), roughly 80-90 B/param of real traffic, so two more passes
are ~20% extra memory traffic per step. Numerically it is Adam (the passes multiply both moments by
1.0). Usable as ``--optimizer adam=optbench.bench.planted:SlowAdam``.
"""

from __future__ import annotations

import torch


class SlowAdam(torch.optim.Adam):
    """torch.optim.Adam with ~20% extra memory traffic per epoch (see module docstring)."""

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = super().step(closure)
        bufs = [self.state[p][k] for g in self.param_groups for p in g["params"] if p in self.state
                for k in ("exp_avg", "exp_avg_sq")]
        if bufs:
            torch._foreach_mul_(bufs, 1.0)  # the planted passes: read and write both moments once
        return loss
