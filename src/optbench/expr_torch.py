"""A sympy expression compiled to a torch callable (:func:`compile_torch`): a target's ``reference``.

Compilation walks the sympy tree once and builds closures over torch ops. Numeric sub-expressions
(rationals, ``pi``, ``sqrt(2)``) become Python floats, which torch combines with a tensor without
changing its dtype, so float32/bfloat16 inputs give float32/bfloat16 outputs. The functions it knows
are those :mod:`optbench.expr` parses (:data:`optbench.expr.FUNCTIONS`).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import sympy
import torch

from .errors import ExpressionError

_UNARY = {
    sympy.sin: torch.sin,
    sympy.cos: torch.cos,
    sympy.tan: torch.tan,
    sympy.exp: torch.exp,
    sympy.log: torch.log,
    sympy.Abs: torch.abs,
    sympy.tanh: torch.tanh,
    sympy.cosh: torch.cosh,
    sympy.sinh: torch.sinh,
    sympy.atan: torch.atan,
    sympy.asin: torch.asin,
    sympy.acos: torch.acos,
    sympy.sign: torch.sign,
}

Node = Callable[[Sequence[torch.Tensor]], "torch.Tensor | float"]


def _const(c: float) -> Node:
    return lambda cols: c


def _build(e: sympy.Expr, index: dict[sympy.Symbol, int]) -> Node:
    if not e.free_symbols:
        val = complex(sympy.N(e, 30))
        if val.imag != 0:
            raise ExpressionError(f"sub-expression {e} is not real ({val}); targets are real functions")
        return _const(float(val.real))
    if isinstance(e, sympy.Symbol):
        i = index[e]
        return lambda cols: cols[i]
    if isinstance(e, sympy.Add):
        const = sum(float(sympy.N(a, 30)) for a in e.args if not a.free_symbols)
        parts = [_build(a, index) for a in e.args if a.free_symbols]

        def add(cols):
            out = parts[0](cols)
            for p in parts[1:]:
                out = out + p(cols)
            return out + const if const else out

        return add
    if isinstance(e, sympy.Mul):
        const = math.prod(float(sympy.N(a, 30)) for a in e.args if not a.free_symbols)
        parts = [_build(a, index) for a in e.args if a.free_symbols]

        def mul(cols):
            out = parts[0](cols)
            for p in parts[1:]:
                out = out * p(cols)
            return out * const if const != 1.0 else out

        return mul
    if isinstance(e, sympy.Pow):
        base, ex = e.args
        b = _build(base, index)
        if not ex.free_symbols:
            if ex.is_Integer:
                n = int(ex)
                if n == 1:
                    return b
                if n == 2:
                    return lambda cols: (lambda v: v * v)(b(cols))
                if n > 0:
                    return lambda cols: torch.pow(b(cols), n)
                if n == -1:
                    return lambda cols: 1.0 / b(cols)
                return lambda cols: 1.0 / torch.pow(b(cols), -n)
            if ex == sympy.Rational(1, 2):
                return lambda cols: torch.sqrt(b(cols))
            if ex == sympy.Rational(-1, 2):
                return lambda cols: torch.rsqrt(b(cols))
            p = float(sympy.N(ex, 30))
            return lambda cols: torch.pow(b(cols), p)
        x = _build(ex, index)
        if not base.free_symbols:  # c**x = exp(x log c)
            lc = float(sympy.N(sympy.log(base), 30))
            return lambda cols: torch.exp(x(cols) * lc)
        return lambda cols: torch.pow(b(cols), x(cols))
    if isinstance(e, (sympy.Max, sympy.Min)):
        op = torch.maximum if isinstance(e, sympy.Max) else torch.minimum
        parts = [_build(a, index) for a in e.args]

        def mm(cols):
            ref = cols[0]
            vals = [p(cols) for p in parts]
            vals = [v if isinstance(v, torch.Tensor) else torch.full_like(ref, v) for v in vals]
            out = vals[0]
            for v in vals[1:]:
                out = op(out, v)
            return out

        return mm
    fn = _UNARY.get(type(e))
    if fn is not None and len(e.args) == 1:
        a = _build(e.args[0], index)
        return lambda cols: fn(a(cols))
    raise ExpressionError(f"cannot compile {type(e).__name__} in {e} to torch; use the functions in optbench.expr.FUNCTIONS")


def compile_torch(expr: sympy.Expr, variables: Sequence[sympy.Symbol], shape: tuple[int, ...] | None = None):
    """A torch callable for ``expr``: ``f(x)`` with x of shape ``(..., d)`` (or ``(..., *shape)`` when
    ``shape`` is given and ``prod(shape) == d``; the trailing dims are flattened in row-major order)
    returns shape ``(...)`` in x's dtype and on x's device. Autograd works to any order."""
    variables = tuple(variables)
    d = len(variables)
    index = {v: i for i, v in enumerate(variables)}
    root = _build(expr, index)
    shape = tuple(shape) if shape else None

    def fn(x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x, dtype=torch.get_default_dtype())
        if shape is not None and x.dim() >= len(shape) and tuple(x.shape[x.dim() - len(shape):]) == shape and shape != (d,):
            x = x.reshape(*x.shape[: x.dim() - len(shape)], d)
        if x.dim() == 0 or x.shape[-1] != d:
            want = f"(..., {d})" + (f" or (..., {', '.join(map(str, shape))})" if shape else "")
            raise ExpressionError(f"input of shape {tuple(x.shape)} does not match the target: expected {want}")
        cols = x.unbind(-1)
        out = root(cols)
        if not isinstance(out, torch.Tensor):
            out = torch.full(x.shape[:-1], out, dtype=x.dtype, device=x.device)
        return out

    fn.__name__ = "compiled_expr"
    return fn
