"""The target checks: properties of a target's definition (T) and of its torch callable (G), and the
``targets`` check plan (:data:`optbench.plan.PLANS`).

Every check is a plain function ``check(target, dtype, device)`` that returns when the property holds
and raises :class:`~optbench.verdict.CheckFailure` (property, where, diagnosis) when it does not. The
diagnosis names the point, the expected and the obtained values, the tolerance and the reason for it.
The callable under test raising is a finding of the target's ``impl``
(:class:`~optbench.verdict.SubjectRaised`); the catalogue's own compiled expression raising is
optbench's defect and is left to propagate (``run_check`` reports it as ERROR).

T checks judge the definition: the claimed minima, their classification, the domain. They are exact
(sympy, or mpmath at 60 digits; T5, T7 and T8 also evaluate the compiled expression in float64 on the
CPU), so they run once per target, with the case id ``<target>-exact``. G checks judge the callable
under test (the user's ``impl``, else the compiled expression) per dtype and device against sympy,
with ids ``<target>-<dtype>-<device>``. Nothing here imports pytest.

One job above 500 lines: the ``targets`` plan and the sixteen checks it runs, which share one set of
helpers (points, tolerances, who is blamed when the callable raises); split, the T and G checks would
import each other's helpers, or a third module of them that only they use.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
from fractions import Fraction
from typing import Any, Callable, Iterator, Sequence

import mpmath
import sympy
import torch
from torch.autograd.gradcheck import GradcheckError

from . import minima
from .devices import cuda_skip_reason, dtype_name
from .gradcheck import (RTOL, RTOL_REASON, BadOutput, SubjectError, compare_point, dyadic_points, error_scale,
                        underflow_floor)
from .loop import run_loop
from .plan import Selection
from .verdict import CheckFailure, CheckItem, NotApplicable, SubjectRaised

PROPERTIES: dict[str, str] = {
    "T1 domain": "the global minimizers and the starts lie in the domain; the basin lies in it and holds a minimizer",
    "T2 stationary": "grad f = 0 at every global minimizer (exactly at rational points; below 1e-30 at 60 digits)",
    "T3 classified": "every stationary point is stationary, and its kind is what its Hessian's eigenvalues say",
    "T4 hessian": "the Hessian at every global minimizer is positive definite (singular PSD where tagged 'psd')",
    "T5 value": "f(x*) = f* at 60 digits at every global minimizer, and the compiled expression agrees in float64",
    "T6 local minima": "every global minimizer has the value f*; every other stationary point lies strictly above it",
    "T7 sampled": "no point sampled in the domain or the basin has a value below f* (float64 evaluation)",
    "T8 compiled": "the compiled torch expression equals the exact value at sampled points (float64)",
    "T9 quadratic form": "a quadratic's exact (A, b, c) reproduces it and A is positive definite; others have none",
    "T10 separable": "for a separable transcendental target, 1-D enumeration on the box gives f* and the minimizers",
    "G1 value": "the callable under test equals sympy's exact value at exact points",
    "G2 gradient": "its autograd gradient equals sympy's exact gradient at exact points",
    "G3 hessian": "its double-backward Hessian equals sympy's exact Hessian at exact points",
    "G4 gradcheck": "torch.autograd.gradcheck and gradgradcheck agree with finite differences (float64)",
    "G5 loop gradient": "inside the five-step loop, after backward, p.grad is the symbolic gradient at the current x",
    "G6 accumulation": "without zero_grad, p.grad is the running sum of every epoch's gradient",
}

N_POINTS = 3  # sampled points per target for G1-G3; each costs one exact sympy evaluation of f, grad, Hessian
EPOCHS = 6  # G5/G6 loop length
STEP = 1e-2  # G5: lr = STEP / |grad f(x0)|, steps of ~1e-2 keep the loop near the start, inside the domain

# 60-digit arithmetic: a true zero evaluates below 1e-30 (minima.GRAD_TOL); anything else is far above.
_TOL_60 = "60-digit arithmetic: a true zero evaluates below it"


# ------------------------------------------------------------------------------------------ helpers


def _f(v: Any, digits: int = 10) -> str:
    """A number for a message: a short exact rational as it is, anything else to ~10 significant digits."""
    try:
        if isinstance(v, int):
            return str(v)
        if isinstance(v, (float, mpmath.mpf)):
            return mpmath.nstr(mpmath.mpf(v), digits)
        e = sympy.sympify(v)
        if e.is_Rational and len(str(e)) <= 24:
            return str(e)
        return mpmath.nstr(minima.to_mpf(e), digits)
    except (TypeError, ValueError, sympy.SympifyError):
        return str(v)


def _pt(point: Sequence) -> str:
    return "(" + ", ".join(_f(c) for c in point) + ")"


def _box(box) -> str:
    return " x ".join(f"[{_f(lo)}, {_f(hi)}]" for lo, hi in box)


def _inside(point, box) -> bool:
    return all(lo <= sympy.N(c, 30) <= hi for c, (lo, hi) in zip(point, box))


def _where(target, dtype: torch.dtype | None = None, device: Any = None) -> str:
    if dtype is None:
        return target.name
    return f"{target.name} {dtype_name(dtype)} {device}"


def _fail(prop: str, where: str, message: str) -> CheckFailure:
    return CheckFailure(prop, where, " ".join(message.split()))


class _Own(Exception):
    """An exception of optbench's own code raised inside a :func:`_subject` block (``original``)."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


@contextlib.contextmanager
def _subject(target, prop: str, where: str, at: str = "", *, marked_only: bool = False) -> Iterator[None]:
    """Exceptions of the callable under test inside the block are findings of the user's ``impl``
    (:class:`SubjectRaised`, a FAIL); with ``marked_only`` only those that ``compare_point`` marks as
    the callable's (:class:`SubjectError`) are, for blocks that also run optbench's own code. A
    target without ``impl`` runs optbench's compiled expression, and optbench's own exceptions
    (:class:`_Own`) are never the subject's: both propagate (``run_check`` reports ERROR)."""
    try:
        yield
    except (CheckFailure, NotApplicable):
        raise
    except _Own as exc:
        raise exc.original from None
    except BadOutput as exc:
        raise SubjectRaised(prop, where, f"the callable under test {exc}{at}") from exc
    except SubjectError as exc:
        if target.impl is None:
            raise exc.original from None
        raise _raised(prop, where, exc.original, at) from exc.original
    except Exception as exc:  # noqa: BLE001 - the subject's exception, reported with its message
        if target.impl is None or marked_only:
            raise
        raise _raised(prop, where, exc, at) from exc


def _raised(prop: str, where: str, exc: BaseException, at: str) -> SubjectRaised:
    text = " ".join(str(exc).split())
    return SubjectRaised(prop, where, f"the callable under test raised {type(exc).__name__}: {text[:300]}{at}")


def check_points(target) -> list[tuple[Fraction, ...]]:
    """Where G1-G6 look: the canonical start (where optimizers begin) rounded to the 1/64 grid, then
    N_POINTS dyadic points of the domain. Dyadic: exact in float32 and float64 inputs."""
    pts = [tuple(Fraction(round(float(c) * 64), 64) for c in target.start[0])]
    return pts + dyadic_points(target.domain, N_POINTS, seed=sum(map(ord, target.name)))


def _exact(point) -> list[sympy.Rational]:
    return [sympy.Rational(Fraction(c).numerator, Fraction(c).denominator) for c in point]


# ------------------------------------------------------------------------------------------ T checks


def check_domain(target, dtype: torch.dtype = torch.float64, device: Any = "cpu") -> None:
    """T1: minimizers and starts inside the domain; the basin inside it, around a global minimizer."""
    prop, where = "T1 domain", _where(target)
    dom = f"the domain {_box(target.domain)}"
    for p in target.minimizers:
        if not _inside(p, target.domain):
            raise _fail(prop, where, f"the global minimizer {_pt(p)} lies outside {dom}")
    for p in target.start:
        if not _inside(p, target.domain):
            raise _fail(prop, where, f"the start {_pt(p)} lies outside {dom}")
    if not all(lo >= dlo and hi <= dhi for (lo, hi), (dlo, dhi) in zip(target.basin, target.domain)):
        raise _fail(prop, where, f"the basin {_box(target.basin)} is not inside {dom}")
    if not any(_inside(p, target.basin) for p in target.minimizers):
        raise _fail(prop, where, f"the basin {_box(target.basin)} holds none of the global minimizers "
                                 f"{', '.join(_pt(p) for p in target.minimizers)}")


def check_stationary(target, dtype: torch.dtype = torch.float64, device: Any = "cpu") -> None:
    """T2: the gradient vanishes at every global minimizer (exactly, where the point is rational)."""
    prop, where = "T2 stationary", _where(target)
    for p in target.minimizers:
        if all(sympy.sympify(c).is_Rational for c in p):
            g = list(target.exact_gradient(p))
            if any(gi != 0 for gi in g):
                raise _fail(prop, where, f"at the rational global minimizer x* = {_pt(p)} the exact gradient is "
                                         f"{_pt(g)}, expected exactly 0")
        gn = target.numeric.gradient_norm(p)
        if not gn < minima.GRAD_TOL:
            raise _fail(prop, where, f"at the global minimizer x* = {_pt(p)}: |grad f| = {mpmath.nstr(gn, 6)}, expected "
                                     f"0 (allowed < {mpmath.nstr(minima.GRAD_TOL, 3)}: {_TOL_60})")


def check_classified(target, dtype: torch.dtype = torch.float64, device: Any = "cpu") -> None:
    """T3: every stationary point is stationary, and its recorded kind matches its Hessian."""
    prop, where = "T3 classified", _where(target)
    num = target.numeric
    for s in target.stationary:
        gn = num.gradient_norm(s.point)
        if not gn < minima.GRAD_TOL:
            raise _fail(prop, where, f"the stationary point {_pt(s.point)} ({s.kind}) has |grad f| = "
                                     f"{mpmath.nstr(gn, 6)}, expected 0 (allowed < {mpmath.nstr(minima.GRAD_TOL, 3)}: "
                                     f"{_TOL_60})")
        ev = num.eigenvalues(s.point)
        kind = minima.classify_eigenvalues(ev)
        ok = kind in ("local_min", "degenerate") if s.kind == "global_min" else kind == s.kind
        if not ok:
            expected = "local_min or degenerate (PSD)" if s.kind == "global_min" else s.kind
            raise _fail(prop, where, f"the stationary point {_pt(s.point)} is recorded as {s.kind}, so its Hessian "
                                     f"should classify as {expected}; got {kind} from the eigenvalues "
                                     f"{_pt(ev)} (relative zero {mpmath.nstr(minima.EIG_TOL, 3)} x max |eigenvalue|)")


def check_hessian(target, dtype: torch.dtype = torch.float64, device: Any = "cpu") -> None:
    """T4: the Hessian at every global minimizer is positive definite, or singular PSD where the target
    declares ``psd`` (an eigenvalue below EIG_TOL x the largest |eigenvalue| counts as 0 at 60 digits)."""
    prop, where = "T4 hessian", _where(target)
    tol = minima.EIG_TOL
    for p in target.minimizers:
        ev = target.numeric.eigenvalues(p)
        scale = max(abs(e) for e in ev)
        low = min(ev)
        if "psd" in target.tags:
            if not (low > -tol * scale and abs(low) <= tol * scale):
                raise _fail(prop, where, f"tagged 'psd', so the Hessian at x* = {_pt(p)} should be singular PSD "
                                         f"(smallest eigenvalue 0 within {mpmath.nstr(tol, 3)} x {mpmath.nstr(scale, 6)}); "
                                         f"got eigenvalues {_pt(ev)}")
        elif not low > tol * scale:
            raise _fail(prop, where, f"the Hessian at x* = {_pt(p)} is not positive definite: eigenvalues {_pt(ev)}, the "
                                     f"smallest must exceed {mpmath.nstr(tol, 3)} x max |eigenvalue| = "
                                     f"{mpmath.nstr(tol * scale, 3)} (a relative zero at 60 digits); tag the target "
                                     f"'psd' if it is singular by design")


def check_value(target, dtype: torch.dtype = torch.float64, device: Any = "cpu") -> None:
    """T5: f(x*) = f* at 60 digits, and the compiled expression gives f* in float64 within rounding."""
    prop, where = "T5 value", _where(target)
    num = target.numeric
    with mpmath.workdps(minima.DPS):
        fstar = minima.to_mpf(target.f_star)
        allowed = minima.VALUE_TOL * max(1, abs(fstar))
        for p in target.minimizers:
            v = num.value(p)
            if not abs(v - fstar) < allowed:
                raise _fail(prop, where, f"at the global minimizer x* = {_pt(p)}: f = {mpmath.nstr(v, 20)}, expected "
                                         f"f* = {mpmath.nstr(fstar, 20)} (|err| = {mpmath.nstr(abs(v - fstar), 3)}, "
                                         f"allowed {mpmath.nstr(allowed, 3)}: two equal values agree to 30 digits at 60)")
    # rounding only: ~1e-15 relative per float64 operation
    vals = target.reference(target.x_star(torch.float64)).tolist()
    want = float(fstar)
    for p, got in zip(target.minimizers, vals):
        tol = 1e-12 + 1e-12 * abs(want)
        if not abs(got - want) <= tol:
            raise _fail(prop, where, f"the compiled expression at x* = {_pt(p)} gives {got!r} in float64, expected "
                                     f"f* = {want!r} (|err| = {abs(got - want):.3g}, allowed 1e-12 + 1e-12 |f*| = "
                                     f"{tol:.3g}: float64 rounding only, ~1e-15 relative per operation)")


def check_local_minima(target, dtype: torch.dtype = torch.float64, device: Any = "cpu") -> None:
    """T6: the global minima share the value f*; every other stationary point lies strictly above it."""
    prop, where = "T6 local minima", _where(target)
    fstar = float(sympy.N(target.f_star, 30))
    tol = max(1e-14 * abs(fstar), 1e-14)  # the 30-digit values rounded to float64
    for s in target.stationary:
        v = float(sympy.N(s.value, 30))
        if s.kind == "global_min":
            if not abs(v - fstar) <= tol:
                raise _fail(prop, where, f"the global minimum at {_pt(s.point)} has f = {v!r}, expected f* = {fstar!r} "
                                         f"(allowed {tol:.3g}: float64 rounding of 30-digit values)")
        elif not v > fstar:
            raise _fail(prop, where, f"the {s.kind} at {_pt(s.point)} has f = {v!r}, expected strictly above "
                                     f"f* = {fstar!r}: it would be a global minimum")


def check_sampled(target, dtype: torch.dtype = torch.float64, device: Any = "cpu") -> None:
    """T7: 4096 uniform points of the domain and 4096 of the basin (densest where the minimum is): none
    has a float64 value below f* beyond evaluation error, and none is NaN."""
    prop, where = "T7 sampled", _where(target)
    g = torch.Generator().manual_seed(0)
    pts = []
    for box in (target.domain, target.basin):
        lo = torch.tensor([float(a) for a, _ in box], dtype=torch.float64)
        hi = torch.tensor([float(b) for _, b in box], dtype=torch.float64)
        pts.append(lo + (hi - lo) * torch.rand(4096, target.dim, generator=g, dtype=torch.float64))
    x = torch.cat(pts)
    vals = target.reference(x)
    fstar = float(sympy.N(target.f_star, 30))
    nan = torch.isnan(vals)
    if bool(nan.any()):
        i = int(nan.nonzero()[0, 0])
        raise _fail(prop, where, f"f is NaN at {int(nan.sum())} of {len(vals)} sampled points, e.g. x = "
                                 f"{_pt(x[i].tolist())}, so f* = {fstar!r} cannot be confirmed there: the expression is "
                                 f"not real or not defined on all of the domain; shrink the domain")
    # float64 evaluation error: ~1e-15 relative to the magnitude of the terms; allow 1e-9 (1 + |f*|)
    tol = 1e-9 * (1 + abs(fstar))
    i = int(torch.argmin(vals))
    low = float(vals[i])
    if not low >= fstar - tol:
        raise _fail(prop, where, f"at the sampled x = {_pt(x[i].tolist())} f = {low!r}, expected >= f* = {fstar!r} "
                                 f"(below by {fstar - low:.3g}, allowed {tol:.3g} = 1e-9 (1 + |f*|): float64 evaluation "
                                 f"error); the claimed global minimum is not global on the domain")


def check_compiled(target, dtype: torch.dtype = torch.float64, device: Any = "cpu") -> None:
    """T8: optbench's compiled expression equals the exact value at 4 sampled rational points (float64)."""
    prop, where = "T8 compiled", _where(target)
    pts = target.sample_points(4, seed=1)
    x = torch.tensor([[float(c) for c in p] for p in pts], dtype=torch.float64)
    got = target.reference(x).tolist()
    judged = 0
    for p, g in zip(pts, got):
        exact = complex(sympy.N(target.exact_value(p), 30))
        if exact.imag != 0 or not abs(exact.real) < torch.finfo(torch.float64).max:
            continue  # f is beyond float64 (or not real) there: nothing a float64 evaluation could match
        judged += 1
        want = exact.real
        tol = 1e-11 + 1e-11 * abs(want)  # float64 rounding of the expression's operations, with headroom
        if not abs(g - want) <= tol:
            raise _fail(prop, where, f"at x = {_pt(p)} the compiled expression gives {g!r}, expected {want!r} "
                                     f"(|err| = {abs(g - want):.3g}, allowed 1e-11 + 1e-11 |f| = {tol:.3g}: float64 "
                                     f"rounding)")
    if not judged:
        raise NotApplicable(f"f is beyond float64's range or not real at every sampled point, e.g. x = {_pt(pts[0])}")


def check_quadratic_form(target, dtype: torch.dtype = torch.float64, device: Any = "cpu") -> None:
    """T9: for a quadratic, 1/2 x^T A x - b^T x + c is exactly the expression and A is positive definite."""
    prop, where = "T9 quadratic form", _where(target)
    qf = target.quadratic_form()
    if target.kind != "quadratic":
        if qf is not None:
            raise _fail(prop, where, f"a {target.kind} target must have no quadratic form; got {qf}")
        return
    A, b, c = qf
    xv = sympy.Matrix(target.variables)
    rest = sympy.expand((xv.T * A * xv)[0, 0] / 2 - (b.T * xv)[0, 0] + c - target.expr)
    if rest != 0:
        raise _fail(prop, where, f"1/2 x^T A x - b^T x + c differs from the expression by {rest} (expected exactly 0)")
    if not A.is_positive_definite:
        raise _fail(prop, where, f"A = {A.tolist()} is not positive definite (eigenvalues {list(A.eigenvals())})")


_GLOBAL_CLAIM = "its global claim rests on its stated lower bound, where it has one, and on T7's sampling"


def check_separable(target, dtype: torch.dtype = torch.float64, device: Any = "cpu") -> None:
    """T10: for f = sum_i g_i(x_i) the box minimum is the sum of the 1-D minima, each the lowest stationary
    point or endpoint of g_i (stationary points enumerated from a grid, refined at 50 digits): the
    global claim checked independently of the stated lower bound."""
    prop, where = "T10 separable", _where(target)
    try:
        res = minima.separable_global_min(target.expr, target.variables, target.domain)
    except (ValueError, ArithmeticError, TypeError) as exc:  # a pole, a complex value or an overflow on the grid
        raise NotApplicable(f"1-D enumeration cannot evaluate {target.name} on its box ({type(exc).__name__}: "
                            f"{' '.join(str(exc).split())[:120]}); {_GLOBAL_CLAIM}")
    if res is None:
        raise NotApplicable(f"{target.name} is not separable; {_GLOBAL_CLAIM}")
    low, argmins = res
    with mpmath.workdps(minima.DPS):
        fstar = minima.to_mpf(target.f_star)
        allowed = minima.VALUE_TOL * max(1, abs(low))
        if not abs(low - fstar) < allowed:
            raise _fail(prop, where, f"the box minimum by 1-D enumeration is {mpmath.nstr(low, 20)}, expected "
                                     f"f* = {mpmath.nstr(fstar, 20)} (allowed {mpmath.nstr(allowed, 3)} at 60 digits)")
    mins = {tuple(float(sympy.N(c, 30)) for c in p) for p in target.minimizers}
    box_mins = {tuple(float(sympy.N(c, 30)) for c in p) for p in itertools.product(*argmins)}
    if box_mins != mins:
        raise _fail(prop, where, f"1-D enumeration finds the minimizers {sorted(box_mins)}, expected the target's "
                                 f"{sorted(mins)}")


# ------------------------------------------------------------------------------------------ G checks


def _autograd(target, dtype: torch.dtype, device: Any, prop: str, quantity: str) -> None:
    where = _where(target, dtype, device)
    problems, skipped = [], []
    for pt in check_points(target):
        point = _exact(pt)
        with _subject(target, prop, where, f" at x = {_pt(point)}", marked_only=True):
            mismatches, beyond = compare_point(target, point, dtype, device, what=(quantity,))
        problems += mismatches
        if beyond:
            skipped.append(beyond)
    if problems:
        reason = (f"tolerance: RTOL[{dtype_name(dtype)}] = {RTOL[dtype]:g} x the running-error scale of the exact "
                  f"expression at the point ({RTOL_REASON[dtype]})")
        raise _fail(prop, where, "; ".join(map(str, problems)) + f"; {reason}")
    if len(skipped) == len(check_points(target)):
        raise NotApplicable(f"no sampled point can be judged in {dtype_name(dtype)}: {skipped[0]}")


def check_autograd_value(target, dtype: torch.dtype = torch.float64, device: Any = "cpu") -> None:
    """G1: the callable's value equals sympy's at the start and N_POINTS dyadic points of the domain."""
    _autograd(target, dtype, device, "G1 value", "value")


def check_autograd_gradient(target, dtype: torch.dtype = torch.float64, device: Any = "cpu") -> None:
    """G2: autograd's gradient equals sympy's exact gradient at the same points."""
    _autograd(target, dtype, device, "G2 gradient", "gradient")


def check_autograd_hessian(target, dtype: torch.dtype = torch.float64, device: Any = "cpu") -> None:
    """G3: the Hessian by double backward equals sympy's exact Hessian at the same points."""
    _autograd(target, dtype, device, "G3 hessian", "hessian")


def _in_float64_range(target, point) -> bool:
    """The forward pass (its running-error scale: intermediate terms included) and the gradient (at 60
    digits) stay below 1e300: finite differences need headroom below float64's 1.8e308."""
    subs = dict(zip(target.variables, _exact(point)))
    try:
        return bool(error_scale(target.expr, subs) < 1e300 and target.numeric.gradient_norm(_exact(point)) < 1e300)
    except (TypeError, ValueError, ArithmeticError):
        return False


FD_STEP = 1e-6  # torch.autograd.gradcheck's default eps


def _fd_truncation(target, point) -> tuple:
    """(max_j |d^3 f / dx_j^3|, max_ij |d_i d^3 f / dx_j^3|) at the point: the leading truncation terms
    of central differences. From the target's exact Hessian at 60 digits (compiled once, with the
    target) by central differences of step 1e-20, which at 60 digits are exact to ~20 digits."""
    h = mpmath.mpf("1e-20")
    hess = target.numeric._h
    d = target.dim
    with mpmath.workdps(minima.DPS):
        x = [mpmath.mpf(c.numerator) / c.denominator for c in point]
        h0 = hess(*x)
        t3 = t4 = mpmath.mpf(0)
        for j in range(d):
            hp = hess(*[c + h if k == j else c for k, c in enumerate(x)])
            hm = hess(*[c - h if k == j else c for k, c in enumerate(x)])
            t3 = max(t3, abs((hp[j][j] - hm[j][j]) / (2 * h)))
            for i in range(d):
                t4 = max(t4, abs((hp[i][j] - 2 * h0[i][j] + hm[i][j]) / h**2))
    return t3, t4


def _fd_resolvable(target, point, order: int) -> bool:
    """Whether central differences with h = FD_STEP resolve the derivative at the point: their
    truncation error h^2/6 |d^3 f/dx_j^3| (gradcheck) or h^2/6 |d_i d^3 f/dx_j^3| (gradgradcheck,
    whose random grad_outputs lie in [-1, 1]) stays within half the smallest tolerance the check
    allows (atol 1e-5 resp. 1e-4). Otherwise a disagreement would be the method's, not the backward's:
    exp(1e6 x) at 0 has the derivative 1e6 and the central difference 1.18e6."""
    try:
        t3, t4 = _fd_truncation(target, point)
    except (TypeError, ValueError, ArithmeticError):
        return False
    worst, budget = (t3, 0.5e-5) if order == 1 else (t4, 0.5e-4)
    return bool(FD_STEP**2 / 6 * worst <= budget)


def check_gradcheck(target, dtype: torch.dtype = torch.float64, device: Any = "cpu") -> dict:
    """G4: ``torch.autograd.gradcheck`` and ``gradgradcheck`` (central differences, h = 1e-6) on the
    sampled points batched as (n, d): float64 only, as torch requires. Finite differences lose
    ~eps * |output| / h = 2.2e-10 |output| to round-off, so the absolute tolerance grows with the
    output's magnitude (the ellipsoid's gradient reaches 1e6): 1e-9 x scale is 5x that round-off. This
    cross-checks autograd with a method that shares no code with sympy or the backward. Points where
    the values leave float64's range, or where h = 1e-6 is too coarse for the function (its truncation
    error alone could use up the tolerance), are not used; the returned data counts the points used."""
    prop, where = "G4 gradcheck", _where(target, dtype, device)
    pts = [p for p in check_points(target) if _in_float64_range(target, p)]
    sets = {order: [p for p in pts if _fd_resolvable(target, p, order)] for order in (1, 2)}
    if not sets[1] and not sets[2]:
        raise NotApplicable(f"central differences with h = {FD_STEP:g} cannot resolve the derivatives of "
                            f"{target.name} at any sampled point (values beyond float64, or a truncation error "
                            f"h^2/6 |f'''| beyond the tolerance)")
    for order, name, fn in ((1, "gradcheck", torch.autograd.gradcheck),
                            (2, "gradgradcheck", torch.autograd.gradgradcheck)):
        if not sets[order]:
            continue
        x = torch.tensor([[float(c) for c in p] for p in sets[order]], dtype=dtype, device=device).requires_grad_(True)
        at = f" at the points {', '.join(_pt(p) for p in sets[order])}"
        with _subject(target, prop, where, at):
            value = target(x)
            if not isinstance(value, torch.Tensor) or value.shape != x.shape[:1]:
                got = f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
                raise SubjectRaised(prop, where, f"the callable under test returned {got} for a batch of shape "
                                                 f"{tuple(x.shape)}; expected shape {tuple(x.shape[:1])} (one value "
                                                 f"per row)")
            (grad,) = torch.autograd.grad(value.sum(), x)
        if order == 1:
            scale = max(1.0, float(value.detach().abs().max()))
            atol, rtol, atol_text = 1e-5 + 1e-9 * scale, 1e-4, f"1e-5 + 1e-9 x max|f| ({scale:.3g})"
        else:
            scale = max(1.0, float(grad.abs().max()))
            atol, rtol, atol_text = 1e-4 + 1e-9 * scale, 1e-3, f"1e-4 + 1e-9 x max|grad f| ({scale:.3g})"
        with _subject(target, prop, where, at):
            try:
                fn(target, (x,), eps=FD_STEP, atol=atol, rtol=rtol)
            except GradcheckError as exc:
                raise _fail(prop, where, f"torch.autograd.{name}{at}: {_gradcheck_text(exc)} (numerical = central "
                                         f"differences with h = 1e-6 = expected, analytical = the backward = got; "
                                         f"atol = {atol_text} = {atol:.3g}, rtol = {rtol:g}: finite-difference "
                                         f"round-off is ~2.2e-10 x |output|)") from None
    return {"points": len(check_points(target)), "gradcheck_points": len(sets[1]),
            "gradgradcheck_points": len(sets[2])}


def _gradcheck_text(exc: BaseException, keep: int = 500) -> str:
    """torch's multi-line GradcheckError as one line, each of its numerical/analytical tensors clipped."""
    text = " ".join(str(exc).split())
    head, sep, rest = text.partition("numerical:")
    if not sep:
        return text[: 2 * keep]
    num, sep2, ana = rest.partition("analytical:")
    clip = lambda t: t if len(t) <= keep else t[:keep] + " ...]"  # noqa: E731
    return f"{head}numerical: {clip(num.strip())}" + (f" analytical: {clip(ana.strip())}" if sep2 else "")


def _symbolic_grad(target, x: torch.Tensor) -> tuple[list[float], dict]:
    """The exact gradient at the float point the optimizer actually reached (as exact rationals);
    components beyond float64 come back as +-inf."""
    subs = {s: sympy.Rational(float(v)) for s, v in zip(target.variables, x.tolist())}
    out = []
    for g in target.gradient:
        v = g.xreplace(subs)
        try:
            out.append(float(v))
        except OverflowError:
            out.append(math.copysign(math.inf, v))
    return out, subs


def check_loop_gradient(target, dtype: torch.dtype = torch.float64, device: Any = "cpu") -> None:
    """G5: inside the five-step loop (SGD, EPOCHS epochs from the start), after backward, p.grad is the
    symbolic gradient at the current x, within RTOL[dtype] x the running-error scale."""
    prop, where = "G5 loop gradient", _where(target, dtype, device)
    start = check_points(target)[0]
    x = torch.tensor([float(c) for c in start], dtype=dtype, device=device, requires_grad=True)
    g0 = max(1.0, max(abs(v) for v in _symbolic_grad(target, x.detach().cpu())[0]))
    opt = torch.optim.SGD([x], lr=STEP / g0)
    mismatches = []

    big, floor = torch.finfo(dtype).max, underflow_floor(dtype)
    beyond: list[int] = []

    def check(epoch, loss):
        try:
            _compare(epoch)
        except Exception as exc:  # optbench's own code runs inside the subject's loop: keep it apart
            raise _Own(exc) from exc

    def _compare(epoch):
        expected, subs = _symbolic_grad(target, x.detach().cpu())
        allowed = [RTOL[dtype] * error_scale(g, subs) + floor for g in target.gradient]
        if not all(abs(a) < big and tol < big for a, tol in zip(expected, allowed)):
            beyond.append(epoch)  # the exact gradient is beyond the dtype's range here: nothing to compare
            return
        if x.grad is None:
            mismatches.append(f"epoch {epoch}: p.grad is None after backward (the backward gave x no gradient)")
            return
        got = x.grad.detach().cpu().tolist()
        if any(not abs(a - b) <= tol for a, b, tol in zip(got, expected, allowed)):
            mismatches.append(f"epoch {epoch}: x = {_pt(x.detach().cpu().tolist())}, expected grad {_pt(expected)}, "
                              f"got {_pt(got)} (allowed {_pt(allowed)})")

    with _subject(target, prop, where, f" in the loop started at x = {_pt(start)}"):
        traj = run_loop(lambda: target(x), [x], opt, EPOCHS, on_epoch=check)
    if mismatches:
        more = f"; and {len(mismatches) - 2} more epochs" if len(mismatches) > 2 else ""
        raise _fail(prop, where, "p.grad differs from the symbolic gradient: " + "; ".join(mismatches[:2]) + more
                    + f"; tolerance RTOL[{dtype_name(dtype)}] = {RTOL[dtype]:g} x the running-error scale "
                      f"({RTOL_REASON[dtype]})")
    if beyond and len(beyond) == traj.epochs_run:
        raise NotApplicable(f"the exact gradient is beyond {dtype_name(dtype)}'s range along the loop from {_pt(start)}")
    if traj.epochs_run != EPOCHS or traj.diverged:
        raise _fail(prop, where, f"the loop from x = {_pt(start)} (SGD, lr = {STEP / g0:.3g}) ran {traj.epochs_run} of "
                                 f"{EPOCHS} epochs" + (f": non-finite loss or x at epoch {traj.nonfinite_epoch}"
                                                       if traj.diverged else ""))


def check_accumulation(target, dtype: torch.dtype = torch.float64, device: Any = "cpu") -> None:
    """G6 (the seed's step 1): without zero_grad, after k epochs at lr 0 (x stays put, so every epoch adds
    the same gradient), p.grad = k x grad f(x0)."""
    prop, where = "G6 accumulation", _where(target, dtype, device)
    start = check_points(target)[0]
    x = torch.tensor([float(c) for c in start], dtype=dtype, device=device, requires_grad=True)
    opt = torch.optim.SGD([x], lr=0.0)
    seen: list[torch.Tensor] = []
    with _subject(target, prop, where, f" at x = {_pt(start)}"):
        run_loop(lambda: target(x), [x], opt, EPOCHS, zero_grad=False,
                 on_epoch=lambda e, l: seen.append(None if x.grad is None else x.grad.clone()))
    g1 = torch.tensor(_symbolic_grad(target, x.detach().cpu())[0], dtype=dtype)
    if not bool(torch.isfinite(EPOCHS * g1).all()):
        raise NotApplicable(f"{EPOCHS} x the exact gradient at {_pt(start)} is beyond {dtype_name(dtype)}'s range")
    scale = max(1.0, float(g1.abs().max()))
    for k, g in enumerate(seen, start=1):
        if g is None:
            raise _fail(prop, where, f"after {k} epochs at x = {_pt(start)}: p.grad is None after backward, expected "
                                     f"{k} x {_pt(g1.tolist())} (the backward gave x no gradient)")
        # k additions of the same float64 gradient: error <= k * eps * |g| per entry, 1e-12 relative is ample
        if not torch.allclose(g.cpu(), k * g1, rtol=1e-12, atol=1e-12 * scale * k):
            raise _fail(prop, where, f"after {k} epochs without zero_grad at x = {_pt(start)}: expected p.grad = {k} x "
                                     f"{_pt(g1.tolist())} = {_pt((k * g1).tolist())}, got {_pt(g.cpu().tolist())} "
                                     f"(allowed rtol 1e-12, atol 1e-12 x {k} x max|grad|: k float64 additions)")


# ------------------------------------------------------------------------------------------ the plan


CheckFn = Callable[..., None]
T_CHECKS: tuple[tuple[str, str, CheckFn], ...] = (  # (pytest test name in validation/test_catalogue.py, property, check)
    ("test_minimizers_start_and_basin_lie_in_the_domain", "T1 domain", check_domain),
    ("test_gradient_is_zero_at_every_minimizer", "T2 stationary", check_stationary),
    ("test_every_stationary_point_is_stationary_and_consistently_classified", "T3 classified", check_classified),
    ("test_hessian_at_minimizers_is_positive_definite_or_declared_psd", "T4 hessian", check_hessian),
    ("test_value_at_every_minimizer_is_f_star", "T5 value", check_value),
    ("test_local_minima_are_strictly_above_f_star", "T6 local minima", check_local_minima),
    ("test_no_sampled_point_beats_f_star", "T7 sampled", check_sampled),
    ("test_compiled_function_matches_the_exact_value", "T8 compiled", check_compiled),
    ("test_quadratic_form_reproduces_the_expression", "T9 quadratic form", check_quadratic_form),
    ("test_separable_transcendental_global_claim_by_1d_enumeration", "T10 separable", check_separable),
)
G_CHECKS: tuple[tuple[str, str, CheckFn, tuple[torch.dtype, ...]], ...] = (  # (.., dtypes) in test_gradients.py
    ("test_value_matches_sympy", "G1 value", check_autograd_value, (torch.float32, torch.float64)),
    ("test_gradient_matches_sympy", "G2 gradient", check_autograd_gradient, (torch.float32, torch.float64)),
    ("test_hessian_matches_sympy", "G3 hessian", check_autograd_hessian, (torch.float32, torch.float64)),
    ("test_gradcheck_and_gradgradcheck", "G4 gradcheck", check_gradcheck, (torch.float64,)),
    ("test_loop_grad_is_symbolic_gradient", "G5 loop gradient", check_loop_gradient, (torch.float64,)),
    ("test_grads_accumulate_without_zero_grad", "G6 accumulation", check_accumulation, (torch.float64,)),
)


def plan_na(prop: str, target) -> str | None:
    """A property the target does not have, known when planning."""
    if prop == "T10 separable" and target.kind != "transcendental":
        return f"{target.name} is {target.kind}: its global claim is derived exactly (T2-T6), not by enumeration"
    return None


def _bind(fn: CheckFn, target, dtype: torch.dtype, device: str) -> Callable[[], None]:
    return lambda: fn(target, dtype, device)


def target_checks(selection: Selection) -> list[CheckItem]:
    """One :class:`CheckItem` per (check, target[, dtype, device]), in a fixed order: the T checks in
    :data:`T_CHECKS` order, then the G checks; targets in selection order, float32 before float64,
    devices in selection order."""
    targets = selection.target_list()
    items: list[CheckItem] = []
    for test, prop, fn in T_CHECKS:
        for t in targets:
            items.append(CheckItem(test=test, id=f"{t.name}-exact", prop=prop, subject=t.name,
                                   run=_bind(fn, t, torch.float64, "cpu"), na=plan_na(prop, t)))
    for test, prop, fn, dtypes in G_CHECKS:
        for t in targets:
            for dt in dtypes:
                for dev in selection.devices:
                    na = cuda_skip_reason() if dev == "cuda" else None
                    items.append(CheckItem(test=test, id=f"{t.name}-{dtype_name(dt)}-{dev}", prop=prop, subject=t.name,
                                           run=_bind(fn, t, dt, dev), na=na or plan_na(prop, t), device=dev,
                                           marks=("cuda",) if dev == "cuda" else ()))
    return items
