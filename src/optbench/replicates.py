"""The wall-clock gate's noise from replicate processes: how far one process's figure of a benchmark
lands from another's, measured on the runs themselves.

When a side of the gate is several runs (processes of the two sides interleaved on one runner, as the
CI example does: base, head, base, head), the spread between a side's own runs is the noise that a
base/head difference must beat: it is the same kind of difference (process to process, minutes apart,
same code), so it covers what within-run statistics miss (a process placed on a busier core, another
co-tenant phase, other page placement). Measured on the 2-core dev VM: the fastest quarter of a
benchmark's rounds spread 5-40 % above its minimum, while two processes' minima of the fused Adam
step at 1e3, each divided by its in-round reference, agreed to 1-3 %.

Each run's figure of a benchmark is its *corrected log value*:

* with an in-round reference (CPU time on both sides; ``extra_info['ref_cpu_time']``, the loop's own
  forward+backward timed in each round's setup): log(min) - log(reference min), the drift of that very
  moment divided out;
* otherwise log(min) minus the run's drift against the side's first run, fitted on the reference
  phases (forward, backward) of its size, as the two-sided gate does.

A side's figure is the lowest corrected value over its runs (the minimum over rounds, extended over
processes). The noise of a size group is the pooled spread of the replicates:
``1.4826 x median(sd of a benchmark's corrected values over a side's runs)``, over every benchmark of
the group and both sides; for two runs that is the robust standard deviation of one process's figure.
A benchmark whose own replicates spread wider gets its own, wider band.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Callable, Sequence

from .bench.results import Record, Run

MIN_SAMPLES = 3  # a group's pooled noise needs replicate spreads of at least this many benchmark-sides
# No process-to-process noise estimate below this: two processes never agree better than this on a shared
# host (measured best case: 0.5-1 % at 1e3 with the in-round reference), and a pool of near-identical
# replicates must not shrink the band to nothing.
SIGMA_FLOOR = 0.01


@dataclass
class ReplicateNoise:
    """Per benchmark key: the side's corrected log value (lowest over runs) and its replicate sd; per
    (device, size) group: the pooled sd of one process's corrected value."""

    value: dict[tuple, dict[str, float]]  # key -> {"base": y, "cur": y} (sides with that key)
    own_sd: dict[tuple, float]  # key -> largest replicate sd of either side (0 if no side has replicates)
    group_sd: dict[tuple, float]  # (device, size) -> pooled sd, where at least MIN_SAMPLES spreads
    pooled_sd: float | None  # over every group (None when too few spreads)
    runs: dict[str, int]  # side -> number of runs


def corrected_log(value: float, rec: Record, clock: str, stat: str, log_drift: float) -> float | None:
    """A run's corrected log figure of ``rec`` (``value``: its statistic on ``clock``); None when no value."""
    if value <= 0:
        return None
    ref = rec.extra.get("ref_cpu_time") or {}
    if clock == "cpu" and ref.get(stat):
        return math.log(value) - math.log(float(ref[stat]))
    return math.log(value) - log_drift


def side_values(runs: Sequence[Run], figure: Callable[[Record, float], float | None], group: Callable[[Record], tuple],
                drift_fn: Callable[[Run, Run], dict[tuple, float]]) -> dict[tuple, list[float]]:
    """key -> the corrected log figure of every run of one side that measured it (``figure(rec, log_drift)``,
    the drift of the run against the side's first run from ``drift_fn``)."""
    out: dict[tuple, list[float]] = {}
    first = runs[0]
    for i, run in enumerate(runs):
        drift = drift_fn(first, run) if i else {}
        for rec in run.records:
            y = figure(rec, drift.get(group(rec), 0.0))
            if y is not None:
                out.setdefault(rec.key, []).append(y)
    return out


def replicate_noise(sides: dict[str, Sequence[Run]], figure: Callable[[Record, float], float | None],
                    group: Callable[[Record], tuple], drift_fn: Callable[[Run, Run], dict[tuple, float]],
                    skip: Callable[[tuple], bool]) -> ReplicateNoise:
    """The replicate model over both sides (``{"base": runs, "cur": runs}``): ``figure(rec, log_drift)`` is a
    run's corrected log figure (:func:`corrected_log`); ``skip(key)`` leaves a benchmark out of the pooled
    spread (the drift references, which are shown, not judged)."""
    value: dict[tuple, dict[str, float]] = {}
    own: dict[tuple, float] = {}
    spreads: dict[tuple, list[float]] = {}
    groups: dict[tuple, tuple] = {}
    for rec in (r for runs in sides.values() for run in runs for r in run.records):
        groups.setdefault(rec.key, group(rec))
    for side, runs in sides.items():
        for key, ys in side_values(runs, figure, group, drift_fn).items():
            value.setdefault(key, {})[side] = min(ys)
            if len(ys) >= 2:
                sd = statistics.stdev(ys)
                own[key] = max(own.get(key, 0.0), sd)
                if not skip(key):
                    spreads.setdefault(groups[key], []).append(sd)
    group_sd = {g: max(1.4826 * statistics.median(v), SIGMA_FLOOR) for g, v in spreads.items() if len(v) >= MIN_SAMPLES}
    every = [x for v in spreads.values() for x in v]
    pooled = max(1.4826 * statistics.median(every), SIGMA_FLOOR) if len(every) >= MIN_SAMPLES else None
    return ReplicateNoise(value, own, group_sd, pooled, {k: len(v) for k, v in sides.items()})
