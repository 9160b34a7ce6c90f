"""One side of the gate: its runs loaded, merged, matched and checked for comparable settings.

A side is one pytest-benchmark JSON file or several (processes interleaved with the other side's on one
runner): :func:`load_runs` reads them, :func:`merge_runs` keeps each benchmark's best run. The settings a
figure depends on besides the code (:func:`time_settings`, :func:`instruction_settings`) must match for a
comparison to mean something; :func:`alias_map` lets a candidate ``module:attr`` stand under a baseline
optimizer's name. The decision is :mod:`optbench.gate.decide`.
"""

from __future__ import annotations

import math
from typing import Sequence

from ..bench.results import Record, Run, load_run
from ..errors import ConfigError

# The statistic compared. Measured on this shared 2-core host (load ~4 from co-tenants): Adam-fused
# step at 1e6, rounds interleaved, min ratios for unchanged reruns 0.97-1.05 and for the planted
# +29% traffic 1.24-1.31; medians of the same runs swung 0.4-2.7x because preempted rounds land
# anywhere. So the gate compares minima, and its noise is the spread of the fastest quarter.
DEFAULT_STAT = "min"


def run_stats(rec: Record, clock: str) -> dict[str, float]:
    """min, q1, median, iqr and rounds of a result on ``clock``: "cpu" (the per-round CPU time the CPU
    benches record in ``extra_info['cpu_time']``) or "wall" (pytest-benchmark's stats)."""
    if clock == "cpu":
        c = rec.extra.get("cpu_time") or {}
        return {"min": float(c["min"]), "q1": float(c["q1"]), "median": float(c["median"]), "iqr": float(c["iqr"]),
                "rounds": int(c["rounds"])}
    return {"min": rec.min, "q1": rec.q1, "median": rec.median, "iqr": rec.iqr, "rounds": rec.rounds}


def stat_value(rec: Record, stat: str, clock: str) -> float:
    return run_stats(rec, clock)[stat]

def alias_map(specs: Sequence[str]) -> dict[str, str]:
    """``NAME=module:attr`` -> {candidate name variants: NAME}: the candidate stands under NAME."""
    from ..spec import parse_spec

    out: dict[str, str] = {}
    for text in specs:
        s = parse_spec(text, option="--optimizer")
        if not s.name:
            raise ConfigError(f"--optimizer {text!r} needs a baseline name: NAME=module:attr (e.g. adam={s.module}:{s.attr})")
        leaf = s.attr.split(".")[-1]
        for alias in (s.text, f"{s.module}:{s.attr}", s.attr, leaf, leaf.lower()):
            out[alias] = s.name
    return out


# ---- settings: what must match for a comparison to mean something ---------------------------------

def time_settings(run: Run) -> dict[str, object]:
    """The settings a wall-clock figure depends on besides the code: the CPU, torch threads and the
    allocator. Another CPU model is another machine: compare those with ``optbench compare``."""
    info = run.optbench_info
    return {"CPU model": info.get("cpu_model"), "torch threads": info.get("torch_threads"),
            "allocator": (info.get("allocator") or {}).get("summary")}


def instruction_settings(run: Run) -> dict[str, object]:
    """What an instruction count depends on besides the code: torch build, Python, the CPU capability
    torch dispatched to under valgrind, and the valgrind release."""
    i = run.optbench_info.get("instructions") or {}
    vg = str(i.get("valgrind") or "")
    return {"torch": i.get("torch"), "torch git": (i.get("torch_git") or "")[:12] or None, "python": i.get("python"),
            "CPU capability": i.get("cpu_capability"), "valgrind": ".".join(vg.split(".")[:2]) or None}


def setting_changes(base: Run, cur: Run, metric: str) -> list[str]:
    fn = instruction_settings if metric == "instructions" else time_settings
    b, c = fn(base), fn(cur)
    return [f"{k}: baseline {b[k]!r}, current {c[k]!r}" for k in b if b[k] != c[k]]


def machine_warnings(base: Run, cur: Run) -> list[str]:
    w = []
    bi, ci = base.optbench_info, cur.optbench_info
    checks = [
        ("torch version", (bi.get("torch") or {}).get("version"), (ci.get("torch") or {}).get("version")),
        ("GPU", (bi.get("gpu") or {}).get("name"), (ci.get("gpu") or {}).get("name")),
        ("host", base.machine_info.get("node"), cur.machine_info.get("node")),
    ]
    for what, a, b in checks:
        if a != b:
            w.append(f"{what} differs: baseline {a!r}, current {b!r}")
    return w


def has_instructions(run: Run) -> bool:
    return any("instructions" in r.extra for r in run.records)


def aliased(recs: Sequence[Record], aliases: dict[str, str]) -> list[Record]:
    out = []
    for r in recs:
        new = aliases.get(r.optimizer) or aliases.get(str(r.extra.get("source", "")).split(":", 1)[-1])
        if new:
            r = Record(**{**r.__dict__, "optimizer": new})
        out.append(r)
    return out


def merge_runs(runs: Sequence[Run], *, stat: str = DEFAULT_STAT, clock: str = "auto") -> Run:
    """Several runs of one side (processes interleaved with the other side's: A1 B1 A2 B2) as one: per
    benchmark, the run with the lowest statistic. A whole benchmark measured during a bad moment of one
    process then needs the same bad luck in every process to move the gate. The runs must share their
    settings (threads, allocator, CPU; or the instruction environment)."""
    if len(runs) == 1:
        return runs[0]
    for r in runs[1:]:
        # a replicate timed without counting instructions (tox -e bench's bench_2.json) merges with a counted run
        counted = has_instructions(runs[0]) and has_instructions(r)
        for fn in (time_settings, instruction_settings) if counted else (time_settings,):
            a, b = fn(runs[0]), fn(r)
            diff = [k for k in a if a[k] != b[k]]
            if diff:
                raise ConfigError(f"{runs[0].path} and {r.path} were measured under different settings ({', '.join(diff)}); "
                                  f"give one side's runs of one configuration")
    from ..replicates import corrected_log

    def figure(rec: Record) -> float:
        # with an in-round reference, the run whose result is lowest relative to its own moment's reference
        cl = "cpu" if (clock in ("auto", "cpu") and rec.extra.get("cpu_time")) else "wall"
        y = corrected_log(stat_value(rec, stat, cl), rec, cl, stat, 0.0)
        return math.inf if y is None else y

    best: dict[tuple, Record] = {}
    counts: dict[tuple, dict] = {}  # key -> the instruction fields of the first run that counted it
    for run in runs:
        for rec in run.records:
            old = best.get(rec.key)
            if old is None or figure(rec) < figure(old):
                best[rec.key] = rec
            if "instructions" in rec.extra and rec.key not in counts:
                counts[rec.key] = {k: v for k, v in rec.extra.items() if k.startswith("instructions")}
    for key, rec in best.items():
        if "instructions" not in rec.extra and key in counts:
            best[key] = Record(**{**rec.__dict__, "extra": {**rec.extra, **counts[key]}})
    first = next((r for r in runs if has_instructions(r)), runs[0])
    return Run(" + ".join(r.path for r in runs), first.machine_info, first.commit_info, first.datetime,
               list(best.values()), first.stream, first.raw)


def load_runs(paths: str, what: str) -> list[Run]:
    """``a.json`` or ``a.json,b.json,...``: one side's runs (processes interleaved with the other side's)."""
    parts = [p for p in str(paths).split(",") if p]
    if not parts:
        raise ConfigError(f"no {what} file given")
    return [load_run(p, what=what) for p in parts]
