"""Why two runs that should be equal are not: P6 (param groups) and P7 (parameters) name the cause.

Every comparison here is between runs that draw random numbers in the same order (one optimizer, the same
parameters, the same seed), so it holds for a stochastic optimizer as for a deterministic one:

* P6: is each group's hyperparameter honoured (a group set to lr=0 stays frozen while the other moves;
  changing a group's lr or weight_decay changes its steps)? If not: a bug. Else, do a group's steps change
  when only the other group's gradients change? Then the groups share a statistic: a trait of the method.
* P7: is state shared between parameters (one state tensor for two, or only a same-shape neighbour's
  gradients matter: a bug), or does every neighbour's gradient matter (a global statistic: a trait)?
  A neighbour with a zero gradient tells a norm-like statistic from one that counts every parameter.
* Neither, for an optimizer drawing from the global RNG: the grouped (joint) and separate runs drew their
  random numbers in a different order, which no seed aligns: :class:`~.findings.DrawOrder`, a pass of the
  property with what was compared instead.

Both look twice: the contract's first 3 steps at its lr, then :data:`LATE_STEPS` steps at that lr and at
:data:`LATE_LR`, for a statistic over every parameter that holds still at first (D-Adaptation's d).

:func:`rng_use` tells how an optimizer uses the global RNG (the same seed gives the same run, another seed
another run).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from ..loop import OptimizerRaised
from ..verdict import NotApplicable
from . import rng
from .findings import DrawOrder, PropertyFailure
from .problem import (OVERWRITES, STEPS, Case, Problem, _cmp_word, _loop, _run, _same, _traj_diff, accepts, case_key,
                      first_step_overwrites, max_diff, rel_tol)

# ---------------------------------------------------------------------------------------------
# Random draws: which global generators an optimizer uses, and whether its runs depend on them


@dataclass(frozen=True)
class RngUse:
    """``kind``: "none" (a run does not depend on the global seed), "global" (the same seed gives the same run and
    another seed another run), "own" (runs do not depend on the global seed, and the optimizer holds a
    ``torch.Generator`` of its own: ``own`` names it), "unseeded" (two runs from one seed differ), or "raised"."""

    kind: str
    drawn: tuple[str, ...] = ()
    own: tuple[str, ...] = ()

    @property
    def stochastic(self) -> bool:
        """Whether its runs depend on random draws whose order two sides of a comparison may not share."""
        return self.kind in ("global", "own")

    @property
    def draws(self) -> bool:
        """Whether it draws from a global generator or one of its own at all: a joint and a separate run then draw in
        another order, which can matter at a later step even where the probe's runs did not depend on the seed
        (pytorch-optimizer's DASH: a power iteration from random vectors, rounded to bfloat16, every 10 steps)."""
        return self.stochastic or bool(self.drawn) or bool(self.own)

    @property
    def note(self) -> str:
        if self.kind == "own":
            return (f"draws random numbers from a torch.Generator of its own ({', '.join(self.own)}), seeded at "
                    f"construction: two instances draw the same numbers")
        gens = ", ".join(self.drawn) or "the global RNG"
        if self.kind == "none":
            return (f"draws random numbers from {gens}, though its runs did not depend on the seed over the probe's "
                    f"steps (every run optbench compares starts from one seed, torch.manual_seed({rng.SEED}))")
        return (f"draws random numbers from {gens}: the same seed gives the same run and another seed another run "
                f"(every run optbench compares starts from one seed, torch.manual_seed({rng.SEED}))")


_RNG_USE: dict[tuple[str, str, str, str, str], RngUse] = {}


def _drawing_run(case: Case, steps: int, seed: int) -> tuple[Any, list[str], list[str]]:
    """A run from ``seed``: its trajectory, the global generators it drew from, and the optimizer's own."""
    rng.reseed(seed)
    prob = Problem(case)
    before = rng.get_state()
    opt = case.make(prob.params)
    traj = _run(case, prob, opt, steps)
    return traj, rng.which_drawn(before, rng.get_state()), rng.generators_of(opt)


def draws_within(case: Case, steps: int, lr: float | None) -> bool:
    """Whether a run of ``steps`` steps at ``lr`` (None: the contract's) draws from a global generator (P6's and P7's
    second look, past the horizon of :func:`rng_use`)."""
    with rng.isolated():
        rng.reseed()
        prob = Problem(case)
        before = rng.get_state()
        try:
            _run(case, prob, case.make(prob.params, **_lr_kw(lr)), steps)
        except OptimizerRaised:
            return False
        return bool(rng.which_drawn(before, rng.get_state()))


def _uses(case: Case, steps: int, lr: float | None) -> RngUse:
    """:func:`rng_use`, and for a second look whether the longer run draws (then :attr:`RngUse.draws`)."""
    use = rng_use(case)
    if lr is not None and not use.draws and draws_within(case, steps, lr):
        use = RngUse(use.kind, ("the global RNG (past the first steps)",), use.own)
    return use


def rng_use(case: Case) -> RngUse:
    """How the optimizer uses the global RNG (three short runs, cached per case)."""
    key = case_key(case)
    if key not in _RNG_USE:
        with rng.isolated():
            try:
                ta, drawn, own = _drawing_run(case, STEPS, rng.SEED)
                tb, _, _ = _drawing_run(case, STEPS, rng.SEED)
                tc, _, _ = _drawing_run(case, STEPS, rng.OTHER_SEED)
            except OptimizerRaised:
                _RNG_USE[key] = RngUse("raised")
            else:
                _RNG_USE[key] = classify_rng(case, ta, tb, tc, drawn, own)
    return _RNG_USE[key]


def classify_rng(case: Case, ta: Any, tb: Any, tc: Any, drawn: Sequence[str], own: Sequence[str]) -> RngUse:
    """From two runs from one seed (``ta``, ``tb``) and one from another (``tc``)."""
    if _traj_diff(case, ta, tb) is not None:
        return RngUse("unseeded", tuple(drawn), tuple(own))
    if _traj_diff(case, ta, tc) is not None:
        return RngUse("global", tuple(drawn), tuple(own))
    return RngUse("own" if own else "none", tuple(drawn), tuple(own))


def _group_kwargs(case: Case, which: int, lr: float | None = None) -> dict[str, Any]:
    """Group ``which``'s hyperparameters: lr the contract's (or ``lr``) times 1 or 3; weight decay 0 or 0.05."""
    lr = (case.info.contract_lr if lr is None else lr) * (1.0 if which == 0 else 3.0)
    kw: dict[str, Any] = {"lr": lr}
    if accepts(case.info, case.config, "weight_decay"):
        kw["weight_decay"] = 0.0 if which == 0 else 0.05
    return kw


P6_PARAMS = (0, 2)  # one parameter per group, of different shapes


def grouped_run(case: Case, steps: int, *, group_kw: Sequence[dict[str, Any]] | None = None, lr: float | None = None,
                **problem: Any):
    """One optimizer over two param groups (parameters 0 and 2, hyperparameters ``group_kw``), reseeded. A group
    lr of 0 the constructor refuses is given as the contract lr and set to 0 after construction, as a scheduler
    does. Returns the trajectory of the two parameters."""
    rng.reseed()
    prob = Problem(case, **problem)
    kws = group_kw if group_kw is not None else [_group_kwargs(case, 0, lr), _group_kwargs(case, 1, lr)]
    ps = [prob.params[i] for i in P6_PARAMS]
    try:
        opt = case.make([{"params": [p], **kw} for p, kw in zip(ps, kws)])
    except OptimizerRaised:
        if not any(kw.get("lr") == 0.0 for kw in kws):
            raise
        rng.reseed()
        opt = case.make([{"params": [p], **kw, "lr": kw["lr"] or case.info.contract_lr} for p, kw in zip(ps, kws)])
        for group, kw in zip(opt.param_groups, kws):
            group["lr"] = kw["lr"]
    return _loop(case, prob.loss_fn(P6_PARAMS), ps, opt, steps, check_finite=False)


def alone_run(case: Case, i: int, steps: int, **kw: Any):
    """Parameter ``i`` under its own optimizer (constructor kwargs ``kw``), reseeded; lr=0 as in :func:`grouped_run`."""
    rng.reseed()
    prob = Problem(case)
    try:
        opt = case.make([prob.params[i]], **kw)
    except OptimizerRaised:
        if kw.get("lr") != 0.0:
            raise
        rng.reseed()
        opt = case.make([prob.params[i]], **{**kw, "lr": case.info.contract_lr})
        for group in opt.param_groups:
            group["lr"] = 0.0
    return _loop(case, prob.loss_fn([i]), [prob.params[i]], opt, steps, check_finite=False)


def joint_run(case: Case, steps: int, which: Sequence[int] | None = None, *, lr: float | None = None,
              **problem: Any):
    """The parameters ``which`` (default all) under one optimizer (at ``lr``, default the contract's), reseeded."""
    rng.reseed()
    prob = Problem(case, **problem)
    idx = list(range(len(prob.params))) if which is None else list(which)
    ps = [prob.params[i] for i in idx]
    return _loop(case, prob.loss_fn(idx), ps, case.make(ps, **_lr_kw(lr)), steps, check_finite=False)


def _lr_kw(lr: float | None) -> dict[str, Any]:
    return {} if lr is None else {"lr": lr}


# P6 and P7 look twice. First STEPS steps at the contract's lr (every planted and upstream bug of shared state shows
# there). Then LATE_STEPS steps at the contract's lr and at LATE_LR, for a statistic over every parameter that holds
# still at first: D-Adaptation's d stays at d0 = 1e-6 until the steps grow it. Measured on pytorch-optimizer 4.1.0
# (joint vs alone, float64, the contract's problem): DAdaptAdam parts at step 26 at lr 0.01 and at step 3 at lr 1;
# DAdaptLion, DAdaptAdaGrad and DAdaptAdan agree for 64 steps at lr 0.01 and part at steps 5, 5 and 3 at lr 1, the
# default lr of D-Adaptation and Prodigy (lr multiplies d) and the upper decade of P1's grid, whose shared runs this
# property licenses. Every registry config of torch.optim agrees bit for bit over both looks (its P6 and P7 pass;
# Adam and SGD for 64 steps at lrs 0.01 to 3.16 too). A run that leaves the finite numbers (a large lr can diverge)
# is compared up to its last finite step.
LATE_STEPS = 32
LATE_LR = 1.0


def _late_lrs(case: Case) -> list[float | None]:
    """The lrs of the second look (None: the contract's)."""
    lrs: list[float | None] = [None]
    if accepts(case.info, case.config, "lr") and case.info.contract_lr != LATE_LR:
        lrs.append(LATE_LR)
    return lrs


def _finite(xs: Sequence[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(x).all()) for x in xs)


def _looks(case: Case, compare: Callable[..., tuple | None], steps: int, scale: float = 1.0) -> tuple | None:
    """``compare``'s mismatch with the lr it was found at: None within the first look (``steps`` steps at the
    contract's lr, every step compared), else the second look's (:data:`LATE_STEPS` steps at each of
    :func:`_late_lrs` times ``scale``, compared while both runs are finite). A step that raises at a second-look
    lr is other checks' finding: no evidence here."""
    first = compare(case, steps, None, finite_only=False)
    if first is not None:
        return (*first, None)
    for lr in _late_lrs(case):
        at = None if lr is None else lr * scale
        try:
            late = compare(case, LATE_STEPS, at, finite_only=True)
        except OptimizerRaised:
            continue
        if late is not None:
            return (*late, case.info.contract_lr if at is None else at)
    return None


def _p6_compare(case: Case, steps: int, lr: float | None, finite_only: bool) -> tuple[int, int, float] | None:
    tj = grouped_run(case, steps, lr=lr)
    sides = [alone_run(case, i, steps, **_group_kwargs(case, gi, lr)) for gi, i in enumerate(P6_PARAMS)]
    live = [True, True]
    for k in range(1, steps + 1):
        for gi, ts in enumerate(sides):
            a, b = [tj.xs[k][gi]], [ts.xs[k][0]]
            if finite_only and not (live[gi] and _finite(a) and _finite(b)):
                live[gi] = False
                continue
            if not _same(case, a, b, 1.0 + float(a[0].abs().max())):
                return k, gi, max_diff(a, b)
    return None


def _p6_mismatch(case: Case, steps: int = STEPS) -> tuple[int, int, float, float | None] | None:
    """(step, group, max |Δx|, base lr) where a param group differs from its parameter under its own optimizer, or
    None; the base lr is group 0's (group 1 has 3x), None within the first look, else the second look's."""
    return _looks(case, _p6_compare, steps, scale=1.0 / 3.0)


@rng.forked
def check_p6(case: Case) -> None:
    """Two param groups with different hyperparameters behave exactly like two separate optimizers.

    Raises whenever they do not (bit for bit on CPU): P1 batches its lr grid as param groups only where this
    returns. The exception names the cause (:func:`.coupling.diagnose_p6`): a group whose hyperparameters are
    not honoured (a bug), groups coupled through a shared statistic (a trait), or, for an optimizer drawing
    from the global RNG whose groups pass every order-independent test, the order of the draws
    (:class:`DrawOrder`, a NotApplicable)."""
    try:
        mismatch = _p6_mismatch(case)
    except OptimizerRaised as exc:
        if exc.call != "the constructor":
            raise
        raise NotApplicable(f"{case.name} takes one param group only: constructing it with two raised "
                            f"{type(exc.original).__name__}: {' '.join(str(exc.original).split())}") from None
    if mismatch is not None:
        k, gi, diff, lr = mismatch
        raise diagnose_p6(case, k, gi, diff, STEPS if lr is None else LATE_STEPS, lr=lr)


def _p7_compare(case: Case, steps: int, lr: float | None, finite_only: bool) -> tuple[int, int, float] | None:
    tj = joint_run(case, steps, lr=lr)
    for i in range(len(tj.xs[0])):
        ts = alone_run(case, i, steps, **_lr_kw(lr))
        for k in range(1, steps + 1):
            a, b = [tj.xs[k][i]], [ts.xs[k][0]]
            if finite_only and not (_finite(a) and _finite(b)):
                break
            if not _same(case, a, b, 1.0 + float(a[0].abs().max())):
                return i, k, max_diff(a, b)
    return None


def _p7_mismatch(case: Case, steps: int = STEPS) -> tuple[int, int, float, float | None] | None:
    """(parameter, step, max |Δx|, lr) where a parameter optimized jointly differs from optimized alone, or None;
    lr is None within the first look, else the second look's."""
    return _looks(case, _p7_compare, steps)


@rng.forked
def check_p7(case: Case) -> None:
    """On a separable loss, optimizing all params jointly equals optimizing each separately.

    Raises whenever it does not (bit for bit on CPU), whatever the cause, which the exception names
    (:func:`.coupling.diagnose_p7`): state shared between parameters (a bug), a global statistic (a trait), or
    the order of random draws (:class:`DrawOrder`). Compared over the contract's first steps, then further out and
    at a larger lr (:data:`LATE_STEPS`, :data:`LATE_LR`), where a statistic that holds still at first acts."""
    mismatch = _p7_mismatch(case)
    if mismatch is not None:
        i, k, diff, lr = mismatch
        raise diagnose_p7(case, i, k, diff, STEPS if lr is None else LATE_STEPS, lr=lr)


def _passes_order_independently(check: Callable[[Case], None]) -> Callable[[Case], dict[str, Any] | None]:
    """The property as the suite judges it: a :class:`DrawOrder` (the sides draw random numbers in a different
    order, and every order-independent comparison held) is a pass, with what was compared as its note."""

    @functools.wraps(check)
    def prop(case: Case) -> dict[str, Any] | None:
        try:
            check(case)
        except DrawOrder as exc:
            return {"note": exc.note}
        return None

    return prop


property_p6 = _passes_order_independently(check_p6)
property_p7 = _passes_order_independently(check_p7)


# ---------------------------------------------------------------------------------------------
# Diagnoses


def _moved(traj: Any, i: int) -> float:
    """How far parameter ``i`` of a trajectory moved from its start, over the recorded steps (inf for None)."""
    if traj is None:
        return float("inf")
    return max(float((x[i].double() - traj.xs[0][i].double()).abs().max()) for x in traj.xs[1:])


def _param_diff(case: Case, t1: Any, i1: int, t2: Any, i2: int, finite_only: bool = False
                ) -> tuple[int, float] | None:
    """The first step where parameter ``i1`` of ``t1`` and ``i2`` of ``t2`` differ (the case's rule), with max |Δx|
    (``finite_only``: up to the last step where both are finite)."""
    for k in range(1, min(len(t1.xs), len(t2.xs))):
        a, b = [t1.xs[k][i1]], [t2.xs[k][i2]]
        if finite_only and not (_finite(a) and _finite(b)):
            return None
        if not _same(case, a, b, 1.0 + float(a[0].abs().max())):
            return k, max_diff(a, b)
    return None


def _unseeded(prop: str, case: Case, base: str) -> PropertyFailure:
    return PropertyFailure(prop, case, f"{base}: two runs from the same global RNG state differ (randomness the seed "
                                       f"does not reach; P17 reports it), so what couples them cannot be told",
                           offer=False)


def _p6_not_honoured(case: Case, steps: int, lr: float | None = None) -> tuple[str, str] | None:
    """(diagnosis, reason) when a group's hyperparameter is not honoured, tested within one optimizer."""
    kws = [_group_kwargs(case, 0, lr), _group_kwargs(case, 1, lr)]
    fin = lr is not None  # P6's second look: a run that diverged is compared up to its last finite step
    for gi, kw in enumerate(kws):  # a group's own hyperparameters mean what the constructor's mean
        rng.reseed()
        prob = Problem(case)
        p = prob.params[P6_PARAMS[gi]]
        own = _loop(case, prob.loss_fn([P6_PARAMS[gi]]), [p], case.make([{"params": [p], **kw}]), steps,
                    check_finite=False)
        d = _param_diff(case, own, 0, alone_run(case, P6_PARAMS[gi], steps, **kw), 0, fin)
        if d is not None:
            return (f"a param group given {kw} in its own dict steps differently from the same values given to the "
                    f"constructor (at step {d[0]}: max |Δx| = {d[1]:.3g}): the constructor transforms them before "
                    f"storing them in defaults (e.g. rescales lr) and a group's own values skip it, a bug",
                    "a param group's own lr or weight_decay is not transformed like the constructor's")
    base = grouped_run(case, steps, group_kw=kws)
    for g in (0, 1):
        other = 1 - g
        frozen = [dict(kw, lr=0.0) if gi == g else kw for gi, kw in enumerate(kws)]
        try:
            t = grouped_run(case, steps, group_kw=frozen)
        except OptimizerRaised:  # stepping at lr=0 raises: P3 reports it; the other tests still tell
            continue
        moved = _moved(t, g)
        if moved > 0 and _moved(_alone_or_none(case, P6_PARAMS[g], steps, **frozen[g]), 0) == 0:
            return (f"param group {g} at lr=0 still moved (max |Δx| = {moved:.3g}), while the same parameter under its "
                    f"own optimizer at lr=0 stays: the group's lr is not honoured, a bug (is lr read from "
                    f"self.defaults or from another group?)", f"param group {g}'s lr is not honoured")
        if _moved(base, other) > 0 and _moved(t, other) == 0:
            return (f"setting param group {g}'s lr to 0 also froze group {other}: one group's lr is applied to the "
                    f"other, a bug", "one param group's lr is applied to another")
    for g in (0, 1):
        changed = [dict(kw, lr=kw["lr"] * 2) if gi == g else kw for gi, kw in enumerate(kws)]
        if _moved(base, g) > 0 and _param_diff(case, base, g, grouped_run(case, steps, group_kw=changed), g,
                                               fin) is None:
            return (f"changing param group {g}'s lr from {kws[g]['lr']:g} to {changed[g]['lr']:g} does not change its "
                    f"steps: the group's lr is not honoured, a bug (is lr read from self.defaults instead of the "
                    f"group?)", f"param group {g}'s lr is not honoured")
    if "weight_decay" in kws[1]:
        no_wd = [kws[0], dict(kws[1], weight_decay=0.0)]
        if _param_diff(case, base, 1, grouped_run(case, steps, group_kw=no_wd), 1, fin) is None:
            with_wd = alone_run(case, P6_PARAMS[1], steps, **kws[1])
            if _param_diff(case, with_wd, 0, alone_run(case, P6_PARAMS[1], steps, **no_wd[1]), 0, fin) is not None:
                return (f"changing param group 1's weight_decay from {kws[1]['weight_decay']:g} to 0 does not change "
                        f"its steps, though it does under its own optimizer: the group's weight_decay is not honoured, "
                        f"a bug (read from self.defaults?)", "param group 1's weight_decay is not honoured")
    return None


def _alone_or_none(case: Case, i: int, steps: int, **kw: Any) -> Any:
    try:
        return alone_run(case, i, steps, **kw)
    except OptimizerRaised:  # as the grouped run did not raise, count it as moved: no verdict from it
        return None


def _p6_interaction(case: Case, steps: int, lr: float | None = None) -> str | None:
    """Whether a group's steps change when only the other group's gradients change (one optimizer, same draws)."""
    base = grouped_run(case, steps, lr=lr)
    for g in (0, 1):
        other = 1 - g
        d = _param_diff(case, base, g, grouped_run(case, steps, lr=lr, perturb=[P6_PARAMS[other]]), g, lr is not None)
        if d is not None:
            return (f"group {g}'s steps change when only group {other}'s gradients change (at step {d[0]}: max |Δx| = "
                    f"{d[1]:.3g})")
    return None


def _resolved(case: Case) -> list[tuple[Case, str]]:
    """The case, then (for a lower precision) the same in float64: a step below float32's resolution of the
    parameters hides what couples them, and the cause does not depend on the dtype."""
    out = [(case, "")]
    if case.dtype != torch.float64 and "float64" in case.info.contract_dtypes:
        out.append((Case(case.info, case.config, case.impl, torch.float64, case.device),
                    " (told in float64: in float32 the first steps are below the parameters' resolution)"))
    return out


ORDER_NOTE = ("{what} draw their random numbers in a different order, which no seed aligns, so they are not "
              "compared bit for bit; compared order-independently instead (one optimizer, the same draws), and it "
              "held: {held}")


def _second_look(case: Case, k: int, lr: float | None) -> tuple[str, dict[str, Any]]:
    """For a mismatch of the second look (``lr`` not None): the words that say where it was found, and the details
    the reproducer repeats (that lr, ``k`` steps); for the first look, nothing."""
    if lr is None:
        return "", {}
    return (f" (equal over the first {STEPS} steps at the contract's lr {case.info.contract_lr:g}: what couples "
            f"them acts later or at a larger lr)", {"lr": lr, "steps": k})


def diagnose_p6(case: Case, k: int, gi: int, diff: float, steps: int = STEPS, *, lr: float | None = None
                ) -> Exception:
    """The cause of a param group that differs from its parameter under its own optimizer (at step ``k``; ``lr``:
    group 0's lr in P6's second look, whose ``steps`` steps the diagnosis runs, else None)."""
    at, found = _second_look(case, k, lr)
    base = (f"param group {gi} ({_group_kwargs(case, gi, lr)}) differs from the same parameter under its own "
            f"optimizer at step {k}{at}: max |Δx| = {diff:.3g}, expected equal {_cmp_word(case)}")
    use = _uses(case, steps, lr)
    if use.kind == "unseeded":
        return _unseeded("P6", case, base)
    try:
        for c, told in _resolved(case):
            bug = _p6_not_honoured(c, steps, lr)
            if bug is not None:
                return PropertyFailure("P6", case, f"{base}: {bug[0]}{told}", reason=bug[1], **found)
            inter = _p6_interaction(c, steps, lr)
            if inter is not None:
                inter += told
                break
    except OptimizerRaised as exc:
        return PropertyFailure("P6", case, f"{base} (telling its cause raised inside the optimizer: {exc})", **found)
    if inter is not None:
        return PropertyFailure("P6", case, f"{base}: a trait of the method, not a bug: the groups interact through a "
                                           f"shared statistic ({inter}; e.g. a global gradient norm or clip over all "
                                           f"parameters), while each group's hyperparameters are honoured (a group at "
                                           f"lr=0 stays frozen while the other moves)", trait=True,
                               reason="param groups interact through a shared statistic (e.g. a global gradient norm)",
                               **found)
    if use.draws:
        held = ("a group at lr=0 stays frozen while the other moves, changing a group's lr changes its steps, and "
                "changing one group's gradients leaves the other group's steps unchanged")
        note = f"{use.note}; " + ORDER_NOTE.format(what="one optimizer with two param groups and two optimizers",
                                                    held=held)
        return DrawOrder(f"{base}: {note}", note)
    return PropertyFailure("P6", case, f"{base}: each group's hyperparameters are honoured and neither group's steps "
                                       f"depend on the other's gradients: does the update depend on how many groups or "
                                       f"parameters the optimizer holds (e.g. a counter advanced once per group)?",
                           reason="the update depends on how many param groups the optimizer holds", **found)


def _shared_state(case: Case) -> str | None:
    """Two parameters whose optimizer.state holds the same tensor (after one joint step), named; or None."""
    rng.reseed()
    prob = Problem(case)
    opt = case.make(prob.params)
    _run(case, prob, opt, 1)
    seen: dict[int, tuple[int, str]] = {}
    for i, p in enumerate(prob.params):
        for key, val in opt.state.get(p, {}).items():
            if not torch.is_tensor(val) or val.numel() == 0:
                continue
            ptr = val.untyped_storage().data_ptr()
            if ptr in seen and seen[ptr][0] != i:
                j, other = seen[ptr]
                return f"state[{other!r}] of parameter {j} and state[{key!r}] of parameter {i} are one tensor"
            seen.setdefault(ptr, (i, str(key)))
    return None


def _zero_neighbour(case: Case, i: int, j: int, steps: int, lr: float | None = None) -> float | None:
    """max |Δx| of parameter ``i`` between a run beside ``j`` whose gradient is exactly zero and a run alone, when
    beyond the case's tolerance (a zero term may round a sum differently), else None."""
    t = joint_run(case, steps, [i, j], lr=lr, zero=[j])
    a = alone_run(case, i, steps, **_lr_kw(lr))
    for k in range(1, steps + 1):
        d = max_diff([t.xs[k][0]], [a.xs[k][0]])
        if d > rel_tol(case.dtype) * (1.0 + float(a.xs[k][0].abs().max())):
            return d
    return None


def diagnose_p7(case: Case, i: int, k: int, diff: float, steps: int = STEPS, *, lr: float | None = None
                ) -> Exception:
    """The cause of a parameter that differs when optimized jointly with others (at step ``k`` of a run at ``lr``:
    None for the contract's first steps, else P7's second look, whose ``steps`` steps at ``lr`` the diagnosis runs:
    a statistic that acted late in one run may act later still in another)."""
    shapes = [tuple(s) for s in Problem(case).shapes]
    at, found = _second_look(case, k, lr)
    at = at and f" at lr {lr:g}{at}"
    base = (f"parameter {i} (shape {shapes[i]}) optimized jointly with the others differs from optimizing it alone at "
            f"step {k}{at}: max |Δx| = {diff:.3g}, expected equal {_cmp_word(case)}")
    use = _uses(case, steps, lr)
    if use.kind == "unseeded":
        return _unseeded("P7", case, base)
    same = [j for j in range(len(shapes)) if j != i and shapes[j] == shapes[i]]
    others = [j for j in range(len(shapes)) if shapes[j] != shapes[i]]
    try:
        shared = _shared_state(case)
        if shared is not None:
            return PropertyFailure("P7", case, f"{base}: state is shared between parameters ({shared}), a bug (create "
                                               f"each parameter's state in self.state[p])",
                                   reason="state is shared between parameters", **found)
        for c, told in _resolved(case):
            tj = joint_run(c, steps, lr=lr)
            fin = lr is not None  # the second look: a run that diverged is compared up to its last finite step
            d_same = _param_diff(c, tj, i, joint_run(c, steps, lr=lr, perturb=same), i, fin) if same else None
            d_other = _param_diff(c, tj, i, joint_run(c, steps, lr=lr, perturb=others), i, fin) if others else None
            if d_same or d_other:
                break
        zero = None
        if (d_same or d_other) and not use.draws:  # a zero-gradient neighbour changes the draws' order
            zero = _zero_neighbour(c, i, same[0] if same else others[0], steps, lr)
    except OptimizerRaised as exc:
        return PropertyFailure("P7", case, f"{base} (telling its cause raised inside the optimizer: {exc})", **found)
    if d_same is not None and d_other is None:
        z = f"; a neighbour whose gradient is zero still changes its update (max |Δx| = {zero:.3g})" if zero else ""
        return PropertyFailure("P7", case, f"{base}: state is shared between parameters of the same shape, a bug: "
                                           f"parameter {i}'s steps change when only the gradients of parameter "
                                           f"{same[0]} (same shape) change (max |Δx| = {d_same[1]:.3g}), not when those "
                                           f"of a parameter of another shape do{z} (is state keyed by shape, or a "
                                           f"buffer reused across parameters?){told}",
                               reason="state is shared between parameters of the same shape", **found)
    if d_same is not None or d_other is not None:
        if use.draws:
            kind = "a global statistic"
        elif zero is None:
            kind = "a norm-like global statistic: a neighbour whose gradient is zero leaves it unchanged"
        else:
            kind = (f"a statistic over all parameters that a neighbour whose gradient is zero still changes (max "
                    f"|Δx| = {zero:.3g}), e.g. a mean over all elements")
        d = d_other or d_same
        return PropertyFailure("P7", case, f"{base}: a trait of the method, not a bug: the parameters are coupled "
                                           f"through {kind} (parameter {i}'s steps change when only other parameters' "
                                           f"gradients change, of {'any shape' if d_other else 'its shape'}: max |Δx| "
                                           f"= {d[1]:.3g}), and no state tensor is shared between parameters{told}",
                               trait=True, reason="parameters are coupled through a global statistic (e.g. a global "
                                                  "gradient norm)", **found)
    if use.draws:
        held = "no state tensor is shared, and changing the other parameters' gradients leaves each parameter's steps unchanged"
        note = f"{use.note}; " + ORDER_NOTE.format(what="a joint run and separate runs", held=held)
        return DrawOrder(f"{base}: {note}", note)
    by_same = by_other = zero_moves = None
    try:  # whose presence changes it, when no neighbour's gradient does (where the difference was found, if c hides it)
        for cc in (c, case) if c is not case else (case,):
            by_same = _presence(cc, i, same, steps, lr)
            by_other = _presence(cc, i, others, steps, lr)
            if by_same is not None or by_other is not None:
                # and a neighbour of the same kind whose gradient is exactly zero: a count of parameters still changes
                zero_moves = _zero_neighbour(cc, i, (same if by_same is not None else others)[0], steps, lr)
                break
    except OptimizerRaised:
        by_same = by_other = zero_moves = None
    if by_same is not None and by_other is None:
        return PropertyFailure("P7", case, f"{base}: a trait of the implementation, not a bug: parameters of one shape "
                                           f"are computed as one batch (e.g. stacked into one matmul or Newton-Schulz "
                                           f"iteration), which rounds differently from a parameter alone: parameter "
                                           f"{i}'s steps change when a parameter of its shape is beside it (max |Δx| = "
                                           f"{by_same:.3g}), whatever that parameter's gradient, and not beside one of "
                                           f"another shape{told}", trait=True,
                               reason="parameters of one shape are computed as one batch, which rounds differently",
                               **found)
    if (by_same is not None or by_other is not None) and zero_moves is None:
        return PropertyFailure("P7", case, f"{base}: a trait of the method, not a bug: the parameters are coupled "
                                           f"through a statistic of the others' gradients that saturates: a neighbour "
                                           f"with a gradient changes parameter {i}'s steps (max |Δx| = "
                                           f"{max(d for d in (by_same, by_other) if d is not None):.3g}), one whose "
                                           f"gradient is zero does not, and changing the neighbours' gradients does "
                                           f"not either (a max or a threshold over every parameter, such as "
                                           f"D-Adaptation's and Prodigy's d = max(d, d̂), or a count of the parameters "
                                           f"that have a gradient), and no state tensor is shared between parameters",
                               trait=True, reason="parameters are coupled through a global statistic of their "
                                                  "gradients (e.g. Prodigy's d)", **found)
    present = "" if by_same is None and by_other is None else (
        f" (any neighbour's presence changes parameter {i}'s steps, whatever its gradient: max |Δx| = "
        f"{max(d for d in (by_same, by_other) if d is not None):.3g})")
    over = first_step_overwrites(case) if k == 1 else None
    if over:  # heavyball's Scion: an orthogonal init seeded by the parameter's index in its group
        return PropertyFailure("P7", case, f"{base}: a trait of the method, not a bug: {over}; what it writes for "
                                           f"parameter {i} depends on the parameters beside it{present} (an "
                                           f"initialisation seeded by the parameter's position among them?)",
                               trait=True, reason=OVERWRITES, **found)
    return PropertyFailure("P7", case, f"{base}: no state is shared and no parameter's steps depend on another's "
                                       f"gradients{present}: does the update depend on how many parameters the "
                                       f"optimizer holds (e.g. a step counter advanced once per parameter, or a "
                                       f"statistic over every element that their values do not change, such as a "
                                       f"count or a sum of signs)?",
                           reason="the update depends on how many parameters the optimizer holds", **found)


def _presence(case: Case, i: int, neighbours: Sequence[int], steps: int, lr: float | None) -> float | None:
    """max |Δx| of parameter ``i`` between a run beside the first of ``neighbours`` and a run alone, or None where
    they agree (or there is no such neighbour)."""
    if not neighbours:
        return None
    d = _param_diff(case, joint_run(case, steps, [i, neighbours[0]], lr=lr), 0, alone_run(case, i, steps, **_lr_kw(lr)),
                    0, lr is not None)
    return None if d is None else d[1]
