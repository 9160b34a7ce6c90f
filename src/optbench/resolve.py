"""What ``optbench run`` is given, resolved: a target name, an optimizer name and a start point.

A target is a catalogue name or ``module:attr`` naming one Target (:mod:`optbench.target_spec`); an
optimizer is a torch.optim name, a registry name, or ``[NAME=]module:attr`` (:mod:`optbench.spec`); a
start is taken exactly as typed (:func:`optbench.closed_form.exact_number`). Bad input is a one-line
:class:`~optbench.errors.OptbenchError`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import sympy
import torch

from .exact import exact_number
from .errors import OptbenchError, SpecError



def resolve_target(text: str) -> Any:
    """A catalogue name, or ``module:attr`` naming one Target."""
    text = str(text).strip()
    if ":" in text:
        from .target_spec import load_targets

        targets = load_targets(text)
        if len(targets) != 1:
            names = ", ".join(t.name for t in targets)
            raise SpecError(f"--target {text!r} names {len(targets)} targets ({names}); `optbench run` trains one")
        return targets[0]
    # `from .catalogue import ...` (not `from . import catalogue`): the package's lazy __getattr__
    # serves the name `catalogue` as a function, and recurses when the submodule is not loaded yet
    from .catalogue import get_target

    try:
        return get_target(text)
    except OptbenchError:
        raise
    except (KeyError, LookupError, ValueError):
        raise OptbenchError(f"unknown target {text!r}; list them with `optbench targets`") from None


def _torch_optimizers() -> dict[str, type]:
    out = {}
    for attr in dir(torch.optim):
        obj = getattr(torch.optim, attr)
        if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer) and obj is not torch.optim.Optimizer:
            out[attr.lower()] = obj
    return out


def _registry_lookup(name: str) -> tuple[str, Callable[..., torch.optim.Optimizer]] | None:
    """The optimizer registry of ``optbench.optimizers`` (``get_optimizer(name)`` or the list from
    ``builtin_registry()``), when it is installed and knows ``name`` (case-insensitive)."""
    try:
        from . import optimizers as registry
    except ImportError:  # the registry is optional here: torch.optim names always work
        return None
    info = None
    get = getattr(registry, "get_optimizer", None)
    if callable(get):
        try:
            info = get(name)
        except (KeyError, LookupError, OptbenchError):
            info = None
    if info is None:
        table = getattr(registry, "builtin_registry", None)
        if callable(table):
            info = next((i for i in table() if str(getattr(i, "name", "")).lower() == name.lower()), None)
    factory = getattr(info, "factory", None)
    if info is None or not callable(factory):
        return None
    extra = dict(getattr(info, "extra_kwargs", {}) or {})
    if extra:
        factory = functools.partial(factory, **extra)
    return str(info.name), factory


def resolve_optimizer(text: str) -> tuple[str, Callable[..., torch.optim.Optimizer]]:
    """``sgd``/``Adam`` (case-insensitive torch.optim names, or the registry's), or ``[NAME=]module:attr``
    naming an Optimizer subclass or a factory ``(params, **kw)``. Returns (display name, factory)."""
    text = str(text).strip()
    if ":" in text:
        from .spec import load_spec, parse_spec

        spec = parse_spec(text, option="--optimizer")
        obj = load_spec(spec, option="--optimizer")
        if not callable(obj):
            raise SpecError(
                f"--optimizer {text!r}: {spec.attr} is a {type(obj).__name__}, not an Optimizer subclass or a factory"
            )
        return spec.name or spec.attr.rsplit(".", 1)[-1], obj
    found = _registry_lookup(text)
    if found is not None:
        return found
    table = _torch_optimizers()
    cls = table.get(text.lower())
    if cls is None:
        raise OptbenchError(
            f"unknown optimizer {text!r}; use a torch.optim name ({', '.join(sorted(table))}) or module:attr"
        )
    return cls.__name__, cls


def parse_start(text: str | Sequence[Any] | None, target: Any) -> tuple[sympy.Expr, ...]:
    """``--start``: one number, or comma-separated numbers for d > 1; default the target's first start."""
    dim = getattr(target, "dim", None) or len(getattr(target, "variables", ())) or 1
    if text is None:
        starts = getattr(target, "start", None)
        if not starts:
            raise OptbenchError(f"{target.name} has no canonical start point; pass --start")
        start = starts[0]
        start = tuple(start) if isinstance(start, (tuple, list, sympy.Matrix)) else (start,)
        return tuple(sympy.sympify(v) for v in start)
    parts = [p for p in str(text).split(",")] if isinstance(text, str) else list(text)
    if isinstance(text, str) and any(not p.strip() for p in parts):
        raise OptbenchError(f"--start {text!r} has an empty coordinate; give numbers like -1 or 1,2")
    vals = tuple(exact_number(p, what="--start coordinate") for p in parts)
    if len(vals) != dim:
        raise OptbenchError(f"--start has {len(vals)} coordinate(s) but {target.name} is {dim}-dimensional; give {dim}")
    return vals
