"""The exact closed form of plain gradient descent on a quadratic.

On f(x) = 1/2 x^T A x - b^T x + c, gradient descent with a fixed lr is a linear recursion with an exact
solution:

    x_k - x* = (I - lr*A)^k (x0 - x*)          (1-D, f = a x^2 + ...: factor 1 - 2a*lr)

so every epoch of torch's SGD can be compared with an exact rational number (:func:`gd_closed_form`).
Numbers typed by a user (``lr``, start points) are taken exactly as written
(:func:`optbench.exact.exact_number`): ``0.01`` is 1/100 and ``1/3`` is one third, so the closed form is
the mathematical one; torch necessarily runs with the nearest float
(:func:`optbench.exact.round_to_dtype`), and ``optbench run``'s printed gap |x_final - closed form| is
that rounding, accumulated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import sympy

from .errors import OptbenchError
from .exact import exact_number


def _float(x: sympy.Expr | Fraction | float) -> float:
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


# --------------------------------------------------------------------------------------------------
# the closed form


class ClosedFormNotApplicable(OptbenchError):
    """The exact gradient-descent closed form does not model this run; ``str`` says why."""


@dataclass(frozen=True)
class GDClosedForm:
    """Plain gradient descent on a quadratic: ``x_k = x* + M^k (x0 - x*)`` with ``M = I - lr*A``."""

    A: sympy.Matrix
    b: sympy.Matrix
    lr: sympy.Rational
    x0: sympy.Matrix
    x_star: sympy.Matrix
    M: sympy.Matrix

    @property
    def dim(self) -> int:
        return self.A.shape[0]

    @property
    def factor(self) -> sympy.Expr | None:
        """1-D: the contraction factor ``1 - lr*A`` (= 1 - 2a*lr for f = a x^2 + ...); None for d > 1."""
        return self.M[0, 0] if self.dim == 1 else None

    @property
    def spectral_radius(self) -> float:
        """max |1 - lr*lambda| over the eigenvalues of A: < 1 converges, = 1 is the edge, > 1 diverges."""
        if self.dim == 1:
            return abs(float(self.M[0, 0]))
        return max(abs(complex(sympy.N(ev, 30))) for ev in self.M.eigenvals())

    @property
    def stability_limit(self) -> sympy.Expr:
        """GD on this quadratic converges iff 0 < lr < 2/lambda_max(A)."""
        lam = max(self.A.eigenvals(), key=lambda e: float(sympy.N(e, 30)))
        return sympy.nsimplify(2 / lam)

    def exact(self, k: int) -> tuple[sympy.Expr, ...]:
        """x_k, exactly."""
        if k < 0:
            raise OptbenchError(f"epoch {k} is negative; the closed form starts at k = 0")
        xk = self.x_star + (self.M**k) * (self.x0 - self.x_star)
        return tuple(sympy.expand(v) for v in xk)

    def exact_trajectory(self, epochs: int) -> list[tuple[sympy.Expr, ...]]:
        """x_0 .. x_epochs, exactly (one matrix-vector product per epoch)."""
        e = self.x0 - self.x_star
        out = []
        for _ in range(epochs + 1):
            out.append(tuple(sympy.expand(v) for v in (self.x_star + e)))
            e = self.M * e
        return out

    def float_trajectory(self, epochs: int, dps: int = 50) -> list[list[float]]:
        """x_0 .. x_epochs as floats, through ``dps``-digit arithmetic (fast for long runs)."""
        import mpmath

        with mpmath.workdps(dps):
            M = [[mpmath.mpf(sympy.N(self.M[i, j], dps)) for j in range(self.dim)] for i in range(self.dim)]
            xs = [mpmath.mpf(sympy.N(v, dps)) for v in self.x_star]
            e = [mpmath.mpf(sympy.N(v, dps)) for v in (self.x0 - self.x_star)]
            out = []
            for _ in range(epochs + 1):
                out.append([_float(xs[i] + e[i]) for i in range(self.dim)])
                e = [mpmath.fsum(M[i][j] * e[j] for j in range(self.dim)) for i in range(self.dim)]
        return out

    def formula(self) -> str:
        """The closed form as a line of text, with the numbers of this run."""
        if self.dim == 1:
            xs, e0, m = self.x_star[0], (self.x0 - self.x_star)[0], self.M[0, 0]
            sign = "-" if e0 < 0 else "+"
            return f"x_k = x* + (x0 - x*)*(1 - {sympy.sstr(self.A[0, 0])}*lr)**k = {xs} {sign} {sympy.sstr(abs(e0))}*({m})**k"
        return (
            f"x_k = x* + (I - lr*A)**k (x0 - x*), A = {sympy.sstr(self.A.tolist())}, "
            f"x* = {sympy.sstr(list(self.x_star))}"
        )


def _quadratic_form(target: Any) -> tuple[sympy.Matrix, sympy.Matrix, sympy.Expr] | None:
    qf = getattr(target, "quadratic_form", None)
    form = qf() if callable(qf) else None
    if form is None:
        return None
    A, b, c = form
    A, b = sympy.Matrix(A), sympy.Matrix(b)
    if b.shape != (A.shape[0], 1):
        b = b.reshape(A.shape[0], 1)
    return A, b, sympy.sympify(c)


def gd_closed_form_model(target: Any, lr: Any, x0: Any) -> GDClosedForm:
    """The exact closed form of plain gradient descent (SGD without momentum) on ``target``.

    Raises :class:`ClosedFormNotApplicable` when the target is not a quadratic with an invertible A.
    """
    form = _quadratic_form(target)
    name = getattr(target, "name", "this target")
    if form is None:
        kind = getattr(target, "kind", None)
        raise ClosedFormNotApplicable(
            f"{name} is not a quadratic" + (f" (kind {kind})" if kind else "") + ", so GD has no closed form here"
        )
    A, b, _ = form
    if A.det() == 0:
        raise ClosedFormNotApplicable(f"{name} has a singular Hessian, so x* is not unique")
    lr_q = exact_number(lr, what="lr")
    x0_seq = list(x0) if isinstance(x0, (list, tuple, sympy.Matrix)) else [x0]
    if len(x0_seq) != A.shape[0]:
        raise OptbenchError(f"start has {len(x0_seq)} coordinates but {name} has {A.shape[0]}; give {A.shape[0]}")
    x0_m = sympy.Matrix([_exact_coord(v) for v in x0_seq])
    x_star = A.LUsolve(b)
    M = sympy.eye(A.shape[0]) - lr_q * A
    return GDClosedForm(A=A, b=b, lr=lr_q, x0=x0_m, x_star=x_star, M=M)


def _exact_coord(v: Any) -> sympy.Expr:
    if isinstance(v, sympy.Basic) and not isinstance(v, sympy.Float):
        return v
    return exact_number(v, what="start coordinate")


def gd_closed_form(target: Any, lr: Any, x0: Any, k: int) -> tuple[sympy.Expr, ...]:
    """x_k of plain gradient descent on the quadratic ``target``, exactly:
    ``x_k - x* = (I - lr*A)^k (x0 - x*)``. ``lr`` and ``x0`` are taken exactly (see :func:`optbench.exact.exact_number`)."""
    return gd_closed_form_model(target, lr, x0).exact(k)
