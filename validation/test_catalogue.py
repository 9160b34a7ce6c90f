"""Catalogue self-consistency, for every target (ids are target names; ``--target`` narrows them).

Everything checked here is computed by the code under test and compared with an independent
statement: the gradient at x* is zero, the Hessian is PD (PSD where the target declares ``psd``),
f(x*) = f*, no sampled point of the domain beats f*, and the counts of global minima that follow
from a closed-form argument (Himmelblau 4 of 9, six-hump 2, Dixon-Price 2, Qing 2^d, ...).
"""

from __future__ import annotations

import mpmath
import pytest
import sympy
import torch

from optbench import minima
from optbench.catalogue import catalogue, get_target

# 60-digit arithmetic: a true zero evaluates below 1e-30 (minima.GRAD_TOL); anything else is far above.
GRAD_TOL = minima.GRAD_TOL


def _num(t):
    return t.numeric  # the 60-digit evaluator built with the target (lambdify once per target)


def test_catalogue_has_at_least_25_uniquely_named_targets():
    cat = catalogue()
    assert len(cat) >= 25
    assert len(set(cat)) == len(cat) and all(k == t.name for k, t in cat.items())
    kinds = {t.kind for t in cat.values()}
    assert kinds == {"quadratic", "polynomial", "transcendental"}


def test_gradient_is_zero_at_every_minimizer(target):
    num = _num(target)
    for p in target.minimizers:
        if all(sympy.sympify(c).is_Rational for c in p):
            assert all(g == 0 for g in target.exact_gradient(p)), p  # exactly zero
        assert num.gradient_norm(p) < GRAD_TOL, p


def test_every_stationary_point_is_stationary_and_consistently_classified(target):
    num = _num(target)
    for s in target.stationary:
        assert num.gradient_norm(s.point) < GRAD_TOL
        ev = num.eigenvalues(s.point)
        kind = minima.classify_eigenvalues(ev)
        if s.kind == "global_min":
            assert kind in ("local_min", "degenerate")
        else:
            assert kind == s.kind


def test_hessian_at_minimizers_is_positive_definite_or_declared_psd(target):
    num = _num(target)
    for p in target.minimizers:
        ev = num.eigenvalues(p)
        scale = max(abs(e) for e in ev)
        if "psd" in target.tags:
            assert min(ev) > -minima.EIG_TOL * scale and abs(min(ev)) <= minima.EIG_TOL * scale
        else:
            assert min(ev) > minima.EIG_TOL * scale, f"min eigenvalue {min(ev)} at {p}"


def test_value_at_every_minimizer_is_f_star(target):
    num = _num(target)
    with mpmath.workdps(minima.DPS):
        fstar = minima.to_mpf(target.f_star)
        for p in target.minimizers:
            assert abs(num.value(p) - fstar) < minima.VALUE_TOL * max(1, abs(fstar))
    # and the compiled torch function agrees in float64 (rounding only: ~1e-15 relative per op)
    vals = target.reference(target.x_star(torch.float64))
    torch.testing.assert_close(vals, torch.full_like(vals, float(fstar)), rtol=1e-12, atol=1e-12)


def test_local_minima_are_strictly_above_f_star(target):
    fstar = float(sympy.N(target.f_star, 30))
    for s in target.stationary:
        v = float(sympy.N(s.value, 30))
        if s.kind == "global_min":
            assert v == pytest.approx(fstar, rel=1e-14, abs=1e-14)
        else:
            assert v > fstar


def test_no_sampled_point_beats_f_star(target):
    g = torch.Generator().manual_seed(0)
    lo = torch.tensor([float(a) for a, _ in target.domain], dtype=torch.float64)
    hi = torch.tensor([float(b) for _, b in target.domain], dtype=torch.float64)
    pts = [lo + (hi - lo) * torch.rand(4096, target.dim, generator=g, dtype=torch.float64)]
    for box in (target.basin,):  # densest where the minimum is
        blo = torch.tensor([float(a) for a, _ in box], dtype=torch.float64)
        bhi = torch.tensor([float(b) for _, b in box], dtype=torch.float64)
        pts.append(blo + (bhi - blo) * torch.rand(4096, target.dim, generator=g, dtype=torch.float64))
    vals = target.reference(torch.cat(pts))
    fstar = float(sympy.N(target.f_star, 30))
    # float64 evaluation error: ~1e-15 relative to the magnitude of the terms; allow 1e-9 (1 + |f*|)
    assert float(vals.min()) >= fstar - 1e-9 * (1 + abs(fstar))


def test_minimizers_start_and_basin_lie_in_the_domain(target):
    def inside(p, box):
        return all(lo <= sympy.N(c, 30) <= hi for c, (lo, hi) in zip(p, box))

    assert all(inside(p, target.domain) for p in target.minimizers)
    assert all(inside(p, target.domain) for p in target.start)
    assert all(lo >= dlo and hi <= dhi for (lo, hi), (dlo, dhi) in zip(target.basin, target.domain))
    assert any(inside(p, target.basin) for p in target.minimizers)


def test_compiled_function_matches_the_exact_value(target):
    pts = target.sample_points(4, seed=1)
    x = torch.tensor([[float(c) for c in p] for p in pts], dtype=torch.float64)
    want = torch.tensor([float(sympy.N(target.exact_value(p), 30)) for p in pts], dtype=torch.float64)
    torch.testing.assert_close(target.reference(x), want, rtol=1e-11, atol=1e-11)


def test_quadratic_form_reproduces_the_expression(target):
    qf = target.quadratic_form()
    if target.kind != "quadratic":
        assert qf is None
        return
    A, b, c = qf
    xv = sympy.Matrix(target.variables)
    assert sympy.expand((xv.T * A * xv)[0, 0] / 2 - (b.T * xv)[0, 0] + c - target.expr) == 0
    assert A.is_positive_definite


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
    assert len(t.minimizers) == n_global
    if n_stationary is not None:
        assert len(t.stationary) == n_stationary


@pytest.mark.parametrize("d", [2, 4, 6])
def test_trid_minimizer_is_the_closed_form(d):
    t = get_target(f"trid_{d}d")
    assert t.minimizers == (tuple(i * (d + 1 - i) for i in range(1, d + 1)),)
    assert t.f_star == -sympy.Rational(d * (d + 4) * (d - 1), 6)


def test_seed_and_its_power_of_two_twin():
    s, p = get_target("seed_quadratic"), get_target("seed_quadratic_pow2")
    assert (s.minimizers, s.f_star, s.start) == (((sympy.Rational(1, 3),),), sympy.Rational(8, 3), ((-1,),))
    assert p.minimizers == ((sympy.Rational(1, 4),),)
    curvature = p.exact_hessian((0,))[0, 0]
    factor = 1 - sympy.Rational(1, 8) * curvature  # SGD error factor at lr = 1/8
    for v in (p.minimizers[0][0], p.f_star, factor):
        assert sympy.Rational(float(torch.tensor(float(v), dtype=torch.float32))) == v  # exact in float32


def test_dixon_price_minimizers_have_the_closed_form():
    for d in (2, 3):
        t = get_target(f"dixon_price_{d}d")
        for p in t.minimizers:
            for i, c in enumerate(p, start=1):
                want = 2 ** (-sympy.Rational(2**i - 2, 2**i))
                assert sympy.N(abs(c) - want, 40) == 0 or abs(sympy.N(abs(c) - want, 40)) < 1e-35


def test_powell_singular_is_only_psd_at_its_minimizer():
    t = get_target("powell_singular")
    assert "psd" in t.tags and t.condition_number == float("inf")
    assert t.minimizers == ((0, 0, 0, 0),) and t.f_star == 0


def test_condition_numbers_of_the_built_quadratics():
    assert get_target("ellipsoid_3d").condition_number == pytest.approx(1e6, rel=1e-12)
    assert get_target("rotated_quadratic_2d").condition_number == pytest.approx(100, rel=1e-12)
    assert get_target("rotated_quadratic_4d").condition_number == pytest.approx(1000, rel=1e-12)


@pytest.mark.targets(lambda t: t.kind == "transcendental")
def test_separable_transcendental_global_claim_by_1d_enumeration(target):
    """The global claim on the box, independent of the stated lower bound: for f = sum_i g_i(x_i) the
    box minimum is the sum of the 1-D minima, each the lowest stationary point or endpoint of g_i
    (stationary points enumerated from a grid and refined by nsolve at 50 digits)."""
    res = minima.separable_global_min(target.expr, target.variables, target.domain)
    if res is None:
        pytest.skip(f"{target.name} is not separable; its global claim rests on its stated lower bound")
    low, argmins = res
    with mpmath.workdps(minima.DPS):
        assert abs(low - minima.to_mpf(target.f_star)) < minima.VALUE_TOL * max(1, abs(low))
    mins = {tuple(float(sympy.N(c, 30)) for c in p) for p in target.minimizers}
    import itertools

    box_mins = {tuple(float(sympy.N(c, 30)) for c in p) for p in itertools.product(*argmins)}
    assert box_mins == mins


def test_rastrigin_1d_stationary_count_on_its_box():
    # x^2 - 10 cos(2 pi x) on [-5.12, 5.12]: a minimum near each integer -5..5 and a maximum between
    # neighbours -> 11 + 10 = 21 stationary points per axis
    t = get_target("rastrigin_2d")
    parts = minima.separable_parts(t.expr, t.variables)
    x1 = t.variables[0]
    assert len(minima.stationary_1d(parts[x1], x1, *t.domain[0])) == 21
