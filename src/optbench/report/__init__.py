"""``optbench report``: DIR/<machine>/index.md and a self-contained index.html (images inlined),
tables per device and PNG plots."""

from __future__ import annotations

import base64
import html
import os
import time
from pathlib import Path
from typing import Sequence

from ..bench.results import Record, Run, load_run
from ..errors import OptbenchError
from ..io import atomic_write_text, save_figure
from . import tables

MARKER = ".optbench-report"  # a folder holding this file was written by optbench and may be rewritten


def _claim(folder: Path) -> None:
    """Refuse to write into a non-empty folder optbench did not create: never overwrite a user's file."""
    if folder.exists() and any(folder.iterdir()) and not (folder / MARKER).exists():
        raise OptbenchError(f"{folder} exists and was not written by optbench report; choose another --out or remove it")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / MARKER, "written by optbench report; files here are regenerated\n")


def _merge(runs: Sequence[Run]) -> tuple[Run, list[Record]]:
    """One machine's runs: later files win for the same benchmark key (memory results too)."""
    by = {}
    mem = {}
    for run in runs:
        for r in run.records:
            by[r.key] = r
        for m in run.memory:
            mem[tables.memory_key(m)] = m
    main = runs[-1]
    main.memory = list(mem.values())
    for run in runs:  # a stream reference from any run of the machine
        for d, s in run.stream.items():
            main.stream.setdefault(d, s)
    return main, list(by.values())


class _Doc:
    """Builds markdown and HTML side by side."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.md: list[str] = []
        self.html: list[str] = []
        self.images: list[str] = []

    def h(self, level: int, text: str) -> None:
        self.md.append(f"{'#' * level} {text}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def p(self, text: str) -> None:
        self.md.append(text + "\n")
        self.html.append(f"<p>{html.escape(text)}</p>")

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.md.append(tables.md_table(header, rows) + "\n")
        th = "".join(f"<th>{html.escape(c)}</th>" for c in header)
        trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        self.html.append(f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>")

    def figure(self, fig, name: str, alt: str) -> None:
        import matplotlib.pyplot as plt

        if fig is None:
            return
        path = self.folder / name
        save_figure(fig, path)
        plt.close(fig)
        self.images.append(name)
        self.md.append(f"![{alt}]({name})\n")
        b64 = base64.b64encode(path.read_bytes()).decode()
        self.html.append(f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"/>'
                         f"<figcaption>{html.escape(alt)}</figcaption></figure>")

    def html_page(self, title: str) -> str:
        css = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}table{border-collapse:collapse;"
               "font-size:12px;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
               "td:first-child,th:first-child{text-align:left}img{max-width:100%}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<style>{css}</style></head><body>{''.join(self.html)}</body></html>\n")


def _instruction_lines(info: dict, records: list[Record]) -> list[str]:
    i = info.get("instructions")
    if i is None:
        return []
    if i.get("error"):
        return [f"Instruction counts: the Callgrind run failed: {i['error']}"]
    if i.get("skipped"):
        return [f"Instruction counts: not measured ({i['skipped']})."]
    n = sum(1 for r in records if "instructions" in r.extra)
    return [f"Instruction counts (Callgrind, {i.get('valgrind', 'valgrind')}): {n} benchmarks counted in one valgrind "
            f"process in {float(i.get('wall_s') or 0):.0f} s (the instruction run's time); torch {i.get('torch')}, "
            f"Python {i.get('python')}, CPU capability under valgrind {i.get('cpu_capability')}, 1 thread. Counts are "
            f"per call, the median of {i.get('repeats', 3)} blocks; the gate compares them at a 1 % threshold."]


def _recorded_figure(ei: dict) -> str | None:
    """One sentence for a figure a bench recorded instead of asserting (harness overhead, gate self-test)."""
    kind = ei.get("kind")
    if kind == "overhead":
        bound = float(ei.get("bound", 0.05))
        ratio = float(ei["ratio_suite_over_bare"])
        state = "within" if abs(ratio - 1) <= bound else "OUTSIDE"
        return (f"Harness overhead (n=1 seed loop, SGD), a recorded figure: the suite's per-epoch time over a bare timeit "
                f"loop of the same five steps, median of paired interleaved blocks: {ratio:.3f}, {state} the "
                f"±{100 * bound:.0f} % bound (bare {ei['bare_epoch_s'] * 1e6:.2f} µs/epoch). The pytest-benchmark figure "
                f"measured after them: {ei['pytest_benchmark_epoch_s'] * 1e6:.2f} µs (ratio "
                f"{ei['ratio_pytest_benchmark_over_bare']:.3f}, unpaired, so it includes drift).")
    if kind == "selftest":
        parts = [f"{k}: ratio {v['ratio']:.3f} ±{100 * v['noise']:.1f} % → {v['verdict']}"
                 for k, v in sorted((ei.get("verdicts") or {}).items())]
        return (f"Gate self-test ({ei.get('what', 'in-process')}), a recorded figure: " + "; ".join(parts) +
                f". Expected: unchanged ok, planted REGRESSED ({'as expected' if ei.get('as_expected') else 'NOT as expected'}).")
    return None


def _memory_section(doc: _Doc, device: str, records: list[dict]) -> None:
    """State bytes per parameter and the step's transient peak per implementation (benches/test_memory.py)."""
    from . import plots

    if not records:
        return
    source = records[0].get("memory_source", "?")
    doc.h(3, "Memory: optimizer state and the step's transient peak")
    doc.p(f"State: the bytes of the tensors in optimizer.state after the warm-up, per parameter element (a scalar per "
          f"parameter tensor, such as Adam's step, shows at small sizes). 'byte model' is the state the registry's "
          f"traffic model implies ((OptConfig.step_bytes_fp32 - 12) / 2). Step peak: the most memory allocated during "
          f"one warm step() above what was allocated when it began (parameters, gradients, state), measured in a "
          f"pass of its own, never in a timed round ({source}); 1 MB = 1e6 B.")
    impls = tables.memory_impls(records)
    doc.table(tables.memory_header(impls), tables.memory_rows(records, impls))
    doc.figure(plots.memory_per_param(device, records), f"memory_{device}.png",
               f"state and step peak per parameter vs parameter count, per implementation ({device})")


def build_report(paths: Sequence[str | os.PathLike], out: str | os.PathLike = "reports", *,
                 trajectories: bool = True, bench_wall_s: float | None = None) -> list[Path]:
    """Write one report folder per machine found in ``paths``; return the index.md paths."""
    runs = [load_run(p) for p in paths]
    by_machine: dict[str, list[Run]] = {}
    for r in runs:
        by_machine.setdefault(r.machine, []).append(r)
    written = []
    for machine, mruns in by_machine.items():
        written.append(_machine_report(Path(out) / machine, mruns, trajectories=trajectories, bench_wall_s=bench_wall_s))
    return written


def _machine_report(folder: Path, runs: list[Run], *, trajectories: bool, bench_wall_s: float | None) -> Path:
    from . import plots

    t0 = time.perf_counter()
    _claim(folder)
    run, records = _merge(runs)
    info = run.optbench_info
    doc = _Doc(folder)
    title = f"optbench report — {run.machine}"
    doc.h(1, title)
    tinfo = info.get("torch") or {}
    gpu = info.get("gpu") or {}
    alloc = info.get("allocator") or {}
    doc.p(f"Sources: {', '.join(os.path.basename(r.path) for r in runs)}; run {run.datetime or '?'}.")
    doc.p(f"torch {tinfo.get('version', '?')} (git {str(tinfo.get('git_version', '?'))[:10]}, CUDA {tinfo.get('cuda')}); "
          f"CPU {info.get('cpu_model', '?')}, {info.get('cpu_count', '?')} cores, {info.get('torch_threads', '?')} torch threads; "
          f"GPU {gpu.get('name', 'none')}; allocator: {alloc.get('summary', '?')}"
          + (f" (environment {alloc['env']})" if alloc.get("env") else "") + ".")
    wall = bench_wall_s or info.get("session_wall_s")
    if wall:
        doc.p(f"Wall time of the bench session (validation + benches): {wall:.0f} s.")
    for line in _instruction_lines(info, records):
        doc.p(line)
    for r in runs:
        for b in r.raw.get("benchmarks", []):
            line = _recorded_figure(b.get("extra_info") or {})
            if line:
                doc.p(line)
    devices = sorted({r.device for r in records} | {str(m.get("device", "cpu")) for m in run.memory})
    for d in devices:
        bw = run.stream_gbps(d)
        doc.p(f"Roofline on {d}: streaming bandwidth {bw:.2f} GB/s (in-place mul_ on a buffer much larger than the LLC, "
              f"same session)." if bw else f"Roofline on {d}: not measured in this run.")
    doc.p("Byte model per parameter per epoch: the optimizer's step (OptConfig.step_bytes_fp32 in the registry, fp32: "
          "SGD 12, SGD momentum 20, Adam/AdamW 28, AMSGrad 36 B) plus the compulsory forward/backward traffic of the "
          "elementwise loss (12 B); bfloat16 halves it. "
          "µs/epoch is the wall-clock median; 'CPU µs' the median CPU time of the benchmark thread per round (what the "
          "gate compares: it leaves out time spent preempted); 'instructions' the count per call under Callgrind. "
          "GB/s and % of roofline use that model, so they are lower bounds on the traffic really moved. "
          "'compile s' is the first call of the torch.compile'd step (Dynamo tracing plus Inductor; Inductor's "
          "on-disk cache makes reruns on the same machine faster), kept out of the per-epoch figures.")
    for d in devices:
        drecs = [r for r in records if r.device == d]
        epoch = [r for r in drecs if r.phase == "epoch"]
        doc.h(2, f"Device: {d}")
        if epoch:
            doc.h(3, "Per-epoch cost (the five-step loop)")
            doc.table(tables.EPOCH_HEADER, tables.epoch_rows(run, epoch))
        phases = [r for r in drecs if r.phase in ("zero_grad", "forward", "backward", "step")]
        if phases:
            doc.h(3, "Phases alone")
            doc.table(tables.PHASE_HEADER, tables.phase_rows(phases))
        flat32 = [r for r in epoch if r.layout == "flat" and r.dtype == "float32"]
        if flat32:
            doc.figure(plots.cost_vs_params(run, d, flat32), f"cost_vs_params_{d}.png",
                       f"µs per epoch vs parameters, log-log, per optimizer ({d}), with the roofline")
            doc.figure(plots.impl_speedup(d, flat32), f"speedup_{d}.png",
                       f"speedup of foreach, fused and compiled over the for-loop ({d})")
        ph32 = [r for r in phases if r.layout == "flat" and r.dtype == "float32"]
        if ph32:
            doc.figure(plots.phase_breakdown(d, ph32), f"phases_{d}.png", f"phase breakdown ({d})")
        _memory_section(doc, d, [m for m in run.memory if m.get("device", "cpu") == d])
    if trajectories:
        doc.h(2, "Validation: trajectories")
        doc.p("Computed in the report step with optbench.loop.run_loop (float64, for-loop implementation) from the "
              "classic starts; learning rates in optbench.report.plots.LRS.")
        paths = {name: plots.compute_paths(name) for name in plots.CONTOURS}
        doc.figure(plots.loss_trajectories(paths), "loss_trajectories.png", "loss trajectories per optimizer")
        for name, p in paths.items():
            doc.figure(plots.contour_paths(name, p), f"paths_{name}.png", f"2-D paths on {name}")
    doc.p(f"Report written in {time.perf_counter() - t0:.1f} s by optbench report.")
    atomic_write_text(folder / "index.md", "\n".join(doc.md))
    atomic_write_text(folder / "index.html", doc.html_page(title))
    return folder / "index.md"
