"""The seed study, checked epoch by epoch against exact arithmetic.

On a quadratic f(x) = 1/2 x^T A x - b^T x + c, gradient descent is the linear recursion
x_k - x* = (I - lr*A)^k (x0 - x*); for the seed f = 3x^2 - 2x + 3 (A = 6, x* = 1/3) that is
x_k = 1/3 - 4/3 (1 - 6 lr)^k. Every epoch of torch's SGD is compared with that exact rational number
(optbench.closed_form.gd_closed_form), in float32 and float64, on every selected device.

The ``dtype`` and ``device`` parameters come from fixtures/devices.py (cuda is skipped with its
reason when absent).
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import sympy
import torch

from optbench.catalogue import get_target
from optbench.closed_form import gd_closed_form, gd_closed_form_model
from optbench.exact import round_to_dtype
from optbench.loop import run_loop
from optbench.seed import run_seed

# |torch SGD - exact closed form|, any coordinate, any epoch.
TOL_CLOSED_FORM = {
    # float32: each epoch rounds x, 6x - 2 and lr*g (and lr itself is fl32(0.01)); the errors are
    # damped by the same factor 0.94 as the iterate, so they saturate: measured max 4.1e-8 on the
    # seed (80 epochs) and 2.7e-7 on booth (|x| up to 3, so a few ulps of 2.4e-7). 1e-6 leaves 4x.
    torch.float32: 1e-6,
    # float64: the same rounding at 2^-53: measured 1.1e-16 on the seed and 4.4e-16 on booth
    # (2 ulps of 3). 1e-14 leaves 20x and still catches any real deviation from plain GD.
    torch.float64: 1e-14,
}

# Quadratics, each with a stable learning rate: the seed's own, and two more for coverage.
CLOSED_FORM_CASES = [
    ("seed_quadratic", "1/100", 80),  # the study: factor 1 - 6/100 = 47/50
    ("seed_quadratic_pow2", "1/8", 80),  # factor 1 - 4/8 = 1/2
    ("booth", "1/32", 80),  # 2-D: A = [[10, 8], [8, 10]], eigenvalues 2 and 18, factors 15/16 and 7/16
]


def _sgd_run(name: str, lr: float, epochs: int, dtype: torch.dtype, device: str, start=None):
    """SGD through the shared five-step loop; returns (target, trajectory, xs as exact Fractions)."""
    t = get_target(name)
    x0 = start if start is not None else t.start[0]
    x = torch.tensor([float(c) for c in x0], dtype=dtype, device=device, requires_grad=True)
    opt = torch.optim.SGD([x], lr=lr)
    traj = run_loop(lambda: t.fn(x), [x], opt, epochs)
    xs = [[Fraction(float(v)) for v in snap[0].detach().cpu().double()] for snap in traj.xs]
    return t, traj, xs


def _ulp(value: float, dtype: torch.dtype) -> float:
    return math.ulp(value) if dtype == torch.float64 else float(2.0 ** (math.frexp(value)[1] - 24))


def _q(v) -> Fraction:
    v = sympy.Rational(v)
    return Fraction(int(v.p), int(v.q))


# ------------------------------------------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Here rather than as a mark: a module's hook runs before the dtype/device parametrizers of
    # fixtures/, so the ids read target-dtype-device, e.g. [seed_quadratic-float64-cpu].
    if metafunc.function is test_sgd_matches_closed_form:
        metafunc.parametrize("name, lr, epochs", CLOSED_FORM_CASES, ids=[c[0] for c in CLOSED_FORM_CASES])


def test_sgd_matches_closed_form(name, lr, epochs, dtype, device):
    t, traj, xs = _sgd_run(name, float(Fraction(lr)), epochs, dtype, device)
    assert traj.stopped is None and traj.epochs_run == epochs
    cf = gd_closed_form_model(t, lr, t.start[0])
    exact = cf.exact_trajectory(epochs)
    tol = TOL_CLOSED_FORM[dtype]
    worst = max(
        (abs(float(xk[i] - _q(ek[i]))), k) for k, (xk, ek) in enumerate(zip(xs, exact)) for i in range(t.dim)
    )
    assert worst[0] <= tol, f"epoch {worst[1]}: |torch - closed form| = {worst[0]:.3g} > {tol:g}"
    # and the single-k entry point agrees with the recursion
    assert gd_closed_form(t, lr, t.start[0], epochs) == exact[-1]


def test_seed_final_x_is_the_closed_form(dtype, device):
    """The study's 'x ~ 0.32 after 80 epochs' is x_80 = 1/3 - 4/3 (47/50)^80 = 0.32388909..."""
    exact = gd_closed_form(get_target("seed_quadratic"), "0.01", [-1], 80)[0]
    assert exact == sympy.Rational(1, 3) - sympy.Rational(4, 3) * sympy.Rational(47, 50) ** 80
    assert f"{float(exact):.8f}" == "0.32388909"
    assert round(float(exact), 2) == 0.32  # what the study reported
    # run_seed is the library path of `optbench run`: defaults are the study
    res = run_seed(dtype=dtype, device=device)
    assert (res.target.name, res.optimizer_name.lower(), res.lr, res.epochs) == ("seed_quadratic", "sgd", 0.01, 80)
    assert res.optimizer_type == "torch.optim.sgd.SGD"
    assert res.closed_form is not None and res.closed_form.factor == sympy.Rational(47, 50)
    assert abs(res.x_final[0] - float(exact)) <= TOL_CLOSED_FORM[dtype]
    assert abs(res.closed_form_xs[-1][0] - float(exact)) <= 1e-15  # 50-digit evaluation, then rounded
    assert res.x_star == (sympy.Rational(1, 3),) and res.f_star == sympy.Rational(8, 3)
    assert res.gap_x_star == pytest.approx(4 / 3 * 0.94**80, rel=1e-5)


def test_pow2_twin_is_bit_exact(dtype, device):
    """2x^2 - x + 1 with lr = 1/8: every intermediate of an SGD step is exact in binary (4x, 4x - 1,
    lr*g are scalings by powers of two or Sterbenz-exact), so each step is ONE correctly rounded
    operation, and torch equals exact arithmetic bit for bit."""
    lr, epochs = Fraction(1, 8), 80
    t, traj, xs = _sgd_run("seed_quadratic_pow2", float(lr), epochs, dtype, device)
    quarter = Fraction(1, 4)  # x* (f* = 7/8): exact in every binary dtype

    # (1) each epoch: x_{k+1} == round(x_k - lr * f'(x_k)), f' = 4x - 1, computed exactly from torch's x_k
    for k in range(epochs):
        assert float(xs[k + 1][0]) == round_to_dtype(xs[k][0] - lr * (4 * xs[k][0] - 1), dtype), f"epoch {k}"

    # (2) against the closed form x_k = 1/4 - 5/4 * 2^-k: equal (==) at every epoch where that number
    # is representable in the dtype, i.e. while 5 * 2^-(k+2) is a multiple of the ulp of [1/8, 1/4)
    # (k <= 24 in float32, k <= 53 in float64). After that the error is below half an ulp of x*:
    # torch lands on x* exactly (gradient exactly 0) and stays; the exact x_k only approaches it.
    cf = gd_closed_form_model(t, "1/8", t.start[0])
    assert cf.factor == sympy.Rational(1, 2)
    exact = [_q(v[0]) for v in cf.exact_trajectory(epochs)]
    representable = [k for k, q in enumerate(exact) if Fraction(round_to_dtype(q, dtype)) == q]
    last = {torch.float32: 24, torch.float64: 53}[dtype]
    assert representable == list(range(last + 1))
    for k in representable:
        assert xs[k][0] == exact[k], f"epoch {k}: torch {float(xs[k][0])!r} != closed form {exact[k]}"
    ulp = _ulp(0.25, dtype) / 2  # ulp just below 1/4
    for k in range(last + 1, epochs + 1):
        assert abs(xs[k][0] - exact[k]) <= ulp, f"epoch {k}"
    landed = next(k for k, x in enumerate(xs) if x[0] == quarter)
    assert all(x[0] == quarter for x in xs[landed:])
    assert traj.losses[landed:] == [0.875] * (epochs - landed)  # f* = 7/8, exact


def test_edge_of_stability_exact():
    """lr = 1/3 exactly: factor 1 - 6/3 = -1, an exact 2-cycle -1, 5/3, -1, ... with f = 8 throughout."""
    t = get_target("seed_quadratic")
    cf = gd_closed_form_model(t, "1/3", [-1])
    assert cf.factor == -1
    assert cf.stability_limit == sympy.Rational(1, 3)  # GD on f is stable iff lr < 2/6
    x = t.variables[0]
    for k, (xk,) in enumerate(cf.exact_trajectory(20)):
        assert xk == (-1 if k % 2 == 0 else sympy.Rational(5, 3))
        assert t.expr.subs(x, xk) == 8


def test_edge_of_stability_two_cycle(dtype, device):
    """lr = 1/3 in floating point. 1/3 is not representable in binary: torch steps with
    lr_eff = fl(1/3), which is 1/3 - 2^-54/3 in float64 (rounded down) and 1/3 + 2^-25/3 in float32
    (rounded up; SGD applies lr in the parameter's dtype). The iterates still form an exact 2-cycle,
    bit for bit, but the odd point is -1 + 8 lr_eff, not 5/3, so f there is 8 only to one ulp."""
    epochs = 200
    t, traj, xs = _sgd_run("seed_quadratic", 1 / 3, epochs, dtype, device)
    assert traj.stopped is None
    lr_eff = Fraction(round_to_dtype(sympy.Rational(1, 3), dtype))
    assert lr_eff != Fraction(1, 3)
    assert (lr_eff < Fraction(1, 3)) == (dtype == torch.float64)
    odd = Fraction(-1) + 8 * lr_eff  # x_1 = x_0 - lr_eff * f'(-1) = -1 + 8 lr_eff, exact in the dtype
    assert Fraction(round_to_dtype(odd, dtype)) == odd and odd != Fraction(5, 3)
    for k, x in enumerate(xs):
        assert x[0] == (Fraction(-1) if k % 2 == 0 else odd), f"epoch {k}: {float(x[0])!r}"
    # loss: f(-1) = 8 exactly at even epochs; at odd ones f(odd) = 8 + 8d + 3d^2 with
    # d = odd - 5/3 = 8 (lr_eff - 1/3): 6.4e-7 in float32, 1.2e-15 in float64, both below one ulp of 8.
    d = odd - Fraction(5, 3)
    assert abs(8 * d + 3 * d * d) < _ulp(8.0, dtype)
    for k, loss in enumerate(traj.losses):
        if k % 2 == 0:
            assert loss == 8.0, f"epoch {k}"
        else:
            assert abs(loss - 8.0) <= _ulp(8.0, dtype), f"epoch {k}: {loss!r}"


# |e_{k+1} / e_k - (-1.1)| for lr = 0.35, e_k = x_k - 1/3.
TOL_GROWTH = {
    # float32: lr is fl32(0.35) (factor off by 3.6e-8) and each x_k is rounded (6e-8 relative);
    # measured 1.7e-7 over 60 epochs. 1e-6 leaves 6x.
    torch.float32: 1e-6,
    # float64: the same at 2^-53; measured 4.4e-16. 1e-14 leaves 20x.
    torch.float64: 1e-14,
}


def test_lr_035_diverges_geometrically(dtype, device):
    """|1 - 6 * 0.35| = 1.1 > 1: the error is multiplied by -1.1 every epoch."""
    t = get_target("seed_quadratic")
    cf = gd_closed_form_model(t, "0.35", [-1])
    assert cf.factor == sympy.Rational(-11, 10) and cf.spectral_radius == pytest.approx(1.1)
    _, traj, xs = _sgd_run("seed_quadratic", 0.35, 60, dtype, device)
    e = [float(x[0] - Fraction(1, 3)) for x in xs]
    for k in range(60):
        assert abs(e[k + 1] / e[k] + 1.1) <= TOL_GROWTH[dtype], f"epoch {k}: ratio {e[k + 1] / e[k]!r}"
    assert abs(e[60]) == pytest.approx(4 / 3 * 1.1**60, rel=1e-5)


# Start points for the overflow test: the seed's -1 in float32 (overflow after 457 epochs); in float64
# the same start needs 3715 epochs (about a second), so it starts at -2^500 (exact) instead.
OVERFLOW_START = {torch.float32: Fraction(-1), torch.float64: Fraction(-(2**500))}
OVERFLOW_EPOCH = {torch.float32: 457, torch.float64: 82}


def test_lr_035_stops_nonfinite_at_the_predicted_epoch(dtype, device):
    """Run long enough and the loss overflows; run_loop stops with stopped == "nonfinite" at the first
    epoch whose loss exceeds the dtype's max, predicted from the exact closed form (each epoch
    multiplies f - f* by 1.21, so the overflow boundary is never within rounding of a prediction)."""
    fmax = Fraction(torch.finfo(dtype).max)
    x0 = OVERFLOW_START[dtype]
    k, e0 = 0, x0 - Fraction(1, 3)
    while True:
        xk = Fraction(1, 3) + e0 * Fraction(-11, 10) ** k
        if 3 * xk * xk - 2 * xk + 3 > fmax:
            break
        k += 1
    predicted = k
    assert predicted == OVERFLOW_EPOCH[dtype]
    _, traj, _ = _sgd_run("seed_quadratic", 0.35, predicted + 50, dtype, device, start=[float(x0)])
    assert traj.stopped == "nonfinite" and traj.diverged
    assert traj.nonfinite_epoch == predicted
    assert traj.epochs_run == predicted + 1
    assert not math.isfinite(traj.losses[-1]) and all(math.isfinite(v) for v in traj.losses[:-1])
