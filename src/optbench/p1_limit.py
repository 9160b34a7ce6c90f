"""P1's cost guard: a P1 run that would take longer than a limit is not started in full but reported as N/A.

P1 runs every target of a case at every lr of the grid from several starts, up to its epoch budget. For an
optimizer whose step is cheap that is seconds; for one whose step costs tens of milliseconds on a 6-parameter
matrix (pytorch-optimizer's SpectralSphere: a power iteration and a bisection over bfloat16 Newton-Schulz
iterations, ~50 ms a step) it is up to an hour per shared run on a 2-core machine and hours in all, which to a
user, or to a CI job, is a hang. So each shared run
(:func:`optbench.optimizers.batch.run_units`) is timed over its first epochs, the first of which (state
initialisation, first compilations) is left out; its cost if every slot ran to the budget, the most it can
take, is projected from that, and a projection above the limit stops the run with :class:`TooCostly`, an N/A
whose reason gives the measured figures and what to declare to judge the optimizer at a cost it can afford
(one lr instead of the grid, a smaller budget) or how to raise the limit.

The limit is a per-run wall time (``OPTBENCH_P1_LIMIT``, minutes; ``optbench validate --p1-limit``, pytest's
``--p1-limit``; 0 or ``none``: no limit). A wall time decides here, on purpose and only here: it is a guard
against runs of hours, never a FAIL. The default leaves every optimizer of the collections optbench has
measured judged with a margin of 4x or more (the figures are at DEFAULT_MINUTES), and stops SpectralSphere's
runs; the decision itself (:meth:`Meter.tick`) is tested on a synthetic clock (tests/test_p1_cost.py).
"""

from __future__ import annotations

import math
import os
import time
from typing import Callable

from .errors import OptbenchError
from .verdict import NotApplicable

ENV = "OPTBENCH_P1_LIMIT"
# per shared run. Measured upper bounds on the 2-core VM (docs/validate.md): torch.optim's and the collection's
# dearest judged runs take up to 3-4 min (FlashAdamW's shards; Kron 26-49 s a target), SpectralSphere's 35-60 min
DEFAULT_MINUTES = 15.0
MEASURE_S = 1.0  # seconds of epochs (after the first) a projection rests on, at least
MEASURE_EPOCHS = 64  # ... or this many epochs, whichever comes first: a cheap step is decided at once


def parse_minutes(text: str, where: str) -> float | None:
    """Minutes as given on a command line or in the environment: a positive number, or 0 / ``none`` for no
    limit. Bad input is a one-line OptbenchError naming where it came from and the fix."""
    t = text.strip().lower()
    if t in ("0", "none", "off"):
        return None
    try:
        value = float(t)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise OptbenchError(f"{where}: {text!r} is not a number of minutes; give e.g. 30, or 0 for no limit")
    return value or None


def limit_s() -> float | None:
    """The per-run limit in seconds, from ``OPTBENCH_P1_LIMIT`` (minutes), else the default; None: no limit."""
    raw = os.environ.get(ENV)
    minutes = DEFAULT_MINUTES if raw is None or not raw.strip() else parse_minutes(raw, ENV)
    return None if minutes is None else 60.0 * minutes


class TooCostly(NotApplicable):
    """A P1 run projected above the limit: N/A, with the figures and the fix."""


def _span(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


class Meter:
    """Times one shared run's epochs and stops it (:class:`TooCostly`) once its projected wall time is above
    ``limit``: the seconds per epoch measured from the end of epoch 1 over at least MEASURE_S (or MEASURE_EPOCHS
    epochs), times the epochs left, times ``runs`` (runs of the same layout still to come: closure optimizers
    run their instances one after another), plus what has run already. Every slot is assumed to run its whole
    budget: the bound is the most the run can cost, and it is what the reason reports."""

    def __init__(self, limit: float, epochs: int, runs: int, what: str, *, name: str = "NAME",
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.limit, self.epochs, self.runs, self.what, self.clock = limit, epochs, runs, what, clock
        self.name = name  # the optimizer's table in the user's config
        self.t0 = clock()
        self.t1: float | None = None  # when the first step had been taken (the hook at epoch 1)
        self.e1 = 1
        self.decided = False

    def tick(self, epoch: int) -> None:
        """Called by the run's per-epoch hook (epoch e: after e steps); raises TooCostly at the decision if the
        projection is over the limit. The first step (state initialisation, first compilations) is not measured."""
        if self.decided or epoch < 1:  # the hook at epoch e runs after e steps (and the next forward/backward)
            return
        now = self.clock()
        if self.t1 is None:
            self.t1, self.e1 = now, epoch
            return
        n = epoch - self.e1
        measured = now - self.t1
        if measured < MEASURE_S and n < MEASURE_EPOCHS:
            return
        self.decided = True
        per_epoch = measured / max(n, 1)
        projected = (now - self.t0) + per_epoch * (self.epochs - epoch) + per_epoch * self.epochs * (self.runs - 1)
        if projected > self.limit:
            raise TooCostly(
                f"{self.what} would take up to {_span(projected)} on this machine ({per_epoch:.3g} s "
                f"an epoch, measured over {n} epoch{'s' if n != 1 else ''} after the first, x {self.epochs} epochs"
                + (f" x {self.runs} runs" if self.runs > 1 else "") + f"), over P1's limit of {_span(self.limit)} a "
                f"run; declare its lr (lr = ...: one lr instead of the grid) or a smaller budget (epochs = ...) in "
                f"its [tool.optbench.optimizers.{self.name}] table, or raise the limit ({ENV} or --p1-limit, "
                f"minutes; 0: none)")
