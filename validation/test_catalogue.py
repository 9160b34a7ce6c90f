"""Catalogue self-consistency: properties T1-T10 of ``optbench.target_checks`` for every target (thin
glue over the ``targets`` check plan; ids are ``<target>-exact``, and ``--target`` narrows them), then
statements about the built-in catalogue itself.

Everything checked is computed by the code under test and compared with an independent statement:
the gradient at x* is zero, the Hessian is PD (PSD where the target declares ``psd``), f(x*) = f*, no
sampled point of the domain beats f*, and the counts of global minima that follow from a closed-form
argument (Himmelblau 4 of 9, six-hump 2, Dixon-Price 2, Qing 2^d, ...).
"""

from __future__ import annotations

import pytest
import sympy
import torch

from fixtures.checks import run
from optbench import minima
from optbench.catalogue import catalogue, get_target
from pytest_optbench.plugin import options


# ------------------------------------------------------------------ per-target properties (the plan)


@pytest.mark.optbench_plan("targets")
def test_minimizers_start_and_basin_lie_in_the_domain(check):
    """T1: minimizers and starts in the domain; the basin inside it, around a global minimizer."""
    run(check)


@pytest.mark.optbench_plan("targets")
def test_gradient_is_zero_at_every_minimizer(check):
    """T2: grad f(x*) = 0, exactly where x* is rational, below 1e-30 at 60 digits everywhere."""
    run(check)


@pytest.mark.optbench_plan("targets")
def test_every_stationary_point_is_stationary_and_consistently_classified(check):
    """T3: every stationary point is stationary and classified as its Hessian says."""
    run(check)


@pytest.mark.optbench_plan("targets")
def test_hessian_at_minimizers_is_positive_definite_or_declared_psd(check):
    """T4: the Hessian at x* is positive definite (singular PSD where tagged 'psd')."""
    run(check)


@pytest.mark.optbench_plan("targets")
def test_value_at_every_minimizer_is_f_star(check):
    """T5: f(x*) = f* at 60 digits, and the compiled expression agrees in float64."""
    run(check)


@pytest.mark.optbench_plan("targets")
def test_local_minima_are_strictly_above_f_star(check):
    """T6: the global minima share f*; every other stationary point lies strictly above it."""
    run(check)


@pytest.mark.optbench_plan("targets")
def test_no_sampled_point_beats_f_star(check):
    """T7: no sampled point of the domain or basin has a value below f*."""
    run(check)


@pytest.mark.optbench_plan("targets")
def test_compiled_function_matches_the_exact_value(check):
    """T8: the compiled torch expression equals the exact value at sampled points (float64)."""
    run(check)


@pytest.mark.optbench_plan("targets")
def test_quadratic_form_reproduces_the_expression(check):
    """T9: a quadratic's exact (A, b, c) reproduces it, A positive definite; other kinds have none."""
    run(check)


@pytest.mark.optbench_plan("targets")
def test_separable_transcendental_global_claim_by_1d_enumeration(check):
    """T10: a separable transcendental target's global claim, by 1-D enumeration on the box."""
    run(check)


# ------------------------------------------------------------------ the built-in catalogue itself


@pytest.fixture(autouse=True)
def _builtin_catalogue_only(request):
    """Statements about the built-in catalogue do not apply when ``--target`` selects user targets."""
    if "check" not in request.fixturenames and options(request.config).user_targets:
        pytest.skip("a statement about the built-in catalogue; --target selects only the given targets")


def test_catalogue_has_at_least_25_uniquely_named_targets():
    cat = catalogue()
    assert len(cat) >= 25, f"the catalogue has {len(cat)} targets, expected at least 25"
    bad = [(k, t.name) for k, t in cat.items() if k != t.name]
    assert len(set(cat)) == len(cat) and not bad, f"catalogue keys differ from target names: {bad}"
    kinds = {t.kind for t in cat.values()}
    assert kinds == {"quadratic", "polynomial", "transcendental"}, f"kinds in the catalogue: {sorted(kinds)}"


# ------------------------------------------------------------------ independent closed forms


@pytest.mark.parametrize(
    "name, n_global, n_stationary",
    [
        ("himmelblau", 4, 9),  # solve() finds only 4 of the 9
        ("six_hump_camel", 2, 15),
        ("dixon_price_2d", 2, None),  # x_i = 2 x_{i+1}^2 >= 0 for i < d: only x_d's sign is free -> 2
        ("dixon_price_3d", 2, None),
        ("qing_2d", 4, 9),  # separable: (x_i^2 - i) = 0 -> 2^d minima; x_i in {0, +-sqrt(i)} -> 3^d points
        ("styblinski_tang_2d", 1, 9),  # separable cubic derivative with 3 real roots -> 3^d points
        ("strict_saddle", 2, 3),
        ("rosenbrock_2d", 1, 1),
    ],
)
def test_number_of_global_minima(name, n_global, n_stationary):
    t = get_target(name)
    assert len(t.minimizers) == n_global, f"{name}: {len(t.minimizers)} global minimizers, expected {n_global}"
    if n_stationary is not None:
        assert len(t.stationary) == n_stationary, (
            f"{name}: {len(t.stationary)} stationary points, expected {n_stationary}")


@pytest.mark.parametrize("d", [2, 4, 6])
def test_trid_minimizer_is_the_closed_form(d):
    t = get_target(f"trid_{d}d")
    want = (tuple(i * (d + 1 - i) for i in range(1, d + 1)),)
    assert t.minimizers == want, f"trid_{d}d: minimizers {t.minimizers}, expected x_i = i (d + 1 - i): {want}"
    f_star = -sympy.Rational(d * (d + 4) * (d - 1), 6)
    assert t.f_star == f_star, f"trid_{d}d: f* = {t.f_star}, expected -d (d + 4)(d - 1)/6 = {f_star}"


def test_seed_and_its_power_of_two_twin():
    s, p = get_target("seed_quadratic"), get_target("seed_quadratic_pow2")
    got = (s.minimizers, s.f_star, s.start)
    assert got == (((sympy.Rational(1, 3),),), sympy.Rational(8, 3), ((-1,),)), f"seed: (x*, f*, start) = {got}"
    assert p.minimizers == ((sympy.Rational(1, 4),),), f"seed_quadratic_pow2: x* = {p.minimizers}, expected 1/4"
    curvature = p.exact_hessian((0,))[0, 0]
    factor = 1 - sympy.Rational(1, 8) * curvature  # SGD error factor at lr = 1/8
    for v in (p.minimizers[0][0], p.f_star, factor):
        f32 = sympy.Rational(float(torch.tensor(float(v), dtype=torch.float32)))
        assert f32 == v, f"{v} is not exact in float32 (rounds to {f32})"


def test_dixon_price_minimizers_have_the_closed_form():
    for d in (2, 3):
        t = get_target(f"dixon_price_{d}d")
        for p in t.minimizers:
            for i, c in enumerate(p, start=1):
                want = 2 ** (-sympy.Rational(2**i - 2, 2**i))
                diff = sympy.N(abs(c) - want, 40)
                assert diff == 0 or abs(diff) < 1e-35, (  # 40-digit evaluation of two exact numbers
                    f"dixon_price_{d}d: |x_{i}| = {sympy.N(abs(c), 20)}, expected 2^-((2^i - 2)/2^i) = "
                    f"{sympy.N(want, 20)} (|diff| = {abs(diff)}, allowed 1e-35)")


def test_powell_singular_is_only_psd_at_its_minimizer():
    t = get_target("powell_singular")
    assert "psd" in t.tags and t.condition_number == float("inf"), (
        f"powell_singular: tags {sorted(t.tags)}, condition number {t.condition_number}; expected psd and inf")
    assert t.minimizers == ((0, 0, 0, 0),) and t.f_star == 0, f"powell_singular: x* = {t.minimizers}, f* = {t.f_star}"


@pytest.mark.parametrize("name, kappa", [("ellipsoid_3d", 1e6), ("rotated_quadratic_2d", 100),
                                         ("rotated_quadratic_4d", 1000)])
def test_condition_numbers_of_the_built_quadratics(name, kappa):
    got = get_target(name).condition_number  # from 60-digit eigenvalues: 1e-12 relative is rounding only
    assert got == pytest.approx(kappa, rel=1e-12), f"{name}: condition number {got!r}, built as {kappa:g}"


def test_rastrigin_1d_stationary_count_on_its_box():
    # x^2 - 10 cos(2 pi x) on [-5.12, 5.12]: a minimum near each integer -5..5 and a maximum between
    # neighbours -> 11 + 10 = 21 stationary points per axis
    t = get_target("rastrigin_2d")
    parts = minima.separable_parts(t.expr, t.variables)
    x1 = t.variables[0]
    n = len(minima.stationary_1d(parts[x1], x1, *t.domain[0]))
    assert n == 21, f"rastrigin_2d: {n} stationary points of x^2 - 10 cos(2 pi x) on [-5.12, 5.12], expected 21"
