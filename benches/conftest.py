"""Glue for the benchmarks in benches/: allocator and thread count, the in-session streaming roofline,
the instruction-count run, and the machine_info extension. Every measurement lives in ``optbench.bench``.

``--instructions`` (or ``OPTBENCH_INSTRUCTIONS=1``) counts the instructions per call of every selected
benchmark that Callgrind can count (CPU, float32, sizes 1/1e3/1e6, not compiled) in ONE valgrind
process, started after collection (in the background, overlapping the validation tests when both run)
and finished before the first benchmark; each result's ``extra_info`` then carries ``instructions``. ``OPTBENCH_INSTRUCTIONS=auto`` (what ``tox -e bench`` sets) does the same when valgrind
is installed and otherwise records why not. Without valgrind, ``--instructions`` is a one-line usage error
naming the Debian package.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from optbench.bench.machine import apply_allocator, optbench_machine_info
from optbench.bench.timing import fix_threads, stream_bandwidth, synchronize
from pytest_optbench.plugin import options

_STREAM: dict[str, float] = {}  # device -> GB/s, measured once per session
_T0: list[float] = []
INSTR = pytest.StashKey[dict]()  # {"mode", "counts", "info", "skipped", "error", "thread", "waited_s"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("optbench").addoption(
        "--instructions", action="store_true", default=False,
        help="also count instructions per call under Callgrind (one valgrind process for every eligible benchmark; "
             "needs the Debian package valgrind); stored as extra_info['instructions'] in the benchmark JSON")
    parser.getgroup("optbench").addoption(
        "--no-instructions", action="store_true", default=False,
        help="do not count instructions, whatever OPTBENCH_INSTRUCTIONS says (a wall-clock replicate run)")


def _instr_mode(config: pytest.Config) -> str:
    if config.getoption("instructions", False) and config.getoption("no_instructions", False):
        raise pytest.UsageError("--instructions and --no-instructions contradict each other; give one")
    if config.getoption("no_instructions", False):
        return "off"
    if config.getoption("instructions", False):
        return "on"
    env = os.environ.get("OPTBENCH_INSTRUCTIONS", "").strip().lower()
    if env in ("", "0", "off", "no", "false"):
        return "off"
    if env == "auto":
        return "auto"
    if env in ("1", "on", "yes", "true"):
        return "on"
    raise pytest.UsageError(f"OPTBENCH_INSTRUCTIONS={env!r}: use 1 (count, fail without valgrind), auto or 0")


def pytest_configure(config: pytest.Config) -> None:
    # pytest-benchmark opens --benchmark-json only at the end of the session; make its folder now, so a
    # fresh clone (where the ignored reports/runs/ does not exist) does not lose a whole run.
    out = getattr(config.option, "benchmark_json", None)
    if isinstance(out, (str, os.PathLike)):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    # The allocator (mallopt) and the thread count are fixed before any benchmark runs, and recorded in
    # machine_info and in every result's extra_info; the gate refuses results measured under different ones.
    apply_allocator()
    fix_threads()
    _T0.append(time.time())
    mode = _instr_mode(config)
    state = {"mode": mode, "counts": {}, "info": None, "skipped": None, "error": None}
    if mode != "off":
        from optbench.bench.instructions import unavailable_reason

        reason = unavailable_reason()
        if reason and mode == "on":
            raise pytest.UsageError(f"--instructions: {reason}")
        state["skipped"] = reason
    config.stash[INSTR] = state


def _instr_cases(items):
    from optbench.bench.instructions import InstrCase, eligible

    out = {}
    for item in items:
        spec = getattr(getattr(item, "callspec", None), "params", {}).get("bspec")
        if spec is None or eligible(spec.impl, spec.size, spec.dtype, spec.device):
            continue
        ic = InstrCase(spec.case.name, spec.impl, spec.layout, spec.size, spec.dtype, spec.phase, spec.device)
        out[ic.key] = ic
    return list(out.values())


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the instruction run: every eligible selected benchmark, in one valgrind process, in a
    background thread. Instruction counts do not depend on load, so it overlaps the validation tests
    that ``tox -e bench`` runs first; every test in benches/ waits for it (``_instruction_run``), so no
    wall-clock figure is taken while valgrind runs."""
    config = session.config
    state = config.stash.get(INSTR, None)
    if not state or state["mode"] == "off" or state["skipped"] or config.option.collectonly:
        return
    if hasattr(config, "workerinput"):
        state["skipped"] = "not counted under pytest-xdist (run the benches in one process)"
        return
    cases = _instr_cases(session.items)
    if not cases:
        state["skipped"] = "no selected benchmark is countable (CPU, float32, sizes 1/1e3/1e6, not compiled)"
        return
    import threading

    from optbench.bench.instructions import Request, collect
    from optbench.errors import OptbenchError

    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr:
        tr.write_line(f"optbench: counting instructions of {len(cases)} benchmarks under Callgrind (one valgrind "
                      f"process, in the background until the first benchmark) ...")
    req = Request(cases, optimizer_specs=list(config.getoption("optimizer") or []),
                  optimizer_config=config.getoption("optimizer_config"), rootdir=str(config.rootpath))

    def run() -> None:
        try:
            res = collect(req)
            state["counts"], state["info"] = res["cases"], res["info"]
        except OptbenchError as exc:
            state["error"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported as the run's error, one line
            state["error"] = f"{type(exc).__name__}: {exc}"

    state["thread"] = threading.Thread(target=run, name="optbench-callgrind", daemon=True)
    state["thread"].start()


@pytest.fixture(scope="session", autouse=True)
def _instruction_run(request: pytest.FixtureRequest):
    """Every test in benches/ starts after the instruction run has finished (no timing beside valgrind)."""
    state = request.config.stash.get(INSTR, None)
    thread = (state or {}).get("thread")
    if thread is not None:
        t0 = time.time()
        thread.join()
        state["waited_s"] = time.time() - t0
        tr = request.config.pluginmanager.get_plugin("terminalreporter")
        if tr:
            msg = (f"instruction run failed: {state['error']}" if state["error"] else
                   f"counted instructions of {state['info']['cases']} benchmarks in {state['info']['wall_s']:.0f} s")
            tr.write_line(f"\noptbench: {msg} (waited {state['waited_s']:.0f} s for it)")
    yield


@pytest.fixture(scope="session")
def instruction_counts(request: pytest.FixtureRequest):
    """``lookup(spec) -> {"instructions", "repeats", "calls"} | None``: one benchmark's counts from the
    session's instruction run (None when it was not counted)."""
    from optbench.bench.instructions import InstrCase

    state = request.config.stash.get(INSTR, None)
    counts = (state or {}).get("counts") or {}

    def lookup(spec):
        ic = InstrCase(spec.case.name, spec.impl, spec.layout, spec.size, spec.dtype, spec.phase, spec.device)
        return counts.get(ic.key)

    return lookup


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    state = config.stash.get(INSTR, None)
    _join(state)
    if not state or state["mode"] == "off":
        return
    if state["error"]:
        terminalreporter.write_line(f"optbench: instruction counts: ERROR: {state['error']}", red=True)
    elif state["skipped"]:
        terminalreporter.write_line(f"optbench: instruction counts skipped: {state['skipped']}", yellow=True)
    elif state["info"]:
        i = state["info"]
        terminalreporter.write_line(f"optbench: instruction counts of {i['cases']} benchmarks, {i['wall_s']:.0f} s "
                                    f"under {i.get('valgrind')} (CPU capability {i.get('cpu_capability')}); the "
                                    f"benches waited {state.get('waited_s', 0):.0f} s for it")


def _join(state: dict | None) -> None:
    thread = (state or {}).get("thread")
    if thread is not None:
        thread.join()


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    state = session.config.stash.get(INSTR, None)
    _join(state)  # a session that ran no benchmark still finishes (and reports) its instruction run
    # a failed instruction run is an error of the run (never a measured figure): the session fails
    if state and state["error"] and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
    machine_info["optbench"] = optbench_machine_info(dict(_STREAM))
    # wall time of the pytest session so far (validation + benches when run together, as tox -e bench does)
    machine_info["optbench"]["session_wall_s"] = time.time() - _T0[0] if _T0 else None
    state = config.stash.get(INSTR, None)
    _join(state)
    if state and state["mode"] != "off":
        info = dict(state["info"] or {})
        if state.get("waited_s") is not None:
            info["benches_waited_s"] = state["waited_s"]
        if state["skipped"]:
            info["skipped"] = state["skipped"]
        if state["error"]:
            info["error"] = state["error"]
        machine_info["optbench"]["instructions"] = info
