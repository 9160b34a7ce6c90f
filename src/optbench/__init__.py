"""optbench: benchmark and validation suite for PyTorch optimizers and autograd.

The public surface is small: :class:`Target`, the catalogue, the five-step loop, and the errors.
This package never imports pytest; the pytest layer lives in ``pytest_optbench`` and ``fixtures/``.
"""

from __future__ import annotations

from .errors import (
    ConfigError,
    DivergenceError,
    ExpressionError,
    OptbenchError,
    SpecError,
    TargetError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DivergenceError",
    "ExpressionError",
    "OptbenchError",
    "SpecError",
    "Target",
    "TargetError",
    "Trajectory",
    "get_target",
    "run_loop",
]


def __getattr__(name: str):  # lazy: torch, sympy derivations and the catalogue load on first use
    if name in ("Trajectory", "run_loop"):
        from . import loop

        return getattr(loop, name)
    if name == "Target":
        from .target import Target

        return Target
    if name == "get_target":
        import importlib

        return importlib.import_module(f"{__name__}.catalogue").get_target
    raise AttributeError(f"module 'optbench' has no attribute {name!r}")
