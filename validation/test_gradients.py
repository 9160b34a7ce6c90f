"""Autograd against sympy, for every target x dtype x device: properties G1-G6 of
``optbench.target_checks`` (thin glue over the ``targets`` check plan).

A failure names the property, the target, the point, the expected exact value, what torch returned
and the tolerance with its reason, so a wrong custom backward passed with ``--target`` reads as a
diagnosis rather than "a test failed".
"""

from __future__ import annotations

import pytest

from fixtures.checks import run

pytestmark = pytest.mark.optbench_plan("targets")


def test_value_matches_sympy(check):
    """G1: the callable's value equals sympy's exact value at exact (dyadic) points."""
    run(check)


def test_gradient_matches_sympy(check):
    """G2: autograd's gradient equals sympy's exact gradient."""
    run(check)


def test_hessian_matches_sympy(check):
    """G3: the double-backward Hessian equals sympy's exact Hessian."""
    run(check)


def test_gradcheck_and_gradgradcheck(check):
    """G4: gradcheck and gradgradcheck against central differences (float64)."""
    run(check)


def test_loop_grad_is_symbolic_gradient(check):
    """G5: inside the five-step loop, after backward, p.grad is the symbolic gradient at the current x."""
    run(check)


def test_grads_accumulate_without_zero_grad(check):
    """G6 (the seed's step 1): without zero_grad, p.grad is the running sum of every epoch's gradient."""
    run(check)
