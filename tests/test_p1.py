"""P1's decision logic on data: which targets judge correctness, and when a fixed-lr grid "hovers"
(a distance growing with lr, as sign steps do) rather than being slow. Synthetic results, no training."""

from __future__ import annotations

import math

import pytest
import torch

from optbench.catalogue import catalogue
from optbench.optimizers.convergence import LR_GRID, P1Result
from optbench.optimizers.p1 import CORRECTNESS_TARGETS, hovers, p1_role


def test_the_declared_correctness_targets_are_what_the_catalogue_data_says():
    derived = tuple(name for name, t in catalogue().items() if p1_role(t) == "correctness")
    assert derived == CORRECTNESS_TARGETS, f"p1_role derives {derived}, p1.CORRECTNESS_TARGETS says {CORRECTNESS_TARGETS}"
    for name in CORRECTNESS_TARGETS:
        t = catalogue()[name]
        assert t.kind == "quadratic" and t.condition_number <= 25, (name, t.kind, t.condition_number)


def _result(final_dists: list[float | None]) -> P1Result:
    """One start at distance 2 from x* = 0; per grid lr the final distance (None: diverged)."""
    n = len(final_dists)
    starts = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    res = P1Result(list(LR_GRID[:n]), [[None] for _ in range(n)], [None if d is not None else 5 for d in final_dists],
                   [[] for _ in range(n)], [torch.tensor([d if d is not None else math.inf]) for d in final_dists],
                   [torch.tensor([1.0]) for _ in range(n)], starts, torch.zeros(1, 2, dtype=torch.float64))
    return res


@pytest.mark.parametrize("dists, expected, why", [
    ([1.9, 1.5, 0.5, 1e-3, 3.2e-3, 0.01, 0.032, None], True, "sign steps: past the slow lrs the residual tracks lr"),
    ([1.9, 1.5, 0.9, 0.3, 0.05, 0.004, 2e-4, None], False, "slow method: larger lrs end closer"),
    ([1.9, 1.9, 1.8, 1.7, 1.7, 1.6, 1.6, 1.6], False, "stuck far away: no lr got within a tenth of the start"),
    ([None] * 8, False, "everything diverged"),
    ([0.01, 0.0315, None, None, None, None, None, None], True, "two lrs are enough"),
])
def test_hovering_is_a_residual_that_grows_with_lr(dists, expected, why):
    assert hovers(_result(dists)) is expected, why


@pytest.mark.parametrize("mid, end, diverged, expected, why", [
    (0.36, 0.001, False, True, "O(1/k) averaging: the distance halved (and more) over the second half"),
    (0.01, 0.009, False, False, "stalled: a bug stays put"),
    (0.01, 0.02, False, False, "drifting away"),
    (0.5, 0.1, True, False, "diverged"),
    (math.inf, 0.1, False, False, "never measured at mid-budget"),
])
def test_still_converging_is_a_halving_over_the_second_half_of_the_budget(mid, end, diverged, expected, why):
    res = _result([None if diverged else end])
    res.mid = [mid]
    assert res.still_converging(0) is expected, why


@pytest.mark.parametrize("mid, end, expected, why", [
    (7.45, 5.57, True, "creeping (AdamG's min(lr, 1/sqrt(t)) steps on matyas): down by a quarter"),
    (0.01, 0.0085, False, "down by 15 %: stalling, not converging"),
])
def test_a_longer_budget_goes_to_lrs_down_by_a_fifth(mid, end, expected, why):
    from optbench.optimizers.convergence import SLOW_DECREASE

    res = _result([end])
    res.mid = [mid]
    assert res.still_converging(0, by=SLOW_DECREASE) is expected, why
    assert not res.still_converging(0), "N/A after the longer run still takes a halving"


def test_the_p1_gradient_check_allows_the_rounding_of_cancelling_terms_and_nothing_more():
    """Rosenbrock far out in its valley (seen with MADGRAD's lr grid): float64 autograd's gradient is off
    by ~1e-7 in a gradient of ~1 whose terms are ~1e9; a 1% error is still far outside the bound."""
    from optbench import gradcheck
    from optbench.catalogue import get_target
    from optbench.optimizers.tolerance import GRAD_RTOL, gradient_scale, symbolic_grad

    t = get_target("rosenbrock_2d")
    x = torch.tensor([[118.24083685939772, 13980.900445754818]], dtype=torch.float64)
    xt = x[0].clone().requires_grad_()
    t.fn(xt).backward()
    want = symbolic_grad(t, x)[0]
    allowed = torch.maximum(GRAD_RTOL[torch.float64] * (1 + want.abs()),
                            gradcheck.RTOL[torch.float64] * gradient_scale(t, x)[0])
    err = (xt.grad - want).abs()
    assert float(err.max()) > GRAD_RTOL[torch.float64] * (1 + float(want.abs().max())), "no cancellation here?"
    assert bool((err <= allowed).all()), (err, allowed)
    assert not bool(((want * 1.01 - want).abs() <= allowed).all()), "a 1% gradient error must not pass"


def test_every_still_converging_lr_gets_the_longer_budget_not_only_the_closest(monkeypatch):
    """Seen with pytorch-optimizer's Ranger on booth: lr 0.01 ended closest but slowly (9.2 -> 6.5 over the
    second half), lr 0.0316 halved (15.6 -> 7.4) and reaches x* in 8000 epochs; with AdaSmooth the closest lr
    hovers. Every still-converging lr gets the longer budget, in one shared run (closest first), and the method
    passes at those that get there; a stalled lr and a diverging one get none."""
    from optbench.optimizers import convergence as CV
    from optbench.optimizers import p1 as P1

    res = _result([6.5, 7.4, 60.0])
    res.mid = [9.2, 15.6, 62.0]  # 60/62: stalled
    longer_lrs = []

    def longer(case, target, starts, lrs, epochs, **kw):
        longer_lrs.append(list(lrs))
        done = _result([3.0, 1e-9])  # the closest lr hovers at 3.0; the second reaches x*
        done.mid = [3.1, 1.0]
        done.reached = [[None], [epochs - 1]]
        return done

    monkeypatch.setattr(CV, "run_p1", longer)
    ok, note = P1._slow_or_stuck(None, catalogue()["booth"], res.starts, res.lrs, 2000, {}, res, "")
    assert longer_lrs == [[LR_GRID[0], LR_GRID[1]]] and ok == [LR_GRID[1]], (longer_lrs, ok)
    assert "still converging" in note and "a slow method, not a bug" in note, note
    stalled = _result([6.5, 7.4])
    stalled.mid = [6.6, 7.5]  # no lr lost a fifth of its distance: nothing to rerun, the FAIL stands
    longer_lrs.clear()
    assert P1._slow_or_stuck(None, catalogue()["booth"], stalled.starts, stalled.lrs, 2000, {}, stalled, "")[0] == []
    assert longer_lrs == []


class _WarmupCentralised(torch.optim.SGD):
    """Skips its first 5 steps (as RAdam's rectification does) and centralises 2-D gradients over their rows'
    entries (as gradient centralisation does): not elementwise, which a 5-epoch probe cannot see."""

    @torch.no_grad()
    def step(self, closure=None):
        self.n = getattr(self, "n", 0) + 1
        if self.n <= 5:
            return None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.dim() > 1:
                    p.grad.sub_(p.grad.mean(dim=1, keepdim=True))
        return super().step(closure)


def test_the_batching_probe_sees_past_a_warmup_that_does_not_move():
    from optbench.optimizers.contract import Case
    from optbench.optimizers.convergence import batched_equals_separate
    from optbench.optimizers.info import OptimizerInfo
    from optbench.optimizers.p1 import PROBE_EPOCHS

    booth = catalogue()["booth"]
    info = OptimizerInfo("wc", _WarmupCentralised, elementwise=None, user=True)
    coupled = Case(info, info.configs[0])
    assert batched_equals_separate(coupled, booth, epochs=5) == (False, 0.0), "not moved: must not count as equal"
    assert batched_equals_separate(coupled, booth, epochs=PROBE_EPOCHS)[0] is False
    sgd = OptimizerInfo("sgd", torch.optim.SGD, elementwise=None, user=True)
    plain = Case(sgd, sgd.configs[0])
    assert batched_equals_separate(plain, booth, epochs=PROBE_EPOCHS)[0] is True


@pytest.mark.parametrize("points, named", [
    ([[1.0, 3.017], [1.0, 2.983], [1.0, 3.017]], True),   # Adadelta at its stability edge: x* +- 0.017
    ([[1.1, 3.1], [1.09, 3.09], [1.08, 3.08]], False),    # creeping towards x* from one side
    ([[1.2, 3.2], [1.2, 3.2], [1.2, 3.2]], False),        # stalled
    ([[1.0, 3.03], [1.0, 2.99], [1.0, 3.02]], False),     # a shrinking oscillation: converging
], ids=["period-2-cycle", "one-side", "stalled", "damped"])
def test_a_failure_names_a_period_2_cycle_around_the_minimum(points, named):
    from optbench.optimizers.convergence import _cycle

    xs = [torch.tensor([p], dtype=torch.float64) for p in points]
    text = _cycle(xs, 0, torch.tensor([[1.0, 3.0]], dtype=torch.float64))
    assert ("period-2 cycle" in text) is named, text


def test_a_cycle_caught_at_its_near_phase_is_not_still_converging():
    """Fromage at lr 1 on seed_quadratic cycles between 0 and 1.41 (x* = 1/3): the end snapshot at the near
    phase (0.33) against mid-budget's far phase (1.08) looked like a halving, so a cycle got the longer budget and
    then N/A "too slow" instead of its FAIL. The last recorded points decide too."""
    res = _result([0.333])
    res.mid = [1.08]
    res.x_star = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    res.last = [[torch.tensor([[1.08, 0.0]], dtype=torch.float64), torch.tensor([[0.333, 0.0]], dtype=torch.float64)]]
    assert not res.still_converging(0)
    res.last = [[torch.tensor([[0.4, 0.0]], dtype=torch.float64), torch.tensor([[0.333, 0.0]], dtype=torch.float64)]]
    assert res.still_converging(0), "a run that really went from 1.08 to ~0.35 is still converging"


def test_a_too_slow_na_names_both_distances(monkeypatch):
    """SimplifiedAdEMAMix's N/A on booth read 'still at 6.2e-05 (tol_x 0.0001)', which looks converged: f - f*,
    the one that missed its tolerance, was not shown."""
    from optbench.optimizers import convergence as CV
    from optbench.optimizers import p1 as P1
    from optbench.optimizers.contract import Case
    from optbench.optimizers.info import OptConfig, OptimizerInfo
    from optbench.verdict import NotApplicable

    info = OptimizerInfo("slow", torch.optim.SGD, configs=(OptConfig("", {}),), user=True,
                         impls={"cpu": ("default",), "cuda": ("default",)})
    case = Case(info, info.configs[0], "default", torch.float64, "cpu")
    res = _result([0.9])
    res.mid = [1.9]  # still converging at the end of the budget: the longer run is tried

    def longer(case, target, starts, lrs, epochs, **kw):
        done = _result([6.2e-5])  # inside tol_x, but f - f* = 1.0 (the helper's gap) is not inside tol_f
        done.mid = [2e-4]  # halved over the second half: still converging, so N/A
        return done

    monkeypatch.setattr(CV, "run_p1", longer)
    with pytest.raises(NotApplicable) as exc:
        P1._slow_or_stuck(case, catalogue()["booth"], res.starts, res.lrs, 2000, {}, res, "")
    assert "|x - x*| 6.2e-05 (tol_x" in str(exc.value) and "f - f* 1 (tol_f" in str(exc.value), str(exc.value)


def test_epochs_to_tol_is_the_number_of_steps_after_which_x_is_within_tolerance():
    """The hook at epoch e reads x after e steps, so a profile's epochs_to_tol is the step count k of the first
    point inside the tolerance: for plain GD on the seed (x_k - x* = (1 - 6 lr)^k (x0 - x*)) the closed form's k,
    and for a run that gets there only at its last point, the budget, which the profile check accepts. It was
    k + 1, so such a run recorded budget + 1 and `optbench validate` exited 2 on its own profiles file (BCOS)."""
    from fractions import Fraction

    from optbench.catalogue import get_target
    from optbench.optimizers import convergence as CV
    from optbench.optimizers.contract import Case
    from optbench.optimizers.info import OptConfig, OptimizerInfo
    from optbench.optimizers.p1 import profile_records
    from optbench.optimizers.tolerance import tolerance
    from optbench.report.profiles import _check_record

    info = OptimizerInfo("sgd", torch.optim.SGD, configs=(OptConfig("", {}),), elementwise=True, user=True,
                         weight_decay=None, maximize=False, impls={"cpu": ("default",), "cuda": ("default",)})
    case = Case(info, info.configs[0], "default", torch.float64, "cpu")
    target = get_target("seed_quadratic")
    tol_x, tol_f, _ = tolerance(info, case.dtype)
    lr, x0, xs = Fraction(1, 100), Fraction(-1), Fraction(1, 3)
    k = 0
    while not (abs((1 - 6 * lr) ** k * (x0 - xs)) <= Fraction(tol_x)
               and 3 * ((1 - 6 * lr) ** k * (x0 - xs)) ** 2 <= Fraction(tol_f)):
        k += 1
    starts = torch.tensor([[-1.0]], dtype=torch.float64)
    for budget in (k + 50, k):  # with room to spare, and exactly the steps it needs
        res = CV.run_p1(case, target, starts, [0.01], budget, batch_starts=True, batch_groups=True)
        rec, = profile_records(case, target, res, budget)
        assert rec["epochs_to_tol"] == k, (budget, rec["epochs_to_tol"], k)
        _check_record(rec, "the record")  # inside [0, budget]


class _OwnStepSize(torch.optim.Optimizer):
    """lr in its defaults, but never read: sign descent with a step size of its own (halving every 50 steps)."""

    def __init__(self, params, lr=1e-3):
        super().__init__(params, dict(lr=lr))
        self.t = 0

    @torch.no_grad()
    def step(self, closure=None):
        self.t += 1
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.sub_(p.grad.sign(), alpha=0.05 * 0.5 ** (self.t // 50))


def test_an_optimizer_that_does_not_use_lr_runs_p1_once_instead_of_the_whole_grid():
    """The grid's ten lrs would be ten copies of one run where the steps do not depend on lr (Adafactor's relative
    step, torch-optimizer's A2Grad): the probe compares 12 contract steps at the grid's two ends, bit for bit, and
    P1 then runs one lr, saying why. An optimizer that uses lr (SGD) still runs the grid."""
    from optbench.optimizers.contract import Case
    from optbench.optimizers.info import OptConfig, OptimizerInfo
    from optbench.optimizers.p1 import check_p1, lr_unused

    def case(name, cls):
        info = OptimizerInfo(name, cls, configs=(OptConfig("", {}),), elementwise=True, user=True, weight_decay=None,
                             maximize=False, impls={"cpu": ("default",), "cuda": ("default",)})
        return Case(info, info.configs[0], "default", torch.float64, "cpu")

    own, sgd = case("own", _OwnStepSize), case("sgd", torch.optim.SGD)
    assert "its steps do not depend on lr" in (lr_unused(own) or ""), lr_unused(own)
    assert lr_unused(sgd) is None
    data = check_p1(own, "seed_quadratic")
    assert "converged at its own step size (its steps do not depend on lr" in data["lr_band"], data["lr_band"]
    assert list(data["p1_time"]) == [f"{own.info.contract_lr:.3g}"], data["p1_time"]  # one lr was run
    assert len(check_p1(sgd, "seed_quadratic")["p1_time"]) == len(LR_GRID)


def test_a_run_that_stalls_away_from_x_star_is_named_and_a_slow_crawl_is_not():
    """torch-optimizer's Lamb on the seed: from x0 = -1 the trust ratio |x| / |step| shrinks the step with |x|, so x
    approaches 0 geometrically (x = -3e-92 at epoch 2000) and never crosses it to x* = 1/3. The failure says it
    stalled near 0 with a gradient of 2 there; GD crawling at lr 1e-4 moves lr x |grad| a step and is not called
    stalled, nor is a point where the gradient vanishes."""
    from optbench.catalogue import get_target
    from optbench.optimizers.convergence import _stall

    seed = get_target("seed_quadratic")
    star = seed.x_star(torch.float64)
    lamb = [torch.tensor([[-3.3945e-92]], dtype=torch.float64), torch.tensor([[-3.05505e-92]], dtype=torch.float64)]
    said = _stall(lamb, 0, star, seed, 0.1)
    assert "stalled near x = 0" in said and "the gradient there is 2" in said, said
    x = -0.5
    crawl = [torch.tensor([[x]], dtype=torch.float64), torch.tensor([[x - 1e-4 * (6 * x - 2)]], dtype=torch.float64)]
    assert _stall(crawl, 0, star, seed, 1e-4) == ""
    saddle_free = [torch.tensor([[1 / 3]], dtype=torch.float64)] * 2
    assert _stall(saddle_free, 0, star, seed, 0.1) == ""
    assert _stall(lamb, 0, star, seed, None) == ""  # no lr: nothing to compare the step with
    still = [torch.tensor([[-1.0]], dtype=torch.float64)] * 2  # SaRA: a start its mask never selects
    said = _stall(still, 0, star, seed, 1e-4)
    assert "did not move it at all while the gradient there is 8" in said and "trust ratio" not in said, said
    # cybertronai's pytorch-lamb from trid's start (0, 0): ‖w‖ = 0 makes its trust ratio 0, so it never moves
    trid = get_target("trid_2d")
    zero = [torch.zeros(1, 2, dtype=torch.float64)] * 2
    said = _stall(zero, 0, trid.x_star(torch.float64), trid, 0.00316)
    assert "stalled at x = 0 exactly" in said and "a trust ratio ‖w‖/‖u‖ without the guard" in said, said
