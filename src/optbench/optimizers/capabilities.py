"""Detect an optimizer's conventions instead of crashing on them.

A user's optimizer arrives with no declaration. Before any property is checked, a few one-step probes
find out how it must be driven: whether ``step()`` needs a closure (LBFGS-style), whether it takes
only 2-D parameters (Muon-style), whether it needs sparse gradients (SparseAdam-style), whether it has
``train()``/``eval()`` modes (schedule-free), and whether its constructor accepts lr=0 (checked by P3
through the param group instead when it does not). lr is always passed to the constructor. What the
TOML config declares wins over what is detected.

An optimizer no generic check can drive is detected as such (``Capabilities.unsupported``: every check is
N/A with the reason) when what it needs is something no config can give: a model object instead of
parameters, a loss backpropagated with ``create_graph=True`` (a Hessian estimate in step), or param groups
carrying keys of its own. A constructor missing a required argument stays a one-line SpecError: the config's
``kwargs`` can give it.
"""

from __future__ import annotations

import inspect
import re
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..errors import SpecError, short_path
from ..loop import has_modes
from . import rng


@dataclass
class Capabilities:
    closure: bool = False
    matrix_only: bool = False
    sparse_grad: bool = False
    modes: bool = False
    defaults: frozenset[str] = frozenset()
    fused: bool = False  # fused=True constructs and steps a float32 CPU parameter (torch.optim's fused kernels)
    fused_cuda: bool = False  # the same on a CUDA parameter (probed where CUDA is present; else as on the CPU)
    notes: list[str] = field(default_factory=list)  # what was detected, as a user reads it
    unsupported: str | None = None  # why no generic check can drive it (every check N/A)
    steps_raise: str | None = None  # what every attempt's step() raised, where the constructor took the parameters


def _loss(p: torch.Tensor, sparse: bool) -> torch.Tensor:
    x = F.embedding(torch.arange(p.shape[0]), p, sparse=True) if sparse else p
    return ((x - 0.5) ** 2).sum()


def _try(factory: Callable[..., Any], shapes: Sequence[tuple[int, ...]], kwargs: Mapping[str, Any], *,
         closure: bool, sparse: bool, dtype: torch.dtype = torch.float64) -> tuple[Any, BaseException | None]:
    """Construct over one parameter of each shape (one group) and take one step; (optimizer, None) or (optimizer or
    None, exception)."""
    ps = [torch.full(shape, 0.25, dtype=dtype, requires_grad=True) for shape in shapes]
    try:
        opt = factory(ps, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the probe classifies what the constructor does
        return None, exc
    if not isinstance(opt, torch.optim.Optimizer):
        return opt, None
    try:
        if has_modes(opt):
            opt.train()
        if closure:
            def fn() -> torch.Tensor:
                with torch.enable_grad():  # a step() under no_grad may call it without enable_grad
                    opt.zero_grad()
                    value = sum(_loss(p, sparse) for p in ps)
                    value.backward()
                return value

            opt.zero_grad()  # as the training loop does: the gradient is there before step(closure) too
            sum(_loss(p, sparse) for p in ps).backward()
            opt.step(fn)
        else:
            opt.zero_grad()
            sum(_loss(p, sparse) for p in ps).backward()
            opt.step()
    except Exception as exc:  # noqa: BLE001
        return opt, exc
    return opt, None


def _none_defaults_used(factory: Callable[..., Any], exc: BaseException) -> tuple[list[str], str] | None:
    """(names, "file:line: source") where ``exc`` is a TypeError about None (``unsupported operand type(s) for *:
    'NoneType' and ...``) raised on a line of the optimizer's code that names arguments of ``factory`` whose
    default is None (ranger21's Ranger21: ``self.total_iterations = num_epochs * num_batches_per_epoch``, both
    None unless given), else None."""
    if not isinstance(exc, TypeError) or "NoneType" not in str(exc):
        return None
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return None
    nones = {n for n, p in params.items() if p.default is None}
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.line and f.filename != __file__]
    for frame in reversed(frames):  # the innermost line of the optimizer's code that uses such an argument
        used = [n for n in dict.fromkeys(re.findall(r"[A-Za-z_]\w*", frame.line)) if n in nones]
        if used:
            return used, f"{short_path(frame.filename)}:{frame.lineno}: {frame.line.strip()}"
    return None


def _default_refused(factory: Callable[..., Any], exc: BaseException) -> str | None:
    """``name=default`` where the constructor raised naming one of its own arguments whose default it refuses
    (bitsandbytes' SGD: ``momentum=0``, "SGD without momentum is not supported!"), else None."""
    if isinstance(exc, TypeError) or not str(exc):
        return None
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return None
    words = set(re.findall(r"[A-Za-z_]\w*", str(exc).lower()))
    named = [p for n, p in params.items() if n.lower() in words and n not in ("params", "lr")
             and p.default is not inspect.Parameter.empty]
    return f"{named[0].name}={named[0].default!r}" if named else None


STEPS_RAISE = "every attempt's step() raised inside the optimizer"  # the note of an optimizer whose steps all raise
_NO_CUDA = re.compile(r"not compiled with CUDA|CUDA is not available|no CUDA GPUs|NVIDIA driver|only supports CUDA")


def _table_name(spec_text: str) -> str:
    """The config table of a spec: NAME of NAME=module:attr, else the attribute's name."""
    return spec_text.split("=", 1)[0] if "=" in spec_text.split(":", 1)[0] else spec_text.rsplit(":", 1)[-1]


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def _fused_works(factory: Callable[..., Any], shape: tuple[int, ...], kw: Mapping[str, Any],
                 caps: Capabilities, device: str) -> bool:
    """Whether ``fused=True`` drives it on ``device``: one step of a float32 parameter (the dtype fused kernels
    exist for everywhere; torch's fused Adagrad, for one, is CPU-only). Where ``fused=True`` raises, the
    optimizer is benched and checked without it there."""
    p = torch.full(shape, 0.25, dtype=torch.float32, device=device, requires_grad=True)
    try:
        opt = factory([p], **{**kw, "fused": True})
        if has_modes(opt):
            opt.train()
        opt.zero_grad()
        _loss(p, False).backward()
        opt.step()
    except Exception as exc:  # noqa: BLE001 - the probe classifies what fused=True does
        caps.notes.append(f"fused=True raised on a float32 {device} parameter ({_short(exc)}): no fused "
                          f"implementation on {device}")
        return False
    if not bool(torch.isfinite(p).all()) or bool((p == 0.25).all()):
        caps.notes.append(f"fused=True did not move a float32 {device} parameter finitely: no fused implementation "
                          f"on {device}")
        return False
    if device == "cpu":
        caps.notes.append("has a fused implementation (fused=True): checked and benched as impl 'fused' too")
    return True


SHAPES = ((3, 2), (3, 2), (2, 4))  # the contract's parameters (optimizers.problem.SHAPES)


def _needs_structure(factory: Callable[..., Any], kw: Mapping[str, Any], *, closure: bool, sparse: bool,
                     dtype: torch.dtype) -> str | None:
    """Why the contract's parameters cannot be given, when one parameter steps but the contract's three (of
    shapes (3, 2), (3, 2), (2, 4), in one group) make the constructor or a step raise, while each of those shapes
    alone steps: the optimizer takes its parameters only in a structure of its own (LoRA-RITE: alternating factor
    pairs). Where a parameter of one of those shapes raises alone (heavyball's PSGDKron steps a 1-D parameter and
    raises on every 2-D one), the structure is not the cause: None, and the checks report what the step raises
    as the optimizer's finding (one root cause, the checks it blocks marked as such)."""
    _, exc = _try(factory, SHAPES, kw, closure=closure, sparse=sparse, dtype=dtype)
    if exc is None:
        return None
    for shape in dict.fromkeys(SHAPES):
        if _try(factory, [shape], kw, closure=closure, sparse=sparse, dtype=dtype)[1] is not None:
            return None
    return (f"one parameter steps, but three of shapes {', '.join(str(s) for s in SHAPES)} in one group raise "
            f"({_short(exc)}), while each of those shapes alone steps: it takes its parameters only in a structure "
            f"of its own (e.g. paired factors), which the checks' parameters are not")


def _wrapped_optimizer_arg(factory: Callable[..., Any]) -> str | None:
    """The constructor's parameter that takes the optimizer a wrapper wraps (SAM's base_optimizer, Lookahead's
    optimizer), by name or by a torch.optim.Optimizer annotation; None for an optimizer of its own."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    for prm in params:
        ann = prm.annotation
        if (re.fullmatch(r"(base_|inner_)?optimi[sz]er", prm.name) or
                (isinstance(ann, type) and issubclass(ann, torch.optim.Optimizer)) or
                (isinstance(ann, str) and re.search(r"\bOptimizer\b", ann))):
            return prm.name
    return None


def _split_params_args(factory: Callable[..., Any]) -> list[str]:
    """The constructor's required arguments that each take parameters (``muon_params, params``: lucidrains'
    MuonAdamAtan2 takes its matrices and the rest in two lists), where there are two or more; else []."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return []
    names = [prm.name for prm in params
             if prm.default is inspect.Parameter.empty and prm.kind in (prm.POSITIONAL_ONLY, prm.POSITIONAL_OR_KEYWORD)
             and re.fullmatch(r"(\w+_)?params", prm.name)]
    return names if len(names) >= 2 else []


def _undriveable(factory: Callable[..., Any], kw: Mapping[str, Any], first: BaseException) -> str | None:
    """Why no generic check can drive an optimizer every plain attempt failed on, when the reason is one no config
    can remove; None otherwise (a required argument the config's kwargs can give, or an unknown failure)."""
    plain = f"({_short(first)})"
    wrapped = _wrapped_optimizer_arg(factory)
    if wrapped is not None:
        return (f"wraps another optimizer (its constructor takes {wrapped}) {plain}: validate the optimizer it wraps, "
                f"or name a factory of your own, e.g. def make(params, **kw): return Wrapper(AdamW(params, **kw))")
    split = _split_params_args(factory)
    if split:
        return (f"its constructor takes its parameters in {len(split)} lists ({', '.join(split)}) {plain}, where a "
                f"generic check gives one: name a factory of your own that splits them, e.g. def make(params, **kw): "
                f"ps = list(params); return Opt([p for p in ps if p.ndim >= 2], [p for p in ps if p.ndim < 2], **kw)")
    module = torch.nn.Linear(2, 3).double()
    try:
        factory(module, **kw)
    except Exception:  # noqa: BLE001 - the probe classifies what the constructor does
        pass
    else:
        return (f"its constructor takes a model (an nn.Module) instead of parameters {plain}; the checks build "
                f"optimizers over parameters of their own, so none applies")
    for shape in ((3, 2), (4,)):
        p = torch.full(shape, 0.25, dtype=torch.float64, requires_grad=True)
        try:
            opt = factory([p], **kw)
            opt.zero_grad()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "backward() with create_graph=True ... reference cycle"
                _loss(p, False).backward(create_graph=True)
            opt.step()
        except Exception:  # noqa: BLE001
            continue
        finally:
            p.grad = None  # break the reference cycle create_graph makes
        return (f"step() differentiates the gradient again (a Hessian estimate) {plain}: it needs the loss "
                f"backpropagated with loss.backward(create_graph=True), which the checks' training loop does not do")
    try:
        factory([{"params": [torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)]}], **kw)
    except Exception as exc:  # noqa: BLE001
        if type(exc) is not type(first) and not isinstance(exc, TypeError):
            return (f"its constructor refuses a list of parameters {plain} and a param group without settings of its "
                    f"own ({_short(exc)}): it needs param groups carrying keys of its own, which a generic check "
                    f"cannot choose")
    return None


def detect(factory: Callable[..., Any], spec_text: str, kwargs: Mapping[str, Any], lr: float,
           declared: Mapping[str, Any]) -> Capabilities:
    """Probe ``factory`` (lr always passed). Raises a one-line SpecError when no way of driving it works. The
    probes run on forked global RNGs: loading an optimizer leaves the caller's RNG state as it was."""
    with rng.isolated():
        return _detect(factory, spec_text, kwargs, lr, declared)


def _detect(factory: Callable[..., Any], spec_text: str, kwargs: Mapping[str, Any], lr: float,
            declared: Mapping[str, Any]) -> Capabilities:
    kw = {"lr": lr, **kwargs}
    trials = []  # (closure, matrix, sparse): the plain way first, then each convention alone
    for closure in (bool(declared.get("closure", False)), True):
        for matrix in (bool(declared.get("matrix_only", False)), True):
            for sparse in (bool(declared.get("sparse_grad", False)), True):
                if (closure, matrix, sparse) not in trials:
                    trials.append((closure, matrix, sparse))
    trials.sort(key=lambda t: sum(t))  # fewest conventions first
    errors: list[BaseException] = []
    stepped: list[BaseException] = []  # what step() raised where the constructor accepted the parameters
    constructed: list[torch.optim.Optimizer] = []  # ... and those optimizers
    for closure, matrix, sparse, dtype in [t + (d,) for d in (torch.float64, torch.float32) for t in trials]:
        shape = (3, 2) if matrix else (4,)
        with rng.isolated():
            before = rng.get_state()
            opt, exc = _try(factory, [shape], kw, closure=closure, sparse=sparse, dtype=dtype)
            drawn = rng.which_drawn(before, rng.get_state())
        if opt is not None and not isinstance(opt, torch.optim.Optimizer):
            raise SpecError(f"--optimizer {spec_text!r}: calling it returned {type(opt).__name__}, not a "
                            f"torch.optim.Optimizer; give an Optimizer subclass or a factory returning one")
        if exc is not None:
            errors.append(exc)
            if opt is not None:
                stepped.append(exc)
                constructed.append(opt)
        else:
            caps = Capabilities(closure, matrix, sparse, has_modes(opt), frozenset(opt.defaults))
            if closure and not declared.get("closure"):
                caps.notes.append("step() needs a closure (step() without one raised)")
            if matrix and not declared.get("matrix_only"):
                caps.notes.append("takes 2-D parameters only (a 1-D parameter was refused)")
            if sparse and not declared.get("sparse_grad"):
                caps.notes.append("needs sparse gradients (a dense gradient was refused)")
            if caps.modes:
                caps.notes.append("has train()/eval() modes: steps run in train mode, x is read in eval mode")
            if dtype != torch.float64:  # its float64 cases report what float64 does, once (one root cause)
                caps.notes.append(f"steps float32 parameters, not float64 ones (a float64 step raised "
                                  f"{_short(errors[0])})")
            if drawn:  # every compared run starts from one seed; P17 tells whether the run depends on it
                caps.notes.append(f"draws random numbers from {', '.join(drawn)} in its constructor or step(): every "
                                  f"run optbench compares starts from the same seed")
            structure = _needs_structure(factory, kw, closure=closure, sparse=sparse, dtype=dtype)
            if structure is not None:
                caps.unsupported = structure
                caps.notes.append(structure)
                return caps
            if "fused" in caps.defaults and not closure and not sparse:
                caps.fused = _fused_works(factory, shape, kw, caps, "cpu")
                caps.fused_cuda = (_fused_works(factory, shape, kw, caps, "cuda") if torch.cuda.is_available()
                                   else caps.fused)
            return caps
    trials_raised = len(errors)  # every attempt above raised
    if not torch.cuda.is_available():  # one more attempt, a 1-D and a 2-D parameter together, reaches what it allocates
        with rng.isolated():
            errors.append(_try(factory, [(4,), (3, 2)], kw, closure=False, sparse=False)[1])
    cuda = next((e for e in errors if e is not None and _NO_CUDA.search(str(e))), None)
    if cuda is not None:  # kron-torch's DistributedKron and DistributedOneSidedKron: buffers on "cuda"
        reason = (f"needs CUDA, which this machine does not have (an attempt to drive it raised {_short(cuda)}): run "
                  f"it where a GPU is")
        return Capabilities(unsupported=reason, notes=[reason])
    reason = _undriveable(factory, kw, errors[0])
    if reason is not None:
        return Capabilities(unsupported=reason, notes=[reason])
    missing = re.search(r"missing \d+ required (?:positional|keyword-only) arguments?: (.+)$", str(errors[0]))
    if isinstance(errors[0], TypeError) and missing:
        names = re.findall(r"'(\w+)'", missing.group(1))
        table = _table_name(spec_text)
        raise SpecError(f"--optimizer {spec_text!r}: its constructor requires {', '.join(names)} "
                        f"({_short(errors[0])}); give {'it' if len(names) == 1 else 'them'} in its config: "
                        f"[tool.optbench.optimizers.{table}] kwargs = {{ "
                        f"{', '.join(f'{n} = ...' for n in names)} }}")
    unset = _none_defaults_used(factory, errors[0])
    if unset is not None:
        names, where = unset
        table = _table_name(spec_text)
        raise SpecError(f"--optimizer {spec_text!r}: its constructor's {', '.join(names)} default"
                        f"{'s' if len(names) == 1 else ''} to None and {'is' if len(names) == 1 else 'are'} computed "
                        f"with ({_short(errors[0])} at {where}); give {'it' if len(names) == 1 else 'them'} in its "
                        f"config: [tool.optbench.optimizers.{table}] kwargs = {{ "
                        f"{', '.join(f'{n} = ...' for n in names)} }}")
    refused = None if any(e is errors[0] for e in stepped) else _default_refused(factory, errors[0])  # constructor
    if refused is not None:
        table = _table_name(spec_text)
        raise SpecError(f"--optimizer {spec_text!r}: its constructor refuses its default {refused} "
                        f"({_short(errors[0])}); give another in its config: [tool.optbench.optimizers.{table}] "
                        f"kwargs = {{ {refused.split('=')[0]} = ... }}")
    if stepped and len(stepped) == trials_raised:
        # the constructor takes the parameters and every step() raises inside the optimizer: a finding of its code
        # (bitsandbytes' PytorchLARS: `update` unbound at its default momentum=0), which the checks report once
        # per case with its reproducer, not a way of driving it that optbench lacks
        caps = Capabilities(False, False, False, False, frozenset(constructed[0].defaults))
        caps.steps_raise = _short(errors[0])
        caps.notes.append(f"{STEPS_RAISE} ({caps.steps_raise} first): the checks report it once per case")
        return caps
    if isinstance(errors[0], ImportError):
        raise SpecError(f"--optimizer {spec_text!r}: it needs a package that is not installed ({_short(errors[0])}); "
                        f"install it in this environment")
    raise SpecError(f"--optimizer {spec_text!r}: no way of driving it worked (1-D and 2-D parameters, dense and sparse "
                    f"gradients, with and without a closure); the plain attempt raised {_short(errors[0])}; it must "
                    f"accept (params, lr=..., **kwargs) and step; pass required settings as kwargs in its config")
