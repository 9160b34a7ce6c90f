"""A torch.optim class named by spec is validated with what optbench's registry knows of it.

``optbench validate torch.optim:NAdam``, or ``pytorch_optimizer:LBFGS`` (pytorch-optimizer re-exports torch's own
class), names an optimizer the registry (:func:`optbench.optimizers.info.builtin_registry`) already declares: its
P1 lr and epoch budgets (measured there), its exemptions with their reasons, its capabilities and its known torch
bugs (strict xfails). Validating it "as it comes" instead would search the lr grid that the registry has already
settled, and report a known torch bug as a new FAIL. So :func:`registry_info` hands back the registry's entry under
the user's name, when:

* the object is the registry's class itself (``is``, not a subclass or a factory: a subclass may change step());
* the constructor kwargs the user's config gives (none, as it comes) are, with the class defaults filled in, one of
  the entry's configs (torch.optim.AdamW as it comes has weight_decay 0.01; the registry's plain AdamW config has
  0.0: no match, and it is validated as any user optimizer is);
* the user's table sets nothing but ``kwargs``, ``exemptions``, ``known``, ``fullgraph`` and ``compile_backend``
  (exemptions and known bugs are added to the entry's). A table that sets P1's lr, budgets, targets or
  capabilities asks for that validation, and gets it.

Where the class is the registry's but the rest does not hold, the optimizer is validated as it comes, and only
the entry's known bugs of the class (:func:`class_known`: the OptimizerInfo's own, not a config's, such as
torch.optim.Muon's bfloat16 Newton-Schulz under FSDP2 and Inductor) go with it, as strict xfails: they are facts
of the class's code whatever its kwargs, where lrs, budgets and exemptions were measured for a config.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Mapping

from .info import OptimizerInfo, builtin_registry

# the user's settings that keep the registry's entry; any other key (lr, epochs, budgets, ...) is the user's P1
KEEPS = frozenset({"kwargs", "exemptions", "known", "fullgraph", "compile_backend"})
_IMPL_KEYS = ("foreach", "fused")  # select an implementation: each impl of the entry is run anyway


def _defaults(cls: type) -> dict[str, Any]:
    try:
        params = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def _effective(defaults: Mapping[str, Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor's arguments as compared: defaults filled in, the impl switches left out, tuples as lists
    (TOML gives a list for betas = [0.9, 0.999])."""
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in {**defaults, **kwargs}.items()}
    for k in _IMPL_KEYS:
        out.pop(k, None)
    return out


def _entry(obj: Any) -> OptimizerInfo | None:
    return next((i for i in builtin_registry() if i.factory is obj), None) if isinstance(obj, type) else None


def class_known(obj: Any) -> dict[str, str]:
    """The registry's known bugs of the class ``obj`` itself (none for anything else), prefixed with the class."""
    reg = _entry(obj)
    return {} if reg is None else {k: f"{reg.source} (optbench's registry): {v}" for k, v in reg.known.items()}


def registry_info(obj: Any, spec_text: str, name: str, entry: Mapping[str, Any]) -> OptimizerInfo | None:
    """The registry's entry for ``obj`` under ``name`` (module doc), or None where it does not apply."""
    reg = _entry(obj)
    if reg is None or set(entry) - KEEPS:
        return None
    defaults = _defaults(obj)
    want = _effective(defaults, {**reg.extra_kwargs, **dict(entry.get("kwargs", {}))})
    config = next((c for c in reg.configs
                   if _effective(defaults, {**reg.extra_kwargs, **dict(c.kwargs)}) == want), None)
    if config is None:
        return None
    entry_id = reg.config_id(config)
    source = reg.source or f"{obj.__module__}.{obj.__qualname__}"
    return dataclasses.replace(
        reg,
        name=name,
        configs=(dataclasses.replace(config, name=""),),
        exemptions={**reg.exemptions, **{str(k): str(v) for k, v in dict(entry.get("exemptions", {})).items()}},
        known={**reg.known, **{str(k): str(v) for k, v in dict(entry.get("known", {})).items()}},
        fullgraph=bool(entry.get("fullgraph", reg.fullgraph)),
        compile_backend=str(entry.get("compile_backend", reg.compile_backend)),
        user=True,
        source=spec_text,
        registry=entry_id,
        detected=(f"{spec_text} is {source}, in optbench's registry: validated with its entry '{entry_id}' (the P1 lr "
                  f"and budgets declared and measured there, its exemptions and its known torch bugs)",),
    )
