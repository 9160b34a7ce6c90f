"""Exact stationary points and their classification.

Derivation, by kind of target:

* quadratic: the gradient is linear; ``A x = b`` is solved exactly over the rationals.
* polynomial: the real solutions of ``grad f = 0`` from a lex Groebner basis. When the basis is in
  shape position (``x_i - p_i(x_n)``, ``q(x_n)``) every solution is exact: ``x_n`` is a real root of an
  irreducible factor of ``q`` (a rational, a radical or a ``CRootOf``) and ``x_i = p_i(x_n)`` reduced
  modulo that factor. Otherwise the univariate eliminant of each variable is computed (lex basis with
  that variable last), its real roots are kept exact, and the candidates of the Cartesian product are
  filtered by the gradient at 60 digits (|grad| < 1e-30). ``solve`` is not used: it finds only 4 of
  Himmelblau's 9 stationary points.
* otherwise (transcendental, or a polynomial whose basis is too slow to compute): ``nsolve`` at 50
  digits from stated guesses. Points that are within 1e-40 of a rational with a small denominator are
  snapped to it and re-checked exactly.

Classification uses the Hessian at 60 digits (``mpmath.eigsy``): positive definite -> local minimum,
negative definite -> maximum, indefinite -> saddle, singular -> degenerate. When the stationary set is
complete and f is bounded below (checked separately) the global minimum is attained at a stationary
point, so the stationary points of lowest value with a PSD Hessian are the global minima.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import signal
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import mpmath
import sympy

DPS = 60  # working digits for numerical checks
GRAD_TOL = mpmath.mpf("1e-30")  # |grad f(x*)| below this at 60 digits counts as zero
EIG_TOL = mpmath.mpf("1e-25")  # relative to the largest |eigenvalue|: below this an eigenvalue is 0
VALUE_TOL = mpmath.mpf("1e-30")  # relative: two stationary values closer than this are equal
MAX_CANDIDATES = 20_000  # Cartesian-product candidates before the polynomial path gives up
# The exact polynomial path (Groebner basis, real roots) is refused up front when grad f = 0 can have
# more than this many complex solutions (Bezout bound: the product of the degrees of the gradient's
# components). The catalogue's largest is 81 (Powell singular, 0.3 s); a univariate degree 96 already
# takes ~18 s and a 2-D system of degree-11 components (121) does not finish in minutes.
MAX_BEZOUT = 100
# Backstop for what the up-front bounds cannot predict: building a Target (differentiation,
# derivation, verification) gets this many seconds of wall time, enforced with SIGALRM where that is
# possible (the main thread, no other alarm armed). The catalogue's slowest target takes ~1 s; the
# environment variable OPTBENCH_DERIVE_SECONDS overrides it (see derive_seconds()).
DERIVE_SECONDS = 20.0


def derive_seconds() -> float:
    """The time budget of one Target's construction: OPTBENCH_DERIVE_SECONDS, else DERIVE_SECONDS."""
    text = os.environ.get("OPTBENCH_DERIVE_SECONDS")
    if text is None:
        return DERIVE_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        from .errors import OptbenchError

        raise OptbenchError(f"OPTBENCH_DERIVE_SECONDS={text!r} is not a positive number of seconds; unset it "
                            f"(default {DERIVE_SECONDS:g}) or give one, e.g. 60")
    return value


class OutOfTime(Exception):
    """A :func:`time_limit` block ran out of its seconds."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"did not finish within {seconds:g} s")
        self.seconds = seconds


class _Alarm(BaseException):
    """Raised by the SIGALRM handler. A BaseException, so that no ``except Exception`` inside sympy
    or mpmath swallows it; the timer also re-fires every 0.2 s until the block exits."""


_ACTIVE = threading.local()


def time_limit_enforced() -> bool:
    """Whether :func:`time_limit` can arm its alarm here and now."""
    return (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and not getattr(_ACTIVE, "on", False)
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    )


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise :class:`OutOfTime` when the block runs longer than ``seconds`` (wall time).

    sympy and mpmath are pure Python, so a signal handler runs between bytecodes and interrupts them.
    Enforced only where it is safe: in the main thread, with SIGALRM not owned by someone else (for
    example pytest-timeout) and no interval timer armed; elsewhere, and for a nested block, it is a
    no-op and the up-front size bounds (:func:`optbench.expr.check_size`, :data:`MAX_BEZOUT`) stand
    alone."""
    if not (seconds > 0 and time_limit_enforced()):
        yield
        return

    def _fire(signum, frame):  # noqa: ARG001
        raise _Alarm()

    previous = signal.signal(signal.SIGALRM, _fire)
    _ACTIVE.on = True
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.2)
    try:
        yield
    except _Alarm:
        signal.setitimer(signal.ITIMER_REAL, 0)
        raise OutOfTime(seconds) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        _ACTIVE.on = False


def bezout_bound(grad_degrees: Sequence[int]) -> int:
    """The most isolated complex solutions grad f = 0 can have: the product of the component degrees."""
    return math.prod(max(1, d) for d in grad_degrees)


@dataclass(frozen=True)
class StationaryPoint:
    """A stationary point: exact coordinates, exact value, classification and Hessian eigenvalues."""

    point: tuple[sympy.Expr, ...]
    value: sympy.Expr
    kind: str  # "global_min" | "local_min" | "saddle" | "max" | "degenerate"
    eigenvalues: tuple[float, ...]

    def numeric(self) -> tuple[float, ...]:
        return tuple(float(to_mpf(c)) for c in self.point)


class Numeric:
    """Gradient/Hessian/value of an expression evaluated in mpmath at :data:`DPS` digits."""

    def __init__(self, expr: sympy.Expr, variables: Sequence[sympy.Symbol], grad=None, hess=None):
        self.vars = tuple(variables)
        self.expr = expr
        self.grad = list(grad) if grad is not None else [sympy.diff(expr, v) for v in self.vars]
        self.hess = hess.tolist() if hess is not None else [[sympy.diff(g, v) for v in self.vars] for g in self.grad]

    # compiled on first use: a target loaded from optbench.target_cache is never evaluated here unless asked
    @functools.cached_property
    def _f(self):
        return sympy.lambdify(self.vars, self.expr, "mpmath")

    @functools.cached_property
    def _g(self):
        return sympy.lambdify(self.vars, self.grad, "mpmath")

    @functools.cached_property
    def _h(self):
        return sympy.lambdify(self.vars, self.hess, "mpmath")

    @staticmethod
    def mp(point) -> list:
        return [c if isinstance(c, mpmath.mpf) else to_mpf(c) for c in point]

    def value(self, point):
        with mpmath.workdps(DPS):
            return self._f(*self.mp(point))

    def gradient_norm(self, point):
        with mpmath.workdps(DPS):
            g = self._g(*self.mp(point))
            return mpmath.sqrt(sum(mpmath.mpf(gi) ** 2 for gi in g))

    def eigenvalues(self, point) -> list:
        with mpmath.workdps(DPS):
            h = mpmath.matrix([[mpmath.mpf(v) for v in row] for row in self._h(*self.mp(point))])
            if h.rows == 1:
                return [h[0, 0]]
            ev = mpmath.eigsy(h, eigvals_only=True)
            return sorted(ev[i] for i in range(h.rows))


def classify_eigenvalues(ev: Sequence) -> str:
    scale = max([abs(e) for e in ev] + [mpmath.mpf(1)])
    tol = EIG_TOL * scale
    pos = sum(1 for e in ev if e > tol)
    neg = sum(1 for e in ev if e < -tol)
    if pos == len(ev):
        return "local_min"
    if neg == len(ev):
        return "max"
    if pos and neg:
        return "saddle"
    return "degenerate"  # singular: PSD (pos + zeros), NSD, or zero


@functools.lru_cache(maxsize=4096)
def to_mpf(c: sympy.Expr):
    """An exact coordinate at DPS + 5 digits (cached: refining a CRootOf at 65 digits is slow).

    A CRootOf is refined by Newton in mpmath inside its isolating interval (``eval_approx``); an
    expression in CRootOfs is evaluated with those cached values substituted."""
    c = sympy.sympify(c)
    with mpmath.workdps(DPS + 5):
        if isinstance(c, sympy.CRootOf) and c.is_real:
            try:
                return mpmath.mpf(c.eval_approx(DPS + 5))
            except Exception:  # pragma: no cover - fall back to sympy's own refinement
                return mpmath.mpf(sympy.N(c, DPS + 5))
        roots = c.atoms(sympy.CRootOf)
        if roots:
            c = c.xreplace({r: sympy.Float(to_mpf(r), DPS + 5) for r in roots})
        return mpmath.mpf(sympy.N(c, DPS + 5))


# --------------------------------------------------------------------------------------------------
# exact solving


def _real_roots_exact(poly: sympy.Poly) -> list[tuple[sympy.Expr, sympy.Poly]]:
    """Real roots of a univariate polynomial, each with the irreducible factor it is a root of."""
    out = []
    for fac, _mult in sympy.factor_list(poly.as_expr(), *poly.gens)[1]:
        fp = sympy.Poly(fac, *poly.gens)
        if fp.degree() <= 0:
            continue
        for r in sympy.real_roots(fp):
            out.append((r, fp))
    return out


def solve_linear(grad: Sequence[sympy.Expr], variables) -> list[tuple[sympy.Expr, ...]] | None:
    A, b = sympy.linear_eq_to_matrix(list(grad), list(variables))
    if A.det() == 0:
        return None
    sol = A.LUsolve(b)
    return [tuple(sympy.nsimplify(s) for s in sol)]


def _is_shape_position(G: Sequence[sympy.Poly], variables) -> bool:
    n = len(variables)
    if len(G) != n:
        return False
    last = variables[-1]
    for i, g in enumerate(G[:-1]):
        other = set(g.free_symbols) - {last}
        if other != {variables[i]} or sympy.degree(g, variables[i]) != 1:
            return False
        if g.as_expr().coeff(variables[i], 1).free_symbols:
            return False
    return set(G[-1].free_symbols) <= {last}


def _lex_basis(polys, variables):
    """Lex Groebner basis via grevlex + FGLM (10x faster than direct lex on Rosenbrock 4-D);
    direct lex when FGLM does not apply (a positive-dimensional ideal)."""
    try:
        return sympy.groebner(list(polys), *variables, order="grevlex").fglm("lex")
    except (NotImplementedError, ValueError):
        return sympy.groebner(list(polys), *variables, order="lex")


def solve_polynomial(grad: Sequence[sympy.Expr], variables) -> list[tuple[sympy.Expr, ...]]:
    """All real solutions of a zero-dimensional polynomial system, exact (see module docstring)."""
    variables = list(variables)
    G = list(_lex_basis(grad, variables))
    if G == [1] or any(g.is_number and g != 0 for g in [gg.as_expr() if hasattr(gg, "as_expr") else gg for gg in G]):
        return []
    G = [sympy.Poly(g, *variables) for g in G]
    if _is_shape_position(G, variables):
        last = variables[-1]
        q = sympy.Poly(G[-1].as_expr(), last)
        sols = []
        t = sympy.Dummy("t")
        for r, fac in _real_roots_exact(q):
            ft = sympy.Poly(fac.as_expr().subs(last, t), t)
            point = []
            for i, g in enumerate(G[:-1]):
                ge = g.as_expr()
                lead = ge.coeff(variables[i], 1)
                p = sympy.expand(-(ge - lead * variables[i]) / lead).subs(last, t)
                point.append(_reduce_at(p, ft, t, r))
            point.append(r)
            sols.append(tuple(point))
        return sols
    # not in shape position: univariate eliminant per variable, exact roots, filtered product
    roots_per_var = []
    for i, v in enumerate(variables):
        if i == len(variables) - 1:
            Gi = G
        else:
            order = variables[:i] + variables[i + 1 :] + [v]
            Gi = [sympy.Poly(g, *order) for g in _lex_basis(grad, order)]
        uni = [g for g in Gi if set(g.free_symbols) <= {v} and not g.is_ground]
        if not uni:
            raise ValueError(f"the stationary set is not zero-dimensional (no eliminant in {v})")
        roots_per_var.append([r for r, _ in _real_roots_exact(sympy.Poly(uni[0].as_expr(), v))])
    n_cand = math.prod(len(r) for r in roots_per_var)
    if n_cand > MAX_CANDIDATES:
        raise ValueError(f"{n_cand} candidate points from the eliminants; give stationary_guesses= instead")
    gfun = sympy.lambdify(variables, list(grad), "mpmath")
    sols = []
    with mpmath.workdps(DPS):
        mp_roots = [[to_mpf(r) for r in rs] for rs in roots_per_var]
        for idx in itertools.product(*[range(len(r)) for r in roots_per_var]):
            vals = [mp_roots[k][j] for k, j in enumerate(idx)]
            g = gfun(*vals)
            if mpmath.sqrt(sum(mpmath.mpf(x) ** 2 for x in g)) < GRAD_TOL:
                sols.append(tuple(roots_per_var[k][j] for k, j in enumerate(idx)))
    return sols


def _reduce_at(p: sympy.Expr, fac: sympy.Poly, t: sympy.Symbol, r: sympy.Expr) -> sympy.Expr:
    """p(r) for a root r of the irreducible ``fac``: reduce p modulo fac first (exact and canonical)."""
    rem = sympy.rem(sympy.Poly(p, t), fac)
    if rem.is_ground:
        return sympy.nsimplify(rem.as_expr()) if rem.as_expr().is_Rational else rem.as_expr()
    return sympy.expand(rem.as_expr().subs(t, r))


def exact_value_at(expr: sympy.Expr, variables, point) -> sympy.Expr:
    """f(point), exact. For points whose coordinates are polynomials in a single algebraic number r
    (the shape-position case) the value is reduced modulo r's minimal polynomial, so that e.g.
    Himmelblau's minima give exactly 0."""
    val = expr.xreplace(dict(zip(variables, point)))
    if val.is_Rational:
        return val
    roots = {a for c in point for a in sympy.sympify(c).atoms(sympy.CRootOf)}
    if len(roots) == 1 and expr.is_polynomial(*variables):
        r = roots.pop()
        t = sympy.Dummy("t")
        fac = sympy.Poly(r.poly.as_expr().subs(r.poly.gen, t), t)
        try:
            # evaluate f in Q[t]/(fac): every product is reduced at once, so nothing blows up
            coords = [sympy.Poly(sympy.sympify(c).xreplace({r: t}), t).rem(fac) for c in point]
            acc = sympy.Poly(0, t)
            for monom, coeff in sympy.Poly(expr, *variables).terms():
                term = sympy.Poly(coeff, t)
                for c, k in zip(coords, monom):
                    for _ in range(k):
                        term = (term * c).rem(fac)
                acc = acc + term
            return _reduce_at(acc.as_expr(), fac, t, r)
        except sympy.PolynomialError:
            return val
    if all(sympy.sympify(c).is_algebraic for c in point) and not roots:
        return sympy.nsimplify(sympy.radsimp(sympy.expand(val)))
    return val


def refine(expr_grad: Sequence[sympy.Expr], variables, guess, numeric: "Numeric | None" = None) -> tuple[sympy.Expr, ...]:
    """Newton at 50 digits from ``guess`` (mpmath ``findroot`` with the Hessian as Jacobian when the
    target's precompiled :class:`Numeric` is given, else ``sympy.nsolve``); the result is snapped to a
    small-denominator rational when within 1e-40 of one (the caller re-checks it exactly)."""
    with mpmath.workdps(DPS):
        if numeric is not None:
            n = len(variables)
            g, h = numeric._g, numeric._h
            if n == 1:
                sol = [mpmath.findroot(lambda a: g(a)[0], mpmath.mpf(guess[0]), df=lambda a: h(a)[0][0], solver="newton", tol=mpmath.mpf(10) ** (-2 * 50))]
            else:
                res = mpmath.findroot(
                    lambda *a: g(*a), [mpmath.mpf(c) for c in guess], J=lambda *a: mpmath.matrix(h(*a)),
                    solver="mdnewton", tol=mpmath.mpf(10) ** (-2 * 50), maxsteps=200,
                )
                sol = [res[i] for i in range(n)]
        elif len(variables) == 1:
            sol = [sympy.nsolve(expr_grad[0], variables[0], guess[0], prec=50)]
        else:
            sol = list(sympy.nsolve(list(expr_grad), list(variables), list(guess), prec=50))
    out = []
    for s in sol:
        s = sympy.Float(s, 50)
        fr = Fraction(str(s)).limit_denominator(10**6)
        if abs(sympy.Rational(fr.numerator, fr.denominator) - s) < sympy.Float("1e-40"):
            out.append(sympy.Rational(fr.numerator, fr.denominator))
        else:
            out.append(s)
    # snapped points must still be stationary: exactly, or at 60 digits
    return tuple(out)


def dedupe(points: Sequence[tuple], tol: float = 1e-20) -> list[tuple]:
    out: list[tuple] = []
    seen: list[tuple[float, ...]] = []
    for p in points:
        num = tuple(float(to_mpf(c)) for c in p)
        if any(max(abs(a - b) for a, b in zip(num, q)) < tol * (1 + max(map(abs, q))) for q in seen):
            continue
        seen.append(num)
        out.append(p)
    return out


# --------------------------------------------------------------------------------------------------
# separable transcendental targets: the global claim on a box by 1-D enumeration


def separable_parts(expr: sympy.Expr, variables) -> dict | None:
    """``{x_i: g_i(x_i)}`` with ``f = sum_i g_i(x_i)`` (constants folded into the first), or None."""
    parts = {v: sympy.Integer(0) for v in variables}
    const = sympy.Integer(0)
    for term in sympy.Add.make_args(sympy.expand(expr, trig=False, log=False, power_exp=False)):
        fs = term.free_symbols & set(variables)
        if not fs:
            const += term
        elif len(fs) == 1:
            parts[fs.pop()] += term
        else:
            return None
    first = variables[0]
    parts[first] += const
    return parts


def stationary_1d(g: sympy.Expr, x: sympy.Symbol, lo, hi, grid: int = 4001) -> list[sympy.Expr]:
    """Every stationary point of a smooth 1-D function on [lo, hi], each refined to 50 digits.

    g' is sampled on ``grid`` points; every sign change (and every sample where |g'| is tiny) seeds
    ``nsolve``. The grid must be fine enough that no two roots of g' share a cell; for the catalogue's
    trigonometric terms (period >= 1/2 on boxes of width <= 20) 4001 points give cells of <= 1/200.
    """
    dg = sympy.diff(g, x)
    f = sympy.lambdify(x, dg, "math")  # the grid only seeds nsolve: float64 is enough there
    lo_f, hi_f = float(lo), float(hi)
    xs = [lo_f + (hi_f - lo_f) * k / (grid - 1) for k in range(grid)]
    vals = [float(f(v)) for v in xs]
    seeds = []
    for a, b, fa, fb in zip(xs, xs[1:], vals, vals[1:]):
        if fa == 0:
            seeds.append(a)
        elif fa * fb < 0:
            seeds.append((a + b) / 2)
    num = Numeric(g, [x], [dg], sympy.Matrix([[sympy.diff(dg, x)]]))
    roots: list[sympy.Expr] = []
    for s in seeds:
        r = refine([dg], [x], [s], num)[0]
        if lo <= r <= hi and not any(abs(float(r) - float(q)) < 1e-12 for q in roots):
            roots.append(r)
    return roots


def separable_global_min(expr: sympy.Expr, variables, domain) -> tuple[sympy.Expr, list] | None:
    """(min of f on the box, the minimizing points) for a separable f: the sum of the 1-D minima,
    each the lowest of g_i over its stationary points and the two endpoints. None if not separable."""
    parts = separable_parts(expr, variables)
    if parts is None:
        return None
    total = mpmath.mpf(0)
    argmins = []
    with mpmath.workdps(DPS):
        for v, (lo, hi) in zip(variables, domain):
            g = parts[v]
            cands = stationary_1d(g, v, lo, hi) + [lo, hi]
            gv = sympy.lambdify(v, g, "mpmath")
            vals = [(gv(to_mpf(sympy.sympify(c))), c) for c in cands]
            best = min(val for val, _ in vals)
            total += best
            argmins.append([c for val, c in vals if abs(val - best) < VALUE_TOL * max(1, abs(best))])
    return total, argmins
