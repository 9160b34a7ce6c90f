"""What is under test, and the check plans over it.

A plan is a function ``plan(selection) -> list[CheckItem]`` in the library; :data:`PLANS` names them.
`optbench validate`, the pytest suite (``fixtures/checks.py``) and ``optbench.testing`` all build their
checks here, so there is one copy of the suite. Plans are deterministic (same selection, same items in
the same order), which pytest-xdist workers and ``optbench validate -n`` rely on.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .verdict import CheckItem

# plan name -> "module:function"; each function takes a Selection and returns list[CheckItem]
PLANS: dict[str, str] = {
    "optimizers": "optbench.optimizers.plan:optimizer_checks",
    "targets": "optbench.target_checks:target_checks",
    "distributed": "optbench.distributed.plan:distributed_checks",
    "compile": "optbench.compiled.plan:compiled_checks",
    "memory": "optbench.optimizers.memory:memory_checks",
}


@dataclass
class Selection:
    """The subjects of one run. ``optimizers``/``targets`` None mean the built-in registry/catalogue."""

    optimizers: Sequence[Any] | None = None  # optbench.optimizers.OptimizerInfo
    targets: Sequence[Any] | None = None  # optbench.Target
    devices: tuple[str, ...] = ("cpu",)
    options: dict[str, Any] = field(default_factory=dict)  # plan-specific switches (documented by each plan)

    @property
    def user_optimizers(self) -> bool:
        return self.optimizers is not None

    @property
    def user_targets(self) -> bool:
        return self.targets is not None

    def optimizer_infos(self) -> list[Any]:
        if self.optimizers is not None:
            return list(self.optimizers)
        from .optimizers.info import builtin_registry

        return builtin_registry()

    def target_list(self) -> list[Any]:
        if self.targets is not None:
            return list(self.targets)
        from .catalogue import catalogue

        return list(catalogue().values())


def plan_function(name: str) -> Callable[[Selection], list[CheckItem]]:
    try:
        path = PLANS[name]
    except KeyError:
        raise KeyError(f"unknown check plan {name!r}; known: {', '.join(PLANS)}") from None
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def checks(selection: Selection, plans: Sequence[str]) -> list[CheckItem]:
    """Every check of the named plans, in plan order."""
    out: list[CheckItem] = []
    for name in plans:
        out.extend(plan_function(name)(selection))
    return out
