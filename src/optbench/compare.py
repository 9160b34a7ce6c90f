"""Hardware comparison: the same benches on several machines (or thread counts), side by side.

Per optimizer, implementation and size (flat float32 epochs): each machine's µs/epoch, its speedup
over the first machine, and its % of roofline. Where CPU and GPU results are both present, the
parameter count from which the GPU is faster than the CPU, per optimizer (best implementation each).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .bench.results import Record, Run, fmt_size, load_run
from .errors import ConfigError, OptbenchError
from .io import atomic_write_text
from .report.tables import md_table

HEADER_MARK = "<!-- written by optbench compare -->"


def _label(run: Run, used: set[str]) -> str:
    info = run.optbench_info
    base = f"{run.machine_info.get('node', 'machine')}/{info.get('torch_threads', '?')}t"
    if info.get("gpu"):
        base += f"/{info['gpu'].get('name', 'gpu')}"
    label = base
    if label in used:
        label = f"{base} ({Path(run.path).stem})"
    used.add(label)
    return label


def _epochs(run: Run) -> dict[tuple, Record]:
    return {(r.optimizer, r.impl, r.device, r.size): r for r in run.records
            if r.phase == "epoch" and r.layout == "flat" and r.dtype == "float32"}


def crossover(cpu: dict[tuple, Record], gpu: dict[tuple, Record]) -> dict[str, int | None]:
    """Per optimizer: the smallest size from which the best GPU time beats the best CPU time at
    every larger size measured on both (None: never)."""
    out: dict[str, int | None] = {}
    for opt in sorted({k[0] for k in cpu} & {k[0] for k in gpu}):
        best = {}
        for recs, dev in ((cpu, "cpu"), (gpu, "cuda")):
            for (o, _impl, d, size), r in recs.items():
                if o == opt and d == dev:
                    best.setdefault(dev, {})
                    best[dev][size] = min(best[dev].get(size, float("inf")), r.median)
        sizes = sorted(set(best.get("cpu", {})) & set(best.get("cuda", {})))
        cross = None
        for s in reversed(sizes):
            if best["cuda"][s] < best["cpu"][s]:
                cross = s
            else:
                break
        out[opt] = cross
    return out


def compare(paths: Sequence[str | os.PathLike]) -> str:
    if len(paths) < 2:
        raise ConfigError("compare needs at least two result files (A.json B.json ...)")
    runs = [load_run(p) for p in paths]
    used: set[str] = set()
    labels = [_label(r, used) for r in runs]
    eps = [_epochs(r) for r in runs]
    keys = sorted(set().union(*[set(e) for e in eps]), key=lambda k: (k[2], k[0], k[1], k[3]))
    if not keys:
        raise ConfigError("no flat float32 epoch benchmarks in these files; run tox -e bench to produce them")
    lines = [HEADER_MARK, "# optbench hardware comparison", ""]
    for lab, r in zip(labels, runs):
        info = r.optbench_info
        bws = ", ".join(f"{d} {r.stream_gbps(d):.1f} GB/s" for d in sorted(r.stream) if r.stream_gbps(d))
        lines.append(f"- **{lab}**: {os.path.basename(r.path)}; CPU {info.get('cpu_model', '?')}, "
                     f"{info.get('torch_threads', '?')} threads, allocator {(info.get('allocator') or {}).get('summary', '?')}, "
                     f"torch {(info.get('torch') or {}).get('version', '?')}; "
                     f"stream {bws or 'not measured'}")
    lines.append("")
    header = ["optimizer", "impl", "device", "size"]
    for i, lab in enumerate(labels):
        header += [f"{lab} µs/epoch"] + ([f"{lab} speedup"] if i else []) + [f"{lab} % roof"]
    rows = []
    for k in keys:
        row = [k[0], k[1], k[2], fmt_size(k[3])]
        first = eps[0].get(k)
        for i, (run, e) in enumerate(zip(runs, eps)):
            r = e.get(k)
            row.append(f"{r.median * 1e6:,.1f}" if r else "–")
            if i:
                row.append(f"{first.median / r.median:.2f}×" if (r and first) else "–")
            pct = run.roofline_pct(r) if r else None
            row.append(f"{pct:.1f}" if pct is not None else "–")
        rows.append(row)
    lines += ["## Per-epoch cost (flat, float32)", "",
              "speedup = first machine's time / this machine's time (>1: faster than the first).", "",
              md_table(header, rows), ""]
    cpu_runs = [(lab, e) for lab, e in zip(labels, eps) if any(k[2] == "cpu" for k in e)]
    gpu_runs = [(lab, e) for lab, e in zip(labels, eps) if any(k[2] == "cuda" for k in e)]
    lines.append("## Where the GPU overtakes the CPU")
    lines.append("")
    if not gpu_runs:
        lines.append("No CUDA results in these files, so no crossover to report.")
    else:
        xrows = []
        for cl, ce in cpu_runs:
            for gl, ge in gpu_runs:
                for opt, s in crossover(ce, ge).items():
                    xrows.append([opt, cl, gl, fmt_size(s) if s else "not within the sizes measured"])
        lines.append(md_table(["optimizer", "CPU", "GPU", "GPU faster from n ="], xrows))
    lines.append("")
    return "\n".join(lines)


def write_compare(paths: Sequence[str | os.PathLike], out: str | os.PathLike) -> str:
    text = compare(paths)
    out = Path(out)
    if out.exists() and not out.read_text(encoding="utf-8", errors="replace").startswith(HEADER_MARK):
        raise OptbenchError(f"{out} exists and was not written by optbench compare; choose another --out or remove it")
    atomic_write_text(out, text)
    return text
