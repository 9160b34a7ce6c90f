"""Expressions: parse a string safely into sympy, and bound its size (compiling it to torch is
:mod:`optbench.expr_torch`).

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

Size limits (:data:`LIMITS`), checked before sympy is asked to do anything expensive with the
expression, because sympy cannot be interrupted once it has started (``x**99999999999`` would build a
dense polynomial of 10^11 coefficients; ``x**5000 - x`` would isolate the real roots of a degree-4999
polynomial): nesting depth, exponents and the size of numbers while parsing; then, by
:func:`check_size` on the built expression (also for a sympy expression given directly), the
polynomial degree, the number of terms of the expansion, and the nesting of functions and of
exponentials. Undefined (``1/0``, ``0**-1``, ``log(0)``) and non-real (``sqrt(-1)``) constants and
constants that overflow float64 (``exp(1000)``) are refused where they occur.
"""

from __future__ import annotations

import ast
import math
import sys
from typing import Callable, Sequence

import sympy

from .errors import ExpressionError

MAX_TEXT = 20_000  # characters; a target is a formula, not a program
MAX_INT_POWER = 64  # numeric ** numeric is evaluated exactly by sympy: cap it (9**9**9 would hang)
PARSE_RECURSION_LIMIT = 1000  # Python's default
MAX_DEPTH = 64  # nesting of calls, powers and parentheses (sums and products are flattened, not nested)
MAX_POWER = 10_000  # |numerator| and denominator of a numeric exponent on an expression in the variables
MAX_DIGITS = 1_000  # decimal digits of an exact number (numerator or denominator)
MAX_DEGREE = 10_000  # total degree bound of any polynomial part (exact values at rationals stay cheap)
MAX_TERMS = 2_000  # terms of any expanded sub-expression (sympy's Poly and expand build them all)
MAX_FUNCTION_NESTING = 10  # sin(sin(...)): the exact Hessian grows with it (12 deep: ~1 s, 60: never)
MAX_EXP_NESTING = 3  # exp(exp(exp(x))) already overflows float64 for x > 2; deeper hangs mpmath's exp

LIMITS = {
    "depth": MAX_DEPTH, "power": MAX_POWER, "digits": MAX_DIGITS, "degree": MAX_DEGREE, "terms": MAX_TERMS,
    "function nesting": MAX_FUNCTION_NESTING, "exp nesting": MAX_EXP_NESTING,
}

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
    limit = sys.getrecursionlimit()
    # Python's parser and compiler recurse per level of nesting: parse under one recursion limit, whatever another
    # library left (Inductor raises it to 2000 while it compiles), so the same text is refused the same way
    sys.setrecursionlimit(PARSE_RECURSION_LIMIT)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        if "integer string conversion" in str(exc.msg):  # Python's own 4300-digit cap on int literals
            raise ExpressionError(
                f"expression {_short(text)}: a number has more than {MAX_DIGITS} digits; rescale the target"
            ) from None
        col = f" at column {exc.offset or len(text.strip()) + 1}"
        raise ExpressionError(f"expression {_short(text)}: syntax error{col}: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError) as exc:  # Python's own parser gives up on deep nesting
        raise ExpressionError(
            f"expression {_short(text)} is nested too deeply or chains too many operators for Python's parser "
            f"({type(exc).__name__}); "
            f"the limit is {MAX_DEPTH} levels of calls, powers and parentheses; simplify it"
        ) from None
    finally:
        sys.setrecursionlimit(limit)
    depth = _ast_depth(tree.body)
    if depth > MAX_DEPTH:
        raise ExpressionError(
            f"expression {_short(text)} is nested more than {MAX_DEPTH} levels deep (calls, powers, parentheses); "
            "simplify it"
        )
    allowed = None if variables is None else set(variables)
    expr = _walk(tree.body, text.strip(), allowed)
    if not isinstance(expr, sympy.Expr):
        raise ExpressionError(f"expression {_short(text)} is not a scalar expression")
    check_size(expr, f"expression {_short(text)}")
    return expr


_ADD = (ast.Add, ast.Sub)
_MUL = (ast.Mult, ast.Div)


def _group(node: ast.AST):
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, _ADD):
            return _ADD
        if isinstance(node.op, _MUL):
            return _MUL
    return None


def _ast_depth(root: ast.AST) -> int:
    """Nesting depth as :func:`_walk` recurses: the left spine of a chain of + - (or of * /) and
    unary signs are iterated, not nested, so they add no level. Iterative (no recursion limit)."""
    best = 0
    stack: list[tuple[ast.AST, int, tuple | None]] = [(root, 0, None)]
    while stack:
        node, level, chain = stack.pop()
        group = _group(node)
        here = level if (isinstance(node, ast.UnaryOp) or (group is not None and group is chain)) else level + 1
        best = max(best, here)
        if best > MAX_DEPTH:
            return best
        if isinstance(node, ast.BinOp):
            stack.append((node.left, here, group))  # the left spine continues the chain
            stack.append((node.right, here, None))
        elif isinstance(node, ast.UnaryOp):
            stack.append((node.operand, here, None))
        else:
            stack.extend((c, here, None) for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr))
    return best


def _chain(node: ast.BinOp, group) -> list[tuple[type | None, ast.AST]]:
    """``a - b + c`` -> [(None, a), (Sub, b), (Add, c)]: the left spine of one operator group, iteratively."""
    out: list[tuple[type | None, ast.AST]] = []
    cur: ast.AST = node
    while isinstance(cur, ast.BinOp) and isinstance(cur.op, group):
        out.append((type(cur.op), cur.right))
        cur = cur.left
    out.append((None, cur))
    out.reverse()
    return out


_UNDEFINED = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)
_FLOAT_MAX_BITS = 1023  # |a number| >= 2**1024 overflows float64
_GROWS = ("exp", "sinh", "cosh")  # numeric arguments beyond ~709.78 overflow float64


def _number(text: str, node: ast.AST, value: sympy.Expr, what: str) -> sympy.Expr:
    """Check a sub-expression without variables: defined, real, exact numbers of bounded size, and
    finite in float64 (the compiled target computes with it as a float)."""
    if value.free_symbols:
        return value
    if value.has(*_UNDEFINED):
        raise ExpressionError(
            f"expression {_short(text)}: {what}{_where(node)} is undefined ({value}: a division by zero, 0 to a "
            f"negative power or log(0)); fix the formula"
        )
    for r in value.atoms(sympy.Rational):
        for part in (r.p, r.q):
            if abs(part) >= 10**MAX_DIGITS:
                raise ExpressionError(
                    f"expression {_short(text)}: {what}{_where(node)} has a number of more than {MAX_DIGITS} digits; "
                    "the limit keeps exact arithmetic fast: rescale the target"
                )
    if value.is_Rational:
        if value.p and abs(value.p).bit_length() - value.q.bit_length() > _FLOAT_MAX_BITS:
            raise ExpressionError(
                f"expression {_short(text)}: {what}{_where(node)} is about 10**{int(abs(value.p).bit_length() * 0.30103)}, "
                "beyond float64 (1.8e308): the compiled target could not hold it; rescale the target"
            )
        return value
    num = complex(sympy.N(value, 15))
    if num.imag != 0 or value.is_real is False:
        raise ExpressionError(f"expression {_short(text)}: {what}{_where(node)} = {value} is not real; targets are real functions")
    if not math.isfinite(num.real):
        raise ExpressionError(
            f"expression {_short(text)}: {what}{_where(node)} = {value} overflows float64 (1.8e308); rescale the target"
        )
    return value


def _walk(node: ast.AST, text: str, allowed: set[str] | None) -> sympy.Expr:
    group = _group(node)
    if group is _ADD:
        terms = []
        for op, sub in _chain(node, _ADD):
            v = _walk(sub, text, allowed)
            terms.append(-v if op is ast.Sub else v)
        return _number(text, node, sympy.Add(*terms), "the sum")
    if group is _MUL:
        factors = []
        for op, sub in _chain(node, _MUL):
            v = _walk(sub, text, allowed)
            if op is ast.Div:
                if v == 0:
                    raise ExpressionError(f"expression {_short(text)}: division by zero{_where(sub)}")
                v = sympy.Pow(v, -1)
            factors.append(v)
        return _number(text, node, sympy.Mul(*factors), "the product")
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.BitXor):
            raise ExpressionError(
                f"expression {_short(text)}: '^'{_where(node)} is XOR in Python, not a power; write '**' (x**2)"
            )
        if not isinstance(node.op, ast.Pow):
            raise _refuse(text, node, f"operator {type(node.op).__name__}")
        a = _walk(node.left, text, allowed)
        b = _walk(node.right, text, allowed)
        return _number(text, node, _power(text, node, a, b), "the power")
    if isinstance(node, ast.UnaryOp):
        sign = 1
        while isinstance(node, ast.UnaryOp):  # iterative: '------x' is not nested
            if isinstance(node.op, ast.USub):
                sign = -sign
            elif not isinstance(node.op, ast.UAdd):
                raise _refuse(text, node, f"unary operator {type(node.op).__name__}")
            node = node.operand
        v = _walk(node, text, allowed)
        return -v if sign < 0 else v
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            kind = "string literal" if isinstance(v, (str, bytes)) else f"{type(v).__name__} literal"
            raise _refuse(text, node, kind)
        if isinstance(v, int):
            return _number(text, node, sympy.Integer(v), "the number")
        if not math.isfinite(v):
            raise _refuse(text, node, f"non-finite number {v!r}")
        return _number(text, node, sympy.Rational(repr(v)), "the number")  # exact decimal: 1.05 -> 21/20
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
        if fname in _GROWS and not args[0].free_symbols and abs(float(sympy.N(args[0], 15))) > 709:
            raise ExpressionError(
                f"expression {_short(text)}: {fname}({args[0]}){_where(node)} overflows float64 (argument above 709); "
                "rescale the target"
            )
        return _number(text, node, fn(*args), f"{fname}()")
    name = _NODE_NAMES.get(type(node), type(node).__name__)
    if isinstance(node, ast.Attribute):
        name = f"attribute access '.{node.attr}'"
    raise _refuse(text, node, name)


def _power(text: str, node: ast.AST, a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    """``a**b`` after the checks that keep sympy from evaluating something it cannot finish."""
    if not b.free_symbols:
        if not a.free_symbols:
            if b.is_real is False or abs(b) > MAX_INT_POWER or (b.is_Rational and b.q > MAX_INT_POWER):
                raise ExpressionError(
                    f"expression {_short(text)}: numeric power with exponent {b}{_where(node)} is too large "
                    f"(|exponent| <= {MAX_INT_POWER} and a denominator <= {MAX_INT_POWER}: sympy evaluates it exactly)"
                )
            if a == 0 and b.is_negative:
                raise ExpressionError(f"expression {_short(text)}: 0**{b}{_where(node)} is a division by zero")
        elif b.is_Rational and (abs(b.p) > MAX_POWER or b.q > MAX_POWER):
            raise ExpressionError(
                f"expression {_short(text)}: the power **{b}{_where(node)} has an exponent beyond {MAX_POWER} "
                f"(numerator and denominator); optbench evaluates targets exactly at rational points and could not "
                f"finish: lower the degree"
            )
    out = a**b
    if isinstance(out, sympy.Pow) and out.exp.is_Rational and out.base.free_symbols and (
        abs(out.exp.p) > MAX_POWER or out.exp.q > MAX_POWER
    ):  # (x**1000)**1000 is x**1000000
        raise ExpressionError(
            f"expression {_short(text)}: {out.base}**{out.exp}{_where(node)} has an exponent beyond {MAX_POWER}; "
            "optbench evaluates targets exactly at rational points and could not finish: lower the degree"
        )
    return out


def _check_constant(e: sympy.Expr, what: str) -> None:
    """A sub-expression without variables (its own sub-trees already checked): defined, real, exact
    numbers of bounded size, finite in float64. For sympy expressions given directly; the parser
    makes the same checks with the column where they fail."""
    if e.has(*_UNDEFINED):
        raise ExpressionError(f"{what}: {_short(str(e))} is undefined (a division by zero, 0 to a negative power or "
                              "log(0)); fix the formula")
    if e.is_Rational:
        if max(abs(e.p), e.q) >= 10**MAX_DIGITS:
            raise ExpressionError(f"{what}: a number has more than {MAX_DIGITS} digits; rescale the target")
        if e.p and abs(e.p).bit_length() - e.q.bit_length() > _FLOAT_MAX_BITS:
            raise ExpressionError(f"{what}: a number is beyond float64 (1.8e308); rescale the target")
        return
    if e.is_real is False:
        raise ExpressionError(f"{what}: {_short(str(e))} is not real; targets are real functions")
    if type(e).__name__ in _GROWS and abs(float(sympy.N(e.args[0], 15))) > 709:
        raise ExpressionError(f"{what}: {_short(str(e))} overflows float64 (argument above 709); rescale the target")
    num = complex(sympy.N(e, 15))
    if num.imag != 0:
        raise ExpressionError(f"{what}: {_short(str(e))} is not real; targets are real functions")
    if not math.isfinite(num.real):
        raise ExpressionError(f"{what}: {_short(str(e))} overflows float64 (1.8e308); rescale the target")


def check_size(expr: sympy.Expr, what: str = "expression", variables: Sequence[sympy.Symbol] | None = None) -> dict:
    """Refuse an expression that sympy could not expand, differentiate or solve in reasonable time.

    Bounds, computed from the tree without expanding anything (iteratively; shared sub-trees once):
    the total degree of every polynomial part (``MAX_DEGREE``), the number of terms its expansion
    would have (``MAX_TERMS``), the nesting of functions (``MAX_FUNCTION_NESTING``) and of
    exponentials (``MAX_EXP_NESTING``: exp, sinh, cosh and powers with a variable exponent), exponents
    (``MAX_POWER``) and exact numbers (``MAX_DIGITS``). Returns the bounds (``degree`` is None when
    the expression is not a polynomial).
    """
    info: dict = {}
    big = 10**12
    stack = [(expr, False)]
    while stack:
        e, ready = stack.pop()
        if e in info:
            continue
        if not ready:
            stack.append((e, True))
            stack.extend((a, False) for a in e.args if a not in info)
            continue
        kids = [info[a] for a in e.args]
        fn = max((k[2] for k in kids), default=0)
        ex = max((k[3] for k in kids), default=0)
        if e.is_Symbol:
            deg, terms = 1, 1
        elif not e.free_symbols:
            deg, terms = 0, 1
            if isinstance(e, sympy.Function):
                fn, ex = fn + 1, ex + (type(e).__name__ in _GROWS)
            _check_constant(e, what)
        elif e.is_Add:
            degs = [k[0] for k in kids]
            deg = None if any(d is None for d in degs) else max(degs)
            terms = min(big, sum(k[1] for k in kids))
        elif e.is_Mul:
            degs = [k[0] for k in kids]
            deg = None if any(d is None for d in degs) else sum(degs)
            terms = min(big, math.prod(k[1] for k in kids))
        elif e.is_Pow:
            bd, bt = kids[0][0], kids[0][1]
            base, p = e.args
            if p.free_symbols:
                deg, terms, ex = None, 1, ex + 1
            elif p.is_Rational:
                if abs(p.p) > MAX_POWER or p.q > MAX_POWER:
                    raise ExpressionError(
                        f"{what}: the power {base}**{p} has an exponent beyond {MAX_POWER}; optbench evaluates targets "
                        "exactly at rational points and could not finish: lower the degree"
                    )
                n = abs(p.p)
                deg = bd * n if (p.is_Integer and p > 0 and bd is not None) else None
                terms = min(big, math.comb(bt + n - 1, n)) if (p.is_Integer and bt > 1 and n < big) else bt
            else:
                deg, terms = None, bt
        elif isinstance(e, sympy.Function):
            deg, terms, fn = None, 1, fn + 1
            if type(e).__name__ in _GROWS:
                ex += 1
        else:
            deg, terms = None, 1
        if deg is not None and deg > MAX_DEGREE:
            raise ExpressionError(
                f"{what}: a polynomial part has degree up to {deg}, beyond {MAX_DEGREE}; optbench evaluates targets "
                "exactly and could not finish: lower the degree"
            )
        if terms > MAX_TERMS:
            raise ExpressionError(
                f"{what}: expanding {_short(str(e))} gives up to {terms if terms < big else 'more than 10**12'} terms, "
                f"beyond {MAX_TERMS}; sympy expands targets to differentiate and solve them: write a smaller formula"
            )
        if fn > MAX_FUNCTION_NESTING:
            raise ExpressionError(
                f"{what}: functions are nested {fn} deep, beyond {MAX_FUNCTION_NESTING}; the exact Hessian grows "
                "with every level: flatten the formula"
            )
        if ex > MAX_EXP_NESTING:
            raise ExpressionError(
                f"{what}: exponentials (exp, sinh, cosh, powers with a variable exponent) are nested {ex} deep, beyond "
                f"{MAX_EXP_NESTING}; the values overflow float64 and exact evaluation cannot finish: nest fewer"
            )
        info[e] = (deg, terms, fn, ex)
    deg, terms, fn, ex = info[expr]
    return {"degree": deg, "terms": max(v[1] for v in info.values()), "function nesting": fn, "exp nesting": ex}


def to_expr(expr, variables: Sequence[str] | None = None) -> sympy.Expr:
    """A sympy expression from a string (parsed safely) or a sympy expression (checked)."""
    if isinstance(expr, str):
        return parse_expression(expr, variables)
    if isinstance(expr, (int, float)) and not isinstance(expr, bool):
        return sympy.Rational(repr(expr)) if isinstance(expr, float) else sympy.Integer(expr)
    if isinstance(expr, sympy.Basic) and isinstance(expr, sympy.Expr):
        return expr
    raise ExpressionError(f"expression must be a str or a sympy expression, not {type(expr).__name__}")
