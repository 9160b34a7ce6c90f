"""A witness for P1's shared runs: one start of a shared run, run again alone, must end where it ended.

Where P1's runs share an optimizer (starts as rows of one tensor, lrs as param groups, targets as parameters:
:mod:`optbench.optimizers.batch`), the sharing rests on probes that run a few steps at the contract's lr
(P6, P7 and the rows probe). A statistic that stays constant over those steps and only later couples the
parameters escapes them: D-Adaptation's step size d is one number estimated from every parameter of every
group, and it stays at d0 = 1e-6 for the probes' few steps, so DAdaptLion and DAdaptAdaGrad passed P7 and
their P1 runs shared d across 11 targets, 10 lrs and 9 starts. The witness closes that gap on the run itself:
the unit that ran longest (it saw the others for the whole run) has its first start run again alone, one
optimizer for one start, for exactly as many epochs under the same lr, schedule and seed; its last point must
be the shared run's, bit for bit on the CPU (to the contract's relative tolerance elsewhere). Where it is not,
the caller runs everything apart.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .batch import Unit, run_units
from .problem import rel_tol


def _same_point(a: torch.Tensor, b: torch.Tensor, exact: bool, dtype: torch.dtype) -> bool:
    nan_a, nan_b = torch.isnan(a), torch.isnan(b)
    if not torch.equal(nan_a, nan_b):
        return False
    a, b = a[~nan_a], b[~nan_b]
    if exact:
        return torch.equal(a, b)
    return bool(((a - b).abs() <= rel_tol(dtype) * b.abs().clamp_min(1.0)).all())


def pick(units: Sequence[Unit]) -> Unit | None:
    """The unit whose first start is the witness: one that ran longest, since a coupling through the others
    reaches it for the whole run, and of those the one at the largest lr that did not diverge, since a statistic
    that adapts to the run moves fastest there (D-Adaptation's d at lr 1e-4 is still d0 after 200 epochs, at lr 1
    it is not after 10). A unit with a gradient error or no epoch run has nothing to compare."""
    cands = [u for u in units if u.stopped[0] > 0 and u.grad_error is None and u.last]
    return max(cands, key=lambda u: (u.stopped[0], u.diverged is None, u.lr or 0.0)) if cands else None


def differs(case: Any, units: Sequence[Unit], *, schedule: Any, weight_decay: float) -> str | None:
    """None where the witness ends where the shared run left it; else what differs, as a clause."""
    u = pick(units)
    if u is None:
        return None
    epochs = u.stopped[0]  # start 0's slot may have retired before its unit's others (it converged first)
    alone = Unit(u.target, u.lr, u.starts[:1].clone(), epochs, False, ctor_lr=u.ctor_lr, x_star=u.x_star,
                 f_star=u.f_star, sched_epochs=u.sched_epochs or u.epochs)
    run_units(case, [alone], groups_exact=False, params_exact=False, weight_decay=weight_decay, check_grad=False,
              early_stop=False, schedule=schedule, hopeless=False, lockstep=False)
    shared_x, alone_x = u.last[-1][0], alone.last[-1][0] if alone.last else None
    if alone_x is not None and alone.epochs_run == epochs and \
            _same_point(shared_x, alone_x, case.exact, case.dtype):
        return None
    lr = f"lr {u.lr:.3g}" if u.lr is not None else "its own step size"
    got = "nothing" if alone_x is None else f"{alone_x.tolist()} at epoch {alone.epochs_run}"
    return (f"on {u.target.name} at {lr}, start 0 ended at {shared_x.tolist()} after {epochs} epochs in the "
            f"shared run but at {got} run alone: the optimizer couples what its probes found independent "
            f"(a statistic over every parameter, such as D-Adaptation's d)")
