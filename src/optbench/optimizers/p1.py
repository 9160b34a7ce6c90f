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

*Cost* (how P1 is cheap without losing rigour): every target of a case is decided by one :class:`Session`,
over runs shared through :mod:`optbench.optimizers.batch` (every unit bit for bit its own separate run, where
P6/P7 prove it; otherwise each in its own optimizer, stepped in lockstep), where a unit stops once it has
converged, diverged, spent its budget, or provably cannot converge at its current rate; the decisions per
target are the ones a run of that target alone takes (tests/test_p1_batch.py).
"""

from __future__ import annotations

import math
import time as _time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch

from ..devices import dtype_name
from ..loop import OptimizerRaised
from ..schedules import AUTO
from ..verdict import SHARE, CheckFailure, NotApplicable
from . import contract as C
from . import convergence as CV
from .. import p1_limit
from . import witness
from .batch import run_units
from .contract import Case, PropertyFailure
from .tolerance import tolerance

# The hard targets every optimizer is profiled on when nothing else is declared (user optimizers).
PROFILE_TARGETS = ("rosenbrock_2d", "beale", "himmelblau")


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


_PROBES: dict[tuple, bool] = {}  # (case key, property) -> holds bit for bit; probed once per process


def _case_key(case: Case) -> tuple:
    return (case.info.name, case.info.source, case.config.name, case.impl, str(case.dtype), case.device)


def probe(case: Case, prop: str) -> bool:
    """Whether P6 (param groups behave as separate optimizers) or P7 (parameters as if optimized alone) holds
    on this case, as the contract checks it (bit for bit on the CPU): what decides how P1's runs may share
    one optimizer (:mod:`optbench.optimizers.batch`). Any failure, N/A or exception means: run them apart."""
    key = _case_key(case) + (prop,)
    if key not in _PROBES:
        check = C.check_p6 if prop == "P6" else C.check_p7
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                check(case)
            _PROBES[key] = True
        except Exception:  # noqa: BLE001 - any failure (or the optimizer raising) means: run them apart
            _PROBES[key] = False
    return _PROBES[key]


def _groups_exact(case: Case) -> bool:
    """The lr grid may be batched as param groups only where P6 (group independence) holds."""
    return probe(case, "P6")


def profile_records(case: Case, target: Any, res: CV.P1Result, budget: int) -> list[dict[str, Any]]:
    """One ``optbench-profiles/1`` record per (lr, start) of a P1 run."""
    tol_x, tol_f, _ = tolerance(case.info, case.dtype)
    n_canon = len(target.start)
    out = []
    for g, lr in enumerate(res.lrs):
        for s in range(res.starts.shape[0]):
            reached = res.reached[g][s]
            out.append({
                "optimizer": case.name, "source": case.info.source, "target": target.name, "dim": target.dim,
                "start": s, "start_kind": "canonical" if s < n_canon else "random",
                "lr": lr if lr is not None else case.info.contract_lr, "schedule": res.schedule,
                # the hook at epoch e reads x after e steps: e is the number of epochs it needed (a start reached
                # only at its last point needed the whole budget, not one more)
                "epochs_to_tol": None if reached is None or res.diverged[g] is not None else int(reached),
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


def _lr_text(lr: float | None) -> str:
    return f"lr {lr:.3g}" if lr is not None else "its own step size"


def _slow_or_stuck(case: Case, target: Any, starts: torch.Tensor, lrs: list, epochs: int, kw: dict,
                   res: CV.P1Result, note: str) -> tuple[list[float], str]:
    """Nothing converged within the budget. A run still converging at some lr of the grid (the largest distance
    down by at least a fifth over the second half: convergence.SLOW_DECREASE) may be a slow method: every such lr
    gets SLOW_FACTOR x the budget, in one shared run, and the method passes where one reaches x*; if none does
    but the one that ended closest halved its distance over the longer run's second half, P1 does not apply at
    this budget (N/A, with the numbers).
    Stalled, hovering and diverging runs are left to fail. Every still-converging lr, not only the one that
    ended closest: AdaSmooth ends closest at a hovering lr (0.4 -> 0.009 over the second half, then flat at
    +-lr/2) while at lr 1 every start reaches x* within 8000 epochs; Ranger on booth ends closer at lr 0.01
    (9.2 -> 6.5) than at lr 0.0316 (15.6 -> 7.4), which reaches x* to 1e-14 in 8000 epochs."""
    slow_lrs = sorted((g for g in range(len(lrs)) if res.diverged[g] is None and
                       res.still_converging(g, by=CV.SLOW_DECREASE)),
                      key=lambda g: float(res.dist[g].max()))
    if not slow_lrs:
        return [], note
    long_epochs = SLOW_FACTOR * epochs
    schedule = None if res.schedule is None else AUTO
    longer = CV.run_p1(case, target, starts, [lrs[g] for g in slow_lrs], long_epochs, schedule=schedule,
                       limit_s=p1_limit.limit_s(), **kw)  # raises p1_limit.TooCostly (an N/A) past P1's limit

    def slow(j: int) -> str:
        g = slow_lrs[j]
        return (f"at {_lr_text(lrs[g])} it was still converging when the {epochs}-epoch budget ran out (largest "
                f"|x - x*| {res.mid[g]:.2g} at mid-budget, {float(res.dist[g].max()):.2g} at the end)")

    done = [j for j in range(len(slow_lrs)) if longer.converged(j)]
    if done:
        last = max(max(e for e in longer.reached[j] if e is not None) for j in done)  # epochs: x after e steps
        return sorted(lrs[slow_lrs[j]] for j in done), (
            f"{note}; {slow(done[0])}, and converged within {last} epochs: a slow method, not a bug "
            f"(declare epochs = {2 * last} to judge it at that budget)")
    # N/A only where the lr that ended closest is still converging: a biased fixed point is approached slowly at
    # a small lr while the larger ones already sit on it (BiasedSGD), which is a FAIL
    ended = [j for j in range(len(slow_lrs)) if longer.diverged[j] is None]
    j = min(ended, key=lambda j: float(longer.dist[j].max())) if ended else None
    if j is not None and longer.still_converging(j):
        tol_x, tol_f, _ = tolerance(case.info, case.dtype)
        # both distances: |x - x*| may already be inside tol_x while f - f* is not (SimplifiedAdEMAMix on booth)
        raise NotApplicable(f"on {target.name}: {slow(j)}, and still at |x - x*| {float(longer.dist[j].max()):.2g} "
                            f"(tol_x {tol_x:g}), f - f* {float(longer.gap[j].max()):.2g} (tol_f {tol_f:g}) after "
                            f"{long_epochs} epochs, still converging: too slow to judge at this budget; declare a "
                            f"budget for it (epochs = ...)")
    return [], note


def _lrs(case: Case, budget: Any) -> list[float | None]:
    """The lrs P1 runs: the declared one, else the grid; an optimizer with no lr hyperparameter (A2Grad, AliG: the
    step size is the method's own) runs once with none, since every lr of the grid would be the same run."""
    if budget.lr is not None:
        return [budget.lr]
    if not C.accepts(case.info, case.config, "lr"):
        return [None]
    return list(CV.LR_GRID)


LR_PROBE_STEPS = 12  # steps of the contract problem the lr-unused probe compares (past short warm-ups)


def lr_unused(case: Case) -> str | None:
    """Why the grid's lrs would all be one run, or None: LR_PROBE_STEPS steps of the contract problem at the grid's
    two ends (lr 1e-4 and 3.16) moved the parameters and are the same bit for bit, so the optimizer does not use
    lr (a step size of its own: Adafactor's relative step, torch-optimizer's A2Grad). Probed once per case; any
    difference, a run that does not move, or an exception means: run the grid."""
    key = _case_key(case) + ("lr_unused",)
    if key not in _PROBES:
        lo, hi = CV.LR_GRID[0], CV.LR_GRID[-1]
        why = None
        try:
            with torch.random.fork_rng(devices=[]):
                (a, _), (b, _) = (C.lr_run(case, lr, LR_PROBE_STEPS) for lr in (lo, hi))
            moved = any(not torch.equal(x, y) for x, y in zip(a.xs[-1], a.xs[0]))
            if moved and C.same_runs(a, b):
                why = (f"its steps do not depend on lr: on the contract problem, {LR_PROBE_STEPS} steps at lr {lo:g} "
                       f"and at lr {hi:g} are the same bit for bit, so one run stands for the whole lr grid")
        except Exception:  # noqa: BLE001 - any failure means: run the grid as usual
            why = None
        _PROBES[key] = why
    return _PROBES[key]


def _rows_batchable(case: Case, target: Any) -> bool:
    """Starts as rows of one tensor: declared elementwise, or probed once per target (user optimizers)."""
    if case.info.elementwise is not None:
        return bool(case.info.elementwise)
    key = _case_key(case) + ("rows", target.name)
    if key not in _PROBES:
        _PROBES[key] = CV.batched_equals_separate(case, target, epochs=PROBE_EPOCHS)[0]
    return _PROBES[key]


@dataclass
class _TargetP1:
    """P1 of one target inside a :class:`Session`: its runs, and what they amount to."""

    target: Any
    judge: bool
    epochs: int
    lrs: list
    starts: torch.Tensor
    rows: bool
    lr_unused: str | None = None  # why the grid is one run (lr_unused), when it is
    res: CV.P1Result | None = None
    records: list = field(default_factory=list)
    note: str = ""
    ok: list = field(default_factory=list)
    outcome: Any = None  # the data dict, or the exception to raise
    time: dict = field(default_factory=dict)  # lr -> {"epochs", "seconds", "ended"}: where the time went
    own_seconds: float = 0.0  # spent on this target alone (its verdict's longer runs: _slow_or_stuck)


class Session:
    """P1 on every target of one case at once (the targets its plan items name, judged or profiled): the same
    decisions, target by target, as a run of each alone, over runs shared through
    :func:`optbench.optimizers.batch.run_units`:

    1. every target at every lr, with the hopeless-run rule (``batch`` module doc): a unit that cannot reach the
       tolerance at its current rate stops. On a judged target the rule waits until one of its lrs has
       converged (the verdict is then settled and only the band is at stake), so a judged target where nothing
       converges keeps full-budget runs and the decisions below see them exactly as before; a profiled
       target's decisions see its early-stopped runs (a profile is measured, never judged);
    2. targets whose constant-lr runs hover are rerun together under the automatic decaying schedule; a judged
       target where nothing has converged at mid-budget and whose lrs hover already stops its constant-lr runs
       there, and reruns them to their budget only if the schedule does not make it converge either (so the
       verdict is the one full runs give; the band may then be read under the schedule);
    3. a judged target still converging when its budget ran out gets SLOW_FACTOR x the budget at one lr.

    Each step is one shared run for all the targets it concerns. If the optimizer raises in a shared run, each
    target runs alone, so the exception is reported on the target (and lr) where it happens."""

    def __init__(self, case: Case, targets: tuple[tuple[str, bool], ...], *, weight_decay: float = 0.0,
                 x_star: torch.Tensor | None = None, f_star: float | None = None, what: str = "P1") -> None:
        self.case, self.what = case, what
        self.weight_decay, self.x_star, self.f_star = weight_decay, x_star, f_star
        self.names = [t for t, _ in targets]
        self.judged = dict(targets)
        self.runs: dict[str, _TargetP1] | None = None

    # ---- the shared runs

    def _units(self, tr: _TargetP1, lrs: list, epochs: int) -> list:
        units = CV.make_units(self.case, tr.target, tr.starts, lrs, epochs, batch_starts=tr.rows, x_star=self.x_star,
                              f_star=self.f_star)
        for u in units:
            u.gated = tr.judge  # a judged target's runs go to their budget until one of its lrs has converged
        return units

    def _run(self, trs: list[_TargetP1], schedule: Any, *, hopeless: bool, phase: str,
             shared: bool = True, early_hover: Any = None) -> dict[str, Any]:
        """One shared run over ``trs`` (every lr of each): per target, its result, or the OptimizerRaised that
        its own run raises. A shared run that raises is retried with one optimizer per slot (nothing retires
        inside a shared optimizer then), then target by target, so that the exception is the optimizer's own
        and lands on the target where it happens."""
        case = self.case
        per = {tr.target.name: self._units(tr, tr.lrs, tr.epochs) for tr in trs}
        units = [u for us in per.values() for u in us]
        several = sum(len(u.reached) if not u.batch_starts else 1 for u in units) > 1
        groups_exact = shared and several and probe(case, "P6")
        params_exact = shared and several and probe(case, "P7")
        t0 = _time.perf_counter()  # recorded in the verdict's "where the time went"; nothing is decided on it
        try:
            run_units(case, units, groups_exact=groups_exact, params_exact=params_exact,
                      weight_decay=self.weight_decay, schedule=schedule, hopeless=hopeless, early_hover=early_hover,
                      limit_s=p1_limit.limit_s())
        except p1_limit.TooCostly as exc:  # every target of this run: N/A, with the figures (optbench/p1_limit.py)
            names = ", ".join(t.target.name for t in trs)
            return {tr.target.name: p1_limit.TooCostly(f"on {names}: not judged here: {exc}") for tr in trs}
        except OptimizerRaised:
            if groups_exact or params_exact:
                return self._run(trs, schedule, hopeless=hopeless, phase=phase, shared=False, early_hover=early_hover)
            if len(trs) == 1:
                return {trs[0].target.name: _raised()}
            out: dict[str, Any] = {}
            for tr in trs:
                out.update(self._run([tr], schedule, hopeless=hopeless, phase=phase, shared=False,
                                     early_hover=early_hover))
            return out
        secs = _time.perf_counter() - t0
        if self._unwitnessed(units, groups_exact or params_exact):
            why = witness.differs(case, units, schedule=schedule, weight_decay=self.weight_decay)
            _PROBES[_case_key(case) + ("witness",)] = why is None
            if why is not None:
                self._apart(why)
                return self._run(trs, schedule, hopeless=hopeless, phase=phase, shared=False, early_hover=early_hover)
        work = sum(max(u.epochs_run, 1) * len(u.reached) for u in units)
        out = {}
        for tr in trs:
            for u in per[tr.target.name]:
                ended = (f"converged at epoch {u.epochs_run}" if u.converged else
                         f"diverged at epoch {u.diverged}" if u.diverged is not None else
                         f"cannot converge at its rate (epoch {u.epochs_run})" if u.hopeless else "budget spent")
                tr.time.setdefault(f"{u.lr:.3g}" if u.lr is not None else "-", []).append({
                    "phase": phase, "epochs": u.epochs_run, "ended": ended,
                    "seconds": round(secs * max(u.epochs_run, 1) * len(u.reached) / work, 4)})
            out[tr.target.name] = CV.P1Result.from_units(per[tr.target.name], schedule)
        return out

    def _unwitnessed(self, units: list, shared: bool) -> bool:
        """Whether this run shared an optimizer on the strength of probes alone (an undeclared optimizer: starts
        as rows, or slots under one optimizer through P6/P7) and no witness has yet checked such a run of this
        case (:mod:`optbench.optimizers.witness`). The registry's optimizers declare what they are, and their
        shared runs are tested bit for bit against separate ones (tests/test_p1_batch.py)."""
        case = self.case
        if not case.info.user or case.info.registry or _PROBES.get(_case_key(case) + ("witness",)) is not None:
            return False
        rows = case.info.elementwise is None and any(u.batch_starts and u.starts.shape[0] > 1 for u in units)
        return shared or rows

    def _apart(self, why: str) -> None:
        """The witness saw a shared run differ from a run alone: from now on, every run of this case apart (one
        optimizer per start; the starts of an unbatched run), and each target's band says why."""
        key = _case_key(self.case)
        for prop in ("P6", "P7"):
            _PROBES[key + (prop,)] = False
        for tr in (self.runs or {}).values():
            _PROBES[key + ("rows", tr.target.name)] = False
            if tr.rows:
                tr.rows = False
                tr.starts = CV.starts_for(self.case.info, tr.target, self.case.dtype, False)
            tr.note += f"; run apart, one optimizer per start: {why}"

    def _phase(self, trs: list[_TargetP1], schedule: Any, *, hopeless: bool, phase: str,
               early_hover: Any = None) -> dict[str, Any]:
        return self._run(trs, schedule, hopeless=hopeless, phase=phase, early_hover=early_hover) if trs else {}

    # ---- the decisions

    def compute(self) -> None:
        t0 = _time.perf_counter()  # recorded in the verdicts' seconds; nothing is decided on it
        self._compute()
        self._share(_time.perf_counter() - t0)

    def _share(self, total: float) -> None:
        """Each target's part of the session's ``total`` seconds, in its verdict's data (``verdict.SHARE``, also on
        a FAIL or N/A, with ``p1_time``): its own longer runs, plus the shared runs, probes and witness in
        proportion to the epochs its units ran there (``p1_time``), so that the parts add up to the session."""
        trs = list(self.runs.values())
        apportioned = {tr.target.name: sum(p["seconds"] for ph in tr.time.values() for p in ph) for tr in trs}
        shared = max(total - sum(tr.own_seconds for tr in trs), 0.0)
        weight = sum(apportioned.values())
        for tr in trs:
            part = tr.own_seconds + shared * (apportioned[tr.target.name] / weight if weight else 1 / len(trs))
            extra = {"p1_time": tr.time, SHARE: round(part, 4)}
            if isinstance(tr.outcome, dict):
                tr.outcome.update(extra)
            elif isinstance(tr.outcome, (CheckFailure, NotApplicable)):
                tr.outcome.data = {**(tr.outcome.data or {}), **extra}

    def _compute(self) -> None:
        from ..catalogue import get_target

        case, info, cfg = self.case, self.case.info, self.case.config
        runs: dict[str, _TargetP1] = {}
        for name in self.names:
            target = get_target(name)
            budget = info.budget(cfg, target.name)
            rows = _rows_batchable(case, target)
            lrs = _lrs(case, budget)
            unused = lr_unused(case) if len(lrs) > 1 else None
            runs[name] = _TargetP1(target, self.judged[name], budget.epochs, [case.info.contract_lr] if unused else lrs,
                                   CV.starts_for(info, target, case.dtype, rows), rows, lr_unused=unused)
        self.runs = runs
        live = list(runs.values())

        def settle(results: dict[str, Any], trs: list[_TargetP1]) -> list[_TargetP1]:
            """Store each target's result; a target whose run raised is settled with that exception."""
            left = []
            for tr in trs:
                r = results[tr.target.name]
                if isinstance(r, Exception):
                    tr.outcome = r
                    continue
                tr.res = r
                left.append(tr)
            return left

        early = self._early_hover if cfg.schedule is None else None
        live = settle(self._phase(live, cfg.schedule, hopeless=True, phase="runs", early_hover=early), live)
        for tr in live:
            tr.ok = [g for g in range(len(tr.lrs)) if tr.res.converged(g)]
        hover = [tr for tr in live if not tr.res.grad_error and not tr.ok and cfg.schedule is None
                 and len(tr.lrs) > 1 and (any(tr.res.hover_stop) or hovers(tr.res))]
        scheduled = self._phase(hover, AUTO, hopeless=True, phase="rerun under the automatic schedule")
        # A target whose constant-lr runs stopped at mid-budget because they hover, and that the schedule did not
        # make converge either: its verdict rests on the constant-lr runs, so they run again to their budget and
        # the decisions below read those, exactly as without the early stop.
        redo = [tr for tr in hover if any(tr.res.hover_stop) and not isinstance(scheduled[tr.target.name], Exception)
                and not any(scheduled[tr.target.name].converged(g) for g in range(len(tr.lrs)))]
        full = self._phase(redo, cfg.schedule, hopeless=True, phase="full-budget rerun")
        for tr in redo:
            if isinstance(full[tr.target.name], Exception):
                tr.outcome = full[tr.target.name]
                continue
            tr.res = full[tr.target.name]
            tr.ok = [g for g in range(len(tr.lrs)) if tr.res.converged(g)]
        for tr in live:
            if p1_role(tr.target) == "hard":  # profiles compare optimizers where speed differs: the hard targets
                tr.records = profile_records(case, tr.target, tr.res, tr.epochs)
            if tr in hover and tr.outcome is None and not tr.ok and (tr not in redo or hovers(tr.res)):
                self._after_hover(tr, scheduled[tr.target.name])
            if tr.outcome is None:
                t0 = _time.perf_counter()
                tr.outcome = self._finish(tr)
                tr.own_seconds += _time.perf_counter() - t0

    def _early_hover(self, target: Any, units: list, dists: dict[int, torch.Tensor]) -> bool:
        """run_units' early_hover: at mid-budget, nothing of a judged target has converged and its lrs hover
        (:func:`hovers`) on their distances now. What this saves is the constant-lr runs' second half; what it
        risks is a band read under the schedule instead of at constant lr, never a verdict (see compute)."""
        res = CV.P1Result.from_units(units)
        res.dist = [dists[id(u)] for u in units]
        return hovers(res)

    def _after_hover(self, tr: _TargetP1, scheduled: Any) -> None:
        if isinstance(scheduled, Exception):
            tr.outcome = scheduled
            return
        fixed = tr.res
        if p1_role(tr.target) == "hard":
            tr.records += profile_records(self.case, tr.target, scheduled, tr.epochs)
        best = min(range(len(tr.lrs)), key=lambda g: float(fixed.dist[g].max()))
        hover = (f"with a constant lr it hovered at a distance that grows with lr (|x - x*| "
                 f"{float(fixed.dist[best].max()):.2g} at lr {tr.lrs[best]:.3g}), as sign or RMS-normalised steps do")
        ok = [g for g in range(len(tr.lrs)) if scheduled.converged(g)]
        if ok:
            tr.res, tr.ok = scheduled, ok
            tr.note = f" under {scheduled.schedule}: {hover}" + tr.note
        else:  # report the constant-lr run, the method's own regime; the rerun did not help either
            tr.note = f"; {hover}, and a rerun under {scheduled.schedule} did not converge either" + tr.note

    def _finish(self, tr: _TargetP1) -> Any:
        """The verdict of one target: its data, or the PropertyFailure / NotApplicable to raise."""
        case, what, target, res = self.case, self.what, tr.target, tr.res
        if res.grad_error:
            return PropertyFailure(what, case, f"on {target.name}: {res.grad_error}", kind="grad", target=target.name)
        lrs, note = tr.lrs, tr.note
        ok_lrs = [lrs[g] for g in tr.ok]
        if not ok_lrs and tr.judge:
            kw = dict(batch_starts=tr.rows, batch_groups=len(lrs) == 1 or _groups_exact(case),
                      weight_decay=self.weight_decay, x_star=self.x_star, f_star=self.f_star)
            try:
                ok_lrs, note = _slow_or_stuck(case, target, tr.starts, lrs, tr.epochs, kw, res, note)
            except p1_limit.TooCostly as exc:
                return p1_limit.TooCostly(f"on {target.name}: nothing converged within its budget; not judged here: "
                                          f"the longer run that tells a slow method from a stuck one, {exc}")
            except (NotApplicable, OptimizerRaised) as exc:
                return exc
        band = None
        own = tr.lr_unused or ("it has no lr hyperparameter" if lrs == [None] else None)
        if own:  # one run, at its own step size
            band = f"{target.name}: {'converged' if ok_lrs else 'did not converge'} at its own step size ({own}){note}"
        elif len(lrs) > 1:
            band = (f"{target.name}: converged for lr in [{ok_lrs[0]:.3g}, {ok_lrs[-1]:.3g}] ({len(ok_lrs)} of "
                    f"{len(lrs)} grid lrs){note}" if ok_lrs else f"{target.name}: no lr of the grid converged{note}")
        # "p1_time" and the target's seconds are added by _share, for a FAIL and an N/A as for this
        data = {"lr_band": band, "profiles": tr.records, "converged": bool(ok_lrs), "schedule": res.schedule}
        if case.info.registry:  # the report's notes say where the lr came from (optimizers/registered.py)
            data["note"] = " ".join(case.info.detected)
        if not ok_lrs and tr.judge:
            # the lr reported: the closest largest distance; on a tie (SaRA: starts it never trains sit at the same
            # distance at every lr) the one where more starts reached x*, then the smallest total distance
            g = min(range(len(lrs)), key=lambda g: (res.diverged[g] is not None, float(res.dist[g].max()),
                                                    -sum(e is not None for e in res.reached[g]),
                                                    float(res.dist[g].sum())))
            extra = (f"; {tr.lr_unused}" if tr.lr_unused else
                     "" if len(lrs) == 1 else f" (best of the lr grid {lrs[0]:.0e}..{lrs[-1]:.1f})")
            bad = [s for s, e in enumerate(res.reached[g]) if e is None] or [0]
            return PropertyFailure(what, case, CV.describe_failure(case, target, res, g, tr.epochs) + extra + note,
                                   kind="converge", target=target.name, lr=lrs[g], epochs=tr.epochs,
                                   start=res.starts[bad[0]].tolist(), schedule=res.schedule,
                                   weight_decay=self.weight_decay, x_star=res.x_star.tolist(), f_star=self.f_star)
        return data

    def outcome(self, name: str) -> dict[str, Any]:
        if self.runs is None:
            self.compute()
        out = self.runs[name].outcome
        if isinstance(out, BaseException):
            raise out
        return out


def _raised() -> OptimizerRaised:
    import sys

    exc = sys.exc_info()[1]
    assert isinstance(exc, OptimizerRaised)
    return exc


_SESSIONS: "OrderedDict[tuple, Session]" = OrderedDict()
_KEEP = 8  # sessions kept per process (a case's items ask for their targets one after another)


def check_p1(case: Case, target_name: str, *, judge: bool = True, weight_decay: float = 0.0,
             x_star: torch.Tensor | None = None, f_star: float | None = None, what: str = "P1",
             batch: tuple[tuple[str, bool], ...] | None = None) -> dict[str, Any]:
    """P1 on one target: the lr band and profile records, or :class:`PropertyFailure` when ``judge`` and no lr
    converged. ``batch`` names every (target, judge) of this case that shares its runs (the plan passes the
    case's P1 targets); the first check of a batch runs them all (:class:`Session`), the others read its result."""
    batch = batch or ((target_name, judge),)
    if (target_name, judge) not in batch:
        raise ValueError(f"check_p1: {target_name!r} is not in its batch {batch}")
    key = _case_key(case) + (batch, weight_decay, what, f_star,
                             None if x_star is None else tuple(x_star.flatten().tolist()))
    session = _SESSIONS.get(key)
    if session is None:
        session = _SESSIONS[key] = Session(case, batch, weight_decay=weight_decay, x_star=x_star, f_star=f_star,
                                           what=what)
        while len(_SESSIONS) > _KEEP:
            _SESSIONS.popitem(last=False)
    return session.outcome(target_name)
