"""The gate's decision: each benchmark of a current result against its baseline, on one of two metrics.

``instructions`` (deterministic): the instructions per call that Callgrind counted
(``pytest benches --instructions``). Two processes measuring the same code agree to a few 0.1 %
(measured: identical counts with the same environment, within 0.35 % across environments), so the
threshold is tight, :data:`DEFAULT_INSTR_THRESHOLD` (1 %). The runs must come from the same torch,
Python and CPU capability (the counts are a function of them): otherwise the gate refuses.

``time``: each result is summarised by the minimum over its rounds (``--stat median`` for medians)
of the CPU time each round took (recorded by the CPU benches; it leaves out time spent preempted), or
of the wall clock where that is missing (GPU results, older files). A machine shared with co-tenants
drifts between sessions, and between two processes minutes apart, by more than a run's own noise (a
whole ``tox -e bench`` gated raw against a baseline from another session flagged 29 of 151 results).
So by default the gate fits that drift per run pair on benches whose code did not change, the
optimizer-independent phases (:data:`REFERENCE_PHASES`: forward+loss and backward, measured at every
size): the drift of a size is the median log-ratio of its references, and it is divided out. A
result regresses only when its drift-corrected slowdown exceeds both the threshold and the noise:
``NOISE_K_MIN`` x the spread of the fastest quarter of its rounds, combined with ``DRIFT_K`` x the
run pair's own scatter (the larger of the references' residual spread and the scatter of the
results that came out faster than the drift, which no regression inflates), widened for the drift's
own error. A pair measured under heavy co-tenancy thus widens its noise band instead of crying
wolf. References measure the drift; they are shown, not judged. The price: a slowdown common to
every bench of a size is drift to this gate; the instruction gate sees it.

Either side may be several runs (processes of the two sides interleaved on one runner); each
benchmark is then judged on its best run (:func:`optbench.gate.runs.merge_runs`), and the time
metric's noise comes from the spread between a side's runs (:mod:`optbench.replicates`).

Results measured under different CPU models, thread counts or allocator settings (time), or under
another torch, Python, valgrind or CPU capability (instructions) are not comparable: the gate
refuses them (exit 2, one line) unless ``--allow-setting-change``, which compares them and marks
every row.

Exit codes: 0 nothing regressed, 1 regression, 2 bad input.

``python -m optbench.bench.selftest`` measures the false-alarm and detection rates.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Sequence

from ..bench.results import KEY_FIELDS, Record, Run, fmt_size
from ..errors import ConfigError
from .runs import (DEFAULT_STAT, alias_map, aliased, has_instructions, machine_warnings, run_stats, setting_changes,
                   stat_value)

METRICS = ("time", "instructions")
DEFAULT_THRESHOLD = 0.10  # wall clock
DEFAULT_INSTR_THRESHOLD = 0.01  # instructions: ~3x the largest cross-environment difference measured (0.35 %)
NOISE_K = 3.0  # standard errors of the log-ratio a slowdown must exceed to count as real (median)
# With minima, the within-run noise is NOISE_K_MIN x the combined spread of the fastest quarter of rounds.
NOISE_K_MIN = 2.0
# Instructions: a slowdown must also exceed NOISE_K_INSTR x the spread of the counted blocks.
NOISE_K_INSTR = 2.0
# ...and INSTR_FLOOR instructions per call. A count also depends a little on what ran before it in the same
# valgrind process (the allocator's and the interpreter's state): the PR matrix counted alone and inside the
# whole tox -e bench matrix differed by up to 3,735 instructions per call (adamw for-loop 1e3 epoch, -0.54 %)
# and by 1,146 on the 66,420 of SGD's zero_grad at 1e6 (+1.7 %, a false alarm at 1 %). An extra pass over
# 1e3 floats or one more kernel launch costs more than the floor; an extra pass over 1e6 floats ~10^5.
INSTR_FLOOR = 5000.0
# The drift model: references are the phases that do not run the optimizer's code and scale with the size
# like the step does: forward+loss and backward. (zero_grad is the optimizer's code, and with set_to_none it
# costs the same ~10 µs at every size: measured, it moved 23 % while the 1e6 epochs moved 2 %.)
REFERENCE_PHASES = ("forward", "backward")
DRIFT_MODES = ("reference", "none")
# A drift-corrected result's noise includes DRIFT_K x the run pair's scatter about the drift. On the
# seeded synthetic sessions of tests/test_gate.py (drift 12-45 %, each bench +-2 % of its own, 3 % round
# noise, preemptions): K 2.0 / 2.5 / 3.0 gave 1 / 1 / 1 false-alarm results of 2640 and detected a planted
# +20 % in 80 / 79 / 77 of 80 pairs; 2.5 leaves more room for the heavier tails of a real host.
DRIFT_K = 2.5
# With replicate runs per side (optbench.replicates), a slowdown must exceed REPLICATE_K x sqrt(2) x the
# process-to-process sd of the benchmark's corrected figure: sqrt(2) for the difference of two sides, each
# taken as one process (a side's best of R runs scatters less, so the band errs wide). The seeded synthetic
# sessions of tests/test_gate.py and the two-process self-test (reports/baseline/README.md) measure it.
REPLICATE_K = 3.0


@dataclass
class Verdict:
    key: tuple
    label: str
    base: float  # seconds (or instructions per call)
    cur: float
    ratio: float  # drift-corrected current/baseline (>1 slower)
    raw_ratio: float
    noise: float  # relative: slowdowns below this are within noise
    verdict: str  # "ok", "REGRESSED", "faster", "noisy", or "ref" (a reference bench of the drift model)
    drift: float = 1.0  # the drift divided out (1: none)
    reference: bool = False  # a reference bench of the drift model


@dataclass
class GateResult:
    verdicts: list[Verdict]
    only_base: list[str]
    only_cur: list[str]
    warnings: list[str] = field(default_factory=list)
    metric: str = "time"
    threshold: float = DEFAULT_THRESHOLD
    stat: str = DEFAULT_STAT
    drift: dict[str, float] = field(default_factory=dict)  # group label -> drift factor
    drift_residual: float | None = None  # relative residual spread of the references
    setting_changes: list[str] = field(default_factory=list)  # compared anyway (--allow-setting-change)
    clock: str = "wall"  # time metric: "cpu" (per-round CPU time) or "wall"
    own_references: int = 0  # results divided by their own in-round reference (forward+backward)
    replicates: dict[str, int] = field(default_factory=dict)  # side -> runs, when the noise came from replicates
    replicate_sd: dict[str, float] = field(default_factory=dict)  # group label -> process-to-process sd (relative)

    @property
    def regressed(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.verdict == "REGRESSED"]

    @property
    def exit_code(self) -> int:
        return 1 if self.regressed else 0


def parse_threshold(text: str | float) -> float:
    """'10%', '10' (percent) or '0.1' (fraction) -> 0.1."""
    s = str(text).strip()
    try:
        if s.endswith("%"):
            v = float(s[:-1]) / 100
        else:
            v = float(s)
            v = v / 100 if v >= 1 else v
    except ValueError:
        raise ConfigError(f"--threshold {text!r} is not a percentage; give e.g. 10% or 0.1") from None
    if not 0 < v < 10:
        raise ConfigError(f"--threshold {text!r} is out of range; give a slowdown like 10%")
    return v


def _rel_noise_ref(rec: Record, stat: str) -> float:
    """Within-run relative noise of a result's in-round reference (CPU time)."""
    r = rec.extra.get("ref_cpu_time") or {}
    if stat == "min":
        return max(float(r["q1"]) - float(r["min"]), 0.0) / float(r["min"]) if r.get("min") else 0.0
    if not r.get("median") or int(r.get("rounds", 0)) < 2:
        return 0.0
    return 0.93 * float(r["iqr"]) / math.sqrt(int(r["rounds"])) / float(r["median"])


def _rel_noise(rec: Record, stat: str, clock: str) -> float:
    """Within-run relative noise of a result's statistic. Median: standard error from the IQR
    (SE(median) ~ 0.93 IQR/sqrt(rounds)). Min: (q1 - min)/min, the spread of the fastest quarter of
    rounds (no sqrt(n) shrink: a minimum is one round)."""
    st = run_stats(rec, clock)
    if stat == "min":
        return max(st["q1"] - st["min"], 0.0) / st["min"] if st["min"] > 0 else 0.0
    if st["median"] <= 0 or st["rounds"] < 2:
        return 0.0
    return 0.93 * st["iqr"] / math.sqrt(st["rounds"]) / st["median"]


def pick_metric(base: Run, cur: Run, metric: str = "auto") -> str:
    """``auto``: instructions when both runs carry counts, else time."""
    if metric == "auto":
        return "instructions" if has_instructions(base) and has_instructions(cur) else "time"
    if metric not in METRICS:
        raise ConfigError(f"--metric {metric!r}: use time, instructions or auto")
    if metric == "instructions":
        for run, what in ((base, "baseline"), (cur, "current")):
            if not has_instructions(run):
                why = (run.optbench_info.get("instructions") or {}).get("skipped") or \
                      (run.optbench_info.get("instructions") or {}).get("error")
                raise ConfigError(f"{what} {run.path} has no instruction counts"
                                  + (f" ({why})" if why else "")
                                  + "; measure it with pytest benches --instructions")
    return metric


# ---- the comparison --------------------------------------------------------------------------------

def _drift_group(rec: Record) -> tuple:
    return (rec.device, rec.size)


def _group_label(g: tuple) -> str:
    return f"{g[0]} n={fmt_size(g[1])}"


def pick_clock(pairs: Sequence[tuple[Record, Record]], clock: str = "auto") -> str:
    """``auto``: CPU time when every compared result carries it on both sides, else wall clock."""
    if clock == "auto":
        return "cpu" if pairs and all(b.extra.get("cpu_time") and c.extra.get("cpu_time") for b, c in pairs) else "wall"
    if clock not in ("cpu", "wall"):
        raise ConfigError(f"--clock {clock!r}: use cpu, wall or auto")
    if clock == "cpu" and not all(b.extra.get("cpu_time") and c.extra.get("cpu_time") for b, c in pairs):
        raise ConfigError("--clock cpu: some results carry no CPU time (GPU results, or files from an older optbench); "
                          "use --clock wall")
    return clock


def _ref_key(rec: Record) -> tuple:
    # a reference does not run the optimizer: matched on everything but the optimizer and implementation
    return (rec.device, rec.size, rec.dtype, rec.layout, rec.phase)


def reference_pairs(base: Sequence[Record], cur: Sequence[Record], stat: str, clock: str) -> list[tuple[Record, Record]]:
    """The reference benches of both runs, paired by (device, size, dtype, layout, phase) whatever
    optimizer they were measured with (the best one where a run measured several)."""
    sides = []
    for recs in (base, cur):
        best: dict[tuple, Record] = {}
        for r in recs:
            if r.phase in REFERENCE_PHASES and (clock == "wall" or r.extra.get("cpu_time")):
                old = best.get(_ref_key(r))
                if old is None or stat_value(r, stat, clock) < stat_value(old, stat, clock):
                    best[_ref_key(r)] = r
        sides.append(best)
    return [(sides[0][k], sides[1][k]) for k in sides[0] if k in sides[1]]


def fit_drift(pairs: Sequence[tuple[Record, Record]], stat: str = DEFAULT_STAT,
              clock: str = "wall", refs: Sequence[tuple[Record, Record]] | None = None
              ) -> tuple[dict[tuple, float], float | None, list[str]]:
    """The drift model: per (device, size), the median log-ratio cur/base of the reference benches
    (:data:`REFERENCE_PHASES`; ``refs``, else the references among ``pairs``); and the references'
    residual spread around it (1.4826 x the median absolute residual, pooled over groups, as a
    relative factor). A group without references takes the median over all references (and a
    warning says so)."""
    logs: dict[tuple, list[float]] = {}
    for b, c in (refs if refs is not None else [(b, c) for b, c in pairs if b.phase in REFERENCE_PHASES]):
        bv, cv = stat_value(b, stat, clock), stat_value(c, stat, clock)
        if bv > 0 and cv > 0:
            logs.setdefault(_drift_group(b), []).append(math.log(cv / bv))
    drift = {g: statistics.median(v) for g, v in logs.items()}
    # residuals about the group's median, leaving out the median itself in odd groups (its residual is 0 by
    # construction)
    resid, ks = [], []
    for g, v in logs.items():
        if len(v) > 1:
            r = sorted(x - drift[g] for x in v)
            if len(r) % 2:
                r.pop(len(r) // 2)
            resid += r
            ks.append(len(v))
    spread = None
    if len(resid) >= 2:
        spread = 1.4826 * statistics.median(abs(r) for r in resid)
    warnings = []
    groups = {_drift_group(b) for b, _ in pairs}
    missing = sorted(groups - set(drift))
    if missing and drift:
        overall = statistics.median(x for v in logs.values() for x in v)
        for g in missing:
            drift[g] = overall
        warnings.append(f"no reference bench ({'/'.join(REFERENCE_PHASES)}) at {', '.join(_group_label(g) for g in missing)}: "
                        f"the median drift over all sizes ({math.exp(overall):.3f}) is divided out there")
    return drift, spread, warnings


def pair_spread(pairs: Sequence[tuple[Record, Record]], dmap: dict[tuple, float], stat: str, clock: str,
                own: dict[tuple, float] | None = None) -> dict:
    """How much the run pair's results scatter about the drift: 1.4826 x the median |log-ratio| of the
    drift-corrected results that came out FASTER than the drift (ratio < 1). A regression only moves
    results up, so the lower side measures the noise alone, however many results regressed; on a quiet
    machine it is ~2-3 %, under heavy co-tenancy it grows, and the gate's noise band with it. Returned
    per (device, size) group where it has at least 3 such results, and pooled under the key None (0
    when fewer than 3 overall: the references' residual spread then stands alone)."""
    own = own or {}
    lower: dict = {}
    for b, c in pairs:
        bv, cv = stat_value(b, stat, clock), stat_value(c, stat, clock)
        g = _drift_group(b)
        if bv > 0 and cv > 0 and (b.key in own or g in dmap):
            x = math.log(cv / bv) - (own[b.key] if b.key in own else dmap[g])
            if x < 0:
                lower.setdefault(g, []).append(-x)
                lower.setdefault(None, []).append(-x)
    return {g: 1.4826 * statistics.median(v) for g, v in lower.items() if len(v) >= 3}


def _replicate_model(replicates: tuple[Sequence[Run], Sequence[Run]], aliases: dict[str, str], stat: str, clock: str):
    from ..replicates import corrected_log, replicate_noise

    def drift_fn(first: Run, run: Run) -> dict[tuple, float]:
        refs = reference_pairs(first.records, run.records, stat, clock)
        return fit_drift(refs, stat, clock, refs)[0]

    base_runs, cur_runs = replicates
    cur_runs = [Run(r.path, r.machine_info, r.commit_info, r.datetime, aliased(r.records, aliases), r.stream, r.raw)
                for r in cur_runs]
    def figure(rec: Record, log_drift: float) -> float | None:
        if clock == "cpu" and not rec.extra.get("cpu_time"):
            return None  # not compared on this clock (a GPU result, an older file)
        return corrected_log(stat_value(rec, stat, clock), rec, clock, stat, log_drift)

    return replicate_noise({"base": list(base_runs), "cur": cur_runs}, figure, _drift_group, drift_fn,
                           skip=lambda key: key[KEY_FIELDS.index("phase")] in REFERENCE_PHASES)


def compare_runs(base: Run, cur: Run, *, threshold: float | None = None, optimizer_specs: Sequence[str] = (),
                 metric: str = "auto", drift: str = "reference", noise_k: float = NOISE_K, stat: str = DEFAULT_STAT,
                 clock: str = "auto", allow_setting_change: bool = False,
                 replicates: tuple[Sequence[Run], Sequence[Run]] | None = None) -> GateResult:
    """Gate ``cur`` against ``base``. ``replicates``: each side's runs before merging (:func:`gate_files`);
    where a side has two or more, the time metric takes its noise from them (:mod:`optbench.replicates`)."""
    metric = pick_metric(base, cur, metric)
    if drift not in DRIFT_MODES:
        raise ConfigError(f"--drift {drift!r}: use reference or none")
    if threshold is None:
        threshold = DEFAULT_INSTR_THRESHOLD if metric == "instructions" else DEFAULT_THRESHOLD
    changes = setting_changes(base, cur, metric)
    if changes and not allow_setting_change:
        raise ConfigError(f"baseline and current were measured under different settings ({'; '.join(changes)}): "
                          f"{metric} figures are not comparable; rerun under the same settings "
                          f"(or pass --allow-setting-change to compare anyway, marked)")
    aliases = alias_map(optimizer_specs)
    cur_recs = aliased(cur.records, aliases)
    base_recs = base.records
    if metric == "instructions":
        base_recs = [r for r in base_recs if "instructions" in r.extra]
        cur_recs = [r for r in cur_recs if "instructions" in r.extra]
    bmap = {r.key: r for r in base_recs}
    cmap = {r.key: r for r in cur_recs}
    if not bmap:
        raise ConfigError(f"baseline {base.path} holds no optbench benchmarks; regenerate it with tox -e bench")
    if not cmap:
        raise ConfigError(f"current {cur.path} holds no optbench benchmarks; regenerate it with tox -e bench")
    common = [k for k in bmap if k in cmap]
    if not common:
        raise ConfigError(f"{base.path} and {cur.path} share no benchmark (optimizer, size, impl, device, dtype); "
                          f"compare runs of the same matrix, or map a candidate with --optimizer NAME=module:attr")
    warnings = machine_warnings(base, cur)
    if metric == "instructions" and base.optbench_info.get("cpu_model") != cur.optbench_info.get("cpu_model"):
        warnings.append(f"CPU model differs: baseline {base.optbench_info.get('cpu_model')!r}, current "
                        f"{cur.optbench_info.get('cpu_model')!r} (counts carry over at the same CPU capability; "
                        f"glibc may still pick vendor-specific string routines)")
    if changes:
        warnings.append("COMPARED ACROSS SETTINGS (--allow-setting-change): " + "; ".join(changes))
    pairs = [(bmap[k], cmap[k]) for k in common]
    res = GateResult([], [], [], warnings, metric, threshold, stat, setting_changes=changes)
    if metric == "instructions":
        res.verdicts = [_instr_verdict(b, c, threshold) for b, c in pairs]
    else:
        res.clock = pick_clock(pairs, clock)
        dmap: dict[tuple, float] = {}
        spread = None
        scatter: dict = {}
        nref: dict[tuple, int] = {}
        if drift == "reference":
            refs = reference_pairs(base_recs, cur_recs, stat, res.clock)
            dmap, spread, w = fit_drift(pairs, stat, res.clock, refs)
            for b, _ in refs:
                nref[_drift_group(b)] = nref.get(_drift_group(b), 0) + 1
            res.warnings += w
            if not dmap:
                res.warnings.append(f"no reference bench ({'/'.join(REFERENCE_PHASES)}) in common: compared raw, "
                                    f"so machine drift counts as a change; select the phases too (test_phase)")
        own = {}  # key -> log drift from the bench's own in-round reference (CPU time on both sides)
        if drift == "reference" and res.clock == "cpu":
            for b, c in pairs:
                rb, rc = b.extra.get("ref_cpu_time"), c.extra.get("ref_cpu_time")
                if rb and rc and rb.get(stat) and rc.get(stat):
                    own[b.key] = math.log(float(rc[stat]) / float(rb[stat]))
        if dmap or own:
            scatter = pair_spread(pairs, dmap, stat, res.clock, own)
            spread = max(spread or 0.0, scatter.get(None, 0.0))
        res.drift = {_group_label(g): math.exp(d) for g, d in sorted(dmap.items())}
        res.drift_residual = math.expm1(spread) if ((dmap or own) and spread is not None) else None
        res.own_references = len(own)
        rep = None
        if replicates is not None and max(len(replicates[0]), len(replicates[1])) >= 2:
            rep = _replicate_model(replicates, aliases, stat, res.clock)
            res.replicates = dict(rep.runs)
            res.replicate_sd = {_group_label(g): math.expm1(sd) for g, sd in sorted(rep.group_sd.items())}
        smallest = {}
        for dev, size in dmap:
            smallest[dev] = min(size, smallest.get(dev, size))
        for b, c in pairs:
            g = _drift_group(b)
            if b.phase == "zero_grad" and b.device in smallest:
                # set_to_none costs the same few µs at every size: dispatch-bound, like the smallest size
                g = (b.device, smallest[b.device])
            if b.key in own:
                # drift of that very moment: the bench's in-round reference; its error is in the within-run
                # noise (both minima), the pair's scatter at this size covers the rest
                d = own[b.key]
                within_ref = math.sqrt(_rel_noise_ref(b, stat) ** 2 + _rel_noise_ref(c, stat) ** 2)
                model = math.sqrt(scatter.get(g, spread) ** 2 + (NOISE_K_MIN / DRIFT_K * within_ref) ** 2)
            else:
                # the bench's own deviation from the drift, plus the error of the drift itself (a median of k refs)
                d = dmap.get(g, 0.0)
                k = nref.get(g) or max(sum(nref.values()), 1)
                model = (max(spread, scatter.get(g, 0.0)) * math.sqrt(1 + 1.57 / k)
                         if (dmap and spread is not None) else None)
            v = _time_verdict(b, c, threshold, stat, noise_k, d, model, res.clock)
            if rep is not None:
                _replicate_verdict(v, b, rep, g, threshold, d, own_ref=b.key in own, model=model)
            if v.reference and dmap:
                v.verdict = "ref"  # it measured the drift; it is not judged against it
            res.verdicts.append(v)
    res.only_base = sorted(bmap[k].label for k in bmap if k not in cmap)
    res.only_cur = sorted(cmap[k].label for k in cmap if k not in bmap)
    return res


def _classify(slow: float, threshold: float, noise: float) -> str:
    if slow > threshold and slow > noise:
        return "REGRESSED"
    if slow > threshold:
        return "noisy"
    if -slow > threshold and -slow > noise:
        return "faster"
    return "ok"


def _time_verdict(b: Record, c: Record, threshold: float, stat: str, noise_k: float, log_drift: float,
                  spread: float | None, clock: str) -> Verdict:
    bv, cv = stat_value(b, stat, clock), stat_value(c, stat, clock)
    raw = cv / bv if bv > 0 else float("inf")
    ratio = raw / math.exp(log_drift)
    both = math.sqrt(_rel_noise(b, stat, clock) ** 2 + _rel_noise(c, stat, clock) ** 2)
    within = NOISE_K_MIN * both if stat == "min" else math.expm1(min(noise_k * both, 50.0))
    model = DRIFT_K * spread if spread is not None else 0.0
    noise = math.sqrt(within ** 2 + model ** 2)
    return Verdict(b.key, b.label, bv, cv, ratio, raw, noise, _classify(ratio - 1, threshold, noise),
                   math.exp(log_drift), b.phase in REFERENCE_PHASES)


def _replicate_verdict(v: Verdict, b: Record, rep, group: tuple, threshold: float, log_drift: float, *,
                       own_ref: bool, model: float | None) -> None:
    """Re-judge ``v`` with the replicate model: the sides' lowest corrected figures (own reference divided
    out, or the drift between the sides for the rest) and a band of REPLICATE_K x sqrt(2) x the
    process-to-process sd (the group's pooled sd, or the benchmark's own replicate sd when wider), plus
    the drift model's error where the drift came from other benches. Left as it was when neither side
    has replicates of this benchmark, or when the group has too few to pool."""
    vals = rep.value.get(b.key, {})
    sd_pool = rep.group_sd.get(group, rep.pooled_sd)
    if "base" not in vals or "cur" not in vals or sd_pool is None or b.key not in rep.own_sd:
        return
    sd = max(sd_pool, rep.own_sd[b.key])
    if own_ref:  # in-round reference on both sides: the corrected figures compare directly
        diff = vals["cur"] - vals["base"]
    else:
        diff = math.log(v.raw_ratio) - log_drift
    band = REPLICATE_K * math.sqrt(2.0) * sd
    if model and not own_ref:
        band = math.sqrt(band ** 2 + (DRIFT_K * model) ** 2)
    v.ratio = math.exp(diff)
    v.drift = v.raw_ratio / v.ratio if v.ratio > 0 else v.drift
    v.noise = math.expm1(band)
    v.verdict = _classify(v.ratio - 1, threshold, v.noise)


def _instr_spread(rec: Record) -> float:
    reps = [float(x) for x in rec.extra.get("instructions_repeats") or []]
    med = float(rec.extra["instructions"])
    return (max(reps) - min(reps)) / med if len(reps) >= 2 and med > 0 else 0.0


def _instr_verdict(b: Record, c: Record, threshold: float) -> Verdict:
    bv, cv = float(b.extra["instructions"]), float(c.extra["instructions"])
    ratio = cv / bv if bv > 0 else float("inf")
    noise = max(NOISE_K_INSTR * math.sqrt(_instr_spread(b) ** 2 + _instr_spread(c) ** 2),
                INSTR_FLOOR / bv if bv > 0 else 0.0)
    return Verdict(b.key, b.label, bv, cv, ratio, ratio, noise, _classify(ratio - 1, threshold, noise))
