"""P1 as correctness, plus convergence profiles.

*Correctness*: on the targets where every correct method of its class must converge (the seed, and the
convex quadratics not declared ill-conditioned: a constant Hessian with kappa <= 25, so one fixed lr is
stable from every start), the optimizer reaches the exact minimum from the canonical and random
starts, within its lr band: the declared lr, or some lr of :data:`~optbench.optimizers.convergence.LR_GRID`. A method whose
fixed-lr runs hover at a distance that grows with lr (sign or RMS-normalised steps) is run again under
a decaying schedule (:data:`optbench.schedules.AUTO`), as real training would.

*Hard targets* (Rosenbrock, Beale, Himmelblau, the multimodal ones): epochs to tolerance per optimizer,
target, start and lr are recorded as profile records (``optbench-profiles/1``, read by
``optbench.report.profiles``). A hard target is judged (FAIL on non-convergence) only where a config
declares a budget for it; the built-in registry's declared targets are such declarations.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..devices import dtype_name
from ..schedules import AUTO
from ..verdict import NotApplicable
from . import contract as C
from . import convergence as CV
from .contract import Case, PropertyFailure

# The hard targets every optimizer is profiled on when nothing else is declared (user optimizers).
PROFILE_TARGETS = ("rosenbrock_2d", "beale", "himmelblau")
PROFILE_SCHEMA = "optbench-profiles/1"


def p1_role(target: Any) -> str:
    """"correctness" where every correct method must converge, else "hard" (read from declared data).

    A convex quadratic has one constant Hessian, so a fixed lr below 2/L is stable from every start. A
    non-quadratic convex target is not enough: Zakharov's quartic term makes the gradient's Lipschitz
    constant grow without bound away from x*, so plain GD needs a start-dependent lr."""
    tags = set(target.tags)
    if "seed" in tags or (target.kind == "quadratic" and "convex" in tags and "ill-conditioned" not in tags):
        return "correctness"
    return "hard"


# What p1_role derives from the catalogue's declared data, written out so that planning a user's run does
# not build the whole catalogue (~5 s); tests/test_p1.py checks that the two agree.
CORRECTNESS_TARGETS = ("seed_quadratic", "seed_quadratic_pow2", "sphere_2d", "sphere_4d", "sum_squares_3d",
                       "schwefel_1_2_3d", "trid_2d", "trid_4d", "trid_6d", "booth", "matyas")


def correctness_targets() -> tuple[str, ...]:
    """The catalogue's correctness targets, in catalogue order."""
    return CORRECTNESS_TARGETS


def hovers(res: CV.P1Result) -> bool:
    """Fixed-lr runs that settle at a distance proportional to lr: two successive grid lrs, neither diverged,
    where the smaller got well inside the start distance (< 1e-1 of it) and the larger ends >= 2x farther
    (the grid steps lr by sqrt(10) = 3.16). A merely slow method ends *closer* at the larger lr."""
    start_dist = float(((res.starts[:, None, :] - res.x_star[None]) ** 2).sum(-1).sqrt().amin(1).max())
    pts = [(lr, float(res.dist[g].max())) for g, lr in enumerate(res.lrs)
           if lr is not None and res.diverged[g] is None and math.isfinite(float(res.dist[g].max()))]
    for (l1, d1), (l2, d2) in zip(pts, pts[1:]):
        if l2 > l1 and 0 < d1 < 0.1 * start_dist and d2 >= 2 * d1:
            return True
    return False


_GROUPS_EXACT: dict[tuple[str, str], bool] = {}  # (source, config) -> P6 holds; probed once per process


def _groups_exact(case: Case) -> bool:
    """The lr grid may be batched as param groups only where P6 (group independence) holds."""
    key = (case.info.source or case.info.name, case.config.name)
    if key not in _GROUPS_EXACT:
        try:
            C.check_p6(case)
            _GROUPS_EXACT[key] = True
        except Exception:  # noqa: BLE001 - any failure (or the optimizer raising) means: run groups apart
            _GROUPS_EXACT[key] = False
    return _GROUPS_EXACT[key]


def profile_records(case: Case, target: Any, res: CV.P1Result, budget: int) -> list[dict[str, Any]]:
    """One ``optbench-profiles/1`` record per (lr, start) of a P1 run."""
    tol_x, tol_f, _ = CV.tolerance(case.info, case.dtype)
    n_canon = len(target.start)
    out = []
    for g, lr in enumerate(res.lrs):
        for s in range(res.starts.shape[0]):
            reached = res.reached[g][s]
            out.append({
                "optimizer": case.name, "source": case.info.source, "target": target.name, "dim": target.dim,
                "start": s, "start_kind": "canonical" if s < n_canon else "random",
                "lr": lr if lr is not None else case.info.contract_lr, "schedule": res.schedule,
                "epochs_to_tol": None if reached is None or res.diverged[g] is not None else int(reached) + 1,
                "budget": int(budget), "diverged": res.diverged[g] is not None,
                "dtype": dtype_name(case.dtype), "device": case.device, "tol_x": tol_x, "tol_f": tol_f,
                "final_dist": float(res.dist[g][s]), "final_gap": float(res.gap[g][s]),
            })
    return out


SLOW_FACTOR = 4  # a slow method gets this many times its budget before it is judged


# epochs of the batched-vs-separate probe of an undeclared user optimizer: past a warmup of a few steps
# (RAdam's rectification skips about 5 at beta2 = 0.999, schedule-free RAdam's silent phase 4), where an
# update that couples coordinates (Ranger's gradient centralisation over a 2-D batch) shows
PROBE_EPOCHS = 12


def _slow_or_stuck(case: Case, target: Any, starts: torch.Tensor, lrs: list, epochs: int, kw: dict,
                   res: CV.P1Result, note: str) -> tuple[list[float], str]:
    """Nothing converged within the budget. A run still converging at some lr of the grid (the distance
    halved over the second half) is a slow method, not a bug: it gets SLOW_FACTOR x the budget at the
    still-converging lr that ended closest, and passes if it gets there; if it is still converging then, P1
    does not apply at this budget (N/A, with the numbers). Stalled, hovering and diverging runs are left to
    fail. The lr that ended closest is not always the one still converging: Ranger on booth ends closer at
    lr 0.01 (9.2 -> 6.5 over the second half, slow) than at lr 0.0316 (15.6 -> 7.4), which reaches x* to
    1e-14 in 8000 epochs."""
    slow_lrs = [g for g in range(len(lrs)) if res.diverged[g] is None and res.still_converging(g)]
    if not slow_lrs:
        return [], note
    g = min(slow_lrs, key=lambda g: float(res.dist[g].max()))
    long_epochs = SLOW_FACTOR * epochs
    schedule = None if res.schedule is None else AUTO
    longer = CV.run_p1(case, target, starts, [lrs[g]], long_epochs, schedule=schedule, **kw)
    slow = (f"at lr {lrs[g]:.3g} it was still converging when the {epochs}-epoch budget ran out (largest |x - x*| "
            f"{res.mid[g]:.2g} at mid-budget, {float(res.dist[g].max()):.2g} at the end)")
    if longer.converged(0):
        last = max(e for e in longer.reached[0] if e is not None) + 1
        return [lrs[g]], (f"{note}; {slow}, and converged within {last} epochs: a slow method, not a bug "
                          f"(declare epochs = {2 * last} to judge it at that budget)")
    if longer.still_converging(0):
        raise NotApplicable(f"on {target.name}: {slow}, and still at {float(longer.dist[0].max()):.2g} (tol_x "
                            f"{CV.tolerance(case.info, case.dtype)[0]:g}) after {long_epochs} epochs, still "
                            f"converging: too slow to judge at this budget; declare a budget for it (epochs = ...)")
    return [], note


def check_p1(case: Case, target_name: str, *, judge: bool = True, weight_decay: float = 0.0,
             x_star: torch.Tensor | None = None, f_star: float | None = None, what: str = "P1") -> dict[str, Any]:
    """Run P1 on one target. Raises :class:`PropertyFailure` when ``judge`` and no lr converged; returns the
    lr band and the profile records either way."""
    from ..catalogue import get_target

    info, cfg = case.info, case.config
    target = get_target(target_name)
    budget = info.budget(cfg, target.name)
    batch = info.elementwise
    if batch is None:  # user optimizer without a declaration: probe batched == separate once
        batch = CV.batched_equals_separate(case, target, epochs=PROBE_EPOCHS)[0]
    lrs = [budget.lr] if budget.lr is not None else list(CV.LR_GRID)
    groups_exact = len(lrs) == 1 or _groups_exact(case)
    starts = CV.starts_for(info, target, case.dtype, bool(batch))
    kw = dict(batch_starts=bool(batch), batch_groups=groups_exact, weight_decay=weight_decay, x_star=x_star,
              f_star=f_star)
    res = CV.run_p1(case, target, starts, lrs, budget.epochs, schedule=cfg.schedule, **kw)
    if res.grad_error:
        raise PropertyFailure(what, case, f"on {target.name}: {res.grad_error}", kind="grad", target=target.name)
    ok = [g for g in range(len(lrs)) if res.converged(g)]
    profiled = p1_role(target) == "hard"  # profiles compare optimizers where speed differs: the hard targets
    records = profile_records(case, target, res, budget.epochs) if profiled else []
    note = ""
    if not ok and cfg.schedule is None and len(lrs) > 1 and hovers(res):
        fixed = res
        scheduled = CV.run_p1(case, target, starts, lrs, budget.epochs, schedule=AUTO, **kw)
        records += profile_records(case, target, scheduled, budget.epochs) if profiled else []
        best = min(range(len(lrs)), key=lambda g: float(fixed.dist[g].max()))
        hover = (f"with a constant lr it hovered at a distance that grows with lr (|x - x*| "
                 f"{float(fixed.dist[best].max()):.2g} at lr {lrs[best]:.3g}), as sign or RMS-normalised steps do")
        if any(scheduled.converged(g) for g in range(len(lrs))):
            res, ok = scheduled, [g for g in range(len(lrs)) if scheduled.converged(g)]
            note = f" under {scheduled.schedule}: {hover}"
        else:  # report the constant-lr run, the method's own regime; the rerun did not help either
            note = f"; {hover}, and a rerun under {scheduled.schedule} did not converge either"
    ok_lrs = [lrs[g] for g in ok]
    if not ok and judge:
        ok_lrs, note = _slow_or_stuck(case, target, starts, lrs, budget.epochs, kw, res, note)
    band = None
    if budget.lr is None:
        band = (f"{target.name}: converged for lr in [{ok_lrs[0]:.3g}, {ok_lrs[-1]:.3g}] ({len(ok_lrs)} of {len(lrs)} "
                f"grid lrs){note}" if ok_lrs else f"{target.name}: no lr of the grid converged{note}")
    data = {"lr_band": band, "profiles": records, "converged": bool(ok_lrs), "schedule": res.schedule}
    if not ok_lrs and judge:
        g = min(range(len(lrs)), key=lambda g: (res.diverged[g] is not None, float(res.dist[g].max())))
        extra = "" if len(lrs) == 1 else f" (best of the lr grid {lrs[0]:.0e}..{lrs[-1]:.1f})"
        bad = [s for s, e in enumerate(res.reached[g]) if e is None] or [0]
        raise PropertyFailure(what, case, CV.describe_failure(case, target, res, g, budget.epochs) + extra + note,
                              kind="converge", target=target.name, lr=lrs[g], epochs=budget.epochs,
                              start=res.starts[bad[0]].tolist(), schedule=res.schedule, weight_decay=weight_decay,
                              x_star=res.x_star.tolist(), f_star=f_star)
    return data
