"""Optimizer validation: P1 convergence and the property contract P2-P17.

The cases come from the OptimizerInfo registry (``fixtures/optimizers.py``), or only from the
``--optimizer`` ones when given. Tests never branch on an optimizer's name: what differs between
optimizers is declared in ``optbench/optimizers/info.py`` (or the user's TOML).
"""

from __future__ import annotations

import pytest
import torch

from optbench.catalogue import get_target
from optbench.optimizers import contract as C
from optbench.optimizers import convergence as P1
from optbench.optimizers.contract import PropertyFailure


# --------------------------------------------------------------------------------------- P1


def _p1(opt_case, record_property, *, weight_decay=0.0, x_star=None, f_star=None, what="P1"):
    case = opt_case.case
    info, cfg = case.info, case.config
    target = get_target(opt_case.target)
    budget = info.budget(cfg, target.name)
    batch = info.elementwise
    if batch is None:  # user optimizer without a declaration: probe batched == separate once
        batch = P1.batched_equals_separate(case, target, epochs=5)[0]
    lrs = [budget.lr] if budget.lr is not None else list(P1.LR_GRID)
    groups_exact = len(lrs) == 1 or _groups_exact(case)
    starts = P1.starts_for(info, target, case.dtype, bool(batch))
    res = P1.run_p1(case, target, starts, lrs, budget.epochs, batch_starts=bool(batch), batch_groups=groups_exact,
                    weight_decay=weight_decay, x_star=x_star, f_star=f_star)
    if res.grad_error:
        raise PropertyFailure(f"{what}", case, f"on {target.name}: {res.grad_error}")
    ok = [g for g in range(len(lrs)) if res.converged(g)]
    if budget.lr is None:
        band = (f"{target.name}: converged for lr in [{lrs[ok[0]]:.3g}, {lrs[ok[-1]]:.3g}] ({len(ok)} of {len(lrs)} "
                f"grid lrs)" if ok else f"{target.name}: no lr of the grid converged")
        record_property("optbench_lr_band", band)
    if not ok:
        g = min(range(len(lrs)), key=lambda g: (res.diverged[g] is not None, float(res.dist[g].max())))
        extra = "" if len(lrs) == 1 else f" (best of the lr grid {lrs[0]:.0e}..{lrs[-1]:.1f})"
        raise PropertyFailure(what, case, P1.describe_failure(case, target, res, g, budget.epochs) + extra)


_GROUPS_EXACT: dict[int, bool] = {}


def _groups_exact(case) -> bool:
    """Param groups may batch the lr grid only where P6 (group independence) holds."""
    key = id(case.info)
    if key not in _GROUPS_EXACT:
        try:
            C.check_p6(case)
            _GROUPS_EXACT[key] = True
        except Exception:
            _GROUPS_EXACT[key] = False
    return _GROUPS_EXACT[key]


@pytest.mark.optimizer_case("p1")
def test_converges(opt_case, record_property):
    """P1: from the canonical and K random starts, reach |x-x*| <= tol_x and f-f* <= tol_f; p.grad exact."""
    _p1(opt_case, record_property)


@pytest.mark.optimizer_case("l2")
def test_converges_with_coupled_l2(opt_case, record_property):
    """P1 with coupled weight decay λ: the minimum of f + λ/2·|x|², solved exactly by sympy."""
    import sympy

    target = get_target(opt_case.target)
    lam = sympy.Rational(1, 2)
    A, b, c = target.quadratic_form()
    xs = (A + lam * sympy.eye(target.dim)).LUsolve(b)
    fl = target.expr + lam / 2 * sum(v ** 2 for v in target.variables)
    f_star = float(fl.xreplace(dict(zip(target.variables, xs))))  # exact min of f + λ/2·|x|²
    x_star = torch.tensor([[float(v) for v in xs]], dtype=torch.float64)
    _p1(opt_case, record_property, weight_decay=float(lam), x_star=x_star, f_star=f_star, what="P1.l2")


@pytest.mark.optimizer_case("batched")
def test_batched_starts_equal_separate_runs(opt_case):
    """Batching K starts into one (K, d) parameter equals K separate runs (what makes P1 cheap)."""
    case = opt_case.case
    same, diff = P1.batched_equals_separate(case, get_target(opt_case.target))
    if not same:
        raise PropertyFailure("P1.batched", case, f"starts batched as rows of one tensor differ from separate runs "
                                                  f"after 30 epochs: max |Δx| = {diff:.3g}; declare elementwise=False")


@pytest.mark.optimizer_case("exact")
def test_exact_trajectory(opt_case):
    """GD, heavy ball and Nesterov on quadratics follow their linear recurrences at every epoch."""
    P1.check_exact_trajectory(opt_case.case, get_target(opt_case.target))


@pytest.mark.optimizer_case("edge")
def test_stability_edge(opt_case):
    """GD on a quadratic: lr just below 2/L converges, just above diverges."""
    P1.check_stability_edge(opt_case.case, get_target(opt_case.target))


@pytest.mark.optimizer_case("rate")
def test_linear_rate(opt_case):
    """GD on a quadratic: the measured linear rate equals max|1 - lr·λ_i|."""
    P1.check_linear_rate(opt_case.case, get_target(opt_case.target))


# ------------------------------------------------------------------------------ P2 - P17


@pytest.mark.prop("P2")
def test_p02_descent(opt_case):
    C.check_p2(opt_case.case)


@pytest.mark.prop("P3")
def test_p03_lr_zero(opt_case):
    C.check_p3(opt_case.case)


@pytest.mark.prop("P4")
def test_p04_frozen_param(opt_case):
    C.check_p4(opt_case.case)


@pytest.mark.prop("P5")
def test_p05_grad_untouched(opt_case):
    C.check_p5(opt_case.case)


@pytest.mark.prop("P6")
def test_p06_param_groups(opt_case):
    C.check_p6(opt_case.case)


@pytest.mark.prop("P7")
def test_p07_param_independence(opt_case):
    C.check_p7(opt_case.case)


@pytest.mark.prop("P8", "P8.state_dict")
def test_p08_resume_state_dict(opt_case):
    C.check_p8(opt_case.case, ("state_dict",))


@pytest.mark.prop("P8", "P8.deepcopy")
def test_p08_resume_deepcopy(opt_case):
    C.check_p8(opt_case.case, ("deepcopy",))


@pytest.mark.prop("P9")
def test_p09_state_dtype_device(opt_case):
    C.check_p9(opt_case.case)


@pytest.mark.prop("P10")
def test_p10_closure_loss(opt_case):
    C.check_p10(opt_case.case)


@pytest.mark.prop("P11")
def test_p11_maximize(opt_case):
    C.check_p11(opt_case.case)


@pytest.mark.prop("P12")
def test_p12_weight_decay(opt_case):
    C.check_p12(opt_case.case)


@pytest.mark.prop("P13")
def test_p13_translation(opt_case):
    C.check_p13(opt_case.case)


@pytest.mark.prop("P14")
def test_p14_noncontiguous(opt_case):
    C.check_p14(opt_case.case)


@pytest.mark.optimizer_case("p15_impls")
def test_p15_impl_parity(opt_case):
    C.check_p15_impls(opt_case.case, opt_case.other)


@pytest.mark.optimizer_case("p15_dtypes")
def test_p15_dtype_parity(opt_case):
    C.check_p15_dtypes(opt_case.case)


@pytest.mark.prop("P16")
def test_p16_zero_grad(opt_case):
    C.check_p16(opt_case.case)


@pytest.mark.prop("P17")
def test_p17_determinism(opt_case):
    C.check_p17(opt_case.case)
