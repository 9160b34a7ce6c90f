"""The benches set glibc's allocator themselves (mallopt at configure time) and record it: checked by
page-fault counts (getrusage), which are counts, not timings."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = r"""
import ctypes, resource, sys
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "applied":
    from optbench.bench.machine import allocator_setting, apply_allocator
    applied = apply_allocator()
    assert applied["applied"] and allocator_setting()["summary"] == applied["summary"], applied
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
n = 64 << 20
p = libc.malloc(n); ctypes.memset(p, 1, n); libc.free(p)  # first touch
f0 = faults()
for _ in range(5):
    p = libc.malloc(n); ctypes.memset(p, 1, n); libc.free(p)
print((faults() - f0) // 5)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc mallopt only")
def test_mallopt_keeps_freed_blocks_so_reallocation_does_not_page_fault():
    def run(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip().splitlines()[-1])

    default, applied = run("default"), run("applied")
    pages = (64 << 20) // 4096
    # default glibc: a 64 MiB block is mmap'd and returned on free, so every cycle faults all its pages back
    assert default >= pages // 2
    # raised thresholds + top pad: the block stays in the heap; a cycle faults (almost) nothing
    assert applied <= pages // 100
