"""Glue for the benchmarks in benches/: thread count, the in-session streaming roofline, and the
machine_info extension. Every measurement lives in ``optbench.bench``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from optbench.bench.machine import optbench_machine_info
from optbench.bench.timing import fix_threads, stream_bandwidth, synchronize
from pytest_optbench.plugin import options

_STREAM: dict[str, float] = {}  # device -> GB/s, measured once per session
_T0: list[float] = []


def pytest_configure(config: pytest.Config) -> None:
    # pytest-benchmark opens --benchmark-json only at the end of the session; make its folder now, so a
    # fresh clone (where the ignored reports/runs/ does not exist) does not lose a whole run.
    out = getattr(config.option, "benchmark_json", None)
    if isinstance(out, (str, os.PathLike)):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    # Fixed before any benchmark runs, recorded in machine_info and in every result's extra_info.
    fix_threads()
    import time

    _T0.append(time.time())


def stream_gbps(device: str) -> float:
    """The session's roofline for ``device``: streaming bandwidth of an in-place op on a buffer >> LLC."""
    if device not in _STREAM:
        _STREAM[device] = stream_bandwidth(device).gbps
        synchronize(device)
    return _STREAM[device]


@pytest.fixture(scope="session")
def roofline():
    return stream_gbps


@pytest.fixture(scope="session")
def bench_options(request: pytest.FixtureRequest):
    return options(request.config)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    import time

    machine_info["optbench"] = optbench_machine_info(dict(_STREAM))
    # wall time of the pytest session so far (validation + benches when run together, as tox -e bench does)
    machine_info["optbench"]["session_wall_s"] = time.time() - _T0[0] if _T0 else None
