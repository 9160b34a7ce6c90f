"""Timing helpers: device synchronisation, cache flush, thread control, the streaming-bandwidth
roofline, and a small pytest-free runner that writes pytest-benchmark-shaped statistics (used by
the gate's self-test and by tests; the benches themselves use pytest-benchmark)."""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

DEFAULT_THREADS_ENV = "OPTBENCH_THREADS"


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> Callable[[], Any]:
    """Wrap ``fn`` so the call returns only when the device is done (CUDA: synchronize after).

    Used as pytest-benchmark's target: its wall-clock round then covers the kernels, not just the
    launches. The device is synchronised in the (untimed) setup before each round too.
    """
    if not device.startswith("cuda"):
        return fn

    def run() -> Any:
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


def default_threads() -> int:
    """All cores but one (at least one): the harness, the OS and co-tenants get a core, so no OpenMP
    worker is descheduled mid-region. Measured on this shared 2-core host with 2 threads: parallel
    regions stalled for whole scheduler slices (SGD epoch at 1e5: 80 ms, vs 0.5 ms with 1 thread)."""
    return max(1, (os.cpu_count() or 1) - 1)


def fix_threads(n: int | None = None) -> int:
    """Fix torch's intra-op thread count (``$OPTBENCH_THREADS``, else :func:`default_threads`); return it."""
    if n is None:
        env = os.environ.get(DEFAULT_THREADS_ENV)
        n = int(env) if env else default_threads()
    torch.set_num_threads(n)
    return torch.get_num_threads()


def llc_bytes() -> int:
    """Largest CPU cache in bytes from sysfs (0 if unknown)."""
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for d in os.listdir(base):
            try:
                with open(f"{base}/{d}/size") as fh:
                    s = fh.read().strip()
            except OSError:
                continue
            mult = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(s[-1:], 1)
            val = int(s[:-1]) * mult if s[-1:] in "KMG" else int(s)
            best = max(best, val)
    except OSError:
        pass
    return best


class CacheFlusher:
    """Evicts the caches by writing a buffer larger than the last-level cache (``--l2-flush``)."""

    def __init__(self, device: str) -> None:
        self.device = device
        if device.startswith("cuda"):
            size = int(torch.cuda.get_device_properties(0).L2_cache_size) * 2 or 256 * 2**20
        else:
            size = min(max(2 * llc_bytes(), 64 * 2**20), 1024 * 2**20)
        self.buf = torch.empty(size // 4, dtype=torch.float32, device=device)

    def __call__(self) -> None:
        self.buf.fill_(1.0)
        synchronize(self.device)


@dataclass
class StreamResult:
    device: str
    bytes_per_pass: int
    seconds: list[float]
    threads: int

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def gbps(self) -> float:
        return self.bytes_per_pass / self.median_s / 1e9


def stream_buffer_elems(device: str) -> int:
    """Elements of a float32 buffer much larger than the LLC (4x, at least 256 MiB, at most 1 GiB)."""
    if device.startswith("cuda"):
        l2 = int(torch.cuda.get_device_properties(0).L2_cache_size)
        size = max(8 * l2, 1024 * 2**20)
    else:
        size = min(max(4 * llc_bytes(), 256 * 2**20), 1024 * 2**20)
    return size // 4


def stream_bandwidth(device: str = "cpu", *, rounds: int = 7, elems: int | None = None) -> StreamResult:
    """Streaming bandwidth: an in-place ``buf.mul_(1.0)`` (read 4 + write 4 bytes per element) on a
    buffer much larger than the LLC. The roofline for "% of roofline" in the same session."""
    n = elems or stream_buffer_elems(device)
    buf = torch.ones(n, dtype=torch.float32, device=device)
    buf.mul_(1.0)  # page in / warm up
    synchronize(device)
    secs = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        buf.mul_(1.0)
        synchronize(device)
        secs.append(time.perf_counter() - t0)
    del buf
    return StreamResult(device, 8 * n, secs, torch.get_num_threads())


# ---- a pytest-free runner with pytest-benchmark's statistics -------------------------------------

def stats_of(data: list[float]) -> dict[str, Any]:
    """pytest-benchmark's ``stats`` fields for per-call times ``data`` (seconds)."""
    data = sorted(data)
    n = len(data)
    if n >= 2:
        q = statistics.quantiles(data, n=4, method="inclusive")
        q1, q3 = q[0], q[2]
    else:
        q1 = q3 = data[0]
    mean = statistics.fmean(data)
    # float arithmetic (statistics.stdev works in exact fractions: 1 ms per call, the bulk of a synthetic run)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in data) / (n - 1)) if n > 1 else 0.0
    iqr = q3 - q1
    return {
        "min": data[0], "max": data[-1], "mean": mean, "stddev": sd, "rounds": n,
        "median": statistics.median(data), "iqr": iqr, "q1": q1, "q3": q3,
        "iqr_outliers": sum(1 for x in data if x < q1 - 1.5 * iqr or x > q3 + 1.5 * iqr),
        "stddev_outliers": sum(1 for x in data if abs(x - mean) > sd), "outliers": "0;0",
        "ld15iqr": data[0], "hd15iqr": data[-1], "ops": 1.0 / mean if mean else 0.0,
        "total": sum(data), "iterations": 1,
    }


def time_rounds(fn: Callable[[], Any], *, rounds: int, iterations: int = 1,
                setup: Callable[[], Any] | None = None, device: str = "cpu") -> list[float]:
    """Per-call seconds for ``rounds`` rounds of ``iterations`` calls (setup untimed before each)."""
    out = []
    for _ in range(rounds):
        if setup is not None:
            setup()
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(iterations):
            fn()
        synchronize(device)
        out.append((time.perf_counter() - t0) / iterations)
    return out


def choose_rounds(per_call_s: float, *, budget_s: float = 0.25, min_rounds: int = 5, max_rounds: int = 200,
                  min_round_s: float = 2e-4) -> tuple[int, int]:
    """(rounds, iterations) so one benchmark costs about ``budget_s`` and each round >= ``min_round_s``."""
    per_call_s = max(per_call_s, 1e-7)
    iterations = max(1, int(min_round_s / per_call_s + 0.999))
    rounds = int(budget_s / (per_call_s * iterations))
    return max(min_rounds, min(max_rounds, rounds)), iterations


def minor_faults() -> int:
    """Minor page faults of this process so far (``getrusage``; 0 where unavailable). Per call, it shows
    whether the allocator keeps freed blocks (about 0) or returns them to the OS (thousands at 1e7)."""
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
    except (ImportError, OSError):
        return 0


class CpuClock:
    """CPU time of successive rounds: :meth:`start` at the end of a round's setup, :meth:`stop` at the
    start of its teardown (pytest-benchmark's untimed hooks, so the wall-clock figure is untouched).

    One torch thread: the calling thread's CPU time (``time.thread_time``), where the intra-op work
    runs. More threads: the process's (``time.process_time``, which also counts OpenMP spin-waits).
    Time spent preempted (co-tenants, steal) is not CPU time of the thread, so on a shared host the
    minimum and median of these move far less than wall time for rounds of a millisecond and more."""

    def __init__(self) -> None:
        import time

        self._clock = time.thread_time if torch.get_num_threads() == 1 else time.process_time
        self.kind = "thread_time" if torch.get_num_threads() == 1 else "process_time"
        self._t0: float | None = None
        self.seconds: list[float] = []

    def start(self) -> None:
        self._t0 = self._clock()

    def stop(self) -> None:
        if self._t0 is not None:
            self.seconds.append(self._clock() - self._t0)
            self._t0 = None

    def stats(self, skip: int = 0) -> dict[str, Any] | None:
        data = self.seconds[skip:]
        if not data:
            return None
        st = stats_of(data)
        return {"clock": self.kind, "min": st["min"], "q1": st["q1"], "median": st["median"], "iqr": st["iqr"],
                "q3": st["q3"], "rounds": st["rounds"]}
