"""The gate's verdicts as the text table ``optbench gate`` prints (:func:`format_table`)."""

from __future__ import annotations

from .decide import DRIFT_K, REFERENCE_PHASES, REPLICATE_K, GateResult

def _fmt_t(s: float) -> str:
    if s >= 1:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3f} ms"
    return f"{s * 1e6:.2f} µs"


def _fmt_v(res: GateResult, x: float) -> str:
    return f"{x:,.0f}" if res.metric == "instructions" else _fmt_t(x)


def format_table(res: GateResult) -> str:
    what = "instructions/call" if res.metric == "instructions" else f"{res.clock} {res.stat}"
    head = ("name", f"baseline ({what})", f"current ({what})", "ratio", "noise", "verdict")
    if res.metric == "time" and res.drift:
        head = ("name", f"baseline ({what})", f"current ({what})", "raw", "drift", "ratio", "noise", "verdict")
    rows = [head]
    for v in sorted(res.verdicts, key=lambda v: (v.verdict != "REGRESSED", v.label)):
        mark = " *" if res.setting_changes else ""
        cells = [v.label, _fmt_v(res, v.base), _fmt_v(res, v.cur)]
        if len(head) == 8:
            cells += [f"{v.raw_ratio:.3f}", f"{v.drift:.3f}" + (" (ref)" if v.reference else "")]
        cells += [f"{v.ratio:.3f}", f"±{100 * v.noise:.1f}%", v.verdict + mark]
        rows.append(tuple(cells))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if res.metric == "instructions":
        desc = "metric: instructions per call (Callgrind); ratio = current/baseline"
    elif res.drift:
        desc = (f"metric: time ({'CPU time per round' if res.clock == 'cpu' else 'wall clock'}); ratio = (current/baseline) / drift, the drift fitted on the reference benches "
                f"({'/'.join(REFERENCE_PHASES)}) of each size")
    else:
        desc = (f"metric: time ({'CPU time per round' if res.clock == 'cpu' else 'wall clock'}); "
                "ratio = current/baseline, not corrected for drift")
    out = [f"{desc}; threshold {100 * res.threshold:g}%", *lines]
    if res.drift:
        out.append("drift (current/baseline of the references): " +
                   ", ".join(f"{g} {d:.3f}" for g, d in res.drift.items()) +
                   (f"; their residual spread ±{100 * res.drift_residual:.1f}% (x{DRIFT_K:g} in the noise)"
                    if res.drift_residual is not None else ""))
    if res.replicates:
        runs = "+".join(str(res.replicates.get(k, 0)) for k in ("base", "cur"))
        out.append(f"noise: from {runs} replicate runs (baseline+current), ±{REPLICATE_K:g}·√2 x the process-to-process sd "
                   "of each benchmark's figure (its in-round reference divided out where it has one): " +
                   (", ".join(f"{g} {100 * sd:.1f}%" for g, sd in res.replicate_sd.items()) or "pooled over all sizes"))
    for w in res.warnings:
        out.append(f"warning: {w}")
    if res.only_base:
        out.append(f"only in baseline ({len(res.only_base)}): " + ", ".join(res.only_base[:20]) + (" ..." if len(res.only_base) > 20 else ""))
    if res.only_cur:
        out.append(f"only in current ({len(res.only_cur)}): " + ", ".join(res.only_cur[:20]) + (" ..." if len(res.only_cur) > 20 else ""))
    n_reg = len(res.regressed)
    out.append(f"{n_reg} regressed of {len(res.verdicts)} compared" if n_reg else f"no regression ({len(res.verdicts)} compared)")
    return "\n".join(out)
