"""Planted bugs for P21 (the compiled step) and the memory measurement, made from one correct Adam.

``CompileAdam`` is Adam written the way a step that compiles well is written: the state created with the
optimizer (no first-step branch: one graph from the first step), the step count a tensor in the state, the bias
corrections tensor math (``torch.pow(beta, step)``), no ``.item()``, no Python state that changes from step to
step. Under ``torch.compile`` it makes one graph, with no break, at a tensor or float lr.

``PLANTED_COMPILE`` maps each buggy copy to the check that must catch it and what its diagnosis must say:

* ``ItemAdam`` (graph breaks): logs the global gradient norm with ``.item()`` at the start of each step, so
  the graph breaks there: MEASURED, and a FAIL when its config declares ``fullgraph = true``.
* ``CompileBranchAdam`` (parity): a "compile-friendly" path taken when ``torch.compiler.is_compiling()`` that
  drops the bias correction, so the compiled step differs from the eager one from the first step.
* ``CountingAdam`` (recompilations): counts its steps in a Python list (``self.history``, e.g. of logged values)
  and takes the bias correction's step count from its length; Dynamo guards on the list's length, so every call
  recompiles. (A Python int or float attribute incremented in ``step`` is no such bug on torch 2.13: Dynamo
  gives up on the whole frame there, "Observed exception", and it runs eagerly.)
* ``StackingAdam`` (parity, crash): a fast path taken under ``torch.compiler.is_compiling()`` that stacks every
  second moment into one tensor, which only works when all parameters have the same shape: the compiled step
  raises (``torch.stack`` of tensors of different sizes), the eager step never takes that path.
* ``InnerCompiledNoise`` (correct, not planted as a bug): compiles part of its own step (kron-torch's Kron:
  ``@torch.compile`` on its preconditioner update, which draws ``torch.randn_like``); P21's eager reference must
  run that part eagerly, or its draws come from Inductor's generator and parity compares other numbers.
* ``FloatLrOpAdam`` (parity, crash, named): its update goes through a custom op declaring ``lr: float``
  (bitsandbytes): the compiled step raises with a tensor lr, runs with a float one, and the FAIL says so.
* ``RollbackAdam`` (memory): keeps a copy of every parameter for the length of the step (to roll back a step
  that made a parameter non-finite), so the step's transient peak is one parameter-size above Adam's.
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer


class CompileAdam(Optimizer):
    """Adam (no weight decay), written to compile to one graph. ``bug`` names the planted bug (None: correct)."""

    bug: str | None = None

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))
        self.last_grad_norm: float | None = None
        self.history: list[float] = []  # only the "python_counter" bug keeps it
        for group in self.param_groups:  # the state exists from the start: the first compiled step is the steady one
            for p in group["params"]:
                self.state[p] = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                                 "m": torch.zeros_like(p, memory_format=torch.preserve_format),
                                 "v": torch.zeros_like(p, memory_format=torch.preserve_format)}

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.bug == "item":  # the bug: a Python number read from a tensor in the step, for logging
            grads = [p.grad.flatten() for g in self.param_groups for p in g["params"] if p.grad is not None]
            self.last_grad_norm = torch.cat(grads).norm().item() if grads else None
        if self.bug == "python_counter":
            self.history.append(1.0)  # the bug: a Python list whose length (the step count) is used in the math
        backups = None
        if self.bug == "param_copy":  # the bug: a full copy of every parameter alive for the length of the step
            backups = {p: p.detach().clone() for g in self.param_groups for p in g["params"]}
        if self.bug == "stack" and torch.compiler.is_compiling():
            # the bug: a "fused" statistic over every parameter's second moment, stacked into one tensor
            vs = [self.state[p]["v"] for g in self.param_groups for p in g["params"]]
            self.last_v_max = torch.stack(vs).amax()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                st["step"] += 1
                g = p.grad
                st["m"].lerp_(g, 1 - b1)
                st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
                if self.bug == "compile_branch" and torch.compiler.is_compiling():
                    # the bug: a "compile-friendly" path that forgets the bias correction
                    p.addcdiv_(st["m"], st["v"].sqrt().add_(group["eps"]), value=-group["lr"])
                    continue
                if self.bug == "python_counter":
                    t = len(self.history)
                    bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
                else:
                    bc1 = 1 - torch.pow(b1, st["step"])
                    bc2 = 1 - torch.pow(b2, st["step"])
                denom = (st["v"] / bc2).sqrt().add_(group["eps"])
                if self.bug == "float_lr_op":  # the update through a custom op that declares lr a float
                    _sub_scaled(p, st["m"] / bc1 / denom, group["lr"])
                    continue
                p.addcdiv_(st["m"] / bc1, denom, value=-group["lr"])
                if backups is not None and not bool(torch.isfinite(p.sum())):
                    p.copy_(backups[p])  # roll back a step that made the parameter non-finite
        del backups
        return loss


@torch.library.custom_op("optbench_planted::sub_scaled", mutates_args=("p",))
def _sub_scaled(p: torch.Tensor, u: torch.Tensor, lr: float) -> None:
    p.sub_(u * lr)


@_sub_scaled.register_fake
def _(p, u, lr):
    return None


class FloatLrOpAdam(CompileAdam):
    """The update through a custom op whose schema declares ``lr: float`` (bitsandbytes' optimizer_update_32bit):
    eager converts a tensor lr, Dynamo's fake tensor call does not, so the compiled step raises with a tensor lr
    (the recipe's) and runs with a float one: P21 parity FAILs naming the tensor lr as what fails."""

    bug = "float_lr_op"


class ItemAdam(CompileAdam):
    bug = "item"


class CompileBranchAdam(CompileAdam):
    bug = "compile_branch"


class CountingAdam(CompileAdam):
    bug = "python_counter"


class StackingAdam(CompileAdam):
    bug = "stack"


class RollbackAdam(CompileAdam):
    bug = "param_copy"


def _noise(g: torch.Tensor) -> torch.Tensor:
    return g + 1e-3 * g.abs().mean() * torch.randn_like(g)


class InnerCompiledNoise(CompileAdam):
    """Adam on a gradient with noise added by a function the step compiles itself (the eager backend: Dynamo only)."""

    _inner = staticmethod(torch.compile(_noise, backend="eager"))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.copy_(self._inner(p.grad))
        return super().step(closure)


# class -> (check that must catch it, phrases its diagnosis must hold)
PLANTED_COMPILE = {
    ItemAdam: ("test_p21_graph_breaks", ("fullgraph = true is declared", "graph break", "compile_bugs.py",
                                         "Tensor.item()")),
    CompileBranchAdam: ("test_p21_compiled_parity", ("differ at step 1", "parameter 0", "max |Δ|")),
    CountingAdam: ("test_p21_recompiles", ("recompiles at every step at a constant lr", "the guard that failed",
                                           "len(", "history")),
    StackingAdam: ("test_p21_compiled_parity", ("the compiled step raises at step 1", "where the same 10 eager steps "
                                                "run", "stack expects each tensor to be equal size",
                                                "compile_bugs.py")),
}
