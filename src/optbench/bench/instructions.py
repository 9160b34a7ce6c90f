"""Instruction counts under Callgrind: a deterministic metric for the regression gate.

Wall-clock time on a shared machine moves with co-tenants; the number of instructions a step
executes does not. Every case is measured in ONE valgrind process, so valgrind's start-up (Python
and torch under the JIT) is paid once:

* valgrind runs ``python -m optbench.bench.instructions REQUEST.json`` with
  ``--tool=callgrind --instr-atstart=no --collect-atstart=no``: Python, torch and optbench start
  uninstrumented (``import torch``: 13 s here, against 60 s instrumented);
* the child switches instrumentation on once, through ``vgdb ... instrumentation on`` (Callgrind's
  monitor command, the one ``callgrind_control -i on`` sends), spinning the interpreter meanwhile so
  that valgrind polls for the command without needing ptrace;
* per case it builds the loop state (:class:`optbench.bench.cases.LoopState`), warms up, then for
  each of ``repeats`` blocks of ``calls`` calls toggles collection around the timed call only
  (``torch._C._valgrind_toggle``; the phase's untimed setup runs outside) and dumps the block's
  counters (``torch._C._valgrind_toggle_and_dump_stats``, one ``callgrind.out.<pid>.<k>`` file each);
* the parent reads the ``summary:`` line of each dump: instructions (Ir) per call.

The same mechanism as torch.utils.benchmark's ``Timer.collect_callgrind`` (which pays the start-up
per statement) and CodSpeed's instrumentation mode (which starts the whole pytest process under
valgrind, instrumentation off, and switches it on around each benchmark).

Determinism: one torch thread (valgrind serialises threads, and OpenMP spin-waits would be counted),
``PYTHONHASHSEED=0``, the benches' allocator setting, the garbage collector run before each block,
every case built from the same seeded parameters in the same order. Valgrind 3.19 does not emulate
AVX-512, so torch dispatches its AVX2 kernels under it: counts compare across x86-64 machines with
AVX2 (recorded as ``cpu_capability``), not across ISAs.
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import OptbenchError

DEBIAN_PACKAGE = "valgrind"  # provides valgrind, vgdb and callgrind_control (Debian/Ubuntu)
# Sizes counted under Callgrind (about 50x slower than native): the small ones, where dispatch and Python
# overhead regress, and 1e6, where an extra pass over memory shows; 1e5 adds little and 1e7 costs minutes.
SIZES = (1, 10**3, 10**6)
MAX_SIZE = max(SIZES)
ELIGIBLE_DTYPES = ("float32",)
DEFAULT_TIMEOUT_S = 1800.0
VGDB_TIMEOUT_S = 60.0


class InstructionsUnavailable(OptbenchError):
    """Instruction counting cannot run here (no valgrind, no torch Callgrind hooks)."""


class InstructionsFailed(OptbenchError):
    """The valgrind run failed or timed out."""


@dataclass(frozen=True)
class InstrCase:
    """One benchmark to count: the coordinates of a bench (see :class:`optbench.bench.cases.BenchSpec`)."""

    optimizer: str
    impl: str
    layout: str
    size: int
    dtype: str
    phase: str
    device: str = "cpu"

    @property
    def key(self) -> str:
        return f"{self.phase}-{self.optimizer}-{self.impl}-{self.layout}-{self.size}-{self.dtype}-{self.device}"


def eligible(impl: str, size: int, dtype: str, device: str) -> str | None:
    """None when a benchmark is counted under Callgrind, else the reason it is not."""
    if device != "cpu":
        return "instruction counts are CPU-only (valgrind does not see GPU kernels)"
    if impl == "compiled":
        return "torch.compile under valgrind would count the compiler, not the step"
    if size not in SIZES:
        return f"size {size} not counted (sizes {', '.join(f'{n:g}' for n in SIZES)}: Callgrind runs ~50x slower than native)"
    if dtype not in ELIGIBLE_DTYPES:
        return f"dtype {dtype} not counted (float32 only)"
    return None


def calls_for(size: int) -> int:
    """Calls per dumped block: enough to average small cases, few at 1e6 (each call ~0.1 s there)."""
    return 10 if size <= 10**4 else (3 if size <= 10**5 else 1)


@dataclass
class Request:
    """What the child measures (written as JSON for it)."""

    cases: list[InstrCase]
    repeats: int = 3
    warmup_blocks: int = 1
    optimizer_specs: list[str] = field(default_factory=list)
    optimizer_config: str | None = None
    rootdir: str | None = None


# ---- parent side -----------------------------------------------------------------------------------

def unavailable_reason() -> str | None:
    """Why instruction counts cannot be collected here, as one line naming the fix; None if they can."""
    missing = [t for t in ("valgrind", "vgdb") if shutil.which(t) is None]
    if missing:
        return (f"{' and '.join(missing)} not found on PATH: instruction counts need Callgrind; install the Debian "
                f"package {DEBIAN_PACKAGE} (apt-get install {DEBIAN_PACKAGE})")
    if sys.platform != "linux":
        return f"instruction counts need valgrind on Linux (this is {sys.platform})"
    import torch

    if not all(hasattr(torch._C, s) for s in ("_valgrind_toggle", "_valgrind_toggle_and_dump_stats")):
        return "this torch build has no Callgrind hooks (torch._C._valgrind_toggle); use an official Linux build"
    try:
        if not torch._C._valgrind_supported_platform():
            return "this torch build reports Callgrind as unsupported on this platform"
    except Exception:  # pragma: no cover - older builds
        pass
    return None


def valgrind_version() -> str | None:
    try:
        out = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


_SUMMARY = re.compile(rb"^(?:summary|totals):\s*(\d+)", re.M)


def read_dump_total(path: str | os.PathLike) -> int:
    """Total Ir of one callgrind dump (its ``summary:`` line)."""
    with open(path, "rb") as fh:
        head = fh.read(8192)
    m = _SUMMARY.search(head)
    if m is None:  # the summary can follow a long header; read the whole file
        m = _SUMMARY.search(Path(path).read_bytes())
    if m is None:
        raise InstructionsFailed(f"callgrind dump {path} has no 'summary:' line; is it a callgrind output file?")
    return int(m.group(1))


def collect(request: Request, *, timeout_s: float = DEFAULT_TIMEOUT_S, log=None) -> dict[str, Any]:
    """Count every case of ``request`` in one valgrind process; return ``{"cases": {key: {...}}, "info": {...}}``.

    Per case: ``instructions`` (median over the blocks of the per-call count), ``repeats`` (per-call
    count of each block), ``calls`` (calls per block). ``info`` holds the run's wall time, the
    valgrind version and what the child saw (torch, Python, CPU capability). Raises
    :class:`InstructionsUnavailable` or :class:`InstructionsFailed` with a one-line message.
    """
    reason = unavailable_reason()
    if reason:
        raise InstructionsUnavailable(reason)
    work = Path(tempfile.mkdtemp(prefix="optbench-callgrind-"))
    keep = bool(os.environ.get("OPTBENCH_INSTRUCTIONS_KEEP"))  # keep the dumps (callgrind_annotate them)
    try:
        req_path, res_path, log_path = work / "request.json", work / "result.json", work / "valgrind.log"
        payload = asdict(request)
        payload["result"] = str(res_path)
        req_path.write_text(json.dumps(payload))
        cmd = [*_no_aslr(), "valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
               f"--callgrind-out-file={work}/callgrind.out.%p", "--vgdb=yes",
               sys.executable, "-m", "optbench.bench.instructions", str(req_path)]
        env = child_env()
        t0 = time.time()
        with open(log_path, "wb") as fh:
            try:
                proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                keep = True
                raise InstructionsFailed(f"the valgrind run exceeded {timeout_s:.0f} s and was stopped (log: {log_path}); "
                                         f"count fewer cases (--sizes, -k)") from None
        wall = time.time() - t0
        if proc.returncode != 0 or not res_path.exists():
            keep = True
            last = _last_error_line(log_path)
            raise InstructionsFailed(f"the valgrind run exited {proc.returncode}: {last} (log: {log_path})")
        res = json.loads(res_path.read_text())
        pid = res["pid"]
        cases: dict[str, Any] = {}
        for key, c in res["cases"].items():
            per_call = [read_dump_total(work / f"callgrind.out.{pid}.{k}") / c["calls"] for k in c["dumps"]]
            s = sorted(per_call)
            cases[key] = {"instructions": s[len(s) // 2], "repeats": per_call, "calls": c["calls"]}
        info = {**res["info"], "tool": "callgrind", "dumps": str(work) if keep else None, "valgrind": valgrind_version(), "wall_s": wall,
                "cases": len(cases), "repeats": request.repeats}
        if log:
            log(f"optbench: counted instructions of {len(cases)} benchmarks under Callgrind in {wall:.0f} s")
        return {"cases": cases, "info": info}
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


# The child's whole environment: a fixed one, so that two checkouts or shells measure the same process
# (the environment's size and content move the heap and dict layouts; measured: one extra variable moved
# a count by up to 0.35 %, while two runs with the same environment repeat every count exactly).
CHILD_ENV_PASS = ("PATH", "HOME", "PYTHONPATH", "LD_LIBRARY_PATH", "VIRTUAL_ENV", "TMPDIR")
CHILD_ENV_FIXED = {"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPTBENCH_THREADS": "1",
                   "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8", "MPLBACKEND": "Agg"}


def child_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in CHILD_ENV_PASS if k in os.environ}
    env.update(CHILD_ENV_FIXED)
    if os.environ.get("OPTBENCH_INSTRUCTIONS_VERBOSE"):
        env["OPTBENCH_INSTRUCTIONS_VERBOSE"] = "1"
    return env


def _no_aslr() -> list[str]:
    """``setarch <arch> -R`` when it works here: without address-space randomisation, id()-hashed dicts
    and the allocator see the same addresses in every run, which makes counts repeat across processes."""
    if os.environ.get("OPTBENCH_INSTRUCTIONS_ASLR") == "1" or shutil.which("setarch") is None:
        return []
    import platform

    cmd = ["setarch", platform.machine(), "-R"]
    try:
        ok = subprocess.run([*cmd, "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return cmd if ok else []


def _last_error_line(log_path: Path) -> str:
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    errs = [ln for ln in lines if not ln.startswith("==")]
    return (errs or lines or ["no output"])[-1][:300]


# ---- child side (runs under valgrind) ---------------------------------------------------------------

def _under_valgrind() -> bool:
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    return "vgpreload" in maps or "valgrind" in maps


def _instrumentation_on() -> None:
    """Ask Callgrind (through vgdb, its gdbserver) to instrument from now on; spin meanwhile so that
    valgrind's gdbserver polls for the command (no ptrace needed, so it works under Yama ptrace_scope=1)."""
    proc = subprocess.Popen(["vgdb", f"--pid={os.getpid()}", "--max-invoke-ms=0", "instrumentation", "on"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    t0 = time.monotonic()
    spins = 0
    while proc.poll() is None:
        spins += 1
        if spins % 1000 == 0 and time.monotonic() - t0 > VGDB_TIMEOUT_S:
            proc.kill()
            raise InstructionsFailed(f"vgdb did not switch Callgrind's instrumentation on within {VGDB_TIMEOUT_S:.0f} s")
    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    if proc.returncode != 0:
        raise InstructionsFailed(f"vgdb failed ({proc.returncode}): {out.strip()[-200:]}")


def _child(req_path: str) -> int:
    import torch

    from .cases import LoopState, registry_cases, user_cases
    from .machine import apply_allocator

    raw = json.loads(Path(req_path).read_text())
    if not _under_valgrind():
        print("optbench.bench.instructions: not running under valgrind; run it through collect()", file=sys.stderr)
        return 2
    apply_allocator()
    torch.set_num_threads(1)
    cases_in = [InstrCase(**c) for c in raw["cases"]]
    if raw.get("optimizer_specs"):
        bench_cases = user_cases(raw["optimizer_specs"], config_file=raw.get("optimizer_config"), rootdir=raw.get("rootdir"))
    else:
        bench_cases = registry_cases()
    by_name = {c.name: c for c in bench_cases}
    missing = sorted({c.optimizer for c in cases_in} - set(by_name))
    if missing:
        print(f"optbench.bench.instructions: unknown optimizer(s) {', '.join(missing)}", file=sys.stderr)
        return 2
    from ..devices import parse_dtype

    toggle, dump = torch._C._valgrind_toggle, torch._C._valgrind_toggle_and_dump_stats
    verbose = bool(os.environ.get("OPTBENCH_INSTRUCTIONS_VERBOSE"))
    # Uninstrumented pre-pass: one tiny case per (optimizer, impl, phase) runs every lazy import and
    # first-call initialisation (the first optimizer step imports parts of torch._dynamo: 60 s instrumented).
    for name, impl, phase in dict.fromkeys((ic.optimizer, ic.impl, ic.phase) for ic in cases_in):
        st = LoopState(by_name[name], impl, 1, "flat", "cpu", parse_dtype("float32"))
        st.warm_up(2)
        fn, setup = st.phase(phase)
        for _ in range(2):
            if setup is not None:
                setup()
            fn()
        del st, fn, setup
    gc.collect()
    gc.freeze()  # everything imported so far leaves the collector's view: a collection stays cheap under Callgrind
    _instrumentation_on()
    out: dict[str, Any] = {}
    ndump = 0
    t_start = time.monotonic()
    for ic in cases_in:
        t0 = time.monotonic()
        st = LoopState(by_name[ic.optimizer], ic.impl, ic.size, ic.layout, ic.device, parse_dtype(ic.dtype))
        st.warm_up(1)
        fn, setup = st.phase(ic.phase)
        calls = calls_for(ic.size)
        gc.collect()
        gc.disable()  # no collection inside the measured blocks (pytest-benchmark's --benchmark-disable-gc too)
        for _ in range(calls * raw.get("warmup_blocks", 1)):  # one uncounted block first: lazy state, caches, arenas
            if setup is not None:
                setup()
            fn()
        dumps = []
        for _ in range(raw.get("repeats", 3)):
            for i in range(calls):
                if setup is not None:
                    setup()
                toggle()
                fn()
                if i == calls - 1:
                    dump()  # toggles collection off, then writes and zeroes the counters
                else:
                    toggle()
            ndump += 1
            dumps.append(ndump)
        gc.enable()
        out[ic.key] = {"calls": calls, "dumps": dumps}
        del st, fn, setup
        if verbose:
            print(f"optbench-instructions: {ic.key} {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    if verbose:
        print(f"optbench-instructions: all cases {time.monotonic() - t_start:.1f} s", file=sys.stderr, flush=True)
    import platform

    info = {"torch": torch.__version__, "torch_git": getattr(torch.version, "git_version", None),
            "python": platform.python_version(), "cpu_capability": _cpu_capability(), "threads": torch.get_num_threads(),
            "hashseed": os.environ.get("PYTHONHASHSEED")}
    tmp = raw["result"] + ".tmp"
    Path(tmp).write_text(json.dumps({"pid": os.getpid(), "cases": out, "info": info}))
    os.replace(tmp, raw["result"])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown: under instrumentation it costs ~30 s and counts nothing


def _cpu_capability() -> str | None:
    import torch

    try:
        return torch.backends.cpu.get_cpu_capability()
    except Exception:
        return None


def cases_to_request(cases: Sequence[InstrCase], **kw: Any) -> Request:
    return Request(cases=list(cases), **kw)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: valgrind ... python -m optbench.bench.instructions REQUEST.json (see optbench.bench.instructions.collect)",
              file=sys.stderr)
        sys.exit(2)
    sys.exit(_child(sys.argv[1]))
