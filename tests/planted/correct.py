"""A correct hand-written Adam: the reference the planted bugs are made from. It must pass P1-P17."""

from __future__ import annotations

import os

import torch
from torch.optim import Optimizer


class HandAdam(Optimizer):
    """Adam with coupled L2 weight decay and maximize. ``bug`` names the one planted bug (None: correct)."""

    bug: str | None = None

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize))
        if self.bug == "step_outside_state":
            self._t = 0

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.bug == "step_outside_state":
            self._t += 1
        for group in self.param_groups:
            lr = self.defaults["lr"] if self.bug == "defaults_lr" else group["lr"]
            b1, b2 = group["betas"]
            grads = [p.grad for p in group["params"] if p.grad is not None]
            gnorm = torch.sqrt(sum((g * g).sum() for g in grads)) if grads else None
            for p in group["params"]:
                st = self.state[p]
                if p.grad is None:
                    if self.bug == "frozen_moves" and st:
                        p.add_(st["m"], alpha=-lr)
                    continue
                g = p.grad
                if self.bug == "grad_in_place":
                    g.mul_(1 - b1)
                if self.bug == "global_norm":
                    g = g / (1.0 + gnorm)
                if group["maximize"] and self.bug != "maximize_ignored":
                    g = -g
                if group["weight_decay"]:
                    sign = -1.0 if self.bug == "decay_sign" else 1.0
                    g = g.add(p, alpha=sign * group["weight_decay"])
                if not st:
                    dt = torch.float64 if self.bug == "state_float64" else p.dtype
                    st["step"] = torch.tensor(0.0)
                    st["m"] = torch.zeros_like(p, dtype=dt, memory_format=torch.preserve_format)
                    st["v"] = torch.zeros_like(p, dtype=dt, memory_format=torch.preserve_format)
                st["step"] += 1
                t = self._t if self.bug == "step_outside_state" else int(st["step"].item())  # the bug: self._t
                if self.bug == "grad_in_place":
                    st["m"].mul_(b1).add_(g)
                else:
                    st["m"].mul_(b1).add_(g, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
                mhat = (st["m"] / (1 - b1 ** t)).to(p.dtype)
                denom = (st["v"] / (1 - b2 ** t)).sqrt().add_(group["eps"]).to(p.dtype)
                upd = mhat / denom
                if self.bug == "ascent_first_step" and t == 1:
                    upd = -upd
                if self.bug == "scale_by_norm":
                    upd = upd * (1.0 + p.abs())
                if self.bug == "nondeterministic":
                    gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
                    upd = upd + 1e-3 * torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p)
                if self.bug == "reshape_copy":
                    p.reshape(-1).add_(upd.reshape(-1), alpha=-lr)
                else:
                    p.add_(upd, alpha=-lr)
                if self.bug == "lr_zero_moves":
                    p.sub_(upd.sign(), alpha=1e-7)
        if self.bug == "closure_none":
            return None
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self.bug == "zero_grad_noop":
            return
        super().zero_grad(set_to_none=set_to_none)


def hand_adam(params, **kwargs):
    """The same optimizer through a factory ``(params, **kwargs) -> Optimizer``."""
    return HandAdam(params, **kwargs)


class NotAnOptimizer:
    """A class that is not a torch.optim.Optimizer (``--optimizer`` must reject it)."""
