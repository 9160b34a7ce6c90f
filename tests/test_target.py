"""Target construction: derived and verified minima, one-line refusals, the torch callable."""

from __future__ import annotations

import math

import pytest
import sympy
import torch

from optbench.catalogue import get_target
from optbench.errors import TargetError
from optbench.target import Target


def one_line_error(fn, *needles):
    with pytest.raises(TargetError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, msg
    return msg


# ------------------------------------------------------------------ construction


def test_seed_minimizer_is_derived_exactly():
    t = Target("seed", "3*x**2 - 2*x + 3")
    assert t.minimizers == ((sympy.Rational(1, 3),),)
    assert t.f_star == sympy.Rational(8, 3)
    assert t.kind == "quadratic" and t.dim == 1
    A, b, c = t.quadratic_form()
    assert (A, b, c) == (sympy.Matrix([[6]]), sympy.Matrix([2]), 3)


def test_variables_default_to_natural_order():
    t = Target("nat", "x10**2 + x2**2 + x1**2")
    assert [v.name for v in t.variables] == ["x1", "x2", "x10"]


def test_explicit_variable_order_is_kept():
    t = Target("ordered", "(x - 1)**2 + (y - 2)**2", variables=["y", "x"])
    assert t.minimizers == ((2, 1),)


def test_given_minimizers_are_verified_and_accepted():
    t = Target("booth_user", "(x + 2*y - 7)**2 + (2*x + y - 5)**2", minimizers=[(1, 3)])
    assert t.minimizers == ((1, 3),) and t.f_star == 0


def test_psd_only_minimum_is_accepted_as_global():
    t = Target("quartic", "x**4 + y**2", minimizers=[(0, 0)])
    assert t.stationary[0].kind == "global_min" and math.isinf(t.condition_number)


def test_saddle_and_minima_are_classified():
    t = Target("toy", "x**2/2 + y**4/4 - y**2/2")
    kinds = sorted(s.kind for s in t.stationary)
    assert kinds == ["global_min", "global_min", "saddle"]
    assert t.f_star == sympy.Rational(-1, 4)


def test_transcendental_with_guesses_is_refined_at_50_digits():
    t = Target("cosine_bowl", "x**2 - cos(x)", stationary_guesses=[(0.3,)], domain=[(-3, 3)])
    assert t.minimizers == ((0,),) and t.f_star == -1


# ------------------------------------------------------------------ refusals, one line each


def test_expression_with_a_variable_not_listed_is_refused():
    one_line_error(lambda: Target("bad_vars", "x + y**2", variables=["x"]), "'bad_vars'", "unknown variable 'y'")


def test_repeated_variable_is_refused():
    one_line_error(lambda: Target("rep", "x**2", variables=["x", "x"]), "repeat")


def test_minimizer_of_wrong_length_is_refused():
    one_line_error(lambda: Target("len", "x**2 + y**2", minimizers=[(0,)]), "'len'", "1 coordinates")


def test_claimed_non_stationary_point_names_target_point_and_gradient_norm():
    msg = one_line_error(
        lambda: Target("wrong_min", "3*x**2 - 2*x + 3", minimizers=[(0.3,)]), "'wrong_min'", "(0.3)", "|grad f| = 0.2"
    )
    assert "not stationary" in msg


def test_claimed_saddle_names_the_negative_hessian_eigenvalue():
    one_line_error(
        lambda: Target("saddle_claim", "x**2/2 + y**4/4 - y**2/2", minimizers=[(0, 0)]),
        "'saddle_claim'", "(0, 0)", "eigenvalue -1",
    )


def test_claimed_local_minimum_that_is_not_global_is_refused():
    x = sympy.Symbol("x", real=True)
    local = sympy.CRootOf(x**3 - x + sympy.Rational(1, 10), 2)  # the shallower well, exact
    one_line_error(
        lambda: Target("local_only", "x**4/4 - x**2/2 + x/10", minimizers=[(local,)]), "local minimum", "global"
    )


@pytest.mark.parametrize(
    "expr, minimizer, needle",
    [
        ("sqrt(x**2 + y**2)", (0, 0), "not differentiable"),  # Ackley's cone at x*
        ("abs(x) + y**2", (0, 0), "Abs(x) with argument 0"),
        ("max(x, -x) + y**2", (0, 0), "Max of equal arguments"),
        ("sqrt(abs(x)) + y**2", (0, 0), "not differentiable"),  # Eggholder-style sqrt(|.|)
    ],
    ids=["cone-sqrt", "abs", "max", "sqrt-of-abs"],
)
def test_non_differentiable_minimum_is_refused(expr, minimizer, needle):
    one_line_error(lambda: Target("kink", expr, minimizers=[minimizer], domain=[(-1, 1)]), "'kink'", needle)


@pytest.mark.parametrize(
    "expr, needle",
    [
        ("x**3 + y**2", "degree 3 is odd"),
        ("x**4 - y**4 + x**2", "leading form"),
        ("x**2*y**2 - x*y**3 + x**2 + y**2", "leading form"),
        ("sin(x + y) + (x - y)**2 - 1.5*x + 2.5*y + 1", "decreases without bound"),  # McCormick, no box
    ],
    ids=["odd-degree", "indefinite-quartic", "negative-direction", "mccormick-without-domain"],
)
def test_unbounded_below_is_refused(expr, needle):
    one_line_error(lambda: Target("unbounded", expr), "'unbounded'", "unbounded below", needle)


def test_transcendental_without_domain_is_refused():
    one_line_error(lambda: Target("nodomain", "x**2 - cos(x)", minimizers=[(0,)]), "needs domain")


def test_wrong_kind_is_refused():
    one_line_error(lambda: Target("kind", "x**4 + x**2", kind="quadratic"), "is polynomial")


def test_injection_in_a_target_expression_is_refused():
    one_line_error(lambda: Target("inj", "__import__('os').getcwd()"), "'inj'", "not allowed")


# ------------------------------------------------------------------ derivations that could not finish


@pytest.mark.parametrize(
    "make, needles",
    [
        # measured before the bounds: still running after 120 s
        (lambda: Target("t", "x**5000 - x", start=[0.5]), ("degree 4999", "Bezout", "stationary_guesses=", "derive='guesses'")),
        (lambda: Target("t", "x**99999999999", start=[0.5]), ("exponent beyond 10000", "lower the degree")),
        # measured before: a raw OverflowError: too many digits in integer
        (lambda: Target("t", "exp(exp(exp(exp(x))))", start=[0.5]), ("nested 4 deep", "nest fewer")),
        (lambda: Target("t", "x**12 + y**12 + x**5*y**5 + x*y", start=[(1, 1)]), ("121 complex solutions",)),
        (lambda: Target("t", " + ".join(f"(x{i}**2 - 1)**2" for i in range(30))), ("Bezout", "derive='guesses'")),
        (lambda: Target("t", " + ".join(f"x{i}**2" for i in range(40))), ("40 variables, beyond 32",)),
    ],
    ids=["degree-5000", "exponent-1e11", "exp-nested-4", "bezout-121", "separable-30d-quartic", "40-variables"],
)
def test_a_derivation_that_cannot_finish_is_refused_up_front(make, needles):
    msg = one_line_error(make, "'t'", *needles)
    assert "\n" not in msg


def _needs_the_alarm():
    from optbench import minima

    if not minima.time_limit_enforced():  # a thread other than the main one, or SIGALRM owned by someone else
        pytest.skip("time_limit cannot arm SIGALRM here; only the up-front bounds apply")


def test_time_limit_stops_pure_python_work_and_restores_the_alarm():
    import signal

    from optbench import minima

    _needs_the_alarm()

    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(minima.OutOfTime):
        with minima.time_limit(0.05):
            while True:  # what a runaway Groebner basis looks like to the interpreter
                sum(range(1000))
    assert signal.getsignal(signal.SIGALRM) is before and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_derivation_over_its_time_budget_is_a_one_line_refusal(monkeypatch):
    import signal

    from optbench import minima

    _needs_the_alarm()

    def runaway(*args):
        # the budget's alarm is armed around the whole construction; bring it forward to now, so that
        # it fires inside this phase whatever the machine's speed
        signal.setitimer(signal.ITIMER_REAL, 0.01, 0.2)
        while True:
            sum(range(1000))

    monkeypatch.setattr(minima, "solve_polynomial", runaway)
    one_line_error(lambda: Target("slow", "(x**2 - 1)**2 + y**2"), "'slow'", "Groebner", "did not finish within",
                   "stationary_guesses=", "OPTBENCH_DERIVE_SECONDS")
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_the_time_budget_comes_from_the_environment_and_a_bad_value_is_one_line(monkeypatch):
    from optbench import minima
    from optbench.errors import OptbenchError

    monkeypatch.delenv("OPTBENCH_DERIVE_SECONDS", raising=False)
    assert minima.derive_seconds() == minima.DERIVE_SECONDS == 20
    monkeypatch.setenv("OPTBENCH_DERIVE_SECONDS", "90")
    assert minima.derive_seconds() == 90
    monkeypatch.setenv("OPTBENCH_DERIVE_SECONDS", "soon")
    with pytest.raises(OptbenchError, match="OPTBENCH_DERIVE_SECONDS='soon' is not a positive number of seconds"):
        Target("t", "x**2")


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda: Target("t", "(x - 1)**2 - log(x)", start=[0], domain=[(0, 3)], stationary_guesses=[(1.5,)]),
         "f at the start (0) is +inf"),
        (lambda: Target("t", "x**2", start=[1e308]), "f at the start (1e+308) is 1.0e+616"),
        (lambda: Target("t", "sqrt(x) + x**2", domain=[(-1, 3)], stationary_guesses=[(0.5,)]), "left the region where f is real"),
        (lambda: Target("t", "x**2", basin=[(3, 4)]), "holds none of the global minimizers"),
        (lambda: Target("t", "x**2 + y**2", start=(3, 0), domain=[(-2, 2)]), "start (3, 0) lies outside the domain"),
        (lambda: Target("t", "x**2 + y**2", basin=[(-3, 3)], domain=[(-2, 2)]), "is not inside the domain"),
        (lambda: Target("t", "x**2 + y**2", shape=(-1, -2)), "must be positive ints"),
        (lambda: Target("t", "x**2", start=[]), "start= is empty"),
        (lambda: Target("t", "x**2 + 1e308*y**2", start=[(1, 1)]), "|grad f| at the start (1, 1) is 2.0e+308"),
        (lambda: Target("t", "x**2", tags=5), "tags=5 must be strings"),
        (lambda: Target("t", "x**2", variables=[1]), "variables [1] must be names"),
        (lambda: Target("t", "x**2", minimizers=[("y",)]), "is not a point of 1 numbers"),
        (lambda: Target("t", "x**2", start=[complex(1, 2)]), "is not a point of 1 numbers"),
        (lambda: Target("t", "x**2", minimizers=[("sqrt(-1)",)]), "minimizer ('sqrt(-1)',): expression"),
        (lambda: Target("t", "x**2", domain=[("I", 1)]), "domain must be ((lo, hi), ...)"),
        (lambda: Target("t", "x**2 - cos(x)", domain=[(-3, 3)], minimizers=[(0,)], lower_bound="q"),
         "lower_bound='q' is not an exact real number"),
        (lambda: Target("t", sympy.Symbol("x") ** 2 + sympy.I), "is not real"),
        (lambda: Target("t", sympy.Symbol("x") ** 2 + sympy.exp(sympy.exp(10))), "overflows float64"),
        (lambda: Target("t", "(x - 1)**2", minimizers=[("(1/5000)**(1/4999)",)]), "denominator <= 64"),
    ],
    ids=["log-0-at-start", "overflowing-start", "complex-newton-iterate", "basin-without-minimizer", "start-outside-domain",
         "basin-outside-domain", "negative-shape", "empty-start", "gradient-overflow-at-start", "tags-not-strings",
         "variable-not-a-name", "symbolic-minimizer", "complex-start", "complex-minimizer-string", "symbolic-domain",
         "symbolic-lower-bound", "sympy-expression-with-I", "sympy-constant-overflow", "sympy-builds-a-huge-integer"],
)
def test_inconsistent_or_unusable_definitions_are_refused(make, needle):
    one_line_error(make, "'t'", needle)


def test_default_domain_holds_the_given_starts_minimizers_and_basin():
    # measured: with the domain derived from the stationary points alone it was [-1, 3]^2, and the
    # classic start (-1.2, 1) lay outside it (a correct user target failed validation)
    t = Target("rosen", "(1 - x)**2 + 100*(y - x**2)**2", variables=["x", "y"], start=[-1.2, 1.0])
    assert t.domain == ((-4, 3), (-1, 3))
    t = Target("far", "(x - 1)**2 + y**2", start=[(10, -7)], basin=[(0, 2), (-1, 1)])
    assert t.domain == ((-2, 12), (-9, 3)) and t.start == ((10, -7),)


def test_unknown_catalogue_name_suggests_close_names():
    msg = one_line_error(lambda: get_target("rosenbrok_2d"), "unknown target")
    assert "rosenbrock_2d" in msg


# ------------------------------------------------------------------ the torch callable


@pytest.mark.parametrize("batch", [(), (7,), (2, 3)], ids=["no-batch", "batch-7", "batch-2x3"])
def test_fn_over_batch_shapes_and_dtypes(batch, dtype):
    t = get_target("rosenbrock_2d")
    xs = torch.rand(*batch, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).to(dtype)
    out = t(xs)
    assert out.shape == batch and out.dtype == dtype
    want = (1 - xs[..., 0].double()) ** 2 + 100 * (xs[..., 1].double() - xs[..., 0].double() ** 2) ** 2
    # float32: ~1e-7 relative per op on values up to ~100
    tol = {torch.float32: 1e-5, torch.float64: 1e-13}[dtype]
    torch.testing.assert_close(out.double(), want, rtol=tol, atol=tol)


def test_matrix_shaped_parameter_is_accepted():
    t = get_target("rotated_quadratic_4d")
    assert t.shape == (2, 2) and "matrix" in t.tags
    X = torch.randn(5, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(t(X), t(X.reshape(5, 4)), rtol=0, atol=0)


def test_second_order_autograd_matches_the_exact_hessian():
    t = get_target("six_hump_camel")
    p = t.sample_points(1, seed=3)[0]
    x = torch.tensor([float(c) for c in p], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(t(x), x, create_graph=True)
    H = torch.stack([torch.autograd.grad(g[i], x, retain_graph=True)[0] for i in range(2)])
    Hs = torch.tensor([[float(v) for v in row] for row in t.exact_hessian(p).tolist()], dtype=torch.float64)
    gs = torch.tensor([float(v) for v in t.exact_gradient(p)], dtype=torch.float64)
    torch.testing.assert_close(g.detach(), gs, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(H, Hs, rtol=1e-12, atol=1e-12)


def test_impl_is_used_by_call_and_reference_stays_the_expression():
    calls = []

    def impl(x):
        calls.append(x.shape)
        return 3 * x[..., 0] ** 2 - 2 * x[..., 0] + 3 + 1  # deliberately off by one

    t = Target("seed_impl", "3*x**2 - 2*x + 3", impl=impl)
    x = torch.tensor([[0.0]], dtype=torch.float64)
    assert t(x).item() == 4.0 and calls
    assert t.reference(x).item() == 3.0


@pytest.mark.dtypes("float32", "float64", "bfloat16")
def test_x_star_converts_only_at_use(dtype):
    t = get_target("seed_quadratic_pow2")
    xs = t.x_star(dtype)
    assert xs.dtype == dtype and xs.shape == (1, 1) and xs.item() == 0.25  # 1/4 exact in every dtype


def test_random_starts_lie_in_the_basin_and_are_reproducible():
    t = get_target("himmelblau")
    a = t.random_starts(16, seed=5)
    b = t.random_starts(16, seed=5)
    assert a.shape == (16, 2) and torch.equal(a, b)
    for i, (lo, hi) in enumerate(t.basin):
        assert bool(((a[:, i] >= float(lo)) & (a[:, i] <= float(hi))).all())
    assert not torch.equal(a, t.random_starts(16, seed=6))


def test_sample_points_are_exact_rationals_in_the_domain():
    t = get_target("beale")
    pts = t.sample_points(10, seed=0)
    assert len(pts) == 10
    for p in pts:
        assert all(c.is_Rational and lo <= c <= hi for c, (lo, hi) in zip(p, t.domain))


def test_autograd_function_impl_is_called_through_apply():
    class Square(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x * x).sum(-1)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g.unsqueeze(-1)

    t = Target("sq_fn", "x1**2 + x2**2", impl=Square)
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    t(x).backward()
    assert x.grad.tolist() == [2.0, 4.0]


def test_cli_targets_prints_the_table(capsys):
    from optbench.cli import main

    assert main(["targets", "--format", "md", "himmelblau", "seed_quadratic"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| name | d | #min |")
    row = next(line for line in out if line.startswith("| himmelblau "))
    assert "| 4 |" in row and "polynomial" in row
    assert main(["targets", "himmelblo"]) == 2
    assert "did you mean himmelblau" in capsys.readouterr().err
