"""machine_info extensions (torch build, CPU model and threads, GPU, allocator) and the glibc
allocator setting the benches run under."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

# glibc returns freed blocks above the mmap threshold to the OS and page-faults them back on the
# next allocation; at 1e6-1e7 parameters that inflated fwd+bwd 2-4x here (181 ms vs 53 ms at 1e7).
# Raising both thresholds above the largest tensor keeps the blocks in the heap. tox's bench env
# sets these; they must be in the environment before the process starts (glibc reads them once).
ALLOCATOR_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "4294967296",
    "MALLOC_TRIM_THRESHOLD_": "4294967296",
}
ALLOCATOR_KEYS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "LD_PRELOAD",
                  "PYTORCH_CUDA_ALLOC_CONF")


def allocator_setting() -> dict[str, Any]:
    """The allocator environment as the process saw it, plus a one-word summary."""
    env = {k: os.environ.get(k) for k in ALLOCATOR_KEYS if os.environ.get(k) is not None}
    tuned = all(os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"))
    return {"glibc_thresholds_raised": tuned, "env": env, "summary": "raised-thresholds" if tuned else "default"}


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
