"""Planted-bug optimizers: each is the correct HandAdam with exactly one bug.

``PLANTED`` maps the class name to the property the suite must report as broken. The step counter of
HandAdam is kept in the per-param state; ``StepOutsideState`` reads a Python attribute instead.
"""

from __future__ import annotations

import torch

from .correct import HandAdam


def _planted(name: str, bug: str, doc: str) -> type:
    return type(name, (HandAdam,), {"bug": bug, "__doc__": doc, "__module__": __name__})


PLANTED: dict[str, tuple[str, str, str]] = {
    # class name: (bug, property that must fail, what the bug is)
    "AscentFirstStep": ("ascent_first_step", "P2", "the first step goes uphill (bias-correction sign slip)"),
    "LrZeroMoves": ("lr_zero_moves", "P3", "adds a 1e-7·sign(update) nudge not scaled by lr"),
    "FrozenMoves": ("frozen_moves", "P4", "keeps applying momentum to params whose grad is None"),
    "GradInPlace": ("grad_in_place", "P5", "scales p.grad in place (grad.mul_) to fold in 1-beta1"),
    "DefaultsLr": ("defaults_lr", "P6", "reads lr from self.defaults instead of the param group"),
    "GlobalNorm": ("global_norm", "P7", "divides every grad by the group's global grad norm"),
    "StepOutsideState": ("step_outside_state", "P8", "keeps the step count outside state_dict (self._t)"),
    "StateFloat64": ("state_float64", "P9", "creates m and v in float64 whatever the param dtype"),
    "ClosureNone": ("closure_none", "P10", "step(closure) returns None instead of the loss"),
    "MaximizeIgnored": ("maximize_ignored", "P11", "accepts maximize= but ignores it"),
    "DecaySign": ("decay_sign", "P12", "adds weight decay with the wrong sign (grows params)"),
    "ScaleByNorm": ("scale_by_norm", "P13", "scales the step by 1+|x| (param-magnitude dependent)"),
    "ReshapeCopy": ("reshape_copy", "P14", "writes the update into p.reshape(-1), a copy when p is non-contiguous"),
    "ZeroGradNoop": ("zero_grad_noop", "P16", "zero_grad() does nothing"),
    "Nondeterministic": ("nondeterministic", "P17", "adds noise from an unseeded generator"),
}

for _name, (_bug, _prop, _doc) in PLANTED.items():
    globals()[_name] = _planted(_name, _bug, f"Planted bug ({_prop}): {_doc}.")


# P15 (implementation and dtype parity) needs an optimizer with two paths: two small SGDs, outside PLANTED.


class ForeachLrSlip(torch.optim.SGD):
    """Planted bug (P15, implementations): the foreach path steps with lr * 1.001 (a constant folded wrong), the
    for-loop path with lr."""

    @torch.no_grad()
    def step(self, closure=None):
        lrs = [g["lr"] for g in self.param_groups]
        for g in self.param_groups:
            if g.get("foreach"):
                g["lr"] = g["lr"] * 1.001
        try:
            return super().step(closure)
        finally:
            for g, lr in zip(self.param_groups, lrs):
                g["lr"] = lr


class Float32Eps(torch.optim.Adam):
    """Planted bug (P15, dtypes): eps is 0.1 for float32 parameters ("float32 needs a larger eps") and 1e-8 for
    float64, so the two precisions take different steps from the first."""

    @torch.no_grad()
    def step(self, closure=None):
        eps = [g["eps"] for g in self.param_groups]
        for g in self.param_groups:
            if any(p.dtype == torch.float32 for p in g["params"]):
                g["eps"] = 0.1
        try:
            return super().step(closure)
        finally:
            for g, e in zip(self.param_groups, eps):
                g["eps"] = e
