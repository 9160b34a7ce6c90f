"""Regression gate: compare a current benchmark result with a baseline (``optbench gate``).

Three jobs, one module each: :mod:`~optbench.gate.runs` loads each side's runs, merges replicate
processes and checks that the settings match; :mod:`~optbench.gate.decide` judges every benchmark
(instruction counts, or drift-corrected time against its noise; the model is described there);
:mod:`~optbench.gate.table` renders the verdicts. :func:`gate_files` chains them.

Exit codes: 0 nothing regressed, 1 regression, 2 bad input. The gate's false-alarm and detection
rates are measured by ``python -m optbench.bench.selftest``.
"""

from __future__ import annotations

from .decide import (DEFAULT_INSTR_THRESHOLD, DEFAULT_THRESHOLD, DRIFT_K, METRICS, NOISE_K, REFERENCE_PHASES,
                     REPLICATE_K, GateResult, Verdict, compare_runs, fit_drift, parse_threshold, pick_clock,
                     pick_metric)
from .runs import DEFAULT_STAT, instruction_settings, load_runs, merge_runs, time_settings
from .table import format_table


def gate_files(baseline: str, current: str, **kw) -> GateResult:
    """Gate ``current`` against ``baseline`` (each ``a.json`` or ``a.json,b.json,...``); ``kw`` as
    :func:`~optbench.gate.decide.compare_runs`."""
    side = {k: kw[k] for k in ("stat", "clock") if k in kw}
    base_runs, cur_runs = load_runs(baseline, "baseline"), load_runs(current, "current result")
    base, cur = merge_runs(base_runs, **side), merge_runs(cur_runs, **side)
    return compare_runs(base, cur, replicates=(base_runs, cur_runs), **kw)


__all__ = [
    "DEFAULT_INSTR_THRESHOLD", "DEFAULT_STAT", "DEFAULT_THRESHOLD", "DRIFT_K", "METRICS", "NOISE_K",
    "REFERENCE_PHASES", "REPLICATE_K", "GateResult", "Verdict", "compare_runs", "fit_drift", "format_table",
    "gate_files", "instruction_settings", "load_runs", "merge_runs", "parse_threshold", "pick_clock",
    "pick_metric", "time_settings",
]
