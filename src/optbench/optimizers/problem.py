"""The contract's problem and runs: :class:`Case` (one optimizer config on one implementation, dtype and
device), :class:`Problem` (three small 2-D parameters and a separable, non-quadratic loss), and the
helpers every check compares runs with (``fresh_run``: one side of a comparison, reseeded).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from ..devices import dtype_name
from ..loop import OptimizerRaised, call_optimizer, run_loop
from . import rng
from .info import OptConfig, OptimizerInfo

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


def constructs(info: OptimizerInfo, config: OptConfig) -> bool:
    """Whether the optimizer could be constructed over one parameter at all (its defaults were read)."""
    accepts(info, config, "lr")
    return bool(_ACCEPTS[(info.name, info.source, config.name)])


# Flags that may be constructor arguments kept on the optimizer itself rather than in its defaults
# (pytorch-optimizer keeps ``self.maximize``): the constructor's signature tells that they are taken.
SIGNATURE_FLAGS = frozenset({"maximize", "weight_decay"})


def _signature_names(factory: Any) -> frozenset[str]:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return frozenset()
    return frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def accepts(info: OptimizerInfo, config: OptConfig, key: str) -> bool:
    """Whether the optimizer takes hyperparameter ``key``: in its ``defaults``, or, for :data:`SIGNATURE_FLAGS`,
    a named argument of its constructor."""
    # keyed by what the optimizer is, not id(info): an id is recycled once its object is collected
    cache_key = (info.name, info.source, config.name)
    if cache_key not in _ACCEPTS:
        p = torch.zeros(2, 2, requires_grad=True)
        names: frozenset[str] = frozenset()
        for kw in ({"lr": info.contract_lr}, {}):  # lr passed: a constructor may have no lr default
            try:
                with rng.isolated(None):  # a constructor may draw: the caller's RNG state is left as it was
                    opt = info.make([p], config, **kw)
                names = frozenset(opt.defaults) | ({_STEP_PARAMS} if _step_takes_argument(opt) else frozenset())
                names |= _signature_names(info.factory) & SIGNATURE_FLAGS
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
                 shift: float = 0.0, noncontiguous: bool | str = False, negate: bool = False,
                 perturb: Sequence[int] = (), zero: Sequence[int] = (), nudge: int = 0) -> None:
        self.case = case
        self.shapes = [tuple(s) for s in shapes]
        self.shift = shift
        self.negate = negate
        # nudge: every element of x0 moved by that many ulps toward +inf (how far rounding carries: .rounding);
        # perturb: these parameters get another loss (other a and c), so only their gradients change;
        # zero: these parameters' loss term is 0 * x, so their gradient is exactly zero (not None)
        self.perturb, self.zero = frozenset(perturb), frozenset(zero)
        dt, dev = case.dtype, case.device
        self.a = [self._a(i, dt, dev) for i in range(len(self.shapes))]
        self.c = [self._c(i, dt, dev) for i in range(len(self.shapes))]
        self.params: list[torch.Tensor] = []
        for i, s in enumerate(self.shapes):
            x0 = _seeded(s, 300 + i + 1000 * seed, dt, dev, -2.0, 2.0) + shift
            for _ in range(nudge):
                x0 = torch.nextafter(x0, torch.full_like(x0, math.inf))
            if noncontiguous == "strided":  # every other column of a wider tensor: memory order is row-major
                p = torch.empty((s[0], 2 * s[1]), dtype=dt, device=dev)[:, ::2].copy_(x0)
            elif noncontiguous:  # a transposed layout: strides (1, rows)
                p = torch.empty_strided(s, (1, s[0]), dtype=dt, device=dev).copy_(x0)
            else:
                p = x0.clone()
            self.params.append(p.requires_grad_())

    def _a(self, i: int, dtype: torch.dtype, device: str) -> torch.Tensor:
        a = _seeded(self.shapes[i], 100 + i, dtype, device, 0.5, 2.0)
        return a * 3 if i in self.perturb else a

    def _c(self, i: int, dtype: torch.dtype, device: str) -> torch.Tensor:
        return _seeded(self.shapes[i], (700 if i in self.perturb else 200) + i, dtype, device, -1.0, 1.0)

    def view(self, p: torch.Tensor) -> torch.Tensor:
        if self.case.info.sparse_grad:
            idx = torch.arange(p.shape[0], device=p.device)
            return F.embedding(idx, p, sparse=True)
        return p

    def term(self, i: int) -> torch.Tensor:
        if i in self.zero:
            return (self.view(self.params[i]) * 0).sum()
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
            a, c = self._a(i, torch.float64, "cpu"), self._c(i, torch.float64, "cpu")
            u = x.detach().double().cpu() - c - self.shift
            total += float((a * u * u + 0.25 * u ** 4).sum())
        return -total if self.negate else total


def _dense(t: torch.Tensor) -> torch.Tensor:
    return t.to_dense() if t.is_sparse else t


def max_diff(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return max(float((x.detach().double().cpu() - y.detach().double().cpu()).abs().max()) for x, y in zip(a, b))


def float32_written(case: Case, before: Sequence[torch.Tensor], after: Sequence[torch.Tensor]) -> bool:
    """A float64 case whose parameters come back from step() holding float32 values only (each equal to its own
    rounding to float32) where the values before did not: step() computed them in float32 and copied them back
    (``p.data.float()`` ... ``p.data.copy_(...)``), so the run has float32 precision whatever its dtype. A float64
    value that is not the result of a float32 computation is almost never representable in float32 (the contract's
    starts never are), so this is the signature of the round trip, not a coincidence."""
    if case.dtype != torch.float64:
        return False

    def f32(xs: Sequence[torch.Tensor]) -> bool:
        return all(torch.equal(x, x.float().double()) for x in (_dense(t.detach()) for t in xs))

    return f32(after) and not f32(before)


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


def fresh_run(case: Case, steps: int, *, seed: int = rng.SEED, **problem: Any):
    """One side of a comparison: the global RNG reseeded, a fresh Problem and optimizer, ``steps`` steps."""
    rng.reseed(seed)
    prob = Problem(case, **problem)
    return _run(case, prob, case.make(prob.params), steps)


def case_key(case: Case) -> tuple[str, str, str, str, str]:
    """What identifies a case across processes (an id would be recycled once its object is collected)."""
    return (case.info.source or case.info.name, case.config.name, case.impl, dtype_name(case.dtype), case.device)


def state_leaves(state: Any, keep: Callable[[Any], bool], label: str = "state", key: Any = None
                 ) -> Iterator[tuple[str, Any, Any]]:
    """Every value ``keep`` accepts in one parameter's optimizer state, however nested (heavyball keeps
    ``state[p][0]['exp_avg']``, one dict per view of the parameter), as (its label, ``state[0]['exp_avg']``; the
    innermost key; the value)."""
    if keep(state):
        yield label, key, state
    elif isinstance(state, dict):
        for k, v in state.items():
            yield from state_leaves(v, keep, f"{label}[{k!r}]", k)
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            yield from state_leaves(v, keep, f"{label}[{i}]", None)


def state_tensors(state: Any) -> Iterator[tuple[str, Any, torch.Tensor]]:
    """Every tensor of one parameter's optimizer state (:func:`state_leaves`). The innermost key is what
    torch.optim.Optimizer.load_state_dict reads when it casts a value (it keeps ``'step'``, and casts every other
    floating-point tensor to the parameter's dtype, at any depth)."""
    return state_leaves(state, torch.is_tensor)


def declared_dtype_values(case: Case) -> dict[str, Any]:
    """The constructor's dtype arguments (each whose default is a torch.dtype or whose name ends in ``dtype``) with
    the value optbench passes (the config's kwargs) or its default, as given: a dtype, a str, None."""
    factory = case.info.factory
    try:
        sig = inspect.signature(factory.__init__ if isinstance(factory, type) else factory)
    except (TypeError, ValueError):
        return {}
    given = {**dict(case.info.extra_kwargs), **dict(case.config.kwargs)}
    return {name: given.get(name, param.default) for name, param in sig.parameters.items()
            if isinstance(param.default, torch.dtype) or name.lower().endswith("dtype")}


def declared_dtypes(case: Case) -> dict[str, torch.dtype]:
    """The state dtypes the constructor declares (:func:`declared_dtype_values` that are a dtype, or a str naming
    one). None (the parameter's dtype) and values that are no dtype are left out."""
    out: dict[str, torch.dtype] = {}
    for name, value in declared_dtype_values(case).items():
        if isinstance(value, str):
            value = getattr(torch, value.removeprefix("torch."), None)
        if isinstance(value, torch.dtype):
            out[name] = value
    return out


SHIFT = 3.0  # P13 translation, large against the unit-scale problem
OVERWRITES = "step() overwrites the parameters at its first step (an initialisation of its own)"


def first_step_overwrites(case: Case) -> str | None:
    """Why a first step moved what it should not have, where the reason is that it does not step from the parameters
    at all: one step from x0 and one from x0 + SHIFT, under the same gradient (P13's shifted problem), end at the
    same values bit for bit. heavyball's Scion replaces each matrix by an orthogonal initialisation of its own in
    its first step (utils.scion_auto_init_param_). None where the two differ or a run raises."""
    try:
        tb = fresh_run(case, 1)
        ts = fresh_run(case, 1, shift=SHIFT)
    except OptimizerRaised:
        return None
    if not all(torch.equal(a, b) for a, b in zip(tb.xs[1], ts.xs[1])):
        return None
    return (f"step 1 sets the parameters to the same values from x0 and from x0 + {SHIFT:g} under the same gradient: "
            f"it overwrites them with values of its own, whatever they were (an initialisation inside step(), e.g. an "
            f"orthogonal init), so the caller's weights are replaced")
