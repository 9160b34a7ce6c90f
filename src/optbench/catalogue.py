"""The built-in targets. Each is built lazily on first use and cached per process.

``catalogue()`` builds them all (ordered dict name -> Target); ``get_target(name)`` builds one.
Minima are derived by :mod:`optbench.minima` (or verified, where a closed form is stated), never
copied from a table.
"""

from __future__ import annotations

import difflib
import functools
from typing import Callable

import sympy

from .errors import TargetError
from .target import Target

_BUILDERS: dict[str, Callable[[], Target]] = {}


def _register(fn: Callable[[], Target]) -> Callable[[], Target]:
    _BUILDERS[fn.__name__.removeprefix("_")] = fn
    return fn


def _xs(d: int):
    return [f"x{i}" for i in range(1, d + 1)]


# --------------------------------------------------------------------------------------------------
# the seed


@_register
def _seed_quadratic():
    return Target(
        "seed_quadratic", "3*x**2 - 2*x + 3", start=-1, tags={"seed", "convex"}, domain=[(-2, 2)],
        description="the seed experiment: x* = 1/3, f* = 8/3",
    )


@_register
def _seed_quadratic_pow2():
    # Power-of-two coefficients: x* = 1/4 and f* = 7/8 are exact in every float dtype, and with
    # lr = 1/8 the SGD error factor 1 - lr * f'' = 1 - 4/8 = 1/2 is exact too: bit-exact checks.
    return Target(
        "seed_quadratic_pow2", "2*x**2 - x + 1", start=-1, tags={"seed", "convex"}, domain=[(-2, 2)],
        description="power-of-two twin of the seed: x* = 1/4, f* = 7/8, SGD factor 1/2 at lr = 1/8",
    )


# --------------------------------------------------------------------------------------------------
# convex quadratics


@_register
def _sphere_2d():
    return Target("sphere_2d", "x1**2 + x2**2", start=(1, 1), tags={"convex"}, domain=[(-5, 5)])


@_register
def _booth():
    return Target("booth", "(x + 2*y - 7)**2 + (2*x + y - 5)**2", start=(0, 0), tags={"convex"}, domain=[(-10, 10)])


# --------------------------------------------------------------------------------------------------
# non-quadratic


@_register
def _rosenbrock_2d():
    return Target(
        "rosenbrock_2d", "(1 - x)**2 + 100*(y - x**2)**2", start=(-1.2, 1), tags={"ill-conditioned"},
        domain=[(-2, 2)], basin=[(0.5, 1.5), (0.5, 1.5)],
    )


@_register
def _himmelblau():
    return Target(
        "himmelblau", "(x**2 + y - 11)**2 + (x + y**2 - 7)**2", start=(0, 0), tags={"multimodal"},
        domain=[(-5, 5)],
    )


# --------------------------------------------------------------------------------------------------


def names() -> list[str]:
    return list(_BUILDERS)


@functools.lru_cache(maxsize=None)
def get_target(name: str) -> Target:
    """The built-in target ``name`` (built on first use, then cached)."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_BUILDERS), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(_BUILDERS)}"
        raise TargetError(f"unknown target {name!r}; {hint}") from None
    return builder()


def catalogue() -> dict[str, Target]:
    """All built-in targets, in catalogue order (name -> Target)."""
    return {n: get_target(n) for n in _BUILDERS}
