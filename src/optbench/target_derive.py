"""A Target's derivation: from its expression to exact, classified stationary points, and the domain,
basin and starts that go with them.

:func:`build` runs once, from :class:`optbench.target.Target`'s constructor, on the object being built
(``t``): it infers the kind, differentiates (in the polynomial ring where it can), refuses a target
unbounded below, derives the stationary points (a linear solve for quadratics, a Groebner basis and real
roots for polynomials, 50-digit Newton from stated guesses otherwise; the machinery is
:mod:`optbench.minima`), verifies claimed minimizers, classifies every point by its Hessian, and checks
that the domain, basin and starts are consistent with them. It sets ``t.kind``, ``t.gradient``,
``t.hessian``, ``t.numeric``, ``t.domain``, ``t.lower_bound``, ``t.reference``, ``t.fn``,
``t.stationary``, ``t.minimizers``, ``t.f_star``, ``t.derivation``, ``t.stationary_complete``,
``t.basin`` and ``t.start``, and keeps ``t._phase`` naming what it is doing for the constructor's
time-out message. Every refusal is a one-line :class:`~optbench.errors.TargetError`.
"""

from __future__ import annotations

import math
import random

import mpmath
import sympy
import torch

from . import minima
from .errors import ExpressionError, TargetError
from .exact import exact_real
from .expr_torch import compile_torch
from .minima import StationaryPoint

KINDS = ("quadratic", "polynomial", "transcendental")
_NONDIFF = (sympy.Abs, sympy.Max, sympy.Min, sympy.sign, sympy.Heaviside)


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


def build(t, kind, domain, basin, start, lower_bound, minimizers, guesses, derive) -> None:
    """Derive everything about the Target ``t`` that its constructor was not given (module docstring)."""
    name, e = t.name, t.expr
    t.kind = infer_kind(t, kind)
    if t.kind == "transcendental":
        t.gradient = sympy.Matrix([sympy.diff(e, v) for v in t.variables])
        t.hessian = sympy.Matrix(t.dim, t.dim, lambda i, j: sympy.diff(t.gradient[i], t.variables[j]))
        t._grad_degrees = None
    else:  # differentiate in the polynomial ring: much faster than on unexpanded products
        poly = sympy.Poly(e, *t.variables)
        gp = [poly.diff(v) for v in t.variables]
        t._grad_degrees = [g.total_degree() for g in gp]
        t.gradient = sympy.Matrix([g.as_expr() for g in gp])
        t.hessian = sympy.Matrix(t.dim, t.dim, lambda i, j: gp[i].diff(t.variables[j]).as_expr())
    t.numeric = minima.Numeric(e, t.variables, t.gradient, t.hessian)
    t.domain = parse_box(t, domain, "domain") if domain is not None else None
    try:
        t.lower_bound = None if lower_bound is None else exact_real(lower_bound)
    except (TypeError, ValueError, sympy.SympifyError) as exc:
        raise TargetError(f"target {name!r}: lower_bound={lower_bound!r} is not an exact real number ({exc})") from None
    t._phase = "checking that it is bounded below"
    check_bounded_below(t)
    if t.domain is None and t.kind == "transcendental":
        raise TargetError(
            f"target {name!r}: a transcendental target needs domain=((lo, hi), ...) for its global claim"
        )
    t.reference = compile_torch(e, t.variables, t.shape)
    t.fn = t.impl if t.impl is not None else t.reference
    t.stationary_complete = False
    starts = given_starts(t, start)
    given_basin = parse_box(t, basin, "basin") if basin is not None else None
    derive_stationary(t, minimizers, guesses, derive)
    t._phase = "checking its domain, basin and starts"
    if t.domain is None:
        t.domain = default_domain(t, starts, given_basin)
    t.basin = given_basin if given_basin is not None else default_basin(t)
    t.start = starts if starts is not None else default_starts(t)
    check_consistent(t)


def infer_kind(t, kind):
    e = t.expr
    if e.is_polynomial(*t.variables):
        deg = sympy.Poly(e, *t.variables).total_degree()
        inferred = "quadratic" if deg <= 2 else "polynomial"
    else:
        inferred = "transcendental"
    if kind is not None:
        if kind not in KINDS:
            raise TargetError(f"target {t.name!r}: kind={kind!r}; use one of {', '.join(KINDS)}")
        if kind != inferred:
            raise TargetError(f"target {t.name!r}: kind={kind!r} but the expression is {inferred}; drop kind=")
    return inferred


def parse_box(t, box, what):
    try:
        out = tuple((exact_real(lo), exact_real(hi)) for lo, hi in box)
    except ExpressionError as exc:
        raise TargetError(f"target {t.name!r}: {what}: {exc}") from None
    except (TypeError, ValueError, sympy.SympifyError):
        raise TargetError(f"target {t.name!r}: {what} must be ((lo, hi), ...) with one pair per variable") from None
    if len(out) == 1 and t.dim > 1:
        out = out * t.dim
    if len(out) != t.dim or any(not (lo < hi) for lo, hi in out):
        raise TargetError(
            f"target {t.name!r}: {what} must have {t.dim} (lo, hi) pairs with lo < hi, got {len(out)}"
        )
    return out


def parse_point(t, p, what):
    if isinstance(p, (int, float, sympy.Expr)) and t.dim == 1 and not isinstance(p, sympy.Tuple):
        p = (p,)
    try:
        pt = tuple(exact_real(c) for c in p)
    except ExpressionError as exc:
        raise TargetError(f"target {t.name!r}: {what} {p!r}: {exc}") from None
    except (TypeError, ValueError, sympy.SympifyError):
        raise TargetError(f"target {t.name!r}: {what} {p!r} is not a point of {t.dim} numbers") from None
    if len(pt) != t.dim:
        raise TargetError(
            f"target {t.name!r}: {what} {p!r} has {len(pt)} coordinates but the variables are "
            f"{', '.join(v.name for v in t.variables)}"
        )
    return pt


def check_bounded_below(t):
    """Refuse targets that are unbounded below: for polynomials, odd degree or a direction where the
    leading homogeneous form is negative (f -> -inf along that ray); otherwise, on no domain, a ray
    along which f keeps decreasing past -1e6 (numerical evidence; the ray is named). Points where f
    cannot be evaluated (overflow, not real) are no evidence either way."""
    dirs = probe_directions(t)
    if t.kind == "transcendental":
        if t.domain is not None:
            return  # a continuous function on a compact box is bounded; the global claim is on the box
        f = sympy.lambdify(t.variables, t.expr, "mpmath")
        for d in dirs:
            try:
                vals = [f(*[mpmath.mpf(t) * c for c in d]) for t in (1e2, 1e4, 1e6)]
            except (ArithmeticError, ValueError, TypeError):
                continue
            if all(mpmath.im(v) == 0 for v in vals) and vals[0] > vals[1] > vals[2] and vals[2] < -1e6:
                raise TargetError(
                    f"target {t.name!r} is unbounded below: f decreases without bound along the ray t*{tuple(d)}"
                )
        return
    poly = sympy.Poly(t.expr, *t.variables)
    deg = poly.total_degree()
    lead = sum(c * sympy.prod(v**k for v, k in zip(t.variables, m)) for m, c in poly.terms() if sum(m) == deg)
    if deg % 2 == 1:
        raise TargetError(
            f"target {t.name!r} is unbounded below: its degree {deg} is odd, so f -> -inf along a ray; "
            "a minimization target must be bounded below"
        )
    lf = sympy.lambdify(t.variables, lead, "mpmath")
    for d in dirs:
        if lf(*[mpmath.mpf(c) for c in d]) < 0:
            raise TargetError(
                f"target {t.name!r} is unbounded below: along the ray t*{tuple(d)} the leading form "
                f"{lead} is negative, so f -> -inf; a minimization target must be bounded below"
            )


def probe_directions(t):
    d = t.dim
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


def check_differentiable(t, point):
    sub = dict(zip(t.variables, point))
    for node in sympy.preorder_traversal(t.expr):
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
                f"target {t.name!r} is not differentiable at {_fmt_point(point)}: {bad}; "
                "gradient-based validation needs a smooth minimum"
            )


def derive_stationary(t, minimizers, guesses, derive):
    name = t.name
    grad = list(t.gradient)
    pts: list[tuple] = []
    if derive != "guesses" and t.kind == "quadratic":
        t._phase = "solving grad f = 0 (a linear system)"
        sol = minima.solve_linear(grad, t.variables)
        if sol is None:
            raise TargetError(
                f"target {name!r}: the quadratic form is singular, so the minimizer is not unique; "
                "make the Hessian positive definite"
            )
        pts = sol
        t.stationary_complete = True
        t.derivation = "linear solve"
    elif derive != "guesses" and t.kind == "polynomial" and not guesses:
        bound = minima.bezout_bound(t._grad_degrees)
        if bound > minima.MAX_BEZOUT:
            raise TargetError(
                f"target {name!r}: grad f = 0 has gradient components of degree {max(t._grad_degrees)} and up "
                f"to {bound} complex solutions (Bezout bound), beyond the {minima.MAX_BEZOUT} that the exact "
                "derivation (Groebner basis and real roots) finishes in seconds; give stationary_guesses= (points "
                "near the stationary points, refined at 50 digits) or minimizers= with derive='guesses'"
            )
        t._phase = "deriving its stationary points (Groebner basis and real roots)"
        try:
            pts = minima.solve_polynomial(grad, t.variables)
        except ValueError as exc:
            raise TargetError(f"target {name!r}: {exc}") from None
        t.stationary_complete = True
        t.derivation = "groebner + real_roots"
    else:
        t.derivation = "Newton at 50 digits from stated guesses" if guesses else "verified given minimizers"
    t._phase = "refining its stationary guesses (Newton at 50 digits)"
    for g in guesses or ():
        g = parse_point(t, g, "stationary guess")
        try:
            p = minima.refine(grad, t.variables, [float(minima.to_mpf(c)) for c in g], t.numeric)
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
    t._phase = "verifying its stationary points"
    claimed = [parse_point(t, m, "minimizer") for m in minimizers] if minimizers is not None else []
    if not claimed and not pts:
        raise TargetError(
            f"target {name!r}: cannot derive minimizers of a {t.kind} expression; give minimizers= "
            "or stationary_guesses="
        )
    for p in claimed:
        check_differentiable(t, p)
        gn = t.numeric.gradient_norm(p)
        if not gn < minima.GRAD_TOL:
            raise TargetError(
                f"target {name!r}: claimed minimizer {_fmt_point(p)} is not stationary, |grad f| = "
                f"{mpmath.nstr(gn, 6)}; fix the point or drop minimizers= to derive them"
            )
        ev = t.numeric.eigenvalues(p)
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
        gn = t.numeric.gradient_norm(p)
        if not gn < minima.GRAD_TOL:
            raise TargetError(
                f"target {name!r}: derived point {_fmt_point(p)} has |grad f| = {mpmath.nstr(gn, 6)} at 60 digits; "
                "the derivation failed"
            )
        ev = t.numeric.eigenvalues(p)
        recs.append((p, ev, minima.classify_eigenvalues(ev), t.numeric.value(p)))
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
            StationaryPoint(tuple(p), minima.exact_value_at(t.expr, t.variables, p), k, tuple(float(x) for x in ev))
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
    t.stationary = tuple(stationary)
    t.minimizers = tuple(s.point for s in stationary if s.kind == "global_min")
    t.f_star = stationary[0].value
    for p in t.minimizers:
        check_differentiable(t, p)
    if t.lower_bound is not None:
        diff = sympy.N(t.f_star - t.lower_bound, 40)
        if abs(diff) > 1e-30:
            raise TargetError(
                f"target {name!r}: f* = {float(sympy.N(t.f_star, 15)):.10g} differs from the stated lower bound "
                f"{t.lower_bound}; the global claim does not hold"
            )


def default_domain(t, starts, basin):
    """The box around every stationary point, the given starts and the given basin, widened by 2 on
    each side and rounded out to integers."""
    coords = [[float(minima.to_mpf(c)) for c in s.point] for s in t.stationary]
    coords += [[float(minima.to_mpf(c)) for c in p] for p in starts or ()]
    if basin is not None:
        coords += [[float(lo) for lo, _ in basin], [float(hi) for _, hi in basin]]
    out = []
    for i in range(t.dim):
        lo = math.floor(min(c[i] for c in coords)) - 2
        hi = math.ceil(max(c[i] for c in coords)) + 2
        out.append((sympy.Integer(lo), sympy.Integer(hi)))
    return tuple(out)


def default_basin(t):
    xs = t.minimizers[0]
    xn = [float(minima.to_mpf(c)) for c in xs]
    others = [s.numeric() for s in t.stationary if s.point != xs]
    if "convex" in t.tags or not others:
        return t.domain
    dist = min(max(abs(a - b) for a, b in zip(xn, o)) for o in others)
    r = sympy.Rational(max(1, int(0.4 * dist * 1024)), 1024)  # dyadic: exact in every float dtype
    out = []
    for c, (lo, hi) in zip(xs, t.domain):
        out.append((max(lo, sympy.nsimplify(sympy.floor(c * 1024)) / 1024 - r), min(hi, sympy.ceiling(c * 1024) / 1024 + r)))
    return tuple(out)


def given_starts(t, start):
    if start is None:
        return None
    if isinstance(start, (int, float, sympy.Expr, str)):
        start = [(start,)] if t.dim == 1 else [start]
    elif len(start) and not isinstance(start[0], (list, tuple, sympy.Tuple)):
        start = [start]
    if not len(start):
        raise TargetError(f"target {t.name!r}: start= is empty; give a point or omit it for the default")
    return tuple(parse_point(t, s, "start") for s in start)


def default_starts(t):
    # 3/4 of the way from the basin's centre to its upper corner, on a dyadic grid
    return (tuple(sympy.floor(((lo + hi) / 2 + 3 * (hi - lo) / 8) * 64) / 64 for lo, hi in t.basin),)


def check_consistent(t):
    """The minimizers and starts lie in the domain, the basin inside it and around a global minimizer,
    and f is finite in float64 at the starts and minimizers (an optimizer starts and ends there)."""
    where = f"the domain {_fmt_box(t.domain)}"
    for p in t.minimizers:
        if not _inside(p, t.domain):
            raise TargetError(
                f"target {t.name!r}: the global minimizer {_fmt_point(p)} lies outside {where}; widen the domain"
            )
    if not all(dlo <= lo and hi <= dhi for (lo, hi), (dlo, dhi) in zip(t.basin, t.domain)):
        raise TargetError(
            f"target {t.name!r}: the basin {_fmt_box(t.basin)} is not inside {where}; shrink the basin"
        )
    if not any(_inside(p, t.basin) for p in t.minimizers):
        raise TargetError(
            f"target {t.name!r}: the basin {_fmt_box(t.basin)} holds none of the global minimizers "
            f"{', '.join(_fmt_point(p) for p in t.minimizers)}; move it around one"
        )
    for p in t.start:
        if not _inside(p, t.domain):
            raise TargetError(
                f"target {t.name!r}: the start {_fmt_point(p)} lies outside {where}; widen the domain or move "
                "the start"
            )
    for what, pts in (("start", t.start), ("minimizer", t.minimizers)):
        for p in pts:
            v = t.numeric.value(p)
            if mpmath.im(v) != 0 or not mpmath.isfinite(v) or abs(v) > _FLOAT64_MAX:
                raise TargetError(
                    f"target {t.name!r}: f at the {what} {_fmt_point(p)} is {mpmath.nstr(v, 6)}, not a finite "
                    f"real float64; move the {what} or rescale the expression"
                )
    for p in t.start:  # an optimizer's first step reads the gradient there
        try:
            gn = t.numeric.gradient_norm(p)
        except (TypeError, ValueError, ArithmeticError):
            gn = mpmath.inf
        if not gn < _FLOAT64_MAX:
            raise TargetError(
                f"target {t.name!r}: |grad f| at the start {_fmt_point(p)} is {mpmath.nstr(gn, 6)}, not a finite "
                "float64; move the start or rescale the expression"
            )
