"""Correct optimizers that follow conventions optbench must detect instead of failing on, and a few
that break them. Each is small and hand-written on top of plain SGD so that what it does is obvious.

Correct (every property must PASS, be N/A or EXEMPT with a detected reason, never FAIL):
  RefusesLrZero   its constructor raises ValueError for lr <= 0 (common in third-party packages)
  LrRequired      lr has no default (``lr=None`` must be given)
  Moded           schedule-free style train()/eval() modes; step() raises outside train mode
  ClosureOnly     step() requires a closure
  NoGradClosure   step() requires a closure and calls it under its own no_grad, without enable_grad (AliG)
  MatrixOnly      2-D parameters only
  SparseOnly      sparse gradients only
  SignSGD         a sign-based update (every coordinate moves by exactly lr): needs a decaying lr for P1
  NoClosureParam  step(self) takes no closure at all (P10 does not apply)
  FusedFlagOnly   has foreach/fused flags like torch.optim, but fused=True raises (not implemented): it must be
                  checked and benched without a fused implementation

Broken (the property named must FAIL with a diagnosis):
  MovesAtGroupLrZero  refuses lr=0 at construction, yet moves when a scheduler sets the group's lr to 0 (P3)
  RaisesOnSecondStep  step() raises a RuntimeError of its own on the second step (a finding, not an ERROR)
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer


class _SGD(Optimizer):
    """Plain SGD with coupled weight decay and maximize; subclasses change one thing."""

    def __init__(self, params, lr=1e-3, weight_decay=0.0, maximize=False):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, maximize=maximize))

    def _direction(self, p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return g

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.to_dense() if p.grad.is_sparse else p.grad
                if group["maximize"]:
                    g = -g
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                p.add_(self._direction(p, g), alpha=-group["lr"])
        return loss


class RefusesLrZero(_SGD):
    def __init__(self, params, lr=1e-3, **kw):
        if not lr > 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        super().__init__(params, lr=lr, **kw)


class LrRequired(_SGD):
    def __init__(self, params, lr=None, **kw):
        if lr is None:
            raise TypeError("lr is required")
        super().__init__(params, lr=lr, **kw)


class Moded(Optimizer):
    """Schedule-free SGD in its simplest form (Defazio et al. 2024): the gradient is taken at
    y = (1 - beta) z + beta x, z takes the SGD step, x is the running average of z. In train mode the
    parameters hold y, in eval mode x (the point the method returns); step() refuses eval mode."""

    def __init__(self, params, lr=1e-3, beta=0.9, weight_decay=0.0, maximize=False):
        super().__init__(params, dict(lr=lr, beta=beta, weight_decay=weight_decay, maximize=maximize,
                                      train_mode=False))

    @torch.no_grad()
    def train(self):
        for group in self.param_groups:
            if not group["train_mode"]:
                for p in group["params"]:
                    st = self.state[p]
                    if st:
                        p.copy_(torch.lerp(st["z"], st["x"], group["beta"]))
                group["train_mode"] = True

    @torch.no_grad()
    def eval(self):
        for group in self.param_groups:
            if group["train_mode"]:
                for p in group["params"]:
                    st = self.state[p]
                    if st:
                        p.copy_(st["x"])
                group["train_mode"] = False

    @torch.no_grad()
    def step(self, closure=None):
        if not all(g["train_mode"] for g in self.param_groups):
            raise Exception("Optimizer was not in train mode when step is called. Please insert .train() and .eval() calls")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["z"], st["x"], st["k"] = p.detach().clone(), p.detach().clone(), torch.tensor(0.0)
                g = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                st["z"].sub_(g, alpha=group["lr"])
                st["k"] += 1
                st["x"].lerp_(st["z"], 1.0 / (float(st["k"]) + 1.0))
                p.copy_(torch.lerp(st["z"], st["x"], group["beta"]))
        return loss


class ClosureOnly(_SGD):
    @torch.no_grad()
    def step(self, closure=None):
        if closure is None:
            raise RuntimeError("ClosureOnly requires a closure")
        return super().step(closure)


class NoGradClosure(_SGD):
    @torch.no_grad()
    def step(self, closure=None):
        if closure is None:
            raise RuntimeError("NoGradClosure requires a closure")
        loss = closure()  # no enable_grad: the closure must enable it itself (AliG's documented closure needs none)
        super().step()
        return loss


class MatrixOnly(_SGD):
    def __init__(self, params, lr=1e-3, **kw):
        super().__init__(params, lr=lr, **kw)
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError("MatrixOnly only supports 2D parameters")


class SparseOnly(_SGD):
    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and not p.grad.is_sparse:
                    raise RuntimeError("SparseOnly does not support dense gradients")
        super().step()
        return loss


class SignSGD(_SGD):
    def _direction(self, p, g):
        return torch.sign(g)


class MovesAtGroupLrZero(RefusesLrZero):
    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            if group["lr"] == 0:  # the bug: a term not multiplied by lr
                for p in group["params"]:
                    if p.grad is not None:
                        p.sub_(torch.sign(p.grad), alpha=1e-6)
        return loss


class RaisesOnSecondStep(_SGD):
    _steps = 0

    @torch.no_grad()
    def step(self, closure=None):
        self._steps += 1
        if self._steps == 2:
            raise RuntimeError("internal buffer size mismatch in RaisesOnSecondStep")
        return super().step(closure)


class NoClosureParam(_SGD):
    """step(self) with no closure parameter at all: P10 does not apply."""

    @torch.no_grad()
    def step(self):  # type: ignore[override]
        return super().step()


class FusedFlagOnly(_SGD):
    """Declares torch.optim's ``foreach`` and ``fused`` flags (both in its defaults) but has no fused kernel:
    ``fused=True`` raises at construction, as torch's own optimizers do where a fused path is missing."""

    def __init__(self, params, lr=1e-3, weight_decay=0.0, maximize=False, foreach=None, fused=None):
        if fused:
            raise RuntimeError("FusedFlagOnly: `fused=True` is not supported")
        super().__init__(params, lr=lr, weight_decay=weight_decay, maximize=maximize)
        for g in self.param_groups:
            g.update(foreach=foreach, fused=fused)
        self.defaults.update(foreach=foreach, fused=fused)


class NoGradClosureHalvesGrad(NoGradClosure):
    """Broken (P5): as NoGradClosure, and it halves p.grad in place. Its reproducer's closure must enable grad
    itself, or the script raises on the closure instead of showing the property."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.mul_(0.5)
        return loss


class EvalNeedsState(torch.optim.SGD):
    """train()/eval() modes whose eval() reads state the first step creates (pytorch-optimizer's SPlus: eval()
    swaps in state['ema']): a training loop that reads x in eval mode before the first step meets KeyError. A
    true finding, reported once as the case's root cause; its reproducer must raise it too."""

    def train(self, mode: bool = True) -> None:
        pass

    @torch.no_grad()
    def eval(self) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                p.copy_(self.state[p]["ema"])

    @torch.no_grad()
    def step(self, closure=None):
        out = super().step(closure)
        for g in self.param_groups:
            for p in g["params"]:
                self.state[p]["ema"] = p.detach().clone()
        return out
