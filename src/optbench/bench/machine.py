"""machine_info extensions (torch build, CPU model and threads, GPU, allocator) and the glibc
allocator setting the benches run under."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

# glibc returns freed blocks above the mmap threshold to the OS (and trims the heap top above the trim
# threshold), so every epoch page-faults its temporaries back in: at 1e6-1e7 parameters that inflated
# fwd+bwd 2-4x here (181 ms vs 53 ms at 1e7), and it depends on the process's history, so two runs of
# the same code differed 2x. The benches set the allocator themselves, through mallopt(3) at configure
# time (no environment needed, so a bare `pytest benches` measures like `tox -e bench`):
#   M_MMAP_THRESHOLD 1 GiB   (larger blocks still go to mmap; fixing it also stops the dynamic threshold)
#   M_TRIM_THRESHOLD 2^31-1  (never trim the heap top)
#   M_TOP_PAD        64 MiB  (grow the heap in large steps)
# mallopt takes an int, so 2^31-1 is its largest value; glibc 2.36 accepts all three (returns 1).
# Measured (ru_minflt, foreach Adam epoch, 1 thread): 1e6 params 658 faults/epoch by default, 19.6 with
# the former MALLOC_*_THRESHOLD_=4 GiB environment, 58.6 with the thresholds alone, 0.02 with all
# three; 1e7 params 78,128 by default, 1,953 with the environment, 0.1 with all three.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MALLOPT = (("M_MMAP_THRESHOLD", M_MMAP_THRESHOLD, 1 << 30), ("M_TRIM_THRESHOLD", M_TRIM_THRESHOLD, 2**31 - 1),
           ("M_TOP_PAD", M_TOP_PAD, 64 << 20))
MALLOPT_SUMMARY = "mallopt:mmap_threshold=1GiB,trim_threshold=2GiB,top_pad=64MiB"
ALLOCATOR_KEYS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX",
                  "LD_PRELOAD", "PYTORCH_CUDA_ALLOC_CONF")
_APPLIED: dict[str, Any] = {}


def apply_allocator() -> dict[str, Any]:
    """Set glibc's malloc parameters (:data:`MALLOPT`) in this process, once; return what was applied.

    Not glibc (musl, macOS) or a mallopt that refuses a value: nothing is changed and the summary says
    so ("default (...)"), which the gate then sees as a different setting."""
    if _APPLIED:
        return dict(_APPLIED)
    import ctypes
    import ctypes.util

    accepted: dict[str, int] = {}
    reason = ""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        for name, param, value in MALLOPT:
            if mallopt(param, value) != 1:
                reason = f"mallopt({name}, {value}) refused"
                break
            accepted[name] = value
    except (OSError, AttributeError) as exc:
        reason = f"no glibc mallopt ({exc})"
    ok = not reason and len(accepted) == len(MALLOPT)
    _APPLIED.update(mallopt=accepted, applied=ok, summary=MALLOPT_SUMMARY if ok else f"default ({reason})")
    return dict(_APPLIED)


def allocator_setting() -> dict[str, Any]:
    """The allocator setting this process measures under: what :func:`apply_allocator` set, the
    allocator environment as the process saw it, and a one-line summary (what the gate compares)."""
    env = {k: os.environ.get(k) for k in ALLOCATOR_KEYS if os.environ.get(k) is not None}
    applied = dict(_APPLIED)
    summary = applied.get("summary") or "default (mallopt not applied)"
    if env.get("LD_PRELOAD"):
        summary += f"; LD_PRELOAD={env['LD_PRELOAD']}"
    return {"mallopt": applied.get("mallopt", {}), "applied": bool(applied.get("applied")), "env": env,
            "summary": summary}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def torch_info() -> dict[str, Any]:
    cfg = ""
    try:
        cfg = torch.__config__.show()
    except Exception:
        pass
    return {
        "version": torch.__version__,
        "git_version": getattr(torch.version, "git_version", None),
        "cuda": torch.version.cuda,
        "debug": bool(getattr(torch.version, "debug", False)),
        "cxx_flags_has_avx512": "AVX512" in cfg,
        "parallel": torch.__config__.parallel_info().splitlines()[0] if hasattr(torch.__config__, "parallel_info") else None,
    }


def gpu_info() -> dict[str, Any] | None:
    if not torch.cuda.is_available():
        return None
    p = torch.cuda.get_device_properties(0)
    driver = None
    try:
        import subprocess

        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=10).stdout.strip() or None
    except Exception:
        pass
    return {"name": p.name, "memory_bytes": int(p.total_memory), "driver": driver, "cuda_version": torch.version.cuda,
            "capability": f"{p.major}.{p.minor}", "count": torch.cuda.device_count()}


def optbench_machine_info(stream_gbps: dict[str, float] | None = None) -> dict[str, Any]:
    """The block added to pytest-benchmark's machine_info under the key ``optbench``."""
    from .timing import llc_bytes

    return {
        "torch": torch_info(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "llc_bytes": llc_bytes(),
        "gpu": gpu_info(),
        "allocator": allocator_setting(),
        "stream_gbps": stream_gbps or {},
    }


def machine_key(machine_info: dict[str, Any]) -> str:
    """A folder-safe machine name for reports: node, CPU model, threads (and GPU)."""
    import re

    ob = machine_info.get("optbench", {})
    parts = [machine_info.get("node") or "machine", ob.get("cpu_model") or machine_info.get("processor") or "cpu",
             f"{ob.get('torch_threads', '?')}t"]
    if ob.get("gpu"):
        parts.append(ob["gpu"].get("name", "gpu"))
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(str(p) for p in parts)).strip("-")[:100]
