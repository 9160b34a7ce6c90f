"""Expressions: parse a string safely into sympy, and compile a sympy expression to torch.

Parsing never runs the text as Python (no ``eval``, no ``sympify`` on the raw string): the text is
parsed by :mod:`ast` and walked with a whitelist.

Allowed
    * identifiers that are not function or constant names become real ``sympy.Symbol``\\ s
      (names starting with ``_`` are refused);
    * int and float literals (floats become *exact* rationals of their decimal text: ``1.05`` is 21/20);
    * ``+ - * / **``, unary ``+``/``-``, parentheses;
    * calls of the named functions in :data:`FUNCTIONS` with positional arguments only;
    * the constants ``pi`` and ``E``.

Refused with a one-line :class:`~optbench.errors.ExpressionError` naming the construct: attribute
access, subscripts, lambdas, strings, keyword arguments, comparisons, calls of anything else, ...
``^`` is refused with a hint to use ``**`` (it is XOR in Python; accepting it silently would change
the meaning of the text for anyone who pastes it into Python).

Compilation (:func:`compile_torch`) walks the sympy tree once and builds closures over torch ops.
Numeric sub-expressions (rationals, ``pi``, ``sqrt(2)``) become Python floats, which torch combines
with a tensor without changing its dtype, so float32/bfloat16 inputs give float32/bfloat16 outputs.
"""

from __future__ import annotations

import ast
import math
from typing import Callable, Sequence

import sympy
import torch

from .errors import ExpressionError

MAX_TEXT = 20_000  # characters; a target is a formula, not a program
MAX_INT_POWER = 64  # numeric ** numeric is evaluated exactly by sympy: cap it (9**9**9 would hang)

FUNCTIONS: dict[str, tuple[Callable, int]] = {
    # name: (sympy function, number of arguments; -1 = two or more)
    "sin": (sympy.sin, 1),
    "cos": (sympy.cos, 1),
    "tan": (sympy.tan, 1),
    "exp": (sympy.exp, 1),
    "log": (sympy.log, 1),
    "sqrt": (sympy.sqrt, 1),
    "abs": (sympy.Abs, 1),
    "Abs": (sympy.Abs, 1),
    "tanh": (sympy.tanh, 1),
    "cosh": (sympy.cosh, 1),
    "sinh": (sympy.sinh, 1),
    "atan": (sympy.atan, 1),
    "asin": (sympy.asin, 1),
    "acos": (sympy.acos, 1),
    "max": (sympy.Max, -1),
    "Max": (sympy.Max, -1),
    "min": (sympy.Min, -1),
    "Min": (sympy.Min, -1),
}
CONSTANTS = {"pi": sympy.pi, "E": sympy.E}

_ALLOWED = (
    "allowed: names, numbers, + - * / ** unary +/-, parentheses, "
    f"calls of {', '.join(sorted(set(FUNCTIONS)))}, and the constants pi, E"
)

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}

_NODE_NAMES = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Lambda: "lambda",
    ast.Compare: "comparison",
    ast.BoolOp: "boolean operator",
    ast.IfExp: "conditional expression",
    ast.List: "list",
    ast.Tuple: "tuple",
    ast.Set: "set",
    ast.Dict: "dict",
    ast.ListComp: "comprehension",
    ast.SetComp: "comprehension",
    ast.DictComp: "comprehension",
    ast.GeneratorExp: "generator expression",
    ast.JoinedStr: "f-string",
    ast.Starred: "starred argument",
    ast.NamedExpr: "assignment expression (:=)",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Slice: "slice",
}


def _where(node: ast.AST) -> str:
    col = getattr(node, "col_offset", None)
    return f" at column {col + 1}" if col is not None else ""


def _refuse(text: str, node: ast.AST, what: str) -> ExpressionError:
    return ExpressionError(f"expression {_short(text)}: {what}{_where(node)} is not allowed; {_ALLOWED}")


def _short(text: str) -> str:
    t = " ".join(text.split())
    return repr(t if len(t) <= 60 else t[:57] + "...")


def parse_expression(text: str, variables: Sequence[str] | None = None) -> sympy.Expr:
    """Parse ``text`` into a sympy expression through the AST whitelist (module docstring).

    ``variables`` (optional): the only symbol names allowed; another name is an error naming it.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"expression must be a str or a sympy expression, not {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise ExpressionError(f"expression is {len(text)} characters, more than the {MAX_TEXT} allowed; simplify it")
    if not text.strip():
        raise ExpressionError("expression is empty; give a formula such as 'x**2 + y**2'")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        col = f" at column {exc.offset or len(text.strip()) + 1}"
        raise ExpressionError(f"expression {_short(text)}: syntax error{col}: {exc.msg}") from None
    allowed = None if variables is None else set(variables)
    expr = _walk(tree.body, text.strip(), allowed)
    if not isinstance(expr, sympy.Expr):
        raise ExpressionError(f"expression {_short(text)} is not a scalar expression")
    return expr


def _walk(node: ast.AST, text: str, allowed: set[str] | None) -> sympy.Expr:
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.BitXor):
            raise ExpressionError(
                f"expression {_short(text)}: '^'{_where(node)} is XOR in Python, not a power; write '**' (x**2)"
            )
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise _refuse(text, node, f"operator {type(node.op).__name__}")
        a = _walk(node.left, text, allowed)
        b = _walk(node.right, text, allowed)
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if b == 0:
                raise ExpressionError(f"expression {_short(text)}: division by zero{_where(node)}")
            return a / b
        if a.is_number and b.is_number and (abs(b) > MAX_INT_POWER if b.is_real else True):
            raise ExpressionError(
                f"expression {_short(text)}: numeric power with exponent {b}{_where(node)} is too large "
                f"(|exponent| <= {MAX_INT_POWER})"
            )
        return a**b
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.USub):
            return -_walk(node.operand, text, allowed)
        if isinstance(node.op, ast.UAdd):
            return _walk(node.operand, text, allowed)
        raise _refuse(text, node, f"unary operator {type(node.op).__name__}")
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            kind = "string literal" if isinstance(v, (str, bytes)) else f"{type(v).__name__} literal"
            raise _refuse(text, node, kind)
        if isinstance(v, int):
            return sympy.Integer(v)
        if not math.isfinite(v):
            raise _refuse(text, node, f"non-finite number {v!r}")
        return sympy.Rational(repr(v))  # exact decimal: 1.05 -> 21/20
    if isinstance(node, ast.Name):
        name = node.id
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in FUNCTIONS:
            raise _refuse(text, node, f"function name {name!r} used without a call")
        if name.startswith("_"):
            raise _refuse(text, node, f"name {name!r} (names may not start with '_')")
        if allowed is not None and name not in allowed:
            raise ExpressionError(
                f"expression {_short(text)}: unknown variable {name!r}{_where(node)}; "
                f"the variables are {', '.join(sorted(allowed)) or '(none)'}"
            )
        return sympy.Symbol(name, real=True)
    if isinstance(node, ast.Call):
        fname = node.func.id if isinstance(node.func, ast.Name) else None
        if fname is None:
            if isinstance(node.func, ast.Attribute):
                raise _refuse(text, node.func, f"attribute access '.{node.func.attr}'")
            raise _refuse(text, node, "call of something that is not a plain function name")
        if fname not in FUNCTIONS:
            raise _refuse(text, node, f"call of {fname!r}")
        if node.keywords:
            raise _refuse(text, node, f"keyword argument in {fname}()")
        fn, nargs = FUNCTIONS[fname]
        args = [_walk(a, text, allowed) for a in node.args]
        if (nargs >= 0 and len(args) != nargs) or (nargs < 0 and len(args) < 2):
            want = nargs if nargs >= 0 else "two or more"
            raise ExpressionError(
                f"expression {_short(text)}: {fname}() takes {want} argument(s), got {len(args)}{_where(node)}"
            )
        return fn(*args)
    name = _NODE_NAMES.get(type(node), type(node).__name__)
    if isinstance(node, ast.Attribute):
        name = f"attribute access '.{node.attr}'"
    raise _refuse(text, node, name)


def to_expr(expr, variables: Sequence[str] | None = None) -> sympy.Expr:
    """A sympy expression from a string (parsed safely) or a sympy expression (checked)."""
    if isinstance(expr, str):
        return parse_expression(expr, variables)
    if isinstance(expr, (int, float)) and not isinstance(expr, bool):
        return sympy.Rational(repr(expr)) if isinstance(expr, float) else sympy.Integer(expr)
    if isinstance(expr, sympy.Basic) and isinstance(expr, sympy.Expr):
        return expr
    raise ExpressionError(f"expression must be a str or a sympy expression, not {type(expr).__name__}")


# --------------------------------------------------------------------------------------------------
# compilation to torch

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
