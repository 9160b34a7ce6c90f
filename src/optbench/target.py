"""``optbench.Target``: one declarative object per objective function (see docs/ARCHITECTURE.md).

A Target holds a sympy expression, its ordered variables, its exact stationary points and global
minimizers (derived, or verified when given), and a torch callable (the compiled expression, or the
user's ``impl`` under test). x* and f* stay exact sympy numbers; they are converted to a dtype only
at use (:meth:`Target.x_star`).
"""

from __future__ import annotations

import math
import operator
import random
import re
from typing import Callable, Iterable, Sequence

import mpmath
import sympy
import torch

from . import minima
from .errors import ExpressionError, TargetError
from .expr import check_size, compile_torch, to_expr
from .minima import StationaryPoint

KINDS = ("quadratic", "polynomial", "transcendental")
MAX_VARIABLES = 32  # exact Hessians and solves: a 32-variable quadratic builds in ~1.5 s, 48 in ~4 s
_NONDIFF = (sympy.Abs, sympy.Max, sympy.Min, sympy.sign, sympy.Heaviside)


def _natural_key(s: sympy.Symbol):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s.name)]


def _fmt_point(point) -> str:
    return "(" + ", ".join(f"{float(minima.to_mpf(c)):.6g}" for c in point) + ")"


_FLOAT64_MAX = mpmath.mpf(torch.finfo(torch.float64).max)


def _clip(exc: BaseException, n: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _fmt_box(box) -> str:
    return " x ".join(f"[{float(lo):.6g}, {float(hi):.6g}]" for lo, hi in box)


def _inside(point, box) -> bool:
    return all(lo <= sympy.N(c, 30) <= hi for c, (lo, hi) in zip(point, box))


def _exact(c) -> sympy.Expr:
    """An exact real number from what a user writes for a coordinate; TypeError when it is not one."""
    if isinstance(c, bool):
        raise TypeError(f"point coordinate {c!r} is a bool, not a number")
    if isinstance(c, float):
        out = sympy.Rational(repr(c))  # the decimal the user wrote: -1.2 is -6/5
    elif isinstance(c, str):
        out = to_expr(c)
    elif isinstance(c, torch.Tensor):
        out = sympy.Rational(float(c))
    else:
        out = sympy.sympify(c, strict=True) if not isinstance(c, sympy.Basic) else c
    if not isinstance(out, sympy.Expr) or out.free_symbols or out.is_real is not True or not out.is_finite:
        raise TypeError(f"{c!r} is not a finite real number")
    return out


class Target:
    """An objective with exact minima. See docs/ARCHITECTURE.md for the contract.

    Parameters
    ----------
    name: identifier used in test ids and reports.
    expr: sympy expression or string (parsed safely by :func:`optbench.expr.parse_expression`).
    variables: ordered symbol names (or Symbols). Default: the free symbols in natural order (x2 < x10).
    minimizers: claimed global minimizers (each a sequence of d numbers). Verified: gradient 0 at 60
        digits, Hessian PSD, differentiable there, and (when the stationary set is derived) lowest
        value. ``None``: derived.
    start: canonical start point or a sequence of them. Default: in the basin, away from x*.
    impl: optional torch callable under test (``t(x)`` uses it; ``t.reference(x)`` never does).
    kind: "quadratic" | "polynomial" | "transcendental"; default inferred (it is checked).
    tags: strings, e.g. convex, multimodal, plateau, saddle, ill-conditioned, seed, matrix.
    domain: box ((lo, hi), ...) for sampling and for the global claim of non-polynomials.
    basin: box around the (first) global minimizer for random starts. Default: convex targets use the
        domain; others a box of half-width 0.4 x the distance to the nearest other stationary point.
    shape: parameter shape, e.g. (2, 2) for a 4-variable target used on a 2-D parameter; ``t.fn``
        accepts (..., *shape) as well as (..., d) and flattens row-major.
    stationary_guesses: points from which ``nsolve`` (50 digits) refines stationary points, for
        non-polynomials or polynomials where the Groebner basis is too slow.
    lower_bound: exact proven lower bound of f on the domain (with ``global_argument`` saying why);
        f* must equal it. This is how a non-polynomial global claim is made.
    derive: "auto" | "groebner" | "guesses": how stationary points are found.
    """

    def __init__(
        self,
        name: str,
        expr,
        variables: Sequence | None = None,
        minimizers: Sequence[Sequence] | None = None,
        start=None,
        impl: Callable | None = None,
        kind: str | None = None,
        tags: Iterable[str] = (),
        domain: Sequence[Sequence] | None = None,
        basin: Sequence[Sequence] | None = None,
        *,
        shape: Sequence[int] | None = None,
        stationary_guesses: Sequence[Sequence] | None = None,
        lower_bound=None,
        global_argument: str = "",
        derive: str = "auto",
        description: str = "",
    ) -> None:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", name or ""):
            raise TargetError(f"target name {name!r} must be an identifier-like string (letters, digits, _ . -)")
        self.name = name
        self.description = description
        self.global_argument = global_argument
        try:
            var_names = None
            if variables is not None:
                if isinstance(variables, str):
                    variables = variables.replace(",", " ").split()
                var_names = [v.name if isinstance(v, sympy.Symbol) else v for v in variables]
                bad = [v for v in var_names if not (isinstance(v, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", v))]
                if bad:
                    raise TargetError(f"target {name!r}: variables {bad!r} must be names such as x, y or x1")
            e = to_expr(expr, var_names)
            check_size(e, "the expression")  # also for a sympy expression given directly
        except ExpressionError as exc:
            raise TargetError(f"target {name!r}: {exc}") from None
        # real symbols throughout, so that sqrt(x**2) etc. simplify as they should
        free = sorted(e.free_symbols, key=_natural_key)
        e = e.xreplace({s: sympy.Symbol(s.name, real=True) for s in free if not s.is_real})
        free = sorted(e.free_symbols, key=_natural_key)
        if var_names is None:
            self.variables = tuple(free)
        else:
            if len(set(var_names)) != len(var_names):
                raise TargetError(f"target {name!r}: variables {var_names} repeat a name; give each once")
            self.variables = tuple(sympy.Symbol(v, real=True) for v in var_names)
            missing = sorted({s.name for s in free} - set(var_names))
            if missing:
                raise TargetError(
                    f"target {name!r}: the expression uses {', '.join(missing)} which is not in variables={var_names}; "
                    "add it or fix the expression"
                )
        if not self.variables:
            raise TargetError(f"target {name!r}: the expression {e} has no variables; a target needs at least one")
        self.expr = e
        self.dim = len(self.variables)
        if self.dim > MAX_VARIABLES:
            raise TargetError(
                f"target {name!r} has {self.dim} variables, beyond {MAX_VARIABLES}: its exact validation builds the "
                f"{self.dim} x {self.dim} symbolic Hessian and solves for its stationary points exactly; use fewer variables"
            )
        if shape is not None:
            try:
                shape = tuple(operator.index(s) for s in shape)
            except TypeError:
                raise TargetError(f"target {name!r}: shape {shape!r} must be a tuple of positive ints") from None
            if any(s < 1 for s in shape) or math.prod(shape) != self.dim:
                raise TargetError(
                    f"target {name!r}: shape {shape} must be positive ints with {self.dim} entries in all (d = {self.dim})"
                )
        self.shape = shape
        if isinstance(tags, str):
            tags = (tags,)
        try:
            self.tags = frozenset(tags)
        except TypeError:
            raise TargetError(f"target {name!r}: tags={tags!r} must be strings such as {{'convex'}}") from None
        if not all(isinstance(t, str) for t in self.tags):
            raise TargetError(f"target {name!r}: tags={sorted(map(repr, self.tags))} must be strings such as {{'convex'}}")
        if isinstance(impl, type) and issubclass(impl, torch.autograd.Function):
            impl = impl.apply  # an autograd.Function under test: call it through apply
        if impl is not None and not callable(impl):
            raise TargetError(f"target {name!r}: impl must be a torch callable or autograd.Function, not {type(impl).__name__}")
        self.impl = impl
        self._kind_given = kind
        if derive not in ("auto", "groebner", "guesses"):
            raise TargetError(f"target {name!r}: derive={derive!r}; use auto, groebner or guesses")
        self._phase = "differentiating it"
        try:
            with minima.time_limit(minima.derive_seconds()):
                self._build(kind, domain, basin, start, lower_bound, minimizers, stationary_guesses, derive)
        except minima.OutOfTime as exc:
            raise TargetError(
                f"target {name!r}: {self._phase} did not finish within {exc.seconds:g} s; give stationary_guesses= "
                "(points near the stationary points, refined at 50 digits) or minimizers= with derive='guesses', "
                "simplify the expression, or allow more time with OPTBENCH_DERIVE_SECONDS"
            ) from None
        except (ArithmeticError, RecursionError) as exc:  # OverflowError, ZeroDivisionError from sympy or mpmath
            raise TargetError(
                f"target {name!r}: {self._phase} failed: {type(exc).__name__}: {exc}; the expression's values are "
                "beyond what can be computed there: rescale it or give a smaller domain"
            ) from None

    def _build(self, kind, domain, basin, start, lower_bound, minimizers, guesses, derive) -> None:
        name, e = self.name, self.expr
        self.kind = self._infer_kind(kind)
        if self.kind == "transcendental":
            self.gradient = sympy.Matrix([sympy.diff(e, v) for v in self.variables])
            self.hessian = sympy.Matrix(self.dim, self.dim, lambda i, j: sympy.diff(self.gradient[i], self.variables[j]))
            self._grad_degrees = None
        else:  # differentiate in the polynomial ring: much faster than on unexpanded products
            poly = sympy.Poly(e, *self.variables)
            gp = [poly.diff(v) for v in self.variables]
            self._grad_degrees = [g.total_degree() for g in gp]
            self.gradient = sympy.Matrix([g.as_expr() for g in gp])
            self.hessian = sympy.Matrix(self.dim, self.dim, lambda i, j: gp[i].diff(self.variables[j]).as_expr())
        self.numeric = minima.Numeric(e, self.variables, self.gradient, self.hessian)
        self.domain = self._box(domain, "domain") if domain is not None else None
        try:
            self.lower_bound = None if lower_bound is None else _exact(lower_bound)
        except (TypeError, ValueError, sympy.SympifyError) as exc:
            raise TargetError(f"target {name!r}: lower_bound={lower_bound!r} is not an exact real number ({exc})") from None
        self._phase = "checking that it is bounded below"
        self._check_bounded_below()
        if self.domain is None and self.kind == "transcendental":
            raise TargetError(
                f"target {name!r}: a transcendental target needs domain=((lo, hi), ...) for its global claim"
            )
        self.reference = compile_torch(e, self.variables, self.shape)
        self.fn = self.impl if self.impl is not None else self.reference
        self.stationary_complete = False
        given_starts = self._given_starts(start)
        given_basin = self._box(basin, "basin") if basin is not None else None
        self._derive(minimizers, guesses, derive)
        self._phase = "checking its domain, basin and starts"
        if self.domain is None:
            self.domain = self._default_domain(given_starts, given_basin)
        self.basin = given_basin if given_basin is not None else self._default_basin()
        self.start = given_starts if given_starts is not None else self._default_starts()
        self._check_consistent()

    # ------------------------------------------------------------------ construction helpers

    def _infer_kind(self, kind):
        e = self.expr
        if e.is_polynomial(*self.variables):
            deg = sympy.Poly(e, *self.variables).total_degree()
            inferred = "quadratic" if deg <= 2 else "polynomial"
        else:
            inferred = "transcendental"
        if kind is not None:
            if kind not in KINDS:
                raise TargetError(f"target {self.name!r}: kind={kind!r}; use one of {', '.join(KINDS)}")
            if kind != inferred:
                raise TargetError(f"target {self.name!r}: kind={kind!r} but the expression is {inferred}; drop kind=")
        return inferred

    def _box(self, box, what):
        try:
            out = tuple((_exact(lo), _exact(hi)) for lo, hi in box)
        except ExpressionError as exc:
            raise TargetError(f"target {self.name!r}: {what}: {exc}") from None
        except (TypeError, ValueError, sympy.SympifyError):
            raise TargetError(f"target {self.name!r}: {what} must be ((lo, hi), ...) with one pair per variable") from None
        if len(out) == 1 and self.dim > 1:
            out = out * self.dim
        if len(out) != self.dim or any(not (lo < hi) for lo, hi in out):
            raise TargetError(
                f"target {self.name!r}: {what} must have {self.dim} (lo, hi) pairs with lo < hi, got {len(out)}"
            )
        return out

    def _point(self, p, what):
        if isinstance(p, (int, float, sympy.Expr)) and self.dim == 1 and not isinstance(p, sympy.Tuple):
            p = (p,)
        try:
            pt = tuple(_exact(c) for c in p)
        except ExpressionError as exc:
            raise TargetError(f"target {self.name!r}: {what} {p!r}: {exc}") from None
        except (TypeError, ValueError, sympy.SympifyError):
            raise TargetError(f"target {self.name!r}: {what} {p!r} is not a point of {self.dim} numbers") from None
        if len(pt) != self.dim:
            raise TargetError(
                f"target {self.name!r}: {what} {p!r} has {len(pt)} coordinates but the variables are "
                f"{', '.join(v.name for v in self.variables)}"
            )
        return pt

    def _check_bounded_below(self):
        """Refuse targets that are unbounded below: for polynomials, odd degree or a direction where the
        leading homogeneous form is negative (f -> -inf along that ray); otherwise, on no domain, a ray
        along which f keeps decreasing past -1e6 (numerical evidence; the ray is named). Points where f
        cannot be evaluated (overflow, not real) are no evidence either way."""
        dirs = self._probe_directions()
        if self.kind == "transcendental":
            if self.domain is not None:
                return  # a continuous function on a compact box is bounded; the global claim is on the box
            f = sympy.lambdify(self.variables, self.expr, "mpmath")
            for d in dirs:
                try:
                    vals = [f(*[mpmath.mpf(t) * c for c in d]) for t in (1e2, 1e4, 1e6)]
                except (ArithmeticError, ValueError, TypeError):
                    continue
                if all(mpmath.im(v) == 0 for v in vals) and vals[0] > vals[1] > vals[2] and vals[2] < -1e6:
                    raise TargetError(
                        f"target {self.name!r} is unbounded below: f decreases without bound along the ray t*{tuple(d)}"
                    )
            return
        poly = sympy.Poly(self.expr, *self.variables)
        deg = poly.total_degree()
        lead = sum(c * sympy.prod(v**k for v, k in zip(self.variables, m)) for m, c in poly.terms() if sum(m) == deg)
        if deg % 2 == 1:
            raise TargetError(
                f"target {self.name!r} is unbounded below: its degree {deg} is odd, so f -> -inf along a ray; "
                "a minimization target must be bounded below"
            )
        lf = sympy.lambdify(self.variables, lead, "mpmath")
        for d in dirs:
            if lf(*[mpmath.mpf(c) for c in d]) < 0:
                raise TargetError(
                    f"target {self.name!r} is unbounded below: along the ray t*{tuple(d)} the leading form "
                    f"{lead} is negative, so f -> -inf; a minimization target must be bounded below"
                )

    def _probe_directions(self):
        d = self.dim
        rng = random.Random(12345)
        dirs = []
        for i in range(d):
            for s in (1, -1):
                e = [0] * d
                e[i] = s
                dirs.append(e)
        for signs in ([1] * d, [-1] * d, [1 if i % 2 == 0 else -1 for i in range(d)], [-1 if i % 2 == 0 else 1 for i in range(d)]):
            dirs.append(signs)
        for _ in range(64):
            dirs.append([rng.choice([-3, -2, -1, 0, 1, 2, 3]) for _ in range(d)])
        return [x for x in dirs if any(x)]

    def _check_differentiable(self, point):
        sub = dict(zip(self.variables, point))
        for node in sympy.preorder_traversal(self.expr):
            bad = None
            if isinstance(node, _NONDIFF):
                args = node.args
                if isinstance(node, (sympy.Max, sympy.Min)):
                    vals = [sympy.N(a.xreplace(sub), 30) for a in args]
                    if any(abs(vals[0] - v) < 1e-25 for v in vals[1:]) or len({round(float(v), 20) for v in vals}) < len(vals):
                        bad = f"{type(node).__name__} of equal arguments"
                else:
                    if abs(sympy.N(args[0].xreplace(sub), 30)) < 1e-25:
                        bad = f"{node} with argument 0"
            elif isinstance(node, sympy.Pow) and not node.exp.is_Integer and node.exp.is_number and node.exp > 0:
                if node.exp < 2 and abs(sympy.N(node.base.xreplace(sub), 30)) < 1e-25:
                    bad = f"{node} with base 0"
            if bad:
                raise TargetError(
                    f"target {self.name!r} is not differentiable at {_fmt_point(point)}: {bad}; "
                    "gradient-based validation needs a smooth minimum"
                )

    def _derive(self, minimizers, guesses, derive):
        name = self.name
        grad = list(self.gradient)
        pts: list[tuple] = []
        if derive != "guesses" and self.kind == "quadratic":
            self._phase = "solving grad f = 0 (a linear system)"
            sol = minima.solve_linear(grad, self.variables)
            if sol is None:
                raise TargetError(
                    f"target {name!r}: the quadratic form is singular, so the minimizer is not unique; "
                    "make the Hessian positive definite"
                )
            pts = sol
            self.stationary_complete = True
            self.derivation = "linear solve"
        elif derive != "guesses" and self.kind == "polynomial" and not guesses:
            bound = minima.bezout_bound(self._grad_degrees)
            if bound > minima.MAX_BEZOUT:
                raise TargetError(
                    f"target {name!r}: grad f = 0 has gradient components of degree {max(self._grad_degrees)} and up "
                    f"to {bound} complex solutions (Bezout bound), beyond the {minima.MAX_BEZOUT} that the exact "
                    "derivation (Groebner basis and real roots) finishes in seconds; give stationary_guesses= (points "
                    "near the stationary points, refined at 50 digits) or minimizers= with derive='guesses'"
                )
            self._phase = "deriving its stationary points (Groebner basis and real roots)"
            try:
                pts = minima.solve_polynomial(grad, self.variables)
            except ValueError as exc:
                raise TargetError(f"target {name!r}: {exc}") from None
            self.stationary_complete = True
            self.derivation = "groebner + real_roots"
        else:
            self.derivation = "Newton at 50 digits from stated guesses" if guesses else "verified given minimizers"
        self._phase = "refining its stationary guesses (Newton at 50 digits)"
        for g in guesses or ():
            g = self._point(g, "stationary guess")
            try:
                p = minima.refine(grad, self.variables, [float(minima.to_mpf(c)) for c in g], self.numeric)
            except (ValueError, ArithmeticError) as exc:
                raise TargetError(
                    f"target {name!r}: nsolve from the guess {_fmt_point(g)} did not converge "
                    f"({_clip(exc)}); move the guess"
                ) from None
            except TypeError as exc:  # mpmath: a complex iterate (sqrt or log of a negative number)
                raise TargetError(
                    f"target {name!r}: Newton from the guess {_fmt_point(g)} left the region where f is real "
                    f"({_clip(exc)}); move the guess"
                ) from None
            pts.append(p)
        self._phase = "verifying its stationary points"
        claimed = [self._point(m, "minimizer") for m in minimizers] if minimizers is not None else []
        if not claimed and not pts:
            raise TargetError(
                f"target {name!r}: cannot derive minimizers of a {self.kind} expression; give minimizers= "
                "or stationary_guesses="
            )
        for p in claimed:
            self._check_differentiable(p)
            gn = self.numeric.gradient_norm(p)
            if not gn < minima.GRAD_TOL:
                raise TargetError(
                    f"target {name!r}: claimed minimizer {_fmt_point(p)} is not stationary, |grad f| = "
                    f"{mpmath.nstr(gn, 6)}; fix the point or drop minimizers= to derive them"
                )
            ev = self.numeric.eigenvalues(p)
            if minima.classify_eigenvalues(ev) not in ("local_min", "degenerate") or min(ev) < -minima.EIG_TOL * max(
                1, max(abs(x) for x in ev)
            ):
                raise TargetError(
                    f"target {name!r}: claimed minimizer {_fmt_point(p)} is stationary but not a minimum, the Hessian "
                    f"has eigenvalue {mpmath.nstr(min(ev), 6)} < 0; fix the point or drop minimizers= to derive them"
                )
        all_pts = minima.dedupe(list(pts) + claimed)
        recs = []
        for p in all_pts:
            gn = self.numeric.gradient_norm(p)
            if not gn < minima.GRAD_TOL:
                raise TargetError(
                    f"target {name!r}: derived point {_fmt_point(p)} has |grad f| = {mpmath.nstr(gn, 6)} at 60 digits; "
                    "the derivation failed"
                )
            ev = self.numeric.eigenvalues(p)
            recs.append((p, ev, minima.classify_eigenvalues(ev), self.numeric.value(p)))
        cands = [r for r in recs if r[2] in ("local_min", "degenerate") and min(r[1]) >= -minima.EIG_TOL * max(1, max(abs(x) for x in r[1]))]
        if not cands:
            raise TargetError(f"target {name!r}: no stationary point found is a minimum; give minimizers=")
        vmin = min(r[3] for r in cands)
        tol = minima.VALUE_TOL * max(1, abs(vmin))
        stationary = []
        for p, ev, k, v in recs:
            if k in ("local_min", "degenerate") and p in [c[0] for c in cands] and abs(v - vmin) <= tol:
                k = "global_min"
            stationary.append(
                StationaryPoint(tuple(p), minima.exact_value_at(self.expr, self.variables, p), k, tuple(float(x) for x in ev))
            )
        for p in claimed:
            sp = next(s for s in stationary if minima.dedupe([s.point, p]) == [s.point])
            if sp.kind != "global_min":
                raise TargetError(
                    f"target {name!r}: claimed minimizer {_fmt_point(p)} is a local minimum with f = "
                    f"{float(sympy.N(sp.value, 15)):.10g} above the lowest stationary value {float(vmin):.10g}; "
                    "list only global minimizers"
                )
        order = {"global_min": 0, "local_min": 1, "degenerate": 2, "saddle": 3, "max": 4}
        stationary.sort(key=lambda s: (order[s.kind], s.numeric()))
        self.stationary = tuple(stationary)
        self.minimizers = tuple(s.point for s in stationary if s.kind == "global_min")
        self.f_star = stationary[0].value
        for p in self.minimizers:
            self._check_differentiable(p)
        if self.lower_bound is not None:
            diff = sympy.N(self.f_star - self.lower_bound, 40)
            if abs(diff) > 1e-30:
                raise TargetError(
                    f"target {name!r}: f* = {float(sympy.N(self.f_star, 15)):.10g} differs from the stated lower bound "
                    f"{self.lower_bound}; the global claim does not hold"
                )

    def _default_domain(self, starts, basin):
        """The box around every stationary point, the given starts and the given basin, widened by 2 on
        each side and rounded out to integers."""
        coords = [[float(minima.to_mpf(c)) for c in s.point] for s in self.stationary]
        coords += [[float(minima.to_mpf(c)) for c in p] for p in starts or ()]
        if basin is not None:
            coords += [[float(lo) for lo, _ in basin], [float(hi) for _, hi in basin]]
        out = []
        for i in range(self.dim):
            lo = math.floor(min(c[i] for c in coords)) - 2
            hi = math.ceil(max(c[i] for c in coords)) + 2
            out.append((sympy.Integer(lo), sympy.Integer(hi)))
        return tuple(out)

    def _default_basin(self):
        xs = self.minimizers[0]
        xn = [float(minima.to_mpf(c)) for c in xs]
        others = [s.numeric() for s in self.stationary if s.point != xs]
        if "convex" in self.tags or not others:
            return self.domain
        dist = min(max(abs(a - b) for a, b in zip(xn, o)) for o in others)
        r = sympy.Rational(max(1, int(0.4 * dist * 1024)), 1024)  # dyadic: exact in every float dtype
        out = []
        for c, (lo, hi) in zip(xs, self.domain):
            out.append((max(lo, sympy.nsimplify(sympy.floor(c * 1024)) / 1024 - r), min(hi, sympy.ceiling(c * 1024) / 1024 + r)))
        return tuple(out)

    def _given_starts(self, start):
        if start is None:
            return None
        if isinstance(start, (int, float, sympy.Expr, str)):
            start = [(start,)] if self.dim == 1 else [start]
        elif len(start) and not isinstance(start[0], (list, tuple, sympy.Tuple)):
            start = [start]
        if not len(start):
            raise TargetError(f"target {self.name!r}: start= is empty; give a point or omit it for the default")
        return tuple(self._point(s, "start") for s in start)

    def _default_starts(self):
        # 3/4 of the way from the basin's centre to its upper corner, on a dyadic grid
        return (tuple(sympy.floor(((lo + hi) / 2 + 3 * (hi - lo) / 8) * 64) / 64 for lo, hi in self.basin),)

    def _check_consistent(self):
        """The minimizers and starts lie in the domain, the basin inside it and around a global minimizer,
        and f is finite in float64 at the starts and minimizers (an optimizer starts and ends there)."""
        where = f"the domain {_fmt_box(self.domain)}"
        for p in self.minimizers:
            if not _inside(p, self.domain):
                raise TargetError(
                    f"target {self.name!r}: the global minimizer {_fmt_point(p)} lies outside {where}; widen the domain"
                )
        if not all(dlo <= lo and hi <= dhi for (lo, hi), (dlo, dhi) in zip(self.basin, self.domain)):
            raise TargetError(
                f"target {self.name!r}: the basin {_fmt_box(self.basin)} is not inside {where}; shrink the basin"
            )
        if not any(_inside(p, self.basin) for p in self.minimizers):
            raise TargetError(
                f"target {self.name!r}: the basin {_fmt_box(self.basin)} holds none of the global minimizers "
                f"{', '.join(_fmt_point(p) for p in self.minimizers)}; move it around one"
            )
        for p in self.start:
            if not _inside(p, self.domain):
                raise TargetError(
                    f"target {self.name!r}: the start {_fmt_point(p)} lies outside {where}; widen the domain or move "
                    "the start"
                )
        for what, pts in (("start", self.start), ("minimizer", self.minimizers)):
            for p in pts:
                v = self.numeric.value(p)
                if mpmath.im(v) != 0 or not mpmath.isfinite(v) or abs(v) > _FLOAT64_MAX:
                    raise TargetError(
                        f"target {self.name!r}: f at the {what} {_fmt_point(p)} is {mpmath.nstr(v, 6)}, not a finite "
                        f"real float64; move the {what} or rescale the expression"
                    )
        for p in self.start:  # an optimizer's first step reads the gradient there
            try:
                gn = self.numeric.gradient_norm(p)
            except (TypeError, ValueError, ArithmeticError):
                gn = mpmath.inf
            if not gn < _FLOAT64_MAX:
                raise TargetError(
                    f"target {self.name!r}: |grad f| at the start {_fmt_point(p)} is {mpmath.nstr(gn, 6)}, not a finite "
                    "float64; move the start or rescale the expression"
                )

    # ------------------------------------------------------------------ public API

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def __repr__(self) -> str:
        return f"Target({self.name!r}, {self.expr}, d={self.dim}, kind={self.kind!r})"

    @property
    def condition_number(self) -> float:
        ev = self.stationary[0].eigenvalues
        lo, hi = min(ev), max(ev)
        if lo <= 0 or abs(lo) <= float(minima.EIG_TOL) * max(1.0, abs(hi)):
            return math.inf
        return hi / lo

    def quadratic_form(self):
        """Exact ``(A, b, c)`` with ``f = 1/2 x^T A x - b^T x + c``, or None when f is not quadratic."""
        if self.kind != "quadratic":
            return None
        zero = {v: 0 for v in self.variables}
        A = self.hessian.xreplace(zero)
        b = -self.gradient.xreplace(zero)
        c = self.expr.xreplace(zero)
        return A, b, c

    def x_star(self, dtype: torch.dtype = torch.float64, device="cpu") -> torch.Tensor:
        vals = [[float(minima.to_mpf(c)) for c in p] for p in self.minimizers]
        return torch.tensor(vals, dtype=torch.float64).to(dtype=dtype, device=device)

    def _sub(self, point):
        return dict(zip(self.variables, self._point(point, "point")))

    def exact_value(self, point) -> sympy.Expr:
        return self.expr.xreplace(self._sub(point))

    def exact_gradient(self, point) -> sympy.Matrix:
        return self.gradient.xreplace(self._sub(point))

    def exact_hessian(self, point) -> sympy.Matrix:
        return self.hessian.xreplace(self._sub(point))

    def sample_points(self, n: int, seed: int = 0) -> list[tuple[sympy.Rational, ...]]:
        """``n`` exact rational points inside the domain, on a 1/1024 grid of each side (dyadic:
        representable exactly in float32/64)."""
        rng = random.Random(seed)
        return [tuple(lo + (hi - lo) * sympy.Rational(rng.randint(1, 1023), 1024) for lo, hi in self.domain) for _ in range(n)]

    def random_starts(self, k: int, seed: int = 0, dtype: torch.dtype = torch.float64, device="cpu") -> torch.Tensor:
        """``k`` uniform points in :attr:`basin` as a (k, d) tensor."""
        g = torch.Generator().manual_seed(seed)
        lo = torch.tensor([float(a) for a, _ in self.basin], dtype=torch.float64)
        hi = torch.tensor([float(b) for _, b in self.basin], dtype=torch.float64)
        u = torch.rand(k, self.dim, generator=g, dtype=torch.float64)
        return (lo + (hi - lo) * u).to(dtype=dtype, device=device)

    def start_tensor(self, dtype: torch.dtype = torch.float64, device="cpu") -> torch.Tensor:
        """The canonical start points as a (n_starts, d) tensor."""
        vals = [[float(sympy.N(c, 30)) for c in p] for p in self.start]
        return torch.tensor(vals, dtype=torch.float64).to(dtype=dtype, device=device)
