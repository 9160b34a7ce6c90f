"""P1's cost guard (optbench/p1_limit.py): a P1 run projected past the limit is N/A with its figures, not a run
of hours. The decision is tested on a synthetic clock (no wall time is asserted on); the plumbing with limits
that every run is over (1e-9 minutes) or none is."""

from __future__ import annotations

import pytest
import torch

from optbench.errors import OptbenchError
from optbench.p1_limit import ENV, MEASURE_EPOCHS, Meter, TooCostly, limit_s, parse_minutes


class Clock:
    """A clock that the test moves: one epoch of ``step`` seconds after a first one of ``first``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _drive(meter: Meter, clock: Clock, *, first: float, step: float, epochs: int) -> int | None:
    """Call the meter as the run's hook does (epoch e after e steps); the epoch it raised at, or None."""
    for epoch in range(epochs + 1):
        if epoch == 1:
            clock.now += first
        elif epoch > 1:
            clock.now += step
        try:
            meter.tick(epoch)
        except TooCostly:
            return epoch
    return None


def test_a_run_projected_past_the_limit_stops_after_a_second_of_epochs_with_its_figures():
    clock = Clock()
    meter = Meter(15 * 60, 2000, 1, "this P1 run (7 target(s) x 10 lr(s))", name="SpectralSphere", clock=clock)
    with pytest.raises(TooCostly) as err:
        for epoch in range(4):
            clock.now += 1.5 if epoch else 0.0
            meter.tick(epoch)
    msg = str(err.value)
    # decided at epoch 2: one 1.5 s epoch measured after the first; 1.5 s x 1998 epochs left + 3 s run = 50 min
    assert msg.startswith("this P1 run (7 target(s) x 10 lr(s)) would take up to 50 min on this machine (1.5 s an "
                          "epoch, measured over 1 epoch after the first, x 2000 epochs), over P1's limit of 15 min"), msg
    assert "[tool.optbench.optimizers.SpectralSphere]" in msg and "lr = ..." in msg and f"{ENV} or --p1-limit" in msg
    assert "\n" not in msg


def test_a_cheap_run_is_decided_after_a_few_epochs_and_never_stops():
    clock = Clock()
    meter = Meter(60.0, 2000, 1, "run", clock=clock)
    assert _drive(meter, clock, first=0.0, step=0.001, epochs=2000) is None
    assert meter.decided and clock.now == pytest.approx(1999 * 0.001)


def test_the_first_step_is_not_taken_as_the_cost_of_every_epoch():
    """State initialisation and first compilations happen in step 1: 10 s there, then 1 ms an epoch, is a 12 s run
    (10 s already spent + 2 s to come), under a 60 s limit; taken as the rate it would be 5.6 h."""
    clock = Clock()
    assert _drive(Meter(60.0, 2000, 1, "run", clock=clock), clock, first=10.0, step=0.001, epochs=2000) is None


@pytest.mark.parametrize("runs, raised", [(1, None), (8, MEASURE_EPOCHS + 1)],
                         ids=["one-run", "eight-runs-one-after-another"])
def test_runs_one_after_another_count_as_many_runs(runs, raised):
    """Closure optimizers run their instances one after another: 8 runs of 2000 epochs at 5 ms are 80 s, over a
    60 s limit; one such run (10 s) is not."""
    clock = Clock()
    assert _drive(Meter(60.0, 2000, runs, "run", clock=clock), clock, first=0.005, step=0.005, epochs=2000) == raised


@pytest.mark.parametrize("text, minutes", [("15", 15.0), ("0.5", 0.5), (" 2 ", 2.0), ("0", None), ("none", None),
                                           ("off", None)])
def test_minutes_parse(text, minutes):
    assert parse_minutes(text, "--p1-limit") == minutes


@pytest.mark.parametrize("text", ["soon", "-1", "nan", "inf", ""])
def test_bad_minutes_are_one_line_naming_where_and_the_fix(text):
    with pytest.raises(OptbenchError) as err:
        parse_minutes(text, "--p1-limit")
    assert str(err.value).startswith("--p1-limit: ") and "give e.g. 30, or 0 for no limit" in str(err.value)


def test_the_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert limit_s() == 15 * 60
    monkeypatch.setenv(ENV, "0")
    assert limit_s() is None
    monkeypatch.setenv(ENV, "2.5")
    assert limit_s() == 150.0


def _sgd_case():
    from optbench.optimizers.contract import Case
    from optbench.optimizers.info import OptConfig, OptimizerInfo

    info = OptimizerInfo("guarded_sgd", torch.optim.SGD, configs=(OptConfig("", {}),), elementwise=True, user=True,
                         weight_decay=None, maximize=False, impls={"cpu": ("default",), "cuda": ("default",)})
    return Case(info, info.configs[0], "default", torch.float64, "cpu")


def test_p1_over_the_limit_is_na_on_every_target_of_its_run_and_runs_without_one(monkeypatch):
    """With a limit every run is over (1e-9 minutes), each target of the shared run is N/A with the figures and
    the optimizer's own table; with none (0) the same check runs and passes."""
    from optbench.optimizers import p1

    batch = (("seed_quadratic", True), ("sphere_2d", True))
    monkeypatch.setenv(ENV, "1e-9")
    monkeypatch.setattr(p1, "_SESSIONS", type(p1._SESSIONS)())
    for name, _ in batch:
        with pytest.raises(TooCostly) as err:
            p1.check_p1(_sgd_case(), name, batch=batch)
        msg = str(err.value)
        assert msg.startswith("on seed_quadratic, sphere_2d: not judged here: this P1 run (2 target(s) x 10 lr(s)"), msg
        assert "[tool.optbench.optimizers.guarded_sgd]" in msg, msg
        assert err.value.data and "p1_time" in err.value.data  # where the time went, for an N/A as for a PASS
    monkeypatch.setenv(ENV, "0")
    monkeypatch.setattr(p1, "_SESSIONS", type(p1._SESSIONS)())
    assert p1.check_p1(_sgd_case(), "seed_quadratic", batch=batch)["converged"]
