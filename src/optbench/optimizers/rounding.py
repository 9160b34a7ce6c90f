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
x0 moved by a few ulps (:data:`NUDGES`; ``Problem(nudge=n)``: ``torch.nextafter`` toward +inf, every element),
per step. Where that moves the
parameters at the failing step by at least 1/:data:`MARGIN` of the difference found, the difference cannot be
told apart from rounding amplified by the method, and the FAIL (still a FAIL) says so instead of naming a
cause it is not. Whether that sensitivity is by design (SOAP's eps below float32's rounding noise) or a bug
(FOCUS takes the sign of p minus its own bias-corrected average, 0 in exact arithmetic at step 1) is for the
reader of the method. A bug of the planted kinds (an update written into a copy, a term that depends on x's
magnitude, a float32 path) moves the parameters by the size of a step where one ulp of x0 moves them by
ulps, and keeps its own diagnosis (tests/test_traits.py). P21 uses the same wording for a compiled step that
differs from eager (Inductor reorders float operations), measured on its own eager runs.

:func:`declared_precision` is the other rounding cause: a float64 case whose constructor declares a lower
precision for its state, and keeps state in it (heavyball's ``storage_dtype="float32"``), carries that
precision's rounding in every update. Where the check's own comparison holds once that argument is float64,
the difference is the declaration's (heavyball's HyperBallAdamW: a transposed parameter differs by 1.4e-7 at
step 1, and P14 asked whether the update is written into a reshape() copy). :func:`cause` tries both.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from . import rng
from .problem import (Case, Problem, _run, case_key, declared_dtype_values, declared_dtypes, fresh_run, max_diff,
                      state_tensors)

# The two runs of a check differ by a few roundings of x (P13: the shift rounds x + s at |s| + |x|, up to ~4
# ulps of x; P14/P15: another order of the same operations, a few ulps per step). Amplified alike, their
# difference is a small multiple of the one-ulp run's; a bug's is orders of magnitude larger.
MARGIN = 100.0
# How far x0 is moved, in ulps of each element: a step that takes the sign of rounding noise (FOCUS) keeps that
# sign under some changes of an element's last bits and flips it under others, so one nudge may miss it.
NUDGES = (1, 2, 3, 5, 8)

# the exemption's reasons in the stanza a FAIL offers
REASON = "the step amplifies rounding errors (an ulp of x0 moves the parameters beyond the contract's tolerance)"
PRECISION = "the step computes with state in the lower precision its constructor declares"
_SPREAD: dict[tuple, list[float]] = {}  # (case key, steps) -> max |Δx| per step, a few ulps of x0 apart


def spread(case: Case, steps: int) -> list[float]:
    """max |Δx| after each of ``steps`` steps between the contract's run of ``case`` and the same run from x0
    moved by :data:`NUDGES` ulps (each element; the largest over the nudges, all from the same RNG state);
    memoized per process."""
    key = case_key(case) + (steps,)
    if key not in _SPREAD:
        base = fresh_run(case, steps)
        worst = [0.0] * steps
        for n in NUDGES:
            other = fresh_run(case, steps, nudge=n)
            worst = [max(w, max_diff(base.xs[k], other.xs[k])) for w, k in zip(worst, range(1, steps + 1))]
        _SPREAD[key] = worst
    return _SPREAD[key]


def explains(case: Case, step: int, diff: float, steps: int) -> str | None:
    """The wording of the cause when rounding amplified by the method accounts for a difference of ``diff`` at
    ``step`` (1-based) between two runs of ``case`` equal in exact arithmetic, else None."""
    try:
        s = spread(case, steps)[step - 1]
    except Exception:  # noqa: BLE001 - a nudged run that raises gives no evidence either way
        return None
    return wording(case.dtype, step, s, diff)


def wording(dtype: torch.dtype, step: int, s: float, diff: float) -> str | None:
    """The cause, where ``s`` (the nudged runs' largest difference at ``step``) accounts for ``diff``, else None."""
    if not (s == s) or s * MARGIN < diff:  # NaN, or far below the difference: the difference is the finding
        return None
    return (f"rounding amplified by the step: the same run from x0 moved by {NUDGES[0]}-{NUDGES[-1]} ulps "
            f"({torch.finfo(dtype).eps:.1e} relative each) moves the parameters by {s:.3g} at step {step}, as far as "
            f"this difference ({diff:.3g}, within {MARGIN:g}x), so what this check varies cannot be told apart from "
            f"rounding noise: the step's result is decided by it (a sign, a normalisation or an eigenbasis of a "
            f"quantity that is zero or degenerate in exact arithmetic?)")


def declared_precision(case: Case, recheck: Callable[[Case], bool]) -> str | None:
    """The wording of the cause when a float64 case's difference comes from the lower precision its constructor
    declares for its state (an argument whose default is a dtype or whose name ends in ``dtype``, as P9 reads
    it: heavyball's ``storage_dtype="float32"``), else None: the declaration is in effect (state of that dtype
    after two steps), and ``recheck`` (the check's own comparison) holds at float64's tolerance once that
    argument is float64. A controlled experiment, not a tolerance: AdaFactor's P13 difference (a relative step
    size) stays with its bfloat16 momentum set to float64."""
    if case.dtype != torch.float64:
        return None
    low = {n: d for n, d in declared_dtypes(case).items() if d.is_floating_point and torch.finfo(d).eps >
           torch.finfo(torch.float64).eps}
    kept = _state_dtypes(case) if low else set()
    for name, dt in sorted(low.items(), key=lambda kv: torch.finfo(kv[1]).eps):
        if dt not in kept:  # declared, not in effect (AdaFactor's momentum_dtype without beta1)
            continue
        try:
            holds = recheck(_with_float64(case, name))
        except Exception:  # noqa: BLE001 - the optimizer refusing float64 there: no evidence either way
            holds = False
        if holds:
            short = str(dt)[6:]
            return (f"the {short} its argument {name} declares for its state: with {name} set to float64 the same "
                    f"two runs agree to float64's tolerance (its update carries {short}'s rounding, so another order "
                    f"of the same float operations moves it at that level; a declared trait)")
    return None


def _with_float64(case: Case, name: str) -> Case:
    """``case`` with the constructor argument ``name`` set to float64, spelled as its value is (a dtype or a str)."""
    f64 = "float64" if isinstance(declared_dtype_values(case).get(name), str) else torch.float64
    config = dataclasses.replace(case.config, kwargs={**dict(case.config.kwargs), name: f64})
    return dataclasses.replace(case, config=config)


def _state_dtypes(case: Case) -> set[torch.dtype]:
    """The floating-point dtypes of the optimizer's state (at any depth) after 2 steps of the contract's run."""
    try:
        rng.reseed()
        prob = Problem(case)
        opt = case.make(prob.params)
        _run(case, prob, opt, 2)
    except Exception:  # noqa: BLE001 - a run that raises shows no state: no evidence of the declaration
        return set()
    return {t.dtype for st in opt.state.values() for _, _, t in state_tensors(st) if t.is_floating_point()}


def cause(case: Case, step: int, diff: float, steps: int, recheck: Callable[[Case], bool]) -> tuple[str, str] | None:
    """(wording, exemption reason) of the rounding cause of a difference between two runs of ``case`` equal in
    exact arithmetic: rounding amplified by the step, or the lower precision the constructor declares (where
    ``recheck``, the check's comparison, holds with it set to float64); else None."""
    text = explains(case, step, diff, steps)
    if text:
        return text, REASON
    text = declared_precision(case, recheck)
    return (text, PRECISION) if text else None
