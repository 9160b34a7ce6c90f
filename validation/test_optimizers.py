"""Optimizer validation: P1 convergence (and profiles) and the property contract P2-P17.

Thin glue over the library's plan (``optbench.optimizers.plan``): the cases come from the
OptimizerInfo registry, or only from the ``--optimizer`` ones when given. What differs between
optimizers is declared in ``optbench/optimizers/info.py`` (or the user's TOML), never branched on here.
"""

from __future__ import annotations

import pytest

from fixtures.checks import run

pytestmark = pytest.mark.optbench_plan("optimizers")


def test_converges(check, record_property):
    """P1: from the canonical and K random starts, reach |x-x*| <= tol_x and f-f* <= tol_f; p.grad exact."""
    run(check, record_property)


def test_profile(check, record_property):
    """P1 on a hard target nobody declared a budget for: epochs to tolerance are recorded, never judged."""
    run(check, record_property)


def test_converges_with_coupled_l2(check, record_property):
    """P1 with coupled weight decay λ: the minimum of f + λ/2·|x|², solved exactly by sympy."""
    run(check, record_property)


def test_batched_starts_equal_separate_runs(check):
    """Batching K starts into one (K, d) parameter equals K separate runs (what makes P1 cheap)."""
    run(check)


def test_exact_trajectory(check):
    """GD, heavy ball and Nesterov on quadratics follow their linear recurrences at every epoch."""
    run(check)


def test_stability_edge(check):
    """GD on a quadratic: lr just below 2/L converges, just above diverges."""
    run(check)


def test_linear_rate(check):
    """GD on a quadratic: the measured linear rate equals max|1 - lr·λ_i|."""
    run(check)


def test_p02_descent(check):
    run(check)


def test_p03_lr_zero(check):
    run(check)


def test_p04_frozen_param(check):
    run(check)


def test_p05_grad_untouched(check):
    run(check)


def test_p06_param_groups(check):
    run(check)


def test_p07_param_independence(check):
    run(check)


def test_p08_resume_state_dict(check):
    run(check)


def test_p08_resume_deepcopy(check):
    run(check)


def test_p09_state_dtype_device(check):
    run(check)


def test_p10_closure_loss(check):
    run(check)


def test_p11_maximize(check):
    run(check)


def test_p12_weight_decay(check):
    run(check)


def test_p13_translation(check):
    run(check)


def test_p14_noncontiguous(check):
    run(check)


def test_p15_impl_parity(check):
    run(check)


def test_p15_dtype_parity(check):
    run(check)


def test_p16_zero_grad(check):
    run(check)


def test_p17_determinism(check):
    run(check)
