"""A pytest-free benchmark runner that writes pytest-benchmark-shaped JSON for several variants whose
rounds interleave: the in-process gate self-test (benches/test_gate_selftest.py) uses it."""

from __future__ import annotations

import datetime as _dt
import platform
from typing import Any, Sequence

import torch

from .cases import BenchCase, LoopState, bytes_per_phase
from .machine import optbench_machine_info
from .results import fmt_size
from .timing import CpuClock, stats_of, stream_bandwidth, time_rounds


def _bench_entry(name: str, group: str, data: list[float], extra: dict[str, Any], iterations: int = 1) -> dict[str, Any]:
    st = stats_of(data)
    st["iterations"] = iterations
    return {"group": group, "name": name, "fullname": f"optbench.runner::{name}", "params": None, "param": None,
            "extra_info": extra, "options": {"timer": "perf_counter", "min_rounds": len(data)}, "stats": st}


def machine_info(stream_gbps: dict[str, float]) -> dict[str, Any]:
    u = platform.uname()
    return {"node": u.node, "processor": u.processor, "machine": u.machine, "python_implementation": platform.python_implementation(),
            "python_version": platform.python_version(), "system": u.system, "release": u.release,
            "optbench": optbench_machine_info(stream_gbps)}


def measure_interleaved(variants: Sequence[Sequence[tuple[BenchCase, str, int, str]]], *, device: str = "cpu",
                        dtype=torch.float32, layout: str = "flat", rounds: int = 30,
                        stream_elems: int | None = 16 * 2**20) -> list[dict[str, Any]]:
    """Several runs measured with their rounds interleaved (A1 B1 C1 A2 B2 ...), so load changes on a
    shared machine hit every run alike. Each variant is a list of specs; returns one JSON dict each.
    No per-round reference here: the interleaving already cancels drift, and a reference pass right
    before each round was measured to mask part of a planted +29% traffic increase (cache state)."""
    sr = stream_bandwidth(device, elems=stream_elems, rounds=5)
    states = []
    for specs in variants:
        row = []
        for case, impl, size, phase in specs:
            st = LoopState(case, impl, size, layout, device, dtype)
            st.warm_up(2)
            fn, setup = st.phase(phase)
            row.append((case, impl, size, phase, st, fn, setup, CpuClock() if device == "cpu" else None, []))
        states.append(row)
    for _ in range(rounds):
        for row in states:
            for *_, st, fn, setup, cpu, data in row:
                if setup is not None:
                    setup()
                if cpu is not None:
                    cpu.start()
                data.extend(time_rounds(fn, rounds=1, device=device))
                if cpu is not None:
                    cpu.stop()
    out = []
    for row in states:
        benches = [_bench_entry(f"test_stream[{device}]", f"stream {device}", sr.seconds,
                                {"kind": "stream", "device": device, "bytes": sr.bytes_per_pass, "phase": "stream"})]
        for case, impl, size, phase, st, fn, setup, cpu, data in row:
            dname = str(dtype).removeprefix("torch.")
            extra = {"kind": "loop", "optimizer": case.name, "impl": impl, "layout": layout, "size": size, "n": st.n,
                     "device": device, "dtype": dname, "phase": phase, "bytes": bytes_per_phase(case, phase, st.n, dtype),
                     "source": case.source, "threads": torch.get_num_threads()}
            if cpu is not None:
                extra["cpu_time"] = cpu.stats()
            pid = f"{case.name}-{impl}-{layout}-{fmt_size(size)}-{dname}-{device}"
            benches.append(_bench_entry(f"test_{phase}[{pid}]", f"{phase} {device}", data, extra))
        out.append({"machine_info": machine_info({device: sr.gbps}), "commit_info": {}, "benchmarks": benches,
                    "datetime": _dt.datetime.now(_dt.timezone.utc).isoformat(), "version": "optbench-runner"})
    return out
