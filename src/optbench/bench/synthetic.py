"""Synthetic, seeded benchmark results in pytest-benchmark's JSON shape, for testing the decision
logic of the gate, the report and the comparison without timing anything.

A benchmark's rounds are drawn from a model of a shared machine: the true per-call time, times the
session's drift for its size (co-tenants, frequency: common to every bench of that size in a run),
times a bench-specific factor (the part of the drift that one bench feels differently), times
lognormal round-to-round noise, plus heavy-tailed preemptions (with probability ``preempt_p`` a
round loses a Pareto-distributed slice of a scheduler quantum). Instruction counts are the true
count times a tiny per-block jitter (the 0.01-0.35 % measured between processes).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .results import fmt_size
from .timing import stats_of

PHASE_TEST = {"epoch": "test_epoch"}


@dataclass(frozen=True)
class Bench:
    """One benchmark of a synthetic run: its coordinates, true time per call (s) and instruction count."""

    optimizer: str
    size: int
    phase: str = "epoch"
    impl: str = "foreach"
    layout: str = "flat"
    dtype: str = "float32"
    device: str = "cpu"
    seconds: float = 1e-3
    instructions: float | None = None

    def key(self) -> tuple:
        return (self.optimizer, self.size, self.impl, self.device, self.dtype, self.phase, self.layout)


def default_matrix(optimizers: Sequence[str] = ("sgd", "adam"), sizes: Sequence[int] = (1, 10**3, 10**6),
                   impls: Sequence[str] = ("forloop", "foreach")) -> list[Bench]:
    """Epochs and steps per optimizer, implementation and size, plus the optimizer-independent phases
    once per size (the way benches/test_loop.py lays out its matrix). True times grow with size."""
    out = []
    for n in sizes:
        base_s = 20e-6 + n * 4e-9
        for i, opt in enumerate(optimizers):
            for j, impl in enumerate(impls):
                k = 1.0 + 0.3 * i + 0.1 * j
                out.append(Bench(opt, n, "epoch", impl, seconds=base_s * 2.5 * k, instructions=6e5 + 12.0 * n * k))
                out.append(Bench(opt, n, "step", impl, seconds=base_s * k, instructions=3e5 + 7.0 * n * k))
        for ph, f in (("zero_grad", 0.05), ("forward", 0.6), ("backward", 0.9)):
            out.append(Bench(optimizers[0], n, ph, impls[-1], seconds=base_s * f, instructions=1e5 + 5.0 * n * f))
    return out


def draw_rounds(rng: random.Random, seconds: float, rounds: int, *, sigma: float = 0.02, preempt_p: float = 0.0,
                preempt_s: float = 2e-3, preempt_alpha: float = 1.5) -> list[float]:
    """Per-call times of ``rounds`` rounds: lognormal noise plus heavy-tailed (Pareto) preemptions."""
    out = []
    for _ in range(rounds):
        t = seconds * math.exp(rng.gauss(0.0, sigma))
        if preempt_p and rng.random() < preempt_p:
            t += preempt_s * rng.paretovariate(preempt_alpha)
        out.append(t)
    return out


def synthetic_run(benches: Sequence[Bench], *, seed: int, drift: Mapping[int, float] | float = 1.0,
                  bench_sigma: float = 0.0, shift: Mapping[str, float] | None = None, sigma: float = 0.02,
                  preempt_p: float = 0.0, preempt_s: float = 2e-3, rounds: int = 40, instructions: bool = True,
                  instr_jitter: float = 5e-4, threads: int = 1,
                  allocator: str = "mallopt:mmap_threshold=1GiB,trim_threshold=2GiB,top_pad=64MiB",
                  torch_version: str = "2.13.0+cpu", node: str = "vm", python: str = "3.11.7",
                  cpu_capability: str = "AVX2", stream_s: float = 0.04, in_round_ref: float | None = None,
                  ref_max_size: int = 10**6) -> dict[str, Any]:
    """A pytest-benchmark JSON dict for ``benches`` measured in one synthetic session.

    ``drift``: size -> factor (or one factor for all sizes) common to the run; ``bench_sigma``: the
    lognormal sd of each bench's own share of the drift; ``shift``: optimizer -> relative change of its
    epoch and step (a planted regression: {"adam": 0.2}); it changes their instruction counts alike.
    ``in_round_ref``: give every CPU epoch and step up to ``ref_max_size`` an in-round reference
    (``extra_info['ref_cpu_time']``, the forward+backward timed in each round's setup, as benches/test_loop.py
    records it) that shares the bench's drift of that moment; the value is the lognormal sd of what it does
    not share (the process-to-process scatter of bench/reference).
    """
    rng = random.Random(seed)
    shift = dict(shift or {})
    out = []
    for b in benches:
        size = b.size
        if b.phase == "zero_grad" and isinstance(drift, Mapping) and drift:
            size = min(drift)  # set_to_none: a few µs of dispatch at every size, drifting like the smallest
        d = drift.get(size, 1.0) if isinstance(drift, Mapping) else float(drift)
        s = shift.get(b.optimizer, 0.0) if b.phase in ("epoch", "step") else 0.0
        own = math.exp(rng.gauss(0.0, bench_sigma)) if bench_sigma else 1.0
        data = draw_rounds(rng, b.seconds * d * own * (1 + s), rounds, sigma=sigma, preempt_p=preempt_p,
                           preempt_s=preempt_s)
        # CPU time: the same rounds without the preempted slices (what the CPU benches record per round)
        cpu = draw_rounds(random.Random(rng.random()), b.seconds * d * own * (1 + s), rounds, sigma=sigma)
        cst = stats_of(cpu)
        ei: dict[str, Any] = {"kind": "loop", "optimizer": b.optimizer, "impl": b.impl, "layout": b.layout,
                              "size": b.size, "n": b.size, "device": b.device, "dtype": b.dtype, "phase": b.phase,
                              "bytes": 40.0 * b.size, "threads": threads, "allocator": allocator,
                              "cpu_time": {"clock": "thread_time", **{k: cst[k] for k in ("min", "q1", "median", "iqr",
                                                                                          "q3", "rounds")}}}
        if in_round_ref is not None and b.phase in ("epoch", "step") and b.device == "cpu" and b.size <= ref_max_size:
            ref_s = (20e-6 + b.size * 4e-9) * 1.5 * d * own * math.exp(rng.gauss(0.0, in_round_ref))
            rst = stats_of(draw_rounds(random.Random(rng.random()), ref_s, rounds, sigma=sigma))
            ei["ref_cpu_time"] = {"clock": "thread_time", "what": "forward+backward in the round's setup",
                                  **{k: rst[k] for k in ("min", "q1", "median", "iqr", "q3", "rounds")}}
        if instructions and b.instructions is not None:
            reps = [b.instructions * (1 + s) * (1 + rng.uniform(-instr_jitter, instr_jitter)) for _ in range(3)]
            ei.update(instructions=sorted(reps)[1], instructions_repeats=reps, instructions_calls=10)
        test = "test_epoch" if b.phase == "epoch" else "test_phase"
        pid = f"{b.optimizer}-{b.impl}-{b.layout}-{fmt_size(b.size)}-{b.dtype}-{b.device}"
        name = f"{test}[{pid}]" if b.phase == "epoch" else f"{test}[{b.phase}-{pid}]"
        out.append({"group": f"{b.phase} {b.device}", "name": name, "fullname": f"benches/test_loop.py::{name}",
                    "params": None, "param": None, "extra_info": ei, "options": {"timer": "synthetic"},
                    "stats": stats_of(data)})
    stream = draw_rounds(rng, stream_s, 7, sigma=sigma)
    out.insert(0, {"group": "stream cpu", "name": "test_stream[cpu]", "fullname": "benches/test_loop.py::test_stream[cpu]",
                   "params": None, "param": None, "options": {"timer": "synthetic"},
                   "extra_info": {"kind": "stream", "device": "cpu", "bytes": 8 * 2**27, "n": 2**27, "phase": "stream",
                                  "optimizer": "-", "impl": "-", "dtype": "float32"},
                   "stats": stats_of(stream)})
    info: dict[str, Any] = {"torch": {"version": torch_version}, "cpu_model": "Synthetic CPU", "cpu_count": 2,
                            "torch_threads": threads, "allocator": {"summary": allocator}, "gpu": None,
                            "stream_gbps": {"cpu": 8 * 2**27 / stream_s / 1e9}}
    if instructions:
        info["instructions"] = {"torch": torch_version, "torch_git": "0" * 40, "python": python,
                                "cpu_capability": cpu_capability, "valgrind": "valgrind-3.19.0", "threads": 1,
                                "wall_s": 60.0, "cases": sum(1 for b in benches if b.instructions is not None)}
    return {"machine_info": {"node": node, "processor": "", "machine": "x86_64", "python_version": python,
                             "optbench": info},
            "commit_info": {}, "benchmarks": out, "datetime": "2026-12-02T00:00:00+00:00", "version": "synthetic"}
