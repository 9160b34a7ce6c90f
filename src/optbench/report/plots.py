"""PNG plots (matplotlib, Agg): cost vs params with the roofline, phase breakdown, implementation
speedups, loss trajectories and 2-D optimizer paths on contour plots."""

from __future__ import annotations

import math
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..bench.results import Record, Run, fmt_size  # noqa: E402

IMPL_STYLE = {"forloop": ("tab:red", "o"), "foreach": ("tab:blue", "s"), "fused": ("tab:green", "^"),
              "compiled": ("tab:purple", "D"), "default": ("tab:gray", "x")}


def _grid(k: int) -> tuple[int, int]:
    cols = min(3, k)
    return math.ceil(k / cols), cols


def cost_vs_params(run: Run, device: str, records: list[Record]) -> Any:
    """µs/epoch vs parameter count, log-log, one panel per optimizer, one line per implementation;
    the dashed line is the roofline: modelled bytes at the session's streaming bandwidth."""
    opts = sorted({r.optimizer for r in records})
    rows, cols = _grid(len(opts))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    bw = run.stream_gbps(device)
    for ax, opt in zip(axes.flat, opts):
        recs = [r for r in records if r.optimizer == opt]
        for impl in sorted({r.impl for r in recs}):
            pts = sorted((r.n, r.median * 1e6) for r in recs if r.impl == impl)
            c, m = IMPL_STYLE.get(impl, ("black", "."))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=m, color=c, label=impl)
        roof = sorted((r.n, r.extra["bytes"] / (bw * 1e9) * 1e6) for r in recs if r.extra.get("bytes") and bw)
        if roof:
            ax.plot([p[0] for p in roof], [p[1] for p in roof], "k--", lw=1, label=f"roofline ({bw:.1f} GB/s)")
        lo = min((r.median * 1e6 for r in recs), default=1.0)
        hi = max((r.median * 1e6 for r in recs), default=10.0)
        ax.set_ylim(lo / 3, hi * 3)  # the roofline runs below the data at small n (overhead-bound); clip it
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{opt} — {device}")
        ax.set_xlabel("parameters")
        ax.set_ylabel("µs / epoch")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(opts):]:
        ax.axis("off")
    fig.suptitle(f"Cost of one epoch vs parameter count ({device}, float32, flat)")
    fig.tight_layout()
    return fig


PHASE_COLORS = {"zero_grad": "tab:gray", "forward": "tab:blue", "backward": "tab:orange", "step": "tab:green"}


def phase_breakdown(device: str, records: list[Record]) -> Any:
    """Stacked bars: each phase's share of the epoch (µs), per optimizer and size."""
    by: dict[tuple, dict[str, float]] = {}
    shared: dict[int, dict[str, float]] = {}
    for r in records:
        by.setdefault((r.optimizer, r.size), {})[r.phase] = r.median
        if r.phase != "step":
            shared.setdefault(r.size, {})[r.phase] = r.median
    # zero_grad / forward / backward are measured once per size (optimizer-independent): share them
    for (opt, size), ph in by.items():
        for k, v in shared.get(size, {}).items():
            ph.setdefault(k, v)
    by = {k: v for k, v in by.items() if "step" in v}
    keys = sorted(by, key=lambda k: (k[1], k[0]))
    sizes = sorted({k[1] for k in keys})
    fig, axes = plt.subplots(1, len(sizes), figsize=(max(3.2 * len(sizes), 6), 3.8), squeeze=False)
    for ax, size in zip(axes.flat, sizes):
        ks = [k for k in keys if k[1] == size]
        bottom = np.zeros(len(ks))
        for ph, col in PHASE_COLORS.items():
            vals = np.array([by[k].get(ph, 0.0) * 1e6 for k in ks])
            ax.bar(range(len(ks)), vals, bottom=bottom, color=col, label=ph)
            bottom += vals
        ax.set_xticks(range(len(ks)))
        ax.set_xticklabels([k[0] for k in ks], rotation=45, ha="right", fontsize=7)
        ax.set_title(f"n = {fmt_size(size)}")
        ax.set_ylabel("µs")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles[::-1], labels[::-1], fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"Phase breakdown ({device}, float32, flat, foreach; zero_grad/forward/backward shared per size)")
    fig.tight_layout()
    return fig


def impl_speedup(device: str, records: list[Record]) -> Any | None:
    """Speedup of foreach, fused and compiled over the for-loop, per optimizer, vs size."""
    base = {(r.optimizer, r.size): r.median for r in records if r.impl == "forloop"}
    if not base:
        return None
    opts = sorted({r.optimizer for r in records})
    rows, cols = _grid(len(opts))
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.2 * rows), squeeze=False)
    for ax, opt in zip(axes.flat, opts):
        for impl in ("foreach", "fused", "compiled"):
            pts = sorted((r.size, base[(opt, r.size)] / r.median) for r in records
                         if r.optimizer == opt and r.impl == impl and (opt, r.size) in base)
            if pts:
                c, m = IMPL_STYLE[impl]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=m, color=c, label=impl)
        ax.axhline(1.0, color="k", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_title(f"{opt} — {device}")
        ax.set_xlabel("parameters")
        ax.set_ylabel("speedup over for-loop")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(opts):]:
        ax.axis("off")
    fig.suptitle(f"Epoch speedup over the for-loop implementation ({device}, float32, flat)")
    fig.tight_layout()
    return fig


# ---- trajectories (computed with run_loop) -------------------------------------------------------

def rosenbrock(x):
    return (1 - x[..., 0]) ** 2 + 100 * (x[..., 1] - x[..., 0] ** 2) ** 2


def beale(x):
    a, b = x[..., 0], x[..., 1]
    return (1.5 - a + a * b) ** 2 + (2.25 - a + a * b**2) ** 2 + (2.625 - a + a * b**3) ** 2


def himmelblau(x):
    a, b = x[..., 0], x[..., 1]
    return (a**2 + b - 11) ** 2 + (a + b**2 - 7) ** 2


# name -> (function, start, plot window, minima, per-optimizer lr)
CONTOURS: dict[str, tuple[Callable, tuple[float, float], tuple[float, float, float, float], list[tuple[float, float]]]] = {
    "rosenbrock": (rosenbrock, (-1.5, 2.0), (-2.0, 2.0, -1.0, 3.0), [(1.0, 1.0)]),
    "beale": (beale, (1.0, 1.5), (-1.0, 4.5, -1.5, 2.0), [(3.0, 0.5)]),
    "himmelblau": (himmelblau, (0.0, 0.0), (-5.0, 5.0, -5.0, 5.0),
                   [(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)]),
}
LRS = {"sgd": 1e-3, "sgd_momentum": 2e-4, "sgd_nesterov": 2e-4, "adam": 0.05, "adamw": 0.05, "adam_amsgrad": 0.05,
       "adamw_amsgrad": 0.05, "adamax": 0.05, "nadam": 0.05, "radam": 0.05, "rmsprop": 0.01, "adagrad": 0.5,
       "adadelta": 10.0, "rprop": 0.01, "asgd": 1e-3}
TRAJ_OPTIMIZERS = ("sgd", "sgd_momentum", "adam", "adamw", "adam_amsgrad", "rmsprop", "adagrad")


def _trajectory_cases() -> list[tuple[str, Callable]]:
    """(name, case) for a fixed subset of the registry's optimizers (bench cases: one registry)."""
    from ..bench.cases import registry_cases

    out = []
    cases = {c.name: c for c in registry_cases()}
    for name in TRAJ_OPTIMIZERS:
        c = cases.get(name)
        if c is None:
            continue
        out.append((name, c))
    return out


def compute_paths(name: str, epochs: int = 600) -> dict[str, np.ndarray]:
    """2-D path of each optimizer on a contour target, via :func:`optbench.loop.run_loop`."""
    from ..loop import run_loop

    fn, start, _, _ = CONTOURS[name]
    paths = {}
    for opt_name, case in _trajectory_cases():
        x = torch.tensor(start, dtype=torch.float64, requires_grad=True)
        try:
            opt = case.make([x], "forloop")
            for g in opt.param_groups:
                g["lr"] = LRS.get(opt_name, 1e-3) * (0.1 if name == "beale" and opt_name.startswith("sgd") else 1.0)
            traj = run_loop(lambda: fn(x), [x], opt, epochs)
        except Exception:
            continue
        paths[opt_name] = traj.stacked(0).numpy()
    return paths


def contour_paths(name: str, paths: dict[str, np.ndarray]) -> Any:
    fn, start, (x0, x1, y0, y1), minima = CONTOURS[name]
    xs, ys = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
    z = fn(torch.from_numpy(np.stack([xs, ys], -1))).numpy()
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.contour(xs, ys, np.log10(z + 1e-3), levels=30, cmap="viridis", linewidths=0.6)
    cmap = plt.get_cmap("tab10")
    for i, (opt, p) in enumerate(sorted(paths.items())):
        ok = np.isfinite(p).all(axis=1)
        p = p[ok]
        ax.plot(p[:, 0], p[:, 1], "-", color=cmap(i), lw=1.3, label=f"{opt} ({len(p) - 1} ep)")
        ax.plot(p[-1, 0], p[-1, 1], "o", color=cmap(i), ms=4)
    ax.plot(*start, "k^", ms=8, label="start")
    for m in minima:
        ax.plot(*m, "r*", ms=12)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_title(f"{name}: optimizer paths (contours of log10 f; red stars = global minima)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def loss_trajectories(paths_by_target: dict[str, dict[str, np.ndarray]]) -> Any:
    """f(x_k) - f* per optimizer, log scale, one panel per target."""
    names = list(paths_by_target)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, name in zip(axes.flat, names):
        fn, _, _, minima = CONTOURS[name]
        fstar = min(float(fn(torch.tensor(m, dtype=torch.float64))) for m in minima)
        for i, (opt, p) in enumerate(sorted(paths_by_target[name].items())):
            f = fn(torch.from_numpy(p)).numpy() - fstar
            f = np.where(np.isfinite(f), np.maximum(f, 1e-16), np.nan)
            ax.plot(np.arange(len(f)), f, color=cmap(i), label=opt, lw=1.2)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("f(x) − f*")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Loss trajectories (float64, run_loop)")
    fig.tight_layout()
    return fig


def memory_per_param(device: str, records: list[dict]) -> Any | None:
    """The step's transient peak per parameter vs parameter count (log x), one panel per optimizer, one line per
    implementation; the dotted line is the optimizer's state per parameter, for scale. Sizes from 1e3 (below,
    a scalar per parameter tensor, such as Adam's step, dominates the per-element figures; the table has them)."""
    records = [m for m in records if m.get("device", "cpu") == device and int(m.get("n", 0)) >= 1000]
    opts = sorted({str(m.get("optimizer")) for m in records})
    if not opts:
        return None
    rows, cols = _grid(len(opts))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for ax, opt in zip(axes.flat, opts):
        recs = [m for m in records if str(m.get("optimizer")) == opt]
        for impl in sorted({str(m.get("impl")) for m in recs}):
            pts = sorted((int(m["n"]), float(m["step_peak_bytes_per_param"])) for m in recs if m.get("impl") == impl)
            c, mk = IMPL_STYLE.get(impl, ("black", "."))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=mk, color=c, label=f"{impl} step peak")
        state = sorted((int(m["n"]), float(m["state_bytes_per_param"])) for m in recs)
        ax.plot([p[0] for p in state], [p[1] for p in state], "k:", lw=1, label="state")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{opt} — {device}")
        ax.set_xlabel("parameters")
        ax.set_ylabel("bytes / parameter")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(opts):]:
        ax.axis("off")
    fig.suptitle(f"Memory per parameter: state, and the transient peak of one step above params + grads + state "
                 f"({device})", fontsize=10)
    fig.tight_layout()
    return fig
