"""Markdown tables of benchmark results."""

from __future__ import annotations

from ..bench.results import Record, Run, fmt_size


def md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _f(x: float | None, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def instructions(r: Record) -> float | None:
    """Instructions per call counted under Callgrind (``pytest benches --instructions``), or None."""
    v = r.extra.get("instructions")
    return float(v) if v is not None else None


def cpu_median(r: Record) -> float | None:
    c = r.extra.get("cpu_time") or {}
    return float(c["median"]) if c.get("median") is not None else None


def epoch_rows(run: Run, records: list[Record]) -> list[list[str]]:
    rows = []
    for r in sorted(records, key=lambda r: (r.optimizer, r.dtype, r.layout, r.size, r.impl)):
        pct = run.roofline_pct(r)
        ct = r.extra.get("compile_time_s")
        cpu = cpu_median(r)
        ins = instructions(r)
        rows.append([r.optimizer, r.impl, r.layout, r.dtype, fmt_size(r.size), f"{r.n:,}",
                     f"{r.median * 1e6:,.1f}", f"±{r.iqr / 2 * 1e6:,.1f}", _f(cpu * 1e6 if cpu else None, ",.1f"),
                     f"{r.ns_per_param:,.2f}", _f(r.gbps, ".2f"), _f(pct, ".1f"), _f(ins, ",.0f"), _f(ct, ".1f")])
    return rows


EPOCH_HEADER = ["optimizer", "impl", "layout", "dtype", "size", "params", "µs/epoch", "±IQR/2", "CPU µs",
                "ns/param", "GB/s", "% roofline", "instructions", "compile s"]


def phase_rows(records: list[Record]) -> list[list[str]]:
    by = {}
    shared = {}
    for r in records:
        by.setdefault((r.optimizer, r.impl, r.layout, r.dtype, r.size), {})[r.phase] = r
        if r.phase != "step":
            shared.setdefault((r.layout, r.dtype, r.size), {})[r.phase] = r
    # zero_grad / forward / backward are optimizer-independent and measured once per size: share them
    for (opt, impl, layout, dtype, size), ph in by.items():
        for k, v in shared.get((layout, dtype, size), {}).items():
            ph.setdefault(k, v)
    rows = []
    for (opt, impl, layout, dtype, size), ph in sorted(by.items()):
        cells = [_f(ph[p].median * 1e6 if p in ph else None, ",.1f") for p in ("zero_grad", "forward", "backward", "step")]
        tot = sum(ph[p].median for p in ("zero_grad", "forward", "backward", "step") if p in ph)
        ins = instructions(ph["step"]) if "step" in ph else None
        rows.append([opt, impl, layout, dtype, fmt_size(size), *cells, f"{tot * 1e6:,.1f}", _f(ins, ",.0f")])
    return rows


PHASE_HEADER = ["optimizer", "impl", "layout", "dtype", "size", "zero_grad µs", "forward+loss µs", "backward µs",
                "step µs", "sum µs", "step instructions"]


# ---- memory (benches/test_memory.py: kind "memory") ----------------------------------------------------

MEMORY_IMPLS = ("forloop", "foreach", "fused", "compiled", "default")


def fmt_bytes(n: float | None) -> str:
    """Bytes in SI units (1 MB = 1e6 B, so 4 B/param x 1e7 parameters reads 40.0 MB)."""
    if n is None:
        return "–"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def memory_key(m: dict) -> tuple:
    return (m.get("optimizer"), m.get("impl"), m.get("layout", "flat"), int(m.get("size", 0)), m.get("device", "cpu"),
            m.get("dtype", "float32"))


def memory_impls(records: list[dict]) -> list[str]:
    present = {m.get("impl") for m in records}
    return [i for i in MEMORY_IMPLS if i in present] + sorted(i for i in present if i not in MEMORY_IMPLS)


def memory_header(impls: list[str]) -> list[str]:
    return ["optimizer", "dtype", "size", "params", "state B/param", "byte model B/param"] + \
        [f"{i} step peak" for i in impls]


def memory_rows(records: list[dict], impls: list[str]) -> list[list[str]]:
    """One row per optimizer, dtype and size; the transient peak of every implementation side by side."""
    by: dict[tuple, dict[str, dict]] = {}
    for m in records:
        by.setdefault((m.get("optimizer"), m.get("dtype", "float32"), int(m.get("size", 0))), {})[m.get("impl")] = m
    rows = []
    for (opt, dtype, size), per in sorted(by.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]), kv[0][2])):
        any_m = next(iter(per.values()))
        states = sorted({round(float(m["state_bytes_per_param"]), 3) for m in per.values()})
        model = any_m.get("model_state_bytes_per_param")
        cells = []
        for impl in impls:
            m = per.get(impl)
            cells.append("–" if m is None else
                         f"{fmt_bytes(m['step_peak_bytes'])} ({float(m['step_peak_bytes_per_param']):.2f} B/param)")
        rows.append([str(opt), str(dtype), fmt_size(size), f"{int(any_m.get('n', 0)):,}",
                     " / ".join(f"{s:.2f}" for s in states), "–" if model is None else f"{float(model):.1f}", *cells])
    return rows
