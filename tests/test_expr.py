"""The expression parser (AST whitelist, never eval) and the sympy -> torch compiler."""

from __future__ import annotations

import sympy
import pytest
import torch

from optbench.errors import ExpressionError
from optbench.expr import parse_expression
from optbench.expr_torch import compile_torch

x, y = sympy.symbols("x y", real=True)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("3*x**2 - 2*x + 3", 3 * x**2 - 2 * x + 3),
        ("x/2 + -y", x / 2 - y),
        ("+x - (y - 1)", x - y + 1),
        ("1.05*x", sympy.Rational(21, 20) * x),  # decimal literals are exact rationals
        ("1e6*x", 10**6 * x),
        ("sin(pi*x) + exp(E) + sqrt(y)", sympy.sin(sympy.pi * x) + sympy.exp(sympy.E) + sympy.sqrt(y)),
        ("abs(x) + Abs(y)", sympy.Abs(x) + sympy.Abs(y)),
        ("max(x, y, 0)", sympy.Max(x, y, 0)),
    ],
    ids=["polynomial", "division-and-unary-minus", "unary-plus-and-parentheses", "decimal-is-exact-rational",
         "scientific-notation", "functions-and-constants", "abs-both-spellings", "max-of-three"],
)
def test_parse_accepts(text, expected):
    assert sympy.simplify(parse_expression(text) - expected) == 0


@pytest.mark.parametrize(
    "text, needle",
    [
        ("__import__('os')", "call of '__import__'"),
        ("__import__('os').system('echo pwned')", "attribute access '.system'"),
        ("x.__class__", "attribute access"),
        ("().__class__.__bases__[0]", "subscript"),
        ("x[0]", "subscript"),
        ("(lambda: 1)()", "lambda"),
        ("'x' + 'y'", "string literal"),
        ("exp(x=1)", "keyword argument"),
        ("x < y", "comparison"),
        ("[x, y]", "list"),
        ("eval('1')", "'eval'"),
        ("open('/etc/passwd')", "'open'"),
        ("_x + 1", "may not start with '_'"),
        ("x if y else 1", "conditional expression"),
        ("(x := 2)", "assignment expression"),
        ("2**2**2**2**2", "too large"),
        ("sin", "without a call"),
        ("sin(x, y)", "takes 1 argument"),
        ("1j*x", "complex literal"),
        ("x // 2", "operator FloorDiv"),
    ],
    ids=["import-injection", "import-and-call-system", "dunder-attribute", "class-walk", "subscript", "lambda", "string", "keyword-arg",
         "comparison", "list", "eval-call", "open-call", "underscore-name", "if-expression", "walrus",
         "power-tower", "bare-function-name", "wrong-arity", "complex-literal", "floor-division"],
)
def test_parse_refuses_with_one_line(text, needle):
    with pytest.raises(ExpressionError) as info:
        parse_expression(text)
    msg = str(info.value)
    assert "\n" not in msg
    assert needle in msg


@pytest.mark.parametrize(
    "text, needle",
    [
        ("x**99999999999", "exponent beyond 10000"),
        ("x**1e10 + x**2", "exponent beyond 10000"),  # a float exponent is an exact integer
        ("x**(10**10/3)", "exponent beyond 10000"),
        ("(x**1000)**1000", "exponent beyond 10000"),  # sympy folds it into x**1000000
        ("(2*x)**(10**60)", "exponent beyond 10000"),  # refused before sympy computes 2**(10**60)
        ("x**" + "9" * 1200, "more than 1000 digits"),
        ("x**2 + 1" + "0" * 400, "beyond float64"),
        ("x**2 + 0**-1", "division by zero"),
        ("x**2 + (x - x)**-1", "division by zero"),
        ("x**2 + 1/(x - x)", "division by zero"),
        ("x**2 + log(0)", "undefined"),
        ("x**2 + log(x - x)", "undefined"),
        ("x**2 + sqrt(-1)", "not real"),
        ("x**2 + log(-2)", "not real"),
        ("x**2 + asin(2)", "not real"),
        ("x**2 + exp(1000)", "overflows float64"),
        ("x**2 + exp(exp(10))", "overflows float64"),
        ("exp(exp(exp(exp(x))))", "nested 4 deep, beyond 3"),
        ("x**x**x**x**x", "nested 4 deep"),
        ("sin(" * 11 + "x" + ")" * 11, "nested 11 deep, beyond 10"),
        ("(a+b+c+d+e+f+g+h)**40", "terms, beyond 2000"),
        ("(" * 70 + "x" + ")**2" * 70, "nested more than 64 levels deep"),
        ("+".join(["x**2"] * 4000), "for Python's parser"),
        ("-" * 10000 + "x", "for Python's parser"),
        ("x" + "**x" * 3000, "for Python's parser"),
    ],
    ids=["exponent-1e11", "float-exponent-1e10", "rational-exponent", "folded-power", "huge-power-of-product",
         "1200-digit-exponent", "beyond-float64", "zero-to-minus-one", "zero-base-after-cancelling",
         "divide-by-cancelled-zero", "log-of-zero", "log-of-cancelled-zero", "sqrt-of-negative", "log-of-negative",
         "asin-of-2", "exp-overflow", "exp-of-exp-overflow", "exp-nested-4", "power-tower", "sin-nested-11",
         "multinomial-expansion", "deep-parentheses", "4000-term-chain", "10000-unary-minus", "3000-power-chain"],
)
def test_sizes_and_undefined_values_are_refused_at_once_in_one_line(text, needle):
    """Each of these used to hang, overflow or raise a raw exception; the bounds are checked before
    sympy is asked to do the work, so every refusal is immediate."""
    with pytest.raises(ExpressionError) as info:
        parse_expression(text)
    msg = str(info.value)
    assert "\n" not in msg and needle in msg, msg


def test_long_sums_and_products_are_flattened_not_nested():
    # 500 terms: as nested BinOps this would be 500 levels deep; the parser walks the chain iteratively
    e = parse_expression(" + ".join(f"{k}*x**2" for k in range(1, 501)) + " - y/2/2*3")
    assert sympy.expand(e - (125250 * x**2 - sympy.Rational(3, 4) * y)) == 0


def test_check_size_reports_the_bounds_without_expanding():
    from optbench.expr import check_size

    info = check_size(parse_expression("(x + y + 1)**30 * sin(exp(x))"))
    assert info["degree"] is None and info["terms"] == 496 and info["function nesting"] == 2
    assert info["exp nesting"] == 1
    assert check_size(parse_expression("(x + y)**3 + x*y"))["degree"] == 3


def test_caret_is_refused_with_a_hint_to_use_double_star():
    with pytest.raises(ExpressionError, match=r"'\^'.*write '\*\*'"):
        parse_expression("x^2")


def test_syntax_error_names_the_column():
    with pytest.raises(ExpressionError, match="syntax error at column"):
        parse_expression("3*x**2 - ")


def test_refusal_lists_what_is_allowed():
    with pytest.raises(ExpressionError, match="allowed: names, numbers"):
        parse_expression("x.real")


def test_unknown_variable_is_named_when_variables_are_given():
    with pytest.raises(ExpressionError, match="unknown variable 'z'.*the variables are x, y"):
        parse_expression("x + z", variables=["x", "y"])


def test_empty_and_non_string_are_refused():
    with pytest.raises(ExpressionError, match="empty"):
        parse_expression("   ")
    with pytest.raises(ExpressionError, match="not int"):
        parse_expression(3)


# ------------------------------------------------------------------ compilation


@pytest.mark.dtypes("float32", "float64", "bfloat16")
def test_compiled_rational_and_pi_keep_the_input_dtype(dtype):
    e = parse_expression("x**2/3 + sin(pi*y) + 1.05")
    fn = compile_torch(e, (x, y))
    out = fn(torch.tensor([[1.5, 0.25]], dtype=dtype))
    assert out.dtype == dtype and out.shape == (1,)
    want = 1.5**2 / 3 + torch.sin(torch.tensor(torch.pi * 0.25, dtype=torch.float64)).item() + 1.05
    assert abs(out.double().item() - want) < {torch.float32: 1e-6, torch.float64: 1e-14, torch.bfloat16: 2e-2}[dtype] * 4


@pytest.mark.parametrize("batch", [(), (5,), (2, 3)], ids=["no-batch", "batch-5", "batch-2x3"])
def test_compiled_accepts_any_leading_batch_shape(batch):  # noqa: D103
    fn = compile_torch(parse_expression("x**2 + 3*x*y"), (x, y))
    xs = torch.randn(*batch, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = fn(xs)
    assert out.shape == batch
    torch.testing.assert_close(out, xs[..., 0] ** 2 + 3 * xs[..., 0] * xs[..., 1], rtol=1e-14, atol=0)


def test_compiled_constant_expression_broadcasts():
    fn = compile_torch(sympy.Integer(7) + 0 * x, (x,))
    assert fn(torch.zeros(4, 1, dtype=torch.float32)).tolist() == [7.0] * 4


def test_compiled_second_order_autograd_matches_sympy():
    e = parse_expression("exp(x*y) + x**3*y - sqrt(1 + y**2)")
    fn = compile_torch(e, (x, y))
    p = torch.tensor([0.3, -0.7], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(fn(p), p, create_graph=True)
    H = torch.stack([torch.autograd.grad(g[i], p, retain_graph=True)[0] for i in range(2)])
    sub = {x: sympy.Rational(3, 10), y: sympy.Rational(-7, 10)}
    gs = [float(e.diff(v).subs(sub)) for v in (x, y)]
    Hs = [[float(e.diff(a).diff(b).subs(sub)) for b in (x, y)] for a in (x, y)]
    torch.testing.assert_close(g.detach(), torch.tensor(gs, dtype=torch.float64), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(H, torch.tensor(Hs, dtype=torch.float64), rtol=1e-13, atol=1e-13)


def test_compiled_wrong_width_is_a_one_line_error():
    fn = compile_torch(parse_expression("x + y"), (x, y))
    with pytest.raises(ExpressionError, match=r"shape \(3, 3\).*expected \(\.\.\., 2\)"):
        fn(torch.zeros(3, 3))
