"""The property contract P2-P17: checks that hold for every optimizer, built-in or user-supplied.

Each ``check_pN(case)`` runs a few steps through :func:`optbench.loop.run_loop` on tiny 2-D
parameters and a separable, non-quadratic loss, and raises :class:`PropertyFailure` whose message
is a diagnosis: the property, the optimizer, dtype and device, expected against got, and where it
happened. Nothing here imports pytest.
"""

from __future__ import annotations

import copy
import io
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from ..devices import dtype_name
from ..loop import OptimizerRaised, call_optimizer, run_loop
from ..verdict import CheckFailure
from .info import PROPERTIES, OptConfig, OptimizerInfo


class PropertyFailure(CheckFailure):
    """A property that does not hold; ``str()`` is the diagnosis. ``details`` feed the reproducer."""

    def __init__(self, prop: str, case: "Case | None", message: str, reproducer: str | None = None,
                 **details: Any) -> None:
        self.case = case
        self.details = details
        title = f"{prop} {PROPERTIES.get(prop.split('.')[0].split(':')[0], '')}".strip()
        super().__init__(prop, case.label if case is not None else "", message, reproducer, title=title)


def optimizer_finding(prop: str, case: "Case", exc: OptimizerRaised, doing: str = "", **details: Any) -> PropertyFailure:
    """The optimizer's own code raised while ``prop`` was being checked: a finding of the optimizer."""
    where = f" while {doing}" if doing else ""
    return PropertyFailure(prop, case, f"{exc}{where} (raised inside the optimizer, not by optbench)",
                           raised=type(exc.original).__name__, call=exc.call, **details)


# Comparison tolerances for properties that hold "to float tolerance" rather than bit for bit.
# float64: 1e-9 relative leaves ~1e6 ulps for reassociation across a few steps, far below any bug.
# float32: 1e-4 relative: ~1e3 ulps of float32 (eps 1.2e-7), same margin.
REL_TOL = {torch.float64: 1e-9, torch.float32: 1e-4}


def rel_tol(dtype: torch.dtype) -> float:
    return REL_TOL.get(dtype, 1e-2)  # bfloat16/float16: 1e-2 (8-bit/11-bit mantissa)


@dataclass
class Case:
    """One optimizer configuration on one implementation, dtype and device."""

    info: OptimizerInfo
    config: OptConfig
    impl: str = "default"
    dtype: torch.dtype = torch.float64
    device: str = "cpu"

    @property
    def name(self) -> str:
        return self.info.config_id(self.config)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.impl}) {dtype_name(self.dtype)} {self.device}"

    @property
    def exact(self) -> bool:
        """Bit-for-bit comparisons are promised on CPU; elsewhere to tolerance."""
        return self.device == "cpu"

    def kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Constructor kwargs of the contract: lr always passed (a constructor may have no lr default)."""
        kw: dict[str, Any] = {"lr": self.info.contract_lr}
        if accepts(self.info, self.config, "weight_decay"):
            kw["weight_decay"] = 0.0  # properties other than P12 are stated with weight decay off
        kw.update(overrides)
        return kw

    def make(self, params: Any, **overrides: Any) -> torch.optim.Optimizer:
        """Construct the optimizer; an exception from its constructor is :class:`OptimizerRaised`."""
        return call_optimizer("the constructor", self.info.make, params, self.config, self.impl,
                              **self.kwargs(**overrides))


_ACCEPTS: dict[tuple[str, str, str], frozenset[str]] = {}
_STEP_PARAMS = "<step parameters>"  # a pseudo-key: step() takes at least one argument (the closure)


def _step_takes_argument(opt: torch.optim.Optimizer) -> bool:
    import inspect

    try:
        params = inspect.signature(opt.step).parameters.values()
    except (TypeError, ValueError):  # a builtin or C step: assume the standard signature
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params)


def step_takes_closure(info: OptimizerInfo, config: OptConfig) -> bool:
    """Whether ``step`` has a parameter at all (``step(self)`` alone cannot be given a closure)."""
    return accepts(info, config, _STEP_PARAMS)


def accepts(info: OptimizerInfo, config: OptConfig, key: str) -> bool:
    """Whether the optimizer takes hyperparameter ``key`` (looked up in its ``defaults``)."""
    # keyed by what the optimizer is, not id(info): an id is recycled once its object is collected
    cache_key = (info.name, info.source, config.name)
    if cache_key not in _ACCEPTS:
        p = torch.zeros(2, 2, requires_grad=True)
        names: frozenset[str] = frozenset()
        for kw in ({"lr": info.contract_lr}, {}):  # lr passed: a constructor may have no lr default
            try:
                opt = info.make([p], config, **kw)
                names = frozenset(opt.defaults) | ({_STEP_PARAMS} if _step_takes_argument(opt) else frozenset())
                break
            except Exception:  # noqa: BLE001 - a constructor that refuses is probed again, then taken as accepting nothing
                continue
        _ACCEPTS[cache_key] = names
    return key in _ACCEPTS[cache_key]


# ---------------------------------------------------------------------------------------------
# The contract's problem: 2-D parameters (Muon takes nothing else), a separable loss
#   f(X) = sum_ij a_ij (x_ij - c_ij)^2 + 1/4 (x_ij - c_ij)^4
# with fixed, distinct a and c per parameter. Non-quadratic, so curvature-adaptive optimizers
# see changing gradients; separable, so parameter independence (P7) is exactly defined.

SHAPES = ((3, 2), (3, 2), (2, 4))
# Horizons: every planted and upstream bug the suite knows shows within 2 steps; 3 (and 5 where
# errors accumulate: parity, determinism) keeps the contract cheap (Muon's bfloat16 Newton-Schulz
# costs ~40 ms a step on CPU).
STEPS = 3
LONG_STEPS = 5  # two of the same shape (P7), one of another


def _seeded(shape: Sequence[int], seed: int, dtype: torch.dtype, device: str, lo: float, hi: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=torch.float64)).to(dtype=dtype, device=device)


class Problem:
    """Parameters and the loss over them; ``view`` routes through a sparse embedding for SparseAdam."""

    def __init__(self, case: Case, shapes: Sequence[Sequence[int]] = SHAPES, *, seed: int = 0,
                 shift: float = 0.0, noncontiguous: bool = False, negate: bool = False) -> None:
        self.case = case
        self.shapes = [tuple(s) for s in shapes]
        self.shift = shift
        self.negate = negate
        dt, dev = case.dtype, case.device
        self.a = [_seeded(s, 100 + i, dt, dev, 0.5, 2.0) for i, s in enumerate(self.shapes)]
        self.c = [_seeded(s, 200 + i, dt, dev, -1.0, 1.0) for i, s in enumerate(self.shapes)]
        self.params: list[torch.Tensor] = []
        for i, s in enumerate(self.shapes):
            x0 = _seeded(s, 300 + i + 1000 * seed, dt, dev, -2.0, 2.0) + shift
            if noncontiguous:  # a transposed layout: strides (1, rows)
                p = torch.empty_strided(s, (1, s[0]), dtype=dt, device=dev).copy_(x0)
            else:
                p = x0.clone()
            self.params.append(p.requires_grad_())

    def view(self, p: torch.Tensor) -> torch.Tensor:
        if self.case.info.sparse_grad:
            idx = torch.arange(p.shape[0], device=p.device)
            return F.embedding(idx, p, sparse=True)
        return p

    def term(self, i: int) -> torch.Tensor:
        x = self.view(self.params[i]) - self.c[i] - self.shift
        v = (self.a[i] * x * x + 0.25 * x ** 4).sum()
        return -v if self.negate else v

    def loss_fn(self, which: Sequence[int] | None = None) -> Callable[[], torch.Tensor]:
        idx = list(range(len(self.params))) if which is None else list(which)

        def loss() -> torch.Tensor:
            total = self.term(idx[0])
            for i in idx[1:]:
                total = total + self.term(i)
            return total

        return loss

    def snapshot(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.params]

    def value64(self, xs: Sequence[torch.Tensor]) -> float:
        """The loss at points ``xs`` evaluated in float64, so a small step is resolved in any dtype."""
        total = 0.0
        for i, x in enumerate(xs):
            a = _seeded(self.shapes[i], 100 + i, torch.float64, "cpu", 0.5, 2.0)
            c = _seeded(self.shapes[i], 200 + i, torch.float64, "cpu", -1.0, 1.0)
            u = x.detach().double().cpu() - c - self.shift
            total += float((a * u * u + 0.25 * u ** 4).sum())
        return -total if self.negate else total


def _dense(t: torch.Tensor) -> torch.Tensor:
    return t.to_dense() if t.is_sparse else t


def max_diff(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return max(float((x.detach().double().cpu() - y.detach().double().cpu()).abs().max()) for x, y in zip(a, b))


def _fmt(t: torch.Tensor, n: int = 4) -> str:
    flat = t.detach().double().cpu().reshape(-1)[:n].tolist()
    return "[" + ", ".join(f"{v:.6g}" for v in flat) + (", ...]" if t.numel() > n else "]")


def _same(case: Case, a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], scale: float = 1.0) -> bool:
    if case.exact:
        return all(torch.equal(x, y) for x, y in zip(a, b))
    return max_diff(a, b) <= rel_tol(case.dtype) * scale


def _loop(case: Case, loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor],
          opt: torch.optim.Optimizer, epochs: int, **kw: Any):
    """run_loop as the contract drives it: the closure convention comes from the declaration (an instance
    attribute would not survive ``copy.deepcopy`` of the optimizer)."""
    return run_loop(loss_fn, params, opt, epochs, closure=True if case.info.closure else None, **kw)


def _run(case: Case, prob: Problem, opt: torch.optim.Optimizer, epochs: int, which: Sequence[int] | None = None,
         params: Sequence[torch.Tensor] | None = None):
    ps = prob.params if params is None else params
    return _loop(case, prob.loss_fn(which), ps, opt, epochs, check_finite=False)


def _traj_diff(case: Case, t1, t2, i_map: Sequence[tuple[int, int]] | None = None) -> tuple[int, float] | None:
    """First recorded step where two trajectories differ (beyond tolerance), with max |Δx|."""
    for k in range(1, min(len(t1.xs), len(t2.xs))):
        a = t1.xs[k] if i_map is None else [t1.xs[k][i] for i, _ in i_map]
        b = t2.xs[k] if i_map is None else [t2.xs[k][j] for _, j in i_map]
        scale = 1.0 + max(float(x.abs().max()) for x in a)
        if not _same(case, a, b, scale):
            return k, max_diff(a, b)
    return None


def _cmp_word(case: Case) -> str:
    return "bit for bit" if case.exact else f"to rel. {rel_tol(case.dtype):.0e}"


# ---------------------------------------------------------------------------------------------
# P2 - P17


def check_p2(case: Case) -> None:
    """From fresh state, the first step is a descent direction and the loss drops (small lr)."""
    prob = Problem(case)
    loss = prob.loss_fn()
    opt = case.make(prob.params)
    grads: list[torch.Tensor] = []

    def hook(epoch: int, value: torch.Tensor) -> None:
        grads.extend(_dense(p.grad).detach().clone() for p in prob.params)

    traj = _loop(case, loss, prob.params, opt, 1, on_epoch=hook, check_finite=False)
    dx = [x1 - x0 for x0, x1 in zip(traj.xs[0], traj.xs[1])]
    inner = sum(float((d.double() * g.double()).sum()) for d, g in zip(dx, grads))
    # in float64 at the points the method returns: a first step below float32's resolution of the loss
    # (Prodigy's d0 = 1e-6) still descends, and a moded optimizer is read in eval mode
    before, after = prob.value64(traj.xs[0]), prob.value64(traj.xs[1])
    if not inner < 0:
        raise PropertyFailure("P2", case, f"the first step is not a descent direction: expected <Δx, g> < 0, got "
                                          f"{inner:.3g} (lr={case.info.contract_lr:g}; Δx={_fmt(dx[0])}, "
                                          f"g={_fmt(grads[0])}; is the update's sign or the first-step bias "
                                          f"correction wrong?)")
    if not after < before:
        raise PropertyFailure("P2", case, f"the loss did not drop on the first step at lr={case.info.contract_lr:g}: "
                                          f"{before:.6g} -> {after:.6g}")


def check_p3(case: Case) -> None:
    """lr=0 leaves every parameter unchanged, bit for bit, over several steps.

    lr=0 is given to the constructor; a constructor that refuses it (``ValueError: Invalid learning
    rate``, ``assert lr > 0``) gets the contract lr, and every param group's ``lr`` is then set to 0, as a
    warmup or annealing scheduler does in real training. Moving (or producing NaN) there is a bug.
    """
    prob = Problem(case)
    x0 = prob.snapshot()
    how = "lr=0 given to the constructor"
    try:
        opt = case.make(prob.params, lr=0.0)
    except OptimizerRaised as refused:
        opt = case.make(prob.params)
        for group in opt.param_groups:
            group["lr"] = 0.0
        how = (f"param_groups[i]['lr'] set to 0 after construction, as an lr scheduler does (the constructor "
               f"refuses lr=0: {type(refused.original).__name__}: {' '.join(str(refused.original).split())})")
    try:
        traj = _run(case, prob, opt, 3)
    except OptimizerRaised as exc:
        raise optimizer_finding("P3", case, exc, f"stepping with {how}") from None
    for k in range(1, len(traj.xs)):
        if not all(torch.equal(a, b) for a, b in zip(traj.xs[k], x0)):
            nan = any(bool(torch.isnan(a).any()) for a in traj.xs[k])
            raise PropertyFailure("P3", case, f"with {how}, the parameters {'became NaN' if nan else 'moved'} at step "
                                              f"{k}: max |Δx| = {max_diff(traj.xs[k], x0):.3g} (expected 0; is a term "
                                              f"of the update not multiplied by lr, e.g. eps or weight decay, or is lr "
                                              f"divided by?)", how=how, step=k)


def check_p4(case: Case) -> None:
    """A parameter whose .grad is None at a step is not changed by that step (also with built-up state)."""
    prob = Problem(case)
    opt = case.make(prob.params)
    _run(case, prob, opt, 3)  # builds state for every parameter
    frozen = 1
    before = prob.params[frozen].detach().clone()
    active = [i for i in range(len(prob.params)) if i != frozen]
    # run_loop's zero_grad sets every .grad to None; the loss omits the frozen parameter.
    _run(case, prob, opt, 2, which=active)
    if prob.params[frozen].grad is not None:
        raise PropertyFailure("P4", case, "the frozen parameter has a .grad after zero_grad() and a loss without it")
    if not torch.equal(prob.params[frozen].detach(), before):
        raise PropertyFailure("P4", case, f"a parameter with .grad None (a frozen layer) changed after 3 normal steps: "
                                          f"max |Δx| = {max_diff([prob.params[frozen]], [before]):.3g}, "
                                          f"expected 0 (is momentum or weight decay applied to params without grads?)")


def check_p5(case: Case) -> None:
    """step() modifies no .grad tensor."""
    prob = Problem(case)
    opt = case.make(prob.params)
    for step in range(3):
        saved: list[torch.Tensor] = []

        def hook(epoch: int, value: torch.Tensor) -> None:
            saved[:] = [_dense(p.grad).detach().clone() for p in prob.params]

        _run_hook(prob, opt, hook)
        now = [_dense(p.grad).detach() for p in prob.params]
        if not all(torch.equal(a, b) for a, b in zip(saved, now)):
            raise PropertyFailure("P5", case, f"step {step + 1} modified .grad in place: max |Δgrad| = "
                                              f"{max_diff(saved, now):.3g} (expected untouched; use a copy, "
                                              f"e.g. grad.mul() instead of grad.mul_())")


def _run_hook(prob: Problem, opt: torch.optim.Optimizer, hook) -> Any:
    return _loop(prob.case, prob.loss_fn(), prob.params, opt, 1, on_epoch=hook, check_finite=False, record_x=False)


def _group_kwargs(case: Case, which: int) -> dict[str, Any]:
    lr = case.info.contract_lr * (1.0 if which == 0 else 3.0)
    kw: dict[str, Any] = {"lr": lr}
    if accepts(case.info, case.config, "weight_decay"):
        kw["weight_decay"] = 0.0 if which == 0 else 0.05
    return kw


def check_p6(case: Case) -> None:
    """Two param groups with different hyperparameters behave exactly like two separate optimizers."""
    steps = STEPS
    joint = Problem(case)
    opt = case.make([{"params": [joint.params[0]], **_group_kwargs(case, 0)},
                     {"params": [joint.params[2]], **_group_kwargs(case, 1)}])
    tj = _loop(case, joint.loss_fn([0, 2]), [joint.params[0], joint.params[2]], opt, steps, check_finite=False)
    sep = Problem(case)
    ta = _loop(case, sep.loss_fn([0]), [sep.params[0]], case.make([sep.params[0]], **_group_kwargs(case, 0)), steps,
               check_finite=False)
    tb = _loop(case, sep.loss_fn([2]), [sep.params[2]], case.make([sep.params[2]], **_group_kwargs(case, 1)), steps,
               check_finite=False)
    for k in range(1, steps + 1):
        for gi, ts in ((0, ta), (1, tb)):
            a, b = [tj.xs[k][gi]], [ts.xs[k][0]]
            if not _same(case, a, b, 1.0 + float(a[0].abs().max())):
                kw = _group_kwargs(case, gi)
                raise PropertyFailure("P6", case, f"param group {gi} ({kw}) differs from the same parameter under its "
                                                  f"own optimizer at step {k}: max |Δx| = {max_diff(a, b):.3g}, "
                                                  f"expected equal {_cmp_word(case)} (are hyperparameters read from "
                                                  f"self.defaults instead of the group?)")


def check_p7(case: Case) -> None:
    """On a separable loss, optimizing all params jointly equals optimizing each separately."""
    steps = STEPS
    joint = Problem(case)
    tj = _run(case, joint, case.make(joint.params), steps)
    sep = Problem(case)
    for i in range(len(sep.params)):
        ts = _loop(case, sep.loss_fn([i]), [sep.params[i]], case.make([sep.params[i]]), steps, check_finite=False)
        for k in range(1, steps + 1):
            a, b = [tj.xs[k][i]], [ts.xs[k][0]]
            if not _same(case, a, b, 1.0 + float(a[0].abs().max())):
                raise PropertyFailure("P7", case, f"parameter {i} (shape {tuple(sep.params[i].shape)}) optimized jointly "
                                                  f"with the others differs from optimizing it alone at step {k}: "
                                                  f"max |Δx| = {max_diff(a, b):.3g}, expected equal {_cmp_word(case)} "
                                                  f"(is state shared across params, or a global norm used?)")


def check_p8(case: Case, hows: Sequence[str] = ("state_dict", "deepcopy")) -> None:
    """Resume: k steps, save/load state_dict into a fresh optimizer on fresh params == uninterrupted."""
    k_steps, n_steps = 2, 2
    ref = Problem(case)
    tr = _run(case, ref, case.make(ref.params), k_steps + n_steps)
    for how in hows:
        prob = Problem(case)
        opt = case.make(prob.params)
        _run(case, prob, opt, k_steps)
        try:
            if how == "state_dict":
                buf = io.BytesIO()
                call_optimizer("torch.save(optimizer.state_dict())", lambda: torch.save(opt.state_dict(), buf))
                buf.seek(0)
                state = torch.load(buf, weights_only=False)
                fresh = Problem(case)
                with torch.no_grad():
                    for p, q in zip(fresh.params, prob.params):
                        p.copy_(q)
                opt2 = case.make(fresh.params)
                call_optimizer("load_state_dict()", opt2.load_state_dict, state)
            else:
                holder = call_optimizer("copy.deepcopy(optimizer)", copy.deepcopy, {"params": prob.params, "opt": opt})
                fresh = Problem(case)
                fresh.params = holder["params"]
                opt2 = holder["opt"]
            t2 = _run(case, fresh, opt2, n_steps)
        except OptimizerRaised as exc:
            raise optimizer_finding("P8", case, exc, f"resuming through {how}", how=how) from None
        for j in range(1, n_steps + 1):
            a, b = t2.xs[j], tr.xs[k_steps + j]
            if not _same(case, a, b, 1.0 + max(float(x.abs().max()) for x in b)):
                raise PropertyFailure("P8", case, f"{case.name} differs after reload ({how}) at step {k_steps + j}: "
                                                  f"max |Δx| = {max_diff(a, b):.3g}, expected equal {_cmp_word(case)} "
                                                  f"to the uninterrupted run (is 'step' or other state kept outside "
                                                  f"state_dict?)", how=how)


def check_p9(case: Case) -> None:
    """Every per-param state tensor shaped like its param has the param's dtype and device."""
    prob = Problem(case)
    opt = case.make(prob.params)
    _run(case, prob, opt, 2)
    for i, p in enumerate(prob.params):
        for key, val in opt.state.get(p, {}).items():
            if torch.is_tensor(val) and val.shape == p.shape:
                if val.dtype != p.dtype or val.device != p.device:
                    raise PropertyFailure("P9", case, f"state[{key!r}] of parameter {i} is {dtype_name(val.dtype)} on "
                                                      f"{val.device}, expected the param's {dtype_name(p.dtype)} on "
                                                      f"{p.device} (create state with torch.zeros_like(p))")


def check_p10(case: Case) -> None:
    """step(closure) returns the closure's loss."""
    prob = Problem(case)
    opt = case.make(prob.params)
    loss_fn = prob.loss_fn()
    values: list[torch.Tensor] = []

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = loss_fn()
        value.backward()
        values.append(value.detach())
        return value

    try:
        got = call_optimizer("step(closure)", opt.step, closure)
    except OptimizerRaised as exc:
        raise optimizer_finding("P10", case, exc) from None
    if not values:
        raise PropertyFailure("P10", case, "step(closure) never called the closure")
    if got is None or not torch.is_tensor(got) or not torch.equal(got.detach(), values[0]):
        raise PropertyFailure("P10", case, f"step(closure) returned {got!r}, expected the closure's loss "
                                           f"{float(values[0]):.6g} (return the value closure() gave)")


def check_p11(case: Case) -> None:
    """maximize=True on -f equals minimizing f."""
    steps = STEPS
    mn = Problem(case)
    t_min = _run(case, mn, case.make(mn.params), steps)
    mx = Problem(case, negate=True)
    t_max = _run(case, mx, case.make(mx.params, maximize=True), steps)
    d = _traj_diff(case, t_min, t_max)
    if d is not None:
        raise PropertyFailure("P11", case, f"maximize=True on -f differs from minimizing f at step {d[0]}: max |Δx| = "
                                           f"{d[1]:.3g}, expected equal {_cmp_word(case)} (is maximize ignored or "
                                           f"applied to only part of the update?)")


def check_p12(case: Case) -> None:
    """With weight_decay > 0 and a zero gradient, params shrink toward 0."""
    prob = Problem(case)
    opt = case.make(prob.params, weight_decay=0.1)
    x0 = prob.snapshot()
    traj = _loop(case, lambda: sum((prob.view(p) * 0).sum() for p in prob.params), prob.params, opt, 3,
                 check_finite=False)
    n0 = math.sqrt(sum(float((x.double() ** 2).sum()) for x in x0))
    n1 = math.sqrt(sum(float((x.double() ** 2).sum()) for x in traj.xs[-1]))
    grew = max(float((b.abs() - a.abs()).max()) for a, b in zip(x0, traj.xs[-1]))
    if not n1 < n0 or grew > rel_tol(case.dtype) * 10:
        raise PropertyFailure("P12", case, f"weight_decay=0.1 with zero gradient did not shrink the parameters toward 0 "
                                           f"in 3 steps: |x| {n0:.6g} -> {n1:.6g}, max growth of |x_i| {grew:.3g} "
                                           f"(expected |x| to decrease and no |x_i| to grow; is decay's sign wrong or "
                                           f"decay skipped when the gradient is 0?)")


SHIFT = 3.0  # P13 translation, large against the unit-scale problem


def check_p13(case: Case) -> None:
    """Minimizing f(x - s) from x0 + s gives the trajectory of f from x0, shifted by s."""
    steps = STEPS
    base = Problem(case)
    tb = _run(case, base, case.make(base.params), steps)
    sh = Problem(case, shift=SHIFT)
    ts = _run(case, sh, case.make(sh.params), steps)
    # Float tolerance: x + s and (x + s) - s round at |s|, so allow 1e3 ulps at the shifted magnitude.
    eps = torch.finfo(case.dtype).eps
    for k in range(1, steps + 1):
        a = [x - SHIFT for x in ts.xs[k]]
        b = tb.xs[k]
        tol = 1e3 * eps * (SHIFT + 2.0) * k
        diff = max_diff(a, b)
        if diff > tol:
            raise PropertyFailure("P13", case, f"minimizing f(x - {SHIFT:g}) from x0 + {SHIFT:g} is not the shifted "
                                               f"trajectory at step {k}: max |Δx| = {diff:.3g} > {tol:.1e} (does the "
                                               f"step scale with the parameter's magnitude? then declare a P13 "
                                               f"exemption with the reason)")


def check_p14(case: Case) -> None:
    """Non-contiguous parameters (a transposed layout) give the same result as contiguous ones."""
    steps = STEPS
    c = Problem(case)
    tc = _run(case, c, case.make(c.params), steps)
    n = Problem(case, noncontiguous=True)
    if n.params[0].is_contiguous():  # the harness's own precondition, not the optimizer's
        raise RuntimeError("Problem(noncontiguous=True) built a contiguous parameter")
    try:
        tn = _run(case, n, case.make(n.params), steps)
    except OptimizerRaised as exc:
        raise optimizer_finding("P14", case, exc, "stepping non-contiguous (transposed) parameters") from None
    for k in range(1, steps + 1):
        a, b = tn.xs[k], tc.xs[k]
        scale = 1.0 + max(float(x.abs().max()) for x in b)
        if max_diff(a, b) > rel_tol(case.dtype) * scale:
            raise PropertyFailure("P14", case, f"non-contiguous params differ from contiguous at step {k}: max |Δx| = "
                                               f"{max_diff(a, b):.3g} (expected equal to rel. {rel_tol(case.dtype):.0e}; "
                                               f"is the update written into a reshape() copy instead of the param?)")


def check_p15_impls(case: Case, other_impl: str) -> None:
    """Two implementations (e.g. for-loop against foreach or fused) agree on a short horizon."""
    steps = LONG_STEPS
    a = Problem(case)
    ta = _run(case, a, case.make(a.params), steps)
    other = Case(case.info, case.config, other_impl, case.dtype, case.device)
    b = Problem(other)
    tb = _run(other, b, other.make(b.params), steps)
    for k in range(1, steps + 1):
        scale = 1.0 + max(float(x.abs().max()) for x in ta.xs[k])
        tol = rel_tol(case.dtype) * scale
        if max_diff(ta.xs[k], tb.xs[k]) > tol:
            raise PropertyFailure("P15", case, f"{case.impl} and {other_impl} disagree at step {k}: max |Δx| = "
                                               f"{max_diff(ta.xs[k], tb.xs[k]):.3g} > {tol:.1e}; last points "
                                               f"{_fmt(ta.xs[k][0])} vs {_fmt(tb.xs[k][0])}")


def check_p15_dtypes(case: Case) -> None:
    """float32 and float64 agree over a short horizon, within a bound that grows with eps and steps."""
    steps = LONG_STEPS
    c64 = Case(case.info, case.config, case.impl, torch.float64, case.device)
    c32 = Case(case.info, case.config, case.impl, torch.float32, case.device)
    a, b = Problem(c64), Problem(c32)
    ta = _run(c64, a, c64.make(a.params), steps)
    tb = _run(c32, b, c32.make(b.params), steps)
    eps32 = torch.finfo(torch.float32).eps
    for k in range(1, steps + 1):
        # Bound: float32 rounding of O(1) values is eps32 per op; a step is O(100) ops and errors add
        # over k steps, amplified at most ~10x by adaptive denominators on this well-scaled problem.
        tol = 1e3 * eps32 * k * (1.0 + max(float(x.abs().max()) for x in ta.xs[k]))
        d = max_diff(ta.xs[k], tb.xs[k])
        if d > tol:
            raise PropertyFailure("P15", case, f"float32 and float64 disagree at step {k}: max |Δx| = {d:.3g} > "
                                               f"{tol:.1e} (1e3·eps32·k·scale); float64 {_fmt(ta.xs[k][0])} vs "
                                               f"float32 {_fmt(tb.xs[k][0])}")


def check_p16(case: Case) -> None:
    """After zero_grad() every grad is None (set_to_none) or zero."""
    for set_to_none in (True, False):
        prob = Problem(case)
        opt = case.make(prob.params)
        _run(case, prob, opt, 1)
        call_optimizer(f"zero_grad(set_to_none={set_to_none})", opt.zero_grad, set_to_none=set_to_none)
        for i, p in enumerate(prob.params):
            g = p.grad
            if g is not None and bool(_dense(g).abs().max() != 0):
                raise PropertyFailure("P16", case, f"after zero_grad(set_to_none={set_to_none}) parameter {i}'s grad is "
                                                   f"not None or zero: max |g| = {float(_dense(g).abs().max()):.3g}")
            if set_to_none and g is not None and bool(_dense(g).abs().max() != 0):
                raise PropertyFailure("P16", case, "zero_grad(set_to_none=True) left a nonzero grad")


def check_p17(case: Case) -> None:
    """Two identical runs are bitwise identical (CPU); CUDA agrees with CPU to tolerance."""
    steps = LONG_STEPS
    a, b = Problem(case), Problem(case)
    ta = _run(case, a, case.make(a.params), steps)
    tb = _run(case, b, case.make(b.params), steps)
    for k in range(1, steps + 1):
        if not _same(case, ta.xs[k], tb.xs[k], 1.0 + max(float(x.abs().max()) for x in ta.xs[k])):
            raise PropertyFailure("P17", case, f"two identical runs differ at step {k}: max |Δx| = "
                                               f"{max_diff(ta.xs[k], tb.xs[k]):.3g}, expected equal {_cmp_word(case)} "
                                               f"(is there unseeded randomness or state shared between instances?)")
    if case.device != "cpu":
        cpu = Case(case.info, case.config, case.impl if case.impl in case.info.impls.get("cpu", ()) else "default",
                   case.dtype, "cpu")
        c = Problem(cpu)
        tc = _run(cpu, c, cpu.make(c.params), steps)
        for k in range(1, steps + 1):
            tol = rel_tol(case.dtype) * (1.0 + max(float(x.abs().max()) for x in tc.xs[k]))
            if max_diff(ta.xs[k], tc.xs[k]) > tol:
                raise PropertyFailure("P17", case, f"{case.device} and cpu disagree at step {k}: max |Δx| = "
                                                   f"{max_diff(ta.xs[k], tc.xs[k]):.3g} > {tol:.1e}")


CHECKS: dict[str, Callable[[Case], None]] = {
    "P2": check_p2, "P3": check_p3, "P4": check_p4, "P5": check_p5, "P6": check_p6, "P7": check_p7,
    "P8": check_p8, "P9": check_p9, "P10": check_p10, "P11": check_p11, "P12": check_p12, "P13": check_p13,
    "P14": check_p14, "P16": check_p16, "P17": check_p17,
}


def applicable(case: Case, prop: str) -> str | None:
    """None when ``prop`` applies to ``case``, else the reason it does not (an exemption or a capability)."""
    reason = case.info.exemption(prop, case.config)
    if reason:
        return reason
    if prop == "P11" and not accepts(case.info, case.config, "maximize"):
        return f"{case.name} has no maximize argument"
    if prop == "P12" and not accepts(case.info, case.config, "weight_decay"):
        return f"{case.name} has no weight_decay argument"
    return None
