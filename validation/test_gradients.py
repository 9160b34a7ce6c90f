"""Autograd against sympy, for every target x dtype x device.

A failure names the target, the point, the expected exact value and what torch returned, so a
wrong custom backward passed with ``--target`` reads as a diagnosis rather than "a test failed".
"""

from __future__ import annotations

from fractions import Fraction

import pytest
import sympy as sp
import torch

from optbench.gradcheck import RTOL, compare_at, dyadic_points, error_scale
from optbench.loop import run_loop

N_POINTS = 3  # sampled points per target; each costs one exact sympy evaluation of f, grad, Hessian


def _points(target):
    # The canonical start and a global minimizer are where optimizers live; dyadic samples cover the rest.
    # The start is rounded to the dyadic grid too, so the input is exact in float32 and float64.
    pts = [tuple(Fraction(round(float(c) * 64), 64) for c in target.start[0])]
    pts += dyadic_points(target.domain, N_POINTS, seed=sum(map(ord, target.name)))
    return pts


def _exact(point):
    return [sp.Rational(Fraction(c).numerator, Fraction(c).denominator) if not isinstance(c, sp.Basic) else c for c in point]


def test_value_gradient_hessian_match_sympy(target, dtype, device):
    problems = []
    for pt in _points(target):
        problems += compare_at(target, _exact(pt), dtype, device)
    assert not problems, f"{target.name} [{dtype}, {device}]: " + "; ".join(map(str, problems))


@pytest.mark.dtypes("float64")
def test_gradcheck_and_gradgradcheck(target, dtype, device):
    # gradcheck compares autograd with central finite differences (h = 1e-6); float64 only, as torch
    # requires. Finite differences lose ~eps_mach * |output| / h = 2.2e-10 * |output| to round-off, so
    # the absolute tolerance grows with the output's magnitude (the ellipsoid's gradient reaches 1e6):
    # 1e-9 * scale is 5x that round-off. The exact comparison above is the precise check; this one
    # cross-checks autograd against a method that shares no code with sympy or the backward.
    pts = torch.tensor([[float(c) for c in p] for p in _points(target)], dtype=dtype, device=device)
    x = pts.clone().requires_grad_(True)  # batched (n, d): exercises the leading batch dimension too
    value = target(x)
    (grad,) = torch.autograd.grad(value.sum(), x)
    f_scale = max(1.0, float(value.detach().abs().max()))
    g_scale = max(1.0, float(grad.abs().max()))
    assert torch.autograd.gradcheck(target, (x,), eps=1e-6, atol=1e-5 + 1e-9 * f_scale, rtol=1e-4)
    assert torch.autograd.gradgradcheck(target, (x,), eps=1e-6, atol=1e-4 + 1e-9 * g_scale, rtol=1e-3)


EPOCHS = 6
STEP = 1e-2  # lr = STEP / |grad f(x0)|: steps of ~1e-2 keep the loop near the start, inside the domain


def _subs(target, x: torch.Tensor) -> dict:
    """The float point the optimizer actually reached, as exact rationals."""
    return {s: sp.Rational(float(v)) for s, v in zip(target.variables, x.tolist())}


def _symbolic_grad(target, x: torch.Tensor) -> list[float]:
    subs = _subs(target, x)
    return [float(g.xreplace(subs)) for g in target.gradient]


@pytest.mark.dtypes("float64")
def test_loop_grad_is_symbolic_gradient(target, dtype, device):
    """Inside the five-step loop, after backward, p.grad is the symbolic gradient at the current x."""
    x = torch.tensor([float(c) for c in _points(target)[0]], dtype=dtype, device=device, requires_grad=True)
    g0 = max(1.0, max(abs(v) for v in _symbolic_grad(target, x.detach().cpu())))
    opt = torch.optim.SGD([x], lr=STEP / g0)
    mismatches = []

    def check(epoch, loss):
        subs = _subs(target, x.detach().cpu())
        expected = [float(g.xreplace(subs)) for g in target.gradient]
        allowed = [RTOL[dtype] * error_scale(g, subs) for g in target.gradient]
        got = x.grad.detach().cpu().tolist()
        if any(abs(a - b) > tol for a, b, tol in zip(got, expected, allowed)):
            mismatches.append(f"epoch {epoch}: x = {x.detach().cpu().tolist()}, expected grad {expected}, got {got}")

    traj = run_loop(lambda: target(x), [x], opt, EPOCHS, on_epoch=check)
    assert traj.epochs_run == EPOCHS and not traj.diverged
    assert not mismatches, f"{target.name}: p.grad differs from the symbolic gradient: " + "; ".join(mismatches)


@pytest.mark.dtypes("float64")
def test_grads_accumulate_without_zero_grad(target, dtype, device):
    """The seed's step 1: without zero_grad, p.grad is the running sum of every epoch's gradient."""
    x = torch.tensor([float(c) for c in _points(target)[0]], dtype=dtype, device=device, requires_grad=True)
    opt = torch.optim.SGD([x], lr=0.0)  # lr 0: x stays put, so every epoch adds the same exact gradient
    seen = []
    run_loop(lambda: target(x), [x], opt, EPOCHS, zero_grad=False, on_epoch=lambda e, l: seen.append(x.grad.clone()))
    g1 = torch.tensor(_symbolic_grad(target, x.detach().cpu()), dtype=dtype)
    scale = max(1.0, float(g1.abs().max()))
    for k, g in enumerate(seen, start=1):
        # k additions of the same float64 gradient: error <= k * eps * |g| per entry, 1e-12 relative is ample
        assert torch.allclose(g.cpu(), k * g1, rtol=1e-12, atol=1e-12 * scale * k), (
            f"{target.name}: after {k} epochs without zero_grad, expected p.grad = {k} x {g1.tolist()}, "
            f"got {g.cpu().tolist()}"
        )
