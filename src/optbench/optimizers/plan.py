"""The optimizer check plan: every (check, optimizer config, implementation, target, dtype, device) as a
:class:`~optbench.verdict.CheckItem`, read from the declared data of each ``OptimizerInfo``.

Ids read ``<optimizer[_config]>-<impl>[-<target>]-<dtype>-<device>``. The matrix (chosen for the time
budget):

* P1 (``test_converges``): every config x its declared targets in float64 with the primary impl
  (foreach where it exists); float32 on ``booth`` only (precision attainment). ``test_profile``: the
  profile targets (hard targets nobody declared a budget for) are run and recorded, never judged: a
  user optimizer's always, the registry's with ``selection.options["profiles"]`` (the bench env). The float64
  targets of a case share their runs (one p1.Session, one worker); ``selection.options["p1_shards"]`` = k > 1
  deals them round-robin into k sessions (at least 4 targets each), so that k workers run one case's P1 side by
  side (``optbench validate`` of one optimizer on k cores). Each target's verdict is the same either way: where
  targets share runs they are proven independent, bit for bit (tests/test_p1_batch.py).
* P2-P17 (``test_pNN_*``): every config, primary impl, float64 and float32; the other impls in float64
  for the state- and grad-handling properties P3 P4 P5 P8 P9 P14 P16, and P15 compares every impl with
  the primary one.

Exemptions (declared reasons) become EXEMPT, known upstream bugs XFAIL, capabilities the optimizer
lacks (no ``maximize``, no ``weight_decay``) and absent devices N/A. Nothing here imports pytest.

One root cause, one finding: where constructing the optimizer or a plain run raises inside it for a whole
case (implementation, dtype, device), the case's first contract check reports it once with its reproducer
(:func:`contract_root`), and every other check of the case that meets the same exception is BLOCKED by it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import sympy
import torch

from ..devices import cuda_skip_reason, dtype_name
from ..loop import OptimizerRaised
from ..plan import Selection
from ..verdict import Blocked, CheckFailure, CheckItem
from . import contract as C
from . import convergence as CV
from . import p1 as P1
from .contract import Case, PropertyFailure, accepts, optimizer_finding
from .info import OptConfig, OptimizerInfo

F32_P1_TARGETS = ("booth",)
OTHER_IMPL_PROPS = frozenset({"P3", "P4", "P5", "P8", "P9", "P14", "P16"})
DTYPES = (torch.float64, torch.float32)
EXACT_TARGETS = ("seed_quadratic", "sphere_2d", "booth")

# contract test name -> (property keys looked up for exemptions/known bugs, check)
CONTRACT: dict[str, tuple[tuple[str, ...], Callable[[Case], None]]] = {
    "test_p02_descent": (("P2",), C.check_p2),
    "test_p03_lr_zero": (("P3",), C.check_p3),
    "test_p04_frozen_param": (("P4",), C.check_p4),
    "test_p05_grad_untouched": (("P5",), C.check_p5),
    "test_p06_param_groups": (("P6",), C.property_p6),
    "test_p07_param_independence": (("P7",), C.property_p7),
    "test_p08_resume_state_dict": (("P8", "P8.state_dict"), lambda case: C.check_p8(case, ("state_dict",))),
    "test_p08_resume_deepcopy": (("P8", "P8.deepcopy"), lambda case: C.check_p8(case, ("deepcopy",))),
    "test_p09_state_dtype_device": (("P9",), C.check_p9),
    "test_p10_closure_loss": (("P10",), C.check_p10),
    "test_p11_maximize": (("P11",), C.check_p11),
    "test_p12_weight_decay": (("P12",), C.check_p12),
    "test_p13_translation": (("P13",), C.check_p13),
    "test_p14_noncontiguous": (("P14",), C.check_p14),
    "test_p16_zero_grad": (("P16",), C.check_p16),
    "test_p17_determinism": (("P17",), C.check_p17),
}


def primary_impl(info: OptimizerInfo, device: str) -> str:
    impls = info.impls.get(device, ())
    for want in ("foreach", "forloop", "default"):
        if want in impls:
            return want
    return impls[0] if impls else "default"


def case_id(case: Case, target: str | None = None, other: str | None = None) -> str:
    parts = [case.name, case.impl if other is None else f"{case.impl}_vs_{other}"]
    if target:
        parts.append(target)
    return "-".join(parts + [dtype_name(case.dtype), case.device])


def declared(info: OptimizerInfo, cfg: OptConfig, keys: Sequence[str], impl: str, dtype: str) -> tuple[str | None, str | None]:
    """(exemption, known bug) for the first matching key: an exemption wins over a known bug."""
    for key in keys:
        reason = info.exemption(key, cfg)
        if reason:
            return reason, None
    for key in keys:
        for k in (f"{key}@{impl}", f"{key}@{dtype}", key):
            reason = cfg.known.get(k) or info.known.get(k)
            if reason:
                return None, f"{k} in {info.source}: {reason}"
    return None, None


def capability_na(case: Case, prop: str) -> str | None:
    """A property the optimizer cannot take part in, detected from what its constructor accepts."""
    if prop == "P11" and not accepts(case.info, case.config, "maximize"):
        return f"{case.name} has no maximize argument"
    if prop == "P12" and not accepts(case.info, case.config, "weight_decay"):
        return f"{case.name} has no weight_decay argument"
    if prop == "P10" and not C.step_takes_closure(case.info, case.config):
        return f"{case.name}.step() takes no argument, so it cannot be given a closure"
    if prop in ("P3", "P6") and not accepts(case.info, case.config, "lr") and C.constructs(case.info, case.config):
        return f"{case.name} has no lr hyperparameter (its step size is its own), so lr=0 and param-group lrs mean nothing"
    return None


def guarded(prop: str, case: Case, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a check; the optimizer raising is its finding; every failure gets a standalone reproducer."""
    from . import reproducer

    try:
        return fn(*args, **kwargs)
    except OptimizerRaised as exc:
        failure = optimizer_finding(prop, case, exc)
    except PropertyFailure as exc:
        failure = exc
    if failure.reproducer is None:
        failure.reproducer = reproducer.script(failure, case)
    raise failure


def contract_root(case: Case) -> tuple[str, str | None] | None:
    """(node id, declared known bug) of the case's first contract check that runs (not exempt, not N/A), in plan
    order: the check that reports a root cause of the case, or None when none runs."""
    device = case.device
    if device == "cuda" and cuda_skip_reason():
        return None
    prim = primary_impl(case.info, device)
    if dtype_name(case.dtype) not in case.info.contract_dtypes:
        return None
    for test, (keys, _) in CONTRACT.items():
        prop = keys[0]
        if case.impl != prim and (case.dtype != torch.float64 or prop not in OTHER_IMPL_PROPS):
            continue
        exempt, known = declared(case.info, case.config, keys, case.impl, dtype_name(case.dtype))
        if exempt or capability_na(case, prop):
            continue
        return f"{test}[{case_id(case)}]", known
    return None


def _same_cause(cause: tuple[str, str], exc: Any) -> bool:
    kind, message = C.raised_cause(exc)
    return cause[0] == kind and (cause[1] == message or cause[1].startswith(message[:600]))  # ranks cut at 600


def _roots(case: Case) -> list[tuple[Case, tuple[str, str | None]]]:
    """Where a root cause of ``case`` is reported: the primary implementation's float64 case of the same device
    first, then its case of the same dtype, then the case's own (one cause of every implementation and dtype, one
    finding)."""
    impl = primary_impl(case.info, case.device)
    first = torch.float64 if "float64" in case.info.contract_dtypes else case.dtype
    candidates = [Case(case.info, case.config, impl, first, case.device),
                  Case(case.info, case.config, impl, case.dtype, case.device), case]
    out = []
    for c in [c for i, c in enumerate(candidates) if (c.impl, c.dtype) not in
              [(d.impl, d.dtype) for d in candidates[:i]]]:
        root = contract_root(c)
        if root is not None:
            out.append((c, root))
    return out


def blocked_by_root(case: Case, failure: CheckFailure, nodeid: str) -> Blocked | None:
    """A :class:`Blocked` when ``failure`` (of check ``nodeid``) is a root cause reported on another check: the
    optimizer raised the same exception (type and message) as in a plain run of the case, or of its primary
    implementation (in float64, or in the same dtype)."""
    cause = getattr(failure, "cause", None)
    if cause is None:
        return None
    for c, (root, known) in _roots(case):
        if root == nodeid:
            return None
        exc = C.root_cause(c)
        if exc is not None and _same_cause(cause, exc):
            return Blocked(root, f"{exc} (raised inside the optimizer)", known=known)
    return None


class Rooted:
    """An item's run under one root cause, one finding: the case's root check first runs the plain run and reports
    what it raises (unless its primary implementation's root reports the same); any other check whose failure is
    that same exception is BLOCKED."""

    def __init__(self, run: Callable[[], Any], prop: str, case: Case, nodeid: str) -> None:
        self.run, self.prop, self.case, self.nodeid = run, prop, case, nodeid

    def __call__(self) -> Any:
        from . import reproducer

        root = contract_root(self.case)
        if root is not None and root[0] == self.nodeid:
            exc = C.root_cause(self.case)
            if exc is not None:
                failure = C.root_finding(self.prop, self.case, exc)
                blocked = blocked_by_root(self.case, failure, "")
                if blocked is not None and blocked.root != self.nodeid:
                    raise blocked
                failure.reproducer = reproducer.script(failure, self.case)
                raise failure
            return self.run()
        try:
            return self.run()
        except CheckFailure as failure:
            blocked = blocked_by_root(self.case, failure, self.nodeid)
            if blocked is None:
                raise
            raise blocked from None


def _l2_check(case: Case, target_name: str) -> dict[str, Any]:
    """P1 with coupled weight decay λ: the minimum of f + λ/2·|x|², solved exactly by sympy."""
    from ..catalogue import get_target

    target = get_target(target_name)
    lam = sympy.Rational(1, 2)
    A, b, _ = target.quadratic_form()
    xs = (A + lam * sympy.eye(target.dim)).LUsolve(b)
    fl = target.expr + lam / 2 * sum(v ** 2 for v in target.variables)
    f_star = float(fl.xreplace(dict(zip(target.variables, xs))))  # exact min of f + λ/2·|x|²
    x_star = torch.tensor([[float(v) for v in xs]], dtype=torch.float64)
    return P1.check_p1(case, target_name, weight_decay=float(lam), x_star=x_star, f_star=f_star, what="P1.l2")


def _batched_check(case: Case, target_name: str) -> None:
    from ..catalogue import get_target

    same, diff = CV.batched_equals_separate(case, get_target(target_name))
    if not same:
        raise PropertyFailure("P1.batched", case, f"starts batched as rows of one tensor differ from separate runs "
                                                  f"after 30 epochs: max |Δx| = {diff:.3g}; declare elementwise=False")


def _target_check(fn: Callable[[Case, Any], None]) -> Callable[[Case, str], None]:
    def run(case: Case, target_name: str) -> None:
        from ..catalogue import get_target

        fn(case, get_target(target_name))

    return run


_EXACT = {"exact": _target_check(CV.check_exact_trajectory), "edge": _target_check(CV.check_stability_edge),
          "rate": _target_check(CV.check_linear_rate)}
_EXACT_TESTS = {"exact": "test_exact_trajectory", "edge": "test_stability_edge", "rate": "test_linear_rate"}


class _Builder:
    def __init__(self, info: OptimizerInfo, cfg: OptConfig, device: str) -> None:
        self.info, self.cfg, self.device = info, cfg, device
        self.cuda_na = cuda_skip_reason() if device == "cuda" else None
        self.marks = ("cuda",) if device == "cuda" else ()
        self.items: list[CheckItem] = []

    def add(self, test: str, prop: str, case: Case, keys: Sequence[str], run: Callable[[], Any], *,
            target: str | None = None, other: str | None = None, measure: bool = False,
            na: str | None = None, exempt: str | None = None, share: str | None = None) -> None:
        declared_exempt, known = declared(self.info, self.cfg, keys, other or case.impl, dtype_name(case.dtype))
        exempt = exempt or declared_exempt
        item_id = case_id(case, target, other)
        run = Rooted(run, prop, case, f"{test}[{item_id}]")
        self.items.append(CheckItem(
            test=test, id=item_id, prop=prop, subject=case.name, run=run, exempt=exempt,
            known=known, na=self.cuda_na or self.info.unsupported or na, device=self.device, marks=self.marks,
            measure=measure, target=target, share=share))


def _profile_targets(info: OptimizerInfo, cfg: OptConfig, profiles: bool) -> tuple[str, ...]:
    """A user optimizer's declared profile targets; for the registry, with ``profiles`` on (the bench env),
    the hard targets of :data:`p1.PROFILE_TARGETS` this config does not already run as judged P1."""
    if info.user or not profiles:
        return tuple(info.profile_targets)
    return tuple(t for t in P1.PROFILE_TARGETS
                 if not (info.declares(cfg, t) and not info.exemption(f"P1:{t}", cfg)) and cfg.lr is not None)


MIN_SHARD = 4  # P1 targets per shard at least: a session's fixed costs (probes, witness) are paid per shard


def _items_for(info: OptimizerInfo, cfg: OptConfig, device: str, profiles: bool = False,
               shards: int = 1) -> list[CheckItem]:
    impls = list(info.impls.get(device, ()))
    if not impls:
        return []
    b = _Builder(info, cfg, device)
    prim = primary_impl(info, device)
    # P1: declared targets are judged; profile targets only measured. Every P1 item of one case shares its runs
    # (p1.Session): the batch names them all, and `share` keeps them in one worker so they are run once.
    p1: dict[torch.dtype, list[tuple[str, bool, str | None]]] = {dt: [] for dt in DTYPES}
    for t in _p1_targets(info):
        if not info.declares(cfg, t):  # another config of this optimizer runs it
            continue
        for dt in DTYPES:
            if dt == torch.float32 and t not in F32_P1_TARGETS:
                continue
            p1[dt].append((t, True, None))
    for t in _profile_targets(info, cfg, profiles):  # never judged, so a P1:<target> exemption does not apply
        p1[torch.float64].append((t, False, info.exemption("P1") if info.user else None))
    for dt, entries in p1.items():
        case = Case(info, cfg, prim, dt, device)
        runs = tuple((t, judge) for t, judge, exempt in entries
                     if not (exempt or declared(info, cfg, ["P1", f"P1:{t}"] if judge else [], prim, dtype_name(dt))[0]))
        share = f"P1:{case_id(case)}" if len(runs) > 1 and _p1_shares(case) else None
        k = max(1, min(shards, len(runs) // MIN_SHARD)) if share else 1
        shard = {r: i % k for i, r in enumerate(runs)}  # an exempt item is in none: it runs alone if asked for
        for t, judge, exempt in entries:
            j = shard.get((t, judge))
            batch, key = (runs, share) if k == 1 or j is None else (runs[j::k], f"{share}:{j + 1}/{k}")
            if judge:
                b.add("test_converges", "P1", case, ["P1", f"P1:{t}"], _p1_run(case, t, judge=True, batch=batch),
                      target=t, share=key)
            else:
                b.add("test_profile", "P1", case, [], _p1_run(case, t, judge=False, batch=batch), target=t,
                      measure=True, exempt=exempt, share=key)
    # exact recurrences of the linear methods, coupled L2, batched starts
    for kind in ("exact", "edge", "rate"):
        if cfg.exact is None or (kind != "exact" and cfg.exact != "gd"):
            continue
        for t in info.targets or ():
            if t in EXACT_TARGETS:
                case = Case(info, cfg, prim, torch.float64, device)
                b.add(_EXACT_TESTS[kind], f"P1.{kind}", case, ["P1", f"P1.{kind}"],
                      _bind(f"P1.{kind}", case, _EXACT[kind], case, t), target=t)
    if info.weight_decay == "coupled":
        case = Case(info, cfg, prim, torch.float64, device)
        b.add("test_converges_with_coupled_l2", "P1.l2", case, ["P1", "P1.l2", "P1:booth"],
              _bind("P1.l2", case, _l2_check, case, "booth"), target="booth")
    if info.elementwise is True and device == "cpu":
        case = Case(info, cfg, prim, torch.float64, device)
        b.add("test_batched_starts_equal_separate_runs", "P1.batched", case, ["P1.batched"],
              _bind("P1.batched", case, _batched_check, case, "himmelblau"), target="himmelblau")
    # the contract P2-P17
    for test, (keys, fn) in CONTRACT.items():
        prop = keys[0]
        for impl in [prim] + [i for i in impls if i != prim]:
            for dt in DTYPES:
                if impl != prim and (dt != torch.float64 or prop not in OTHER_IMPL_PROPS):
                    continue
                if dtype_name(dt) not in info.contract_dtypes:
                    continue
                case = Case(info, cfg, impl, dt, device)
                b.add(test, prop, case, keys, _bind(prop, case, fn, case), na=capability_na(case, prop))
    for other in impls:
        if other == prim:
            continue
        for dt in DTYPES:
            case = Case(info, cfg, prim, dt, device)
            b.add("test_p15_impl_parity", "P15", case, ["P15", f"P15.{other}"],
                  _bind("P15", case, C.check_p15_impls, case, other), other=other)
    if len(info.contract_dtypes) > 1:
        case = Case(info, cfg, prim, torch.float64, device)
        b.add("test_p15_dtype_parity", "P15", case, ["P15", "P15.dtype"], _bind("P15", case, C.check_p15_dtypes, case),
              other="float32")
    return b.items


def _bind(prop: str, case: Case, fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: guarded(prop, case, fn, *args)


def _p1_shares(case: Case) -> bool:
    """Whether a case's P1 targets gain from one shared run (one worker): where parameters or param groups may share
    an optimizer (P7, P6; probed on a user optimizer, a few steps; the registry's do). Otherwise every (target, lr)
    has its own optimizer anyway, and the targets are better spread over the workers."""
    return not case.info.user or bool(case.info.registry) or P1.probe(case, "P7") or P1.probe(case, "P6")


class P1Run:
    """A P1 item's run: its target, decided with every other target of ``batch`` in one p1.Session. An exempt item
    does not run, so it is not in the batch (it runs alone if asked for: pytest --runxfail); where the targets do
    not share runs (_p1_shares), each runs alone, so that workers can take them apart. :func:`narrow` shrinks
    the batches to the items a selection (``-k``) keeps, so that what is not asked for is not run."""

    def __init__(self, case: Case, target: str, judge: bool, batch: tuple[tuple[str, bool], ...]) -> None:
        self.case, self.target, self.judge = case, target, judge
        self.batch = batch if (target, judge) in batch and _p1_shares(case) else ((target, judge),)

    def __call__(self) -> Any:
        return guarded("P1", self.case, P1.check_p1, self.case, self.target, judge=self.judge, batch=self.batch)


def _p1_run(case: Case, target: str, *, judge: bool, batch: tuple[tuple[str, bool], ...]) -> P1Run:
    return P1Run(case, target, judge, batch)


def narrow(items: Sequence[CheckItem]) -> None:
    """Restrict every P1 batch to the items of its share that are in ``items`` (what a selection kept)."""
    kept: dict[str, set[tuple[str, bool]]] = {}
    runs: list[tuple[str, P1Run]] = []
    for item in items:
        run = getattr(item.run, "run", item.run)  # under Rooted
        if isinstance(run, P1Run) and item.share:
            kept.setdefault(item.share, set()).add((run.target, run.judge))
            runs.append((item.share, run))
    for share, run in runs:
        run.batch = tuple(t for t in run.batch if t in kept[share]) or ((run.target, run.judge),)


def _p1_targets(info: OptimizerInfo) -> list[str]:
    if info.targets is not None:
        return list(info.targets)
    from ..catalogue import names

    return names()  # names only: building every target is left to the checks that use one


def optimizer_checks(selection: Selection) -> list[CheckItem]:
    """Every optimizer check for the selection (the registry, or the user's optimizers), in a fixed order.
    A selection of user targets alone (``--target`` without ``--optimizer``) validates the targets only."""
    if selection.user_targets and not selection.user_optimizers:
        return []
    out: list[CheckItem] = []
    for info in selection.optimizer_infos():
        for cfg in info.configs:
            for device in selection.devices:
                out.extend(_items_for(info, cfg, device, bool(selection.options.get("profiles")),
                                      int(selection.options.get("p1_shards", 1))))
    return out
