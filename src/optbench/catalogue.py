"""The built-in targets. Each is built lazily on first use and cached per process.

``catalogue()`` builds them all (ordered dict name -> Target); ``get_target(name)`` builds one. A derivation is
kept on disk (:mod:`optbench.target_cache`) and reused by later processes while the code that derives it is the same.
Minima are derived by :mod:`optbench.minima` (or verified, where a closed form is stated), never
copied from a table.
"""

from __future__ import annotations

import difflib
import functools
from typing import Callable

import sympy

from . import target_cache
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


def _sphere(name, d, shape=None):
    xs = _xs(d)
    return Target(
        name, " + ".join(f"{x}**2" for x in xs), variables=xs, start=[1] * d, domain=[(-5, 5)] * d,
        tags={"convex"} | ({"matrix"} if shape else set()), shape=shape,
    )


@_register
def _sphere_2d():
    return _sphere("sphere_2d", 2)


@_register
def _sphere_4d():
    # a 4-variable sphere used as a (2, 2) parameter (Muon and other matrix optimizers need 2-D params)
    return _sphere("sphere_4d", 4, shape=(2, 2))


@_register
def _sum_squares_3d():
    xs = _xs(3)
    return Target(
        "sum_squares_3d", " + ".join(f"{i}*{x}**2" for i, x in enumerate(xs, 1)), variables=xs,
        start=[1, 1, 1], domain=[(-10, 10)] * 3, tags={"convex"},
    )


@_register
def _schwefel_1_2_3d():
    xs = _xs(3)
    expr = " + ".join(f"({' + '.join(xs[: i + 1])})**2" for i in range(3))
    return Target("schwefel_1_2_3d", expr, variables=xs, start=[1, 1, 1], domain=[(-10, 10)] * 3, tags={"convex"})


@_register
def _ellipsoid_3d():
    # axis scales 1, 1e3, 1e6: the Hessian diag(2, 2e3, 2e6) has condition number 1e6
    xs = _xs(3)
    return Target(
        "ellipsoid_3d", "x1**2 + 1000*x2**2 + 1000000*x3**2", variables=xs, start=[1, 1, 1],
        domain=[(-2, 2)] * 3, tags={"convex", "ill-conditioned"},
    )


def _trid(d):
    xs = _xs(d)
    expr = " + ".join(f"({x} - 1)**2" for x in xs) + " - (" + " + ".join(f"{xs[i]}*{xs[i - 1]}" for i in range(1, d)) + ")"
    # x_i* = i (d + 1 - i) is the known closed form; it is derived here and checked against it in tests
    return Target(f"trid_{d}d", expr, variables=xs, start=[0] * d, domain=[(-d * d, d * d)] * d, tags={"convex"})


@_register
def _trid_2d():
    return _trid(2)


@_register
def _trid_4d():
    return _trid(4)


@_register
def _trid_6d():
    return _trid(6)


@_register
def _booth():
    return Target("booth", "(x + 2*y - 7)**2 + (2*x + y - 5)**2", start=(0, 0), tags={"convex"}, domain=[(-10, 10)])


@_register
def _matyas():
    return Target("matyas", "0.26*(x**2 + y**2) - 0.48*x*y", start=(1, 1), tags={"convex"}, domain=[(-10, 10)])


def cayley(S: sympy.Matrix) -> sympy.Matrix:
    """Rational orthogonal Q = (I - S)(I + S)^-1 from a rational skew-symmetric S (exact)."""
    if S != -S.T:
        raise TargetError("cayley(S) needs a skew-symmetric S")
    eye = sympy.eye(S.rows)
    return (eye - S) * (eye + S).inv()


def rotated_quadratic(name, eigenvalues, S, centre, shape=None, tags=()):
    """f = 1/2 (x - c)^T Q diag(eigenvalues) Q^T (x - c) with Q the Cayley transform of S: exact,
    condition number max/min eigenvalue, minimizer c."""
    d = len(eigenvalues)
    Q = cayley(sympy.Matrix(S))
    A = Q * sympy.diag(*[sympy.Rational(e) for e in eigenvalues]) * Q.T
    xs = sympy.symbols(" ".join(_xs(d)), real=True)
    v = sympy.Matrix(xs) - sympy.Matrix([sympy.Rational(c) for c in centre])
    expr = sympy.expand((v.T * A * v)[0, 0] / 2)
    return Target(
        name, expr, variables=[str(x) for x in xs], start=[0] * d, domain=[(-4, 4)] * d, shape=shape,
        tags={"convex", "ill-conditioned"} | set(tags),
    )


@_register
def _rotated_quadratic_2d():
    return rotated_quadratic("rotated_quadratic_2d", [1, 100], [[0, sympy.Rational(1, 2)], [-sympy.Rational(1, 2), 0]], [1, -1])


@_register
def _rotated_quadratic_4d():
    h = sympy.Rational(1, 2)
    S = [[0, h, 1, 0], [-h, 0, h, 1], [-1, -h, 0, h], [0, -1, -h, 0]]
    return rotated_quadratic(
        "rotated_quadratic_4d", [1, 10, 100, 1000], S, [1, -1, 2, 0], shape=(2, 2), tags={"matrix"}
    )


# --------------------------------------------------------------------------------------------------
# non-quadratic polynomials (all stationary points by groebner + real_roots unless stated)


def _rosenbrock(d):
    xs = _xs(d)
    expr = " + ".join(f"100*({xs[i + 1]} - {xs[i]}**2)**2 + (1 - {xs[i]})**2" for i in range(d - 1))
    return expr, xs


@_register
def _rosenbrock_2d():
    return Target(
        "rosenbrock_2d", "(1 - x)**2 + 100*(y - x**2)**2", start=(-1.2, 1), tags={"ill-conditioned"},
        domain=[(-2, 2)], basin=[(0.5, 1.5), (0.5, 1.5)],
    )


@_register
def _rosenbrock_4d():
    expr, xs = _rosenbrock(4)
    return Target(
        "rosenbrock_4d", expr, variables=xs, start=[-1.2, 1, -1.2, 1], tags={"ill-conditioned"},
        domain=[(-2, 2)] * 4, basin=[(0.5, 1.5)] * 4,
    )


@_register
def _beale():
    return Target(
        "beale", "(1.5 - x + x*y)**2 + (2.25 - x + x*y**2)**2 + (2.625 - x + x*y**3)**2", start=(1, 1),
        domain=[(-4.5, 4.5)], basin=[(2.5, 3.5), (0.25, 0.75)], tags={"ill-conditioned"},
    )


@_register
def _himmelblau():
    return Target(
        "himmelblau", "(x**2 + y - 11)**2 + (x + y**2 - 7)**2", start=(0, 0), tags={"multimodal"},
        domain=[(-5, 5)],
    )


@_register
def _three_hump_camel():
    return Target(
        "three_hump_camel", "2*x**2 - 1.05*x**4 + x**6/6 + x*y + y**2", start=(1, 1), tags={"multimodal"},
        domain=[(-5, 5)],
    )


@_register
def _six_hump_camel():
    return Target(
        "six_hump_camel", "(4 - 2.1*x**2 + x**4/3)*x**2 + x*y + (-4 + 4*y**2)*y**2", start=(0.5, 0.5),
        tags={"multimodal"}, domain=[(-3, 3), (-2, 2)],
    )


@_register
def _goldstein_price():
    # Degree 8: the lex Groebner basis takes ~9 s on 2 cores (~2 s via grevlex + FGLM, still the
    # slowest target by far), too slow for a lazy load. Run offline (Target(..., derive="groebner")
    # without guesses) it gives 9 real stationary points; those are refined here by nsolve at 50 digits
    # from rounded guesses and classified (the global minimum (0, -1) snaps to exact rationals and is
    # re-checked exactly). validation/test_catalogue.py also checks no sampled point beats f*.
    guesses = [(0, -1), (-0.6, -0.4), (1.2, 0.8), (1.8, 0.2), (-0.4, -0.6), (0.6, 0.4), (1.2, -0.2), (1.4, 0.6), (0.8, 0.2)]
    return Target(
        "goldstein_price",
        "(1 + (x + y + 1)**2*(19 - 14*x + 3*x**2 - 14*y + 6*x*y + 3*y**2))"
        "*(30 + (2*x - 3*y)**2*(18 - 32*x + 12*x**2 + 48*y - 36*x*y + 27*y**2))",
        start=(-0.5, 0.5), stationary_guesses=guesses, domain=[(-2, 2)], tags={"multimodal", "ill-conditioned"},
        basin=[(-0.25, 0.25), (-1.25, -0.75)],
    )


@_register
def _brown_badly_scaled():
    return Target(
        "brown_badly_scaled", "(x - 10**6)**2 + (y - 2*10**-6)**2 + (x*y - 2)**2", start=(1, 1),
        domain=[(-10, 2 * 10**6), (-10, 10)], tags={"ill-conditioned"},
        basin=[(999_990, 1_000_010), (0, sympy.Rational(1, 10**5))],
    )


@_register
def _zakharov_2d():
    return Target(
        "zakharov_2d", "x1**2 + x2**2 + (x1/2 + x2)**2 + (x1/2 + x2)**4", start=(1, 1), domain=[(-5, 10)],
        tags={"convex"},
    )


def _dixon_price(d):
    xs = _xs(d)
    expr = "(x1 - 1)**2 + " + " + ".join(f"{i + 1}*(2*{xs[i]}**2 - {xs[i - 1]})**2" for i in range(1, d))
    # x_i = 2 x_{i+1}^2 >= 0 forces every coordinate but the last to be positive: 2 global minima
    # (x_d = +-2^(-(2^d - 2)/2^d)) for every d >= 2, not 2^(d-1) as some tables say.
    return Target(
        f"dixon_price_{d}d", expr, variables=xs, start=[2] * d, domain=[(-10, 10)] * d, tags={"multimodal"},
    )


@_register
def _dixon_price_2d():
    return _dixon_price(2)


@_register
def _dixon_price_3d():
    return _dixon_price(3)


@_register
def _qing_2d():
    return Target(
        "qing_2d", "(x1**2 - 1)**2 + (x2**2 - 2)**2", start=(0.5, 0.5), domain=[(-3, 3)], tags={"multimodal"},
    )


@_register
def _powell_singular():
    # the Hessian at x* = 0 is only PSD (rank 2): the quartic terms carry the curvature
    return Target(
        "powell_singular", "(x1 + 10*x2)**2 + 5*(x3 - x4)**2 + (x2 - 2*x3)**4 + 10*(x1 - x4)**4",
        start=(3, -1, 0, 1), domain=[(-4, 5)] * 4, shape=(2, 2), tags={"ill-conditioned", "matrix", "psd"},
        basin=[(-1, 1)] * 4,
    )


@_register
def _styblinski_tang_2d():
    return Target(
        "styblinski_tang_2d", "(x1**4 - 16*x1**2 + 5*x1)/2 + (x2**4 - 16*x2**2 + 5*x2)/2", start=(0, 0),
        domain=[(-5, 5)], tags={"multimodal"},
    )


@_register
def _strict_saddle():
    # minima (0, +-1) with f = -1/4 and a strict saddle at the origin: GD started on y = 0 stays there
    return Target(
        "strict_saddle", "x**2/2 + y**4/4 - y**2/2", start=[(1, 0.001), (1, -0.5)], domain=[(-2, 2)],
        tags={"saddle", "multimodal"}, basin=[(-0.5, 0.5), (0.5, 1.5)],
    )


# --------------------------------------------------------------------------------------------------
# transcendental: the global claim is on the stated domain, by a stated exact lower bound


@_register
def _levy_2d():
    w = lambda x: f"(1 + ({x} - 1)/4)"  # noqa: E731
    w1, w2 = w("x1"), w("x2")
    expr = f"sin(pi*{w1})**2 + ({w1} - 1)**2*(1 + 10*sin(pi*{w1} + 1)**2) + ({w2} - 1)**2*(1 + sin(2*pi*{w2})**2)"
    return Target(
        "levy_2d", expr, variables=["x1", "x2"], minimizers=[(1, 1)], lower_bound=0, start=(-3, 4),
        domain=[(-10, 10)], basin=[(0, 2)] * 2, tags={"multimodal"},
        global_argument="every term is a square times a factor >= 1, so f >= 0 = f(1, 1); and f = 0 forces "
        "w1 - 1 = 0 (second term) and w2 - 1 = 0 (third term), so x* = (1, 1) is the unique global minimizer",
    )


@_register
def _rastrigin_2d():
    return Target(
        "rastrigin_2d", "20 + x1**2 - 10*cos(2*pi*x1) + x2**2 - 10*cos(2*pi*x2)", minimizers=[(0, 0)],
        lower_bound=0, start=(2.3, -1.7), domain=[(-5.12, 5.12)], basin=[(-0.4, 0.4)] * 2,
        stationary_guesses=[(1, 0), (0, 1), (1, 1), (0.5, 0), (0.5, 0.5)], tags={"multimodal"},
        global_argument="f = sum_i [x_i^2 + 10 (1 - cos 2 pi x_i)], each term >= 0 and = 0 only at x_i = 0",
    )


@_register
def _easom():
    return Target(
        "easom", "-cos(x)*cos(y)*exp(-((x - pi)**2 + (y - pi)**2))", minimizers=[("pi", "pi")], lower_bound=-1,
        start=(2, 2), domain=[(-100, 100)], basin=[(2, 4.25)] * 2, tags={"plateau"},
        global_argument="|cos x cos y| <= 1 and exp(...) <= 1 give f >= -1 = f(pi, pi), with equality only where "
        "the exponent is 0",
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
    return target_cache.cached(name, builder)  # derived once per machine and code version (target_cache)


def catalogue() -> dict[str, Target]:
    """All built-in targets, in catalogue order (name -> Target)."""
    return {n: get_target(n) for n in _BUILDERS}
