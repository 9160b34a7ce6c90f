"""Rounding amplification: whether a difference between two computations of the same steps is the method's.

P13 (a shifted problem), P14 (another memory layout) and P15 (another implementation, or float32 against
float64) compare two runs that are equal in exact arithmetic and differ only in the order and precision of
their float operations. They allow ~1e3 ulps. A method whose step amplifies rounding errors makes any two
such runs differ by far more, with no bug in either: SOAP rotates the gradient into the eigenbasis of a
preconditioner that is rank-deficient after one step, the entries of the rotated gradient that are zero in
exact arithmetic are rounding noise there (~1e-7 in float32), and Adam's elementwise normalisation turns
that noise into steps of +-lr (heavyball's and pytorch-optimizer's SOAP: an ulp of x0 moves step 2 by
0.02). Their P13/P14 FAILs asked whether the step depends on the parameter's magnitude, or whether the
update is written into a reshape() copy: a misdiagnosis.

:func:`explains` measures it the only way that needs no knowledge of the method: the same run again from
x0 moved by a few ulps (:data:`NUDGES`, ``torch.nextafter`` toward +inf, every element), per step. Where that moves the
parameters at the failing step by at least 1/:data:`MARGIN` of the difference found, the difference cannot be
told apart from rounding amplified by the method, and the FAIL (still a FAIL) says so instead of naming a
cause it is not. Whether that sensitivity is by design (SOAP's eps below float32's rounding noise) or a bug
(FOCUS takes the sign of p minus its own bias-corrected average, 0 in exact arithmetic at step 1) is for the
reader of the method. A bug of the planted kinds (an update written into a copy, a term that depends on x's
magnitude, a float32 path) moves the parameters by the size of a step where one ulp of x0 moves them by
ulps, and keeps its own diagnosis (tests/test_traits.py).
"""

from __future__ import annotations

import torch

from . import rng
from .problem import Case, Problem, _run, case_key, max_diff

# The two runs of a check differ by a few roundings of x (P13: the shift rounds x + s at |s| + |x|, up to ~4
# ulps of x; P14/P15: another order of the same operations, a few ulps per step). Amplified alike, their
# difference is a small multiple of the one-ulp run's; a bug's is orders of magnitude larger.
MARGIN = 100.0
# How far x0 is moved, in ulps of each element: a step that takes the sign of rounding noise (FOCUS) keeps that
# sign under some changes of an element's last bits and flips it under others, so one nudge may miss it.
NUDGES = (1, 2, 3, 5, 8)

# the exemption's reason in the stanza a FAIL offers
REASON = "the step amplifies rounding errors (an ulp of x0 moves the parameters beyond the contract's tolerance)"
_SPREAD: dict[tuple, list[float]] = {}  # (case key, steps) -> max |Δx| per step, one ulp of x0 apart


def spread(case: Case, steps: int) -> list[float]:
    """max |Δx| after each of ``steps`` steps between the contract's run of ``case`` and the same run from x0
    moved by :data:`NUDGES` ulps (each element; the largest over the nudges, all from the same RNG state);
    memoized per process."""
    key = case_key(case) + (steps,)
    if key not in _SPREAD:
        base = _nudged_run(case, steps, 0)
        worst = [0.0] * steps
        for n in NUDGES:
            other = _nudged_run(case, steps, n)
            worst = [max(w, max_diff(base.xs[k], other.xs[k])) for w, k in zip(worst, range(1, steps + 1))]
        _SPREAD[key] = worst
    return _SPREAD[key]


def _nudged_run(case: Case, steps: int, ulps: int):
    rng.reseed()
    prob = Problem(case)
    with torch.no_grad():
        for p in prob.params:
            for _ in range(ulps):
                p.copy_(torch.nextafter(p, torch.full_like(p, float("inf"))))
    return _run(case, prob, case.make(prob.params), steps)


def explains(case: Case, step: int, diff: float, steps: int) -> str | None:
    """The trait's wording when rounding amplified by the method accounts for a difference of ``diff`` at
    ``step`` (1-based) between two runs of ``case`` equal in exact arithmetic, else None."""
    try:
        s = spread(case, steps)[step - 1]
    except Exception:  # noqa: BLE001 - the nudged run raising or not finite: no evidence either way
        return None
    if not (s == s) or s * MARGIN < diff:  # NaN, or far below the difference: the difference is the finding
        return None
    return (f"rounding amplified by the step: the same run from x0 moved by {NUDGES[0]}-{NUDGES[-1]} ulps "
            f"({torch.finfo(case.dtype).eps:.1e} relative each) moves the parameters by {s:.3g} at step {step}, as far as "
            f"this difference ({diff:.3g}, within {MARGIN:g}x), so what this check varies cannot be told apart from "
            f"rounding noise: the step's result is decided by it (a sign, a normalisation or an eigenbasis of a "
            f"quantity that is zero or degenerate in exact arithmetic?)")
