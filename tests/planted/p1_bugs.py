"""Planted P1 bugs: optimizers whose convergence is broken, for the cheaper P1 (shared runs, retired and
hopeless units) to still catch. ``PLANTED_P1`` maps the class name to what is wrong."""

from __future__ import annotations

import torch


class BiasedSGD(torch.optim.SGD):
    """SGD plus a constant drift of lr * 0.05 per step: its fixed point is where the gradient equals -0.05, so
    it settles away from x* (by 0.05 / curvature) at every lr."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.sub_(group["lr"] * 0.05)
        return loss


class StallingSGD(torch.optim.SGD):
    """SGD whose step shrinks like 1/k^2 (a bad 'decay' folded into the update): the steps sum to a finite
    distance, so from a start far enough it stalls before x* at every lr."""

    @torch.no_grad()
    def step(self, closure=None):
        self._k = getattr(self, "_k", 0) + 1
        saved = [g["lr"] for g in self.param_groups]
        for g in self.param_groups:
            g["lr"] = g["lr"] / self._k ** 2
        try:
            return super().step(closure)
        finally:
            for g, lr in zip(self.param_groups, saved):
                g["lr"] = lr


class CrashOnNoneGrad(torch.optim.Optimizer):
    """A correct plain gradient descent that reads ``p.grad`` without checking for None once it has state: legal
    in a training loop where every parameter always gets a gradient. P1's shared runs must not make it fail
    (a retired unit's parameter has no gradient)."""

    def __init__(self, params, lr=1e-2):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state[p]
                if not st and p.grad is None:
                    continue
                st["n"] = st.get("n", 0) + 1
                p.add_(p.grad, alpha=-group["lr"])  # raises TypeError when p.grad is None
        return None


PLANTED_P1 = {
    "BiasedSGD": "settles 0.05/curvature away from x* (a constant drift in the update)",
    "StallingSGD": "its steps shrink like 1/k^2 and stall before x*",
}


class SignDescent(torch.optim.Optimizer):
    """Correct sign descent, x -= lr * sign(g): with a constant lr it hovers at ~lr from x* (a trait), under a
    decaying lr it converges."""

    def __init__(self, params, lr=1e-2):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(torch.sign(p.grad), alpha=-group["lr"])
        return None


class BiasedSignDescent(SignDescent):
    """Sign descent that also drifts by lr/2 per step in one direction: it hovers like sign descent, and no lr
    schedule makes it converge (the drift shrinks with the lr, but so does every step)."""

    @torch.no_grad()
    def step(self, closure=None):
        super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.sub_(0.5 * group["lr"])
        return None


class OwnStepGD(torch.optim.Optimizer):
    """Correct: gradient descent whose step size is its own hyperparameter (``step_size``), with no lr at all
    (A2Grad, AliG): P1 runs it once, not once per grid lr, and its band says so."""

    def __init__(self, params, lr=None, step_size: float = 0.05) -> None:
        super().__init__(params, {"step_size": step_size})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["step_size"])


def own_step_too_small(params, lr=None):
    """The same with a step size far too small to reach x* within the budget: P1 fails, and names no lr."""
    return OwnStepGD(params, step_size=1e-7)


class LateCountScaledSGD(torch.optim.SGD):
    """SGD whose steps after the eighth (``AFTER``) are scaled by min(1, 4 / the number of parameter elements that
    have a gradient, over every group): one number of all the parameters that holds still for the contract's
    first three steps, as D-Adaptation's d holds at d0. Alone on a target of dimension <= 4 it is SGD and
    converges; sharing an optimizer with the other starts, lrs and targets of P1 it crawls. Not a bug P1 should
    report: P6's and P7's second look (32 steps) fail it, a trait, and P1 runs it apart."""

    AFTER = 8

    @torch.no_grad()
    def step(self, closure=None):
        g0 = self.param_groups[0]
        g0["steps_taken"] = g0.get("steps_taken", 0) + 1
        if g0["steps_taken"] <= self.AFTER:
            return super().step(closure)
        total = sum(p.numel() for g in self.param_groups for p in g["params"] if p.grad is not None)
        scale = min(1.0, 4.0 / max(total, 1))
        lrs = [g["lr"] for g in self.param_groups]
        for g in self.param_groups:
            g["lr"] = g["lr"] * scale
        try:
            return super().step(closure)
        finally:
            for g, lr in zip(self.param_groups, lrs):
                g["lr"] = lr


class LaterCountScaledSGD(LateCountScaledSGD):
    """The same from step 65 on: past P6's and P7's second look (32 steps), so only P1's witness (one start run
    again alone for the whole budget) sees that the shared runs differ, and runs the case apart."""

    AFTER = 64


class TrainsSmallOnly(torch.optim.SGD):
    """SGD on the elements whose value at the first step is below 1e-3 in magnitude, the others frozen (SaRA
    trains only the weights it finds unimportant): from booth's canonical start (0, 0) it converges at a fair
    lr; from the random starts it never moves, at the same distance at every lr. A P1 FAIL (a trait) whose
    report must name an lr where the canonical start did converge, not the first lr of a tie."""

    @torch.no_grad()
    def step(self, closure=None):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if "mask" not in st:
                    st["mask"] = (p.abs() < 1e-3).to(p.dtype)
                p.grad.mul_(st["mask"])
        return super().step(closure)
