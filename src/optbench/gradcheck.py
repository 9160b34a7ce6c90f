"""Autograd against sympy: value, gradient and Hessian of a target's torch callable at exact points.

Tolerances are *relative to a running-error scale*, not to the value itself. Evaluating
``f = sum(t_i)`` in floating point commits an error of about ``n * eps * sum(|t_i|)``, so the scale of
an expression at a point is computed by :func:`error_scale` (every sum replaced by the sum of the
magnitudes of its terms, with the usual first-order propagation through functions). A result is
accepted when ``|got - exact| <= RTOL[dtype] * error_scale`` (plus the dtype's smallest normal
number, :func:`underflow_floor`, below which no float has relative accuracy). This is what makes one tolerance per
dtype honest both for Rosenbrock at (-1.2, 1) (large, cancelling terms) and for a gradient that is
exactly zero at a minimizer. Points are dyadic rationals, so the input itself is exact in every dtype.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Sequence

import sympy as sp
import torch

# Allowed error, in units of the error scale. float64: eps = 2.2e-16; the deepest expressions in the
# catalogue (Goldstein-Price, degree 8, ~60 operations) stay within ~1e3 eps of the running-error
# scale, so 1e-12 leaves headroom without hiding a wrong constant (which shows as O(1) relative error).
# float32: eps = 1.2e-7; the same operation count gives ~1e-4; transcendental functions in torch's
# float32 kernels (sin/cos/exp of arguments up to ~30) add a few ulps of the argument.
RTOL = {torch.float64: 1e-12, torch.float32: 2e-4, torch.bfloat16: 5e-2, torch.float16: 5e-3}
RTOL_REASON = {  # the reason for each tolerance, quoted in every failure message
    torch.float64: "float64 eps 2.2e-16; the deepest catalogue expressions (~60 operations) stay within ~1e3 eps",
    torch.float32: "float32 eps 1.2e-7; ~60 operations give ~1e-4, and torch's float32 sin/cos/exp add a few ulps",
    torch.bfloat16: "bfloat16 eps 7.8e-3; a few operations compound it",
    torch.float16: "float16 eps 9.8e-4; a few operations compound it",
}
QUANTITIES = ("value", "gradient", "hessian")


def error_scale(expr: sp.Expr, subs: dict) -> float:
    """First-order running-error magnitude of ``expr`` at ``subs`` (always >= |expr|)."""

    def mag(e: sp.Expr) -> float:
        if e.is_Number or e.is_NumberSymbol:
            return abs(float(e))
        if e.is_Symbol:
            return abs(float(subs[e]))
        if e.is_Add:
            return sum(mag(a) for a in e.args)
        if e.is_Mul:
            return math.prod(mag(a) for a in e.args)
        if e.is_Pow:
            base, ex = e.args
            if ex.is_Number:
                n = float(ex)
                b = abs(float(base.xreplace(subs)))
                mb = mag(base)
                if n > 0 and float(n).is_integer():
                    return math.inf if mb > 1e300 ** (1 / n) else mb**n
                # x**p for fractional/negative p: |p| |x|^(p-1) err(x) + |x|^p
                return b**n + abs(n) * (b ** (n - 1) if b else 0.0) * mb
            return abs(float(e.xreplace(subs))) * (1.0 + mag(ex) * (1.0 + abs(float(sp.log(base.xreplace(subs))))))
        if isinstance(e, sp.Function) and len(e.args) == 1:
            # f(u) carries its own rounding (|f(u)|) plus the propagated error |f'(u)| * err(u).
            (u,) = e.args
            val = abs(float(e.xreplace(subs)))
            if not u.free_symbols:
                return val
            d = sp.Dummy("u")
            deriv = abs(float(e.func(d).diff(d).xreplace({d: u.xreplace(subs)})))
            return val + deriv * mag(u)
        return abs(float(e.xreplace(subs)))

    expr = sp.sympify(expr)
    return max(mag(expr), abs(float(expr.xreplace(subs))))


@dataclass(frozen=True)
class Mismatch:
    """One disagreement between the callable under test and sympy, phrased for a failure message."""

    what: str  # "value" | "gradient" | "hessian"
    point: tuple
    expected: object
    got: object
    max_abs_err: float
    allowed: float

    def __str__(self) -> str:
        pt = "(" + ", ".join(_fmt(p) for p in self.point) + ")"
        return (
            f"{self.what} at x = {pt}: expected {_fmt(self.expected)}, got {_fmt(self.got)} "
            f"(max |err| = {self.max_abs_err:.3g}, allowed {self.allowed:.3g})"
        )


def _fmt(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, torch.Tensor):
        return _fmt(v.tolist())
    try:
        return f"{float(v):.8g}"
    except (TypeError, ValueError):
        return str(v)


def dyadic_points(domain: Sequence[tuple], n: int, seed: int, *, denominator: int = 64) -> list[tuple[Fraction, ...]]:
    """``n`` points with coordinates k/denominator inside ``domain`` (exact in float32 and float64)."""
    rng = random.Random(seed)
    pts = []
    for _ in range(n):
        coords = []
        for lo, hi in domain:
            lo_k = math.ceil(float(lo) * denominator)
            hi_k = math.floor(float(hi) * denominator)
            coords.append(Fraction(rng.randint(lo_k, hi_k), denominator))
        pts.append(tuple(coords))
    return pts


class BadOutput(ValueError):
    """The callable under test returned something that is not one value per point."""


class SubjectError(Exception):
    """The callable under test, or its backward, raised ``original`` (not this module's own code)."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(f"{type(original).__name__}: {original}")
        self.original = original


def autograd_derivatives(fn: Callable, x: torch.Tensor, order: int = 2) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """f(x), grad f(x) (``order >= 1``) and the Hessian by double backward (``order == 2``, through
    create_graph), for x of shape (d,). The input always requires grad, as it does in training."""
    x = x.detach().clone().requires_grad_(True)
    value = fn(x)
    if not isinstance(value, torch.Tensor) or value.shape != ():
        got = f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
        raise BadOutput(f"returned {got} for an input of shape {tuple(x.shape)}; a target returns one value per "
                        f"point (shape ())")
    if order == 0:
        return value.detach(), None, None
    (grad,) = torch.autograd.grad(value, x, create_graph=order >= 2)
    if order == 1:
        return value.detach(), grad.detach(), None
    rows = []
    for i in range(x.numel()):
        if grad[i].requires_grad:
            (row,) = torch.autograd.grad(grad[i], x, retain_graph=True, allow_unused=True)
            rows.append(torch.zeros_like(x) if row is None else row)
        else:  # backward produced a gradient with no graph: its second derivative is lost
            rows.append(torch.zeros_like(x))
    return value.detach(), grad.detach(), torch.stack(rows).detach()


@functools.lru_cache(maxsize=256)
def derivative_exprs(expr: sp.Expr, variables: tuple) -> tuple[list, list]:
    """The gradient and Hessian of ``expr`` by ``sympy.diff`` (unexpanded: the error scale follows the
    expression as written), once per target."""
    g_exprs = [sp.diff(expr, s) for s in variables]
    return g_exprs, [[sp.diff(g, s) for s in variables] for g in g_exprs]


def compare_at(target, point: Sequence, dtype: torch.dtype, device: str | torch.device, *, fn: Callable | None = None,
               what: Sequence[str] = QUANTITIES) -> list[Mismatch]:
    """Compare ``fn`` (default: the target's callable under test) with sympy at one exact point."""
    return compare_point(target, point, dtype, device, fn=fn, what=what)[0]


def compare_point(target, point: Sequence, dtype: torch.dtype, device: str | torch.device, *,
                  fn: Callable | None = None, what: Sequence[str] = QUANTITIES) -> tuple[list[Mismatch], str | None]:
    """(mismatches, None), or ([], reason) when the exact quantities at the point are beyond the dtype's
    range (their running-error scale exceeds its largest finite number): no kernel can be judged there."""
    fn = fn or target
    syms = tuple(target.variables)
    subs = {s: sp.Rational(Fraction(p).numerator, Fraction(p).denominator) for s, p in zip(syms, point)}
    rtol = RTOL[dtype]
    big = torch.finfo(dtype).max
    floor = underflow_floor(dtype)
    g_exprs, h_exprs = derivative_exprs(target.expr, syms)
    exprs = {"value": [target.expr], "gradient": g_exprs, "hessian": [h for row in h_exprs for h in row]}
    pt = "(" + ", ".join(_fmt(p) for p in point) + ")"
    const = largest_constant(target.expr)
    if not const < big:
        return [], f"the expression's constant {const:.3g} is beyond {dtype_label(dtype)}'s range ({big:.3g})"
    exact = {q: [e.xreplace(subs) for e in exprs[q]] for q in what}
    scales = {}
    for q in what:
        if not all(_finite_real(v) for v in exact[q]):  # a pole, or sqrt/log of a negative number
            return [], f"the exact {q} at x = {pt} is not a finite real number (is the domain where f is defined?)"
        scales[q] = [error_scale(e, subs) for e in exprs[q]]
        if not all(sc < big for sc in scales[q]):
            return [], f"the exact {q} at x = {pt} is beyond {dtype_label(dtype)}'s range ({big:.3g})"
    order = 2 if "hessian" in what else (1 if "gradient" in what else 0)
    x = torch.tensor([float(p) for p in point], dtype=dtype, device=device)
    try:
        value, grad, hess = autograd_derivatives(fn, x, order)
    except BadOutput:
        raise
    except Exception as exc:  # the callable under test (forward or backward) raised
        raise SubjectError(exc) from exc

    out: list[Mismatch] = []
    if "value" in what:
        exact_f = exact["value"][0]
        allowed = rtol * scales["value"][0] + floor
        err = abs(float(value) - float(exact_f))
        if not err <= allowed:
            out.append(Mismatch("value", tuple(point), exact_f, float(value), err, allowed))
    if "gradient" in what:
        g_exact = exact["gradient"]
        g_allowed = [rtol * sc + floor for sc in scales["gradient"]]
        g_err = [abs(float(a) - float(b)) for a, b in zip(grad.tolist(), g_exact)]
        if not all(e <= a for e, a in zip(g_err, g_allowed)):
            out.append(Mismatch("gradient", tuple(point), g_exact, grad.tolist(), max(g_err), max(g_allowed)))
    if "hessian" in what:
        d = len(syms)
        h_exact = [exact["hessian"][i * d:(i + 1) * d] for i in range(d)]
        h_allowed = [[rtol * scales["hessian"][i * d + j] + floor for j in range(d)] for i in range(d)]
        got_h = hess.tolist()
        h_err = [[abs(float(a) - float(b)) for a, b in zip(r1, r2)] for r1, r2 in zip(got_h, h_exact)]
        if not all(e <= a for re, ra in zip(h_err, h_allowed) for e, a in zip(re, ra)):
            out.append(
                Mismatch("hessian", tuple(point), h_exact, got_h, max(max(r) for r in h_err), max(max(r) for r in h_allowed))
            )
    return out, None


def _finite_real(v: sp.Expr) -> bool:
    if v.is_Rational:
        return True
    if v.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        return False
    num = complex(sp.N(v, 15))
    return num.imag == 0 and math.isfinite(num.real)


@functools.lru_cache(maxsize=256)
def largest_constant(expr: sp.Expr) -> float:
    """The largest |number| written in the expression: a float evaluation in a dtype whose range it
    exceeds turns it into inf (and inf * 0 into NaN) whatever the point."""
    vals = [abs(float(sp.N(n, 15))) for n in expr.atoms(sp.Number, sp.NumberSymbol)]
    return max(vals, default=0.0)


def underflow_floor(dtype: torch.dtype) -> float:
    """The absolute error every comparison also allows: the dtype's smallest normal number. Below it a
    result is subnormal or flushed to 0 and has no relative accuracy left (1e-320 * y has a float32
    gradient of exactly 0); it is far below anything else the tolerances allow (float64: 2.2e-308)."""
    return float(torch.finfo(dtype).tiny)


def dtype_label(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
