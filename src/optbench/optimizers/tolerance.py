"""P1's tolerances and its in-loop gradient check: how close is converged (per dtype), and the symbolic
gradient (with the running-error scale of its terms) that every p.grad is compared with inside the loop."""

from __future__ import annotations

from typing import Any

import sympy
import torch

from ..devices import dtype_name
from .info import OptimizerInfo

# P1 tolerances per dtype: (tol_x, tol_f).
# float64: 1e-4 in x and 1e-8 in f: far above float64 rounding (eps 2.2e-16), so what is tested is
#   the optimizer's convergence, not the arithmetic; f - f* ~ (L/2)|x - x*|^2 makes 1e-8 consistent.
# float32: 1e-3 in x and 1e-5 in f: float32's eps is 1.2e-7, so f near f* = O(1) is resolved to
#   ~1e-7 and the gradient to ~sqrt(eps)-relative accuracy in x on ill-conditioned targets.
TOL: dict[torch.dtype, tuple[float, float]] = {torch.float64: (1e-4, 1e-8), torch.float32: (1e-3, 1e-5)}

# p.grad against the symbolic gradient: within GRAD_RTOL relative to 1 + |g| (1e-9 in float64: a few hundred
# ulps of the polynomial's terms; 1e-4 in float32: ~1e3 ulps), or, where the gradient cancels large terms,
# within optbench.gradcheck.RTOL of its running-error scale (every sum's terms added in absolute value: what
# rounding is proportional to). Without the second bound, Rosenbrock far out in its valley (terms ~1e9,
# gradient ~1, float64 autograd off by 1e-7) was reported as a wrong gradient.
GRAD_RTOL: dict[torch.dtype, float] = {torch.float64: 1e-9, torch.float32: 1e-4}

GRAD_EPOCHS = frozenset({0, 1, 2, 3, 5, 10, 30, 100, 300, 1000, 3000})


def tolerance(info: OptimizerInfo, dtype: torch.dtype) -> tuple[float, float, str]:
    if dtype_name(dtype) in info.tol:
        return info.tol[dtype_name(dtype)]
    tx, tf = TOL.get(dtype, (1e-2, 1e-3))
    return tx, tf, "suite default"


_GRAD_FNS: dict[str, Any] = {}


def _grad_fn(target):
    if target.name not in _GRAD_FNS:
        _GRAD_FNS[target.name] = sympy.lambdify(target.variables, list(target.gradient), "math")
    return _GRAD_FNS[target.name]


def symbolic_grad(target, x: torch.Tensor) -> torch.Tensor:
    """The exact gradient's value at each row of x (S, d), evaluated in float64."""
    fn = _grad_fn(target)
    rows = x.detach().double().cpu().tolist()
    return torch.tensor([[float(v) for v in fn(*r)] for r in rows], dtype=torch.float64)


def _magnitude(e: sympy.Expr) -> sympy.Expr:
    """An expression for the running-error scale of ``e``: every sum of terms becomes the sum of their
    magnitudes (products and integer powers follow); other functions count with their value."""
    if e.is_Number or e.is_NumberSymbol or e.is_Symbol:
        return sympy.Abs(e)
    if e.is_Add:
        return sympy.Add(*[_magnitude(a) for a in e.args])
    if e.is_Mul:
        return sympy.Mul(*[_magnitude(a) for a in e.args])
    if e.is_Pow and e.args[1].is_Integer and e.args[1] > 0:
        return _magnitude(e.args[0]) ** e.args[1]
    return sympy.Abs(e)


_SCALE_FNS: dict[str, Any] = {}


def gradient_scale(target, x: torch.Tensor) -> torch.Tensor:
    """The running-error scale of each gradient component at each row of x (S, d), float64."""
    if target.name not in _SCALE_FNS:
        exprs = [_magnitude(sympy.diff(target.expr, v)) for v in target.variables]  # unexpanded, like autograd
        _SCALE_FNS[target.name] = sympy.lambdify(target.variables, exprs, "math")
    fn = _SCALE_FNS[target.name]
    rows = x.detach().double().cpu().tolist()
    return torch.tensor([[float(v) for v in fn(*r)] for r in rows], dtype=torch.float64)
