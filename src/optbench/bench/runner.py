"""A pytest-free benchmark runner that writes pytest-benchmark-shaped JSON: used by the gate's
self-test and by tests/ (the suite's benches use pytest-benchmark itself)."""

from __future__ import annotations

import datetime as _dt
import platform
from typing import Any, Callable, Sequence

import torch

from .cases import BenchCase, LoopState, bytes_per_phase
from .machine import allocator_setting, optbench_machine_info
from .results import fmt_size
from .timing import choose_rounds, stats_of, stream_bandwidth, time_rounds


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


def measure_run(specs: Sequence[tuple[BenchCase, str, int, str]], *, device: str = "cpu", dtype=torch.float32,
                layout: str = "flat", budget_s: float = 0.3, min_rounds: int = 15,
                stream_elems: int | None = None, rename: Callable[[str], str] | None = None) -> dict[str, Any]:
    """Measure ``(case, impl, size, phase)`` specs plus the streaming reference; return the JSON dict."""
    sr = stream_bandwidth(device, elems=stream_elems, rounds=7)
    benches = [_bench_entry(f"test_stream[{device}]", f"stream {device}", sr.seconds,
                            {"kind": "stream", "device": device, "bytes": sr.bytes_per_pass, "n": sr.bytes_per_pass // 8,
                             "phase": "stream", "optimizer": "-", "impl": "-", "dtype": "float32"})]
    for case, impl, size, phase in specs:
        st = LoopState(case, impl, size, layout, device, dtype)
        st.warm_up(2)
        fn, setup = st.phase(phase)
        probe = time_rounds(fn, rounds=3, setup=setup, device=device)
        rounds, iters = choose_rounds(sorted(probe)[1], budget_s=budget_s, min_rounds=min_rounds)
        if setup is not None:
            iters = 1
        data = time_rounds(fn, rounds=rounds, iterations=iters, setup=setup, device=device)
        name_opt = rename(case.name) if rename else case.name
        dname = str(dtype).removeprefix("torch.")
        nbytes = bytes_per_phase(case, phase, st.n, dtype)
        extra = {"kind": "loop", "optimizer": name_opt, "impl": impl, "layout": layout, "size": size, "n": st.n,
                 "device": device, "dtype": dname, "phase": phase, "bytes": nbytes, "source": case.source,
                 "threads": torch.get_num_threads(), "allocator": allocator_setting()["summary"]}
        med = sorted(data)[len(data) // 2]
        if nbytes:
            extra.update(gbps=nbytes / med / 1e9, stream_gbps=sr.gbps, roofline_pct=100 * nbytes / med / 1e9 / sr.gbps)
        pid = f"{name_opt}-{impl}-{layout}-{fmt_size(size)}-{dname}-{device}"
        test = "test_epoch" if phase == "epoch" else "test_phase"
        if phase != "epoch":
            pid = f"{phase}-{pid}"
        benches.append(_bench_entry(f"{test}[{pid}]", f"{phase} {device}", data, extra, iters))
        del st
    return {"machine_info": machine_info({device: sr.gbps}), "commit_info": {},
            "benchmarks": benches, "datetime": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "version": "optbench-runner"}


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
            row.append((case, impl, size, phase, st, fn, setup, None, []))
        states.append(row)
    for _ in range(rounds):
        for row in states:
            for *_, st, fn, setup, ref, data in row:
                data.extend(time_rounds(fn, rounds=1, setup=setup, device=device))
    out = []
    for row in states:
        benches = [_bench_entry(f"test_stream[{device}]", f"stream {device}", sr.seconds,
                                {"kind": "stream", "device": device, "bytes": sr.bytes_per_pass, "phase": "stream"})]
        for case, impl, size, phase, st, fn, setup, ref, data in row:
            dname = str(dtype).removeprefix("torch.")
            extra = {"kind": "loop", "optimizer": case.name, "impl": impl, "layout": layout, "size": size, "n": st.n,
                     "device": device, "dtype": dname, "phase": phase, "bytes": bytes_per_phase(case, phase, st.n, dtype),
                     "source": case.source, "threads": torch.get_num_threads()}
            pid = f"{case.name}-{impl}-{layout}-{fmt_size(size)}-{dname}-{device}"
            benches.append(_bench_entry(f"test_{phase}[{pid}]", f"{phase} {device}", data, extra))
        out.append({"machine_info": machine_info({device: sr.gbps}), "commit_info": {}, "benchmarks": benches,
                    "datetime": _dt.datetime.now(_dt.timezone.utc).isoformat(), "version": "optbench-runner"})
    return out
