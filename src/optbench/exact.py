"""Exact numbers from what a user types: ``0.01`` is 1/100 and ``1/3`` is one third.

:func:`exact_number` takes an lr or a start coordinate exactly as written (a rational);
:func:`exact_real` a target's coordinate or bound (any exact real, ``sqrt(2)/2`` included);
:func:`round_to_dtype` is the float torch necessarily runs with instead, rounded once.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import sympy
import torch

from .errors import OptbenchError
from .expr import to_expr


def exact_number(value: Any, *, what: str = "value") -> sympy.Rational:
    """An exact rational for ``value``: ints, Fractions and sympy rationals as they are; strings and
    floats through their decimal text (``0.01`` -> 1/100, ``"1/3"`` -> 1/3). Anything else, or a
    non-finite number, is a one-line error."""
    if isinstance(value, bool):
        raise OptbenchError(f"{what} {value!r} is not a number; give a decimal like 0.01 or a fraction like 1/3")
    if isinstance(value, sympy.Basic):
        v = sympy.nsimplify(value) if isinstance(value, sympy.Float) else value
        if v.is_Rational:
            return sympy.Rational(v)
        raise OptbenchError(f"{what} {value} is not a rational number; give a decimal or a fraction")
    if isinstance(value, (int, Fraction)):
        return sympy.Rational(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise OptbenchError(f"{what} {value!r} is not finite; give a finite number")
        return sympy.Rational(repr(value))
    text = str(value).strip().replace("\u2212", "-")  # accept the typographic minus sign
    try:
        r = sympy.Rational(text)
    except (TypeError, ValueError, ZeroDivisionError):
        raise OptbenchError(
            f"{what} {value!r} is not a number; give a decimal like 0.01 or a fraction like 1/3"
        ) from None
    return r


def round_to_dtype(q: sympy.Rational | Fraction | int, dtype: torch.dtype) -> float:
    """``q`` correctly rounded (to nearest, ties to even) to ``dtype``, returned as a Python float.

    Rounding a rational to float64 and then to float32 can round twice; this rounds once.
    """
    q = Fraction(int(sympy.Rational(q).p), int(sympy.Rational(q).q))
    if dtype == torch.float64:
        return float(q)
    import mpmath

    bits = {torch.float32: 24, torch.float16: 11, torch.bfloat16: 8}.get(dtype)
    if bits is None:
        raise OptbenchError(f"cannot round to {dtype}; use float16, bfloat16, float32 or float64")
    v = float(mpmath.mpf(mpmath.libmp.from_rational(q.numerator, q.denominator, bits, "n")))
    # the value now has the dtype's precision; the conversion only checks the exponent range
    return float(torch.tensor(v, dtype=dtype).item())


def exact_real(c: Any) -> sympy.Expr:
    """An exact real number from what a user writes for a target's coordinate or bound: a float through its
    decimal text (-1.2 is -6/5), a string parsed as an expression (``"sqrt(2)/2"``), a sympy or Python
    number as it is. TypeError when it is not a finite real number."""
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
