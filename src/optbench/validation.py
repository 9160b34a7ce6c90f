"""Run check plans outside pytest and report the verdicts (what ``optbench validate`` does).

:func:`run_plan` runs every item of the selected plans, serially or on N worker processes that each
rebuild the same deterministic plan and run their share by index. :func:`verdict_table` renders the
property x case table, :func:`write_results` the JSON, markdown, reproducers and convergence
profiles under an output folder that optbench owns (never a user's folder).

One job above 500 lines: running a plan and writing what it found (the tables are its report).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import OptbenchError
from .io import atomic_write_json, atomic_write_text
from .verdict import (BAD, BLOCKED, ERROR, EXEMPT, FAIL, MEASURED, NA, PASS, XFAIL, XPASS, CheckItem, Verdict,
                      run_check)

MARKER = ".optbench-validate"  # a folder holding this file was written by optbench validate


@dataclass
class Request:
    """Everything needed to rebuild the plan in another process (plain data, picklable)."""

    optimizers: list[str] = field(default_factory=list)  # [NAME=]module:attr
    targets: list[str] = field(default_factory=list)  # module:attr
    config: str | None = None
    devices: tuple[str, ...] | None = ("cpu",)  # None: cpu, plus cuda where a GPU is visible (resolved by build)
    plans: tuple[str, ...] = ()
    rootdir: str = "."
    select: str | None = None  # keep only items whose node id contains this text
    # worker processes: where there are more than optimizers, one optimizer's float64 P1 targets are dealt into as
    # many shared runs, so that the workers run them side by side (optimizers/plan.py)
    workers: int = 1


def build(request: Request) -> list[CheckItem]:
    """The items of the request's plans (user optimizers and targets loaded, one-line errors on bad input)."""
    from .optimizers.user import load_user_optimizers
    from .plan import Selection, checks
    from .target_spec import load_targets

    if request.rootdir not in sys.path:
        sys.path.insert(0, request.rootdir)  # module:attr names modules relative to where the user runs it
    infos = load_user_optimizers(request.optimizers, config_file=request.config, rootdir=request.rootdir) \
        if request.optimizers else None
    targets = [t for text in request.targets for t in load_targets(text)] or None
    devices = request.devices
    if devices is None:
        from .devices import selected_devices

        devices = tuple(selected_devices("auto"))
    shards = max(1, request.workers // len(infos)) if infos else 1
    items = checks(Selection(optimizers=infos, targets=targets, devices=devices, options={"p1_shards": shards}),
                   request.plans)
    if request.select:
        from .optimizers.plan import narrow

        items = [i for i in items if selected(request.select, i.nodeid)]
        narrow(items)  # P1's shared runs cover only the targets selected
    return items


def selected(expr: str, nodeid: str) -> bool:
    """``-k``: words that a check's id must contain, joined as in pytest's -k by ``or``, ``and`` and ``not``
    (``and`` binds tighter; no parentheses), e.g. ``-k "converges or profile"``, ``-k "booth and not float32"``.
    A plain word is a substring, as before; no expression is ever evaluated as Python."""
    def term(t: str) -> bool:
        t = t.strip()
        neg = t.startswith("not ")
        word = t[4:].strip() if neg else t
        return (word not in nodeid) if neg else (word in nodeid)

    return any(all(term(t) for t in conj.split(" and ")) for conj in f" {expr} ".split(" or "))


_WORKER: dict[str, Any] = {}


def _init_worker(request: Request, zygote_offer: tuple[str, int] | None = None) -> None:
    if zygote_offer is not None:  # the rank zygote the parent started: the first worker that needs ranks adopts it
        from .distributed import zygote

        zygote.offer(*zygote_offer)
    import torch

    torch.set_num_threads(1)  # N workers share the cores: one intra-op thread each
    try:
        _WORKER["items"] = build(request)
    except OptbenchError as exc:  # bad input: reported by the first task, as the one-line error it is
        _WORKER["error"] = exc


def _describe() -> list[CheckItem] | OptbenchError:
    """The worker's items without their ``run`` (what the parent renders), or the error building them raised."""
    import dataclasses

    if "error" in _WORKER:
        return _WORKER["error"]
    return [dataclasses.replace(item, run=None) for item in _WORKER["items"]]


def _run_indices(indices: list[int]) -> list[tuple[int, Verdict]]:
    return [(i, run_check(_WORKER["items"][i])) for i in indices]


def tasks(items: Sequence[CheckItem]) -> list[list[int]]:
    """Item indices grouped into tasks, the largest first: items with the same ``share`` key (P1's targets of
    one case, which share their runs; the distributed checks, which share one process group) form one task in
    plan order, every other item is a task of its own."""
    groups: dict[str, list[int]] = OrderedDict()
    out: list[list[int]] = []
    for i, item in enumerate(items):
        if item.share:
            groups.setdefault(item.share, []).append(i)
        else:
            out.append([i])
    return sorted(groups.values(), key=len, reverse=True) + out


def _heavy(item: CheckItem) -> bool:
    return not (item.exempt or item.na) and (item.prop.split(".")[0].split(":")[0] in ("P1", "P18", "P19", "P20", "P21"))


def default_workers() -> int:
    """The cores this process may use (``os.sched_getaffinity``), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def run_plan(request: Request, *, workers: int = 1, progress: Callable[[int, int, Verdict], None] | None = None
             ) -> tuple[list[CheckItem], list[Verdict]]:
    """Run every item; verdicts come back in plan order whatever the number of workers.

    A worker costs an interpreter that imports torch (and Dynamo, at the first optimizer it builds): seconds,
    worth it for tasks that take seconds themselves (P1's runs, the rank pool, a compile), not for the
    contract's checks, which take milliseconds. So a request with optimizers and no ``-k`` starts its workers at
    once (each builds the plan while the others do; this process never imports torch), and anything else is
    built here first and run here unless it holds several such tasks."""
    if workers > 1 and request.optimizers and not request.select:
        return _run_in_pool(request, workers, progress, items=None)
    items = build(request)
    jobs = tasks(items)
    heavy = sum(1 for job in jobs if any(_heavy(items[i]) for i in job))
    if min(workers, heavy) > 1:
        return _run_in_pool(request, min(workers, heavy), progress, items=items)
    import torch

    verdicts: list[Verdict] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: intra-op threads only add synchronisation
    try:
        for item in items:
            verdicts.append(run_check(item))
            if progress:
                progress(len(verdicts), len(items), verdicts[-1])
    finally:
        torch.set_num_threads(threads)
    return items, verdicts


# What every worker imports before its first check (torch; Dynamo, which the first optimizer built imports through
# torch's _disable_dynamo; sympy and the plan's modules): ~3.5-4.5 s of CPU per interpreter.
WORKER_PRELOAD = ("torch", "torch._dynamo", "sympy", "optbench.validation", "optbench.plan", "optbench.catalogue",
                  "optbench.optimizers.contract", "optbench.optimizers.p1")


def _context() -> Any:
    """How workers start: forked from a fork server that imported :data:`WORKER_PRELOAD` once (a process in which
    nothing else has run, so forking it is safe), where the platform has one; else spawned, each importing torch
    itself. ``OPTBENCH_WORKER_FORKSERVER=0`` spawns them."""
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods() and os.environ.get("OPTBENCH_WORKER_FORKSERVER", "1") != "0":
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(WORKER_PRELOAD))  # not '__main__': the workers import it as spawn does
        return ctx
    return mp.get_context("spawn")


def _run_in_pool(request: Request, workers: int, progress: Callable[[int, int, Verdict], None] | None,
                 items: list[CheckItem] | None) -> tuple[list[CheckItem], list[Verdict]]:
    pre = _prestart_zygote(request, items)
    try:
        return _pool_run(request, workers, progress, items, (pre.address, pre.pid) if pre else None)
    finally:
        if pre is not None:
            pre.close()


def _prestart_zygote(request: Request, items: Sequence[CheckItem] | None) -> Any:
    """The rank zygote of the distributed checks (~4 s of imports), started now, beside the workers' own start,
    where a worker would otherwise start it after its first checks (optbench/distributed/zygote.py); not when no
    distributed check will run (``items``: the plan, where it was built here)."""
    if "distributed" not in request.plans:
        return None
    if items is not None and not any("distributed" in i.marks and not (i.exempt or i.na) for i in items):
        return None
    try:
        from .distributed import zygote
    except ImportError:  # pragma: no cover - the distributed plan is optional
        return None
    return zygote.Prestarted(zygote.rank_env()) if zygote.available() else None


def _pool_run(request: Request, workers: int, progress: Callable[[int, int, Verdict], None] | None,
              items: list[CheckItem] | None, zygote_offer: tuple[str, int] | None
              ) -> tuple[list[CheckItem], list[Verdict]]:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=_init_worker,
                             initargs=(request, zygote_offer)) as pool:
        # one call per worker, so that every worker starts (and builds) now, side by side
        described = [pool.submit(_describe) for _ in range(workers)]
        meta = described[0].result()
        if isinstance(meta, OptbenchError):
            raise meta
        items = items if items is not None else meta
        verdicts: list[Verdict | None] = [None] * len(items)
        done = 0
        futures = [pool.submit(_run_indices, job) for job in tasks(items)]
        for fut in as_completed(futures):
            for i, verdict in fut.result():
                verdicts[i] = verdict
                done += 1
                if progress:
                    progress(done, len(items), verdict)
    return items, [v for v in verdicts if v is not None]


# ---- where the time went -------------------------------------------------------------------------------


def time_table(items: Sequence[CheckItem], verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """Seconds per subject and property and, for P1, per target (its verdict's seconds: its part of the session
    its case's targets share, ``verdict.SHARE``) and per target and lr (the shared runs' time apportioned to each
    (target, lr) by the epochs it ran): where a verdict's time went, a FAIL's as a PASS's."""
    out: dict[str, Any] = OrderedDict()
    for item, v in zip(items, verdicts):
        sub = out.setdefault(v.subject, {"seconds": 0.0, "by_property": OrderedDict(), "p1": OrderedDict(),
                                         "p1_seconds": OrderedDict()})
        sub["seconds"] += v.seconds
        key = v.prop.split(".")[0].split(":")[0]
        sub["by_property"][key] = sub["by_property"].get(key, 0.0) + v.seconds
        name = f"{item.target}-{item.id.rsplit('-', 2)[-2]}"
        if (v.data or {}).get("p1_time"):  # the target's whole part, its own longer runs and the probes included
            sub["p1_seconds"][name] = round(v.seconds, 3)
        for lr, phases in ((v.data or {}).get("p1_time") or {}).items():
            tgt = sub["p1"].setdefault(name, OrderedDict())
            tgt[lr] = {"seconds": round(sum(p["seconds"] for p in phases), 4),
                       "epochs": sum(p["epochs"] for p in phases), "ended": phases[-1]["ended"],
                       "phases": phases}
    for sub in out.values():
        sub["seconds"] = round(sub["seconds"], 3)
        sub["by_property"] = OrderedDict(sorted(((k, round(s, 3)) for k, s in sub["by_property"].items()),
                                                key=lambda kv: -kv[1]))
    return out


def summarize_time(table: dict[str, Any], *, slowest: int = 5) -> str:
    """One line for many subjects: seconds per property over all of them, and the slowest subjects."""
    if len(table) <= 3:
        return render_time(table, markdown=False).replace("\n", "; ")
    by_prop: dict[str, float] = {}
    for sub in table.values():
        for k, s in sub["by_property"].items():
            by_prop[k] = by_prop.get(k, 0.0) + s
    props = ", ".join(f"{k} {s:.0f} s" for k, s in sorted(by_prop.items(), key=lambda kv: -kv[1]) if s >= 0.5)
    top = sorted(table.items(), key=lambda kv: -kv[1]["seconds"])[:slowest]
    return (f"{sum(sub['seconds'] for sub in table.values()):.0f} s in checks over {len(table)} subjects"
            + (f" ({props})" if props else "") + "; "
            f"slowest: " + ", ".join(f"{name} {sub['seconds']:.0f} s" for name, sub in top) +
            " (each one's table: results.md)")


def _short(ended: str, epochs: int) -> str:
    word = next((w for k, w in (("converged", "conv"), ("diverged", "div"), ("cannot", "stop"), ("budget", "budget"))
                 if ended.startswith(k)), ended)
    return f"{word} {epochs}"


def render_time(table: dict[str, Any], *, markdown: bool) -> str:
    """The time table as text: per subject, seconds per property; then P1's targets x lrs (seconds, epochs)."""
    lines: list[str] = []
    for subject, sub in table.items():
        props = ", ".join(f"{k} {s:.1f} s" for k, s in sub["by_property"].items() if s >= 0.05)
        lines.append(f"{'- **' + subject + '**' if markdown else subject}: {sub['seconds']:.1f} s in checks"
                     + (f" ({props})" if props else ""))
        if markdown and sub["p1"]:
            lrs = list(OrderedDict.fromkeys(lr for t in sub["p1"].values() for lr in t))
            lines += ["", "  P1 per target (all: its part of the case's P1, its own longer runs and the probes "
                      "included) and per lr: seconds, epochs run and how the run ended (conv: converged, div: "
                      "diverged, budget: ran out, stop: cannot converge at its rate; + a rerun under a schedule)", "",
                      "  | target | all | " + " | ".join(f"lr {lr}" for lr in lrs) + " |",
                      "  |---|---|" + "---|" * len(lrs)]
            for tname, per in sub["p1"].items():
                total = sub["p1_seconds"].get(tname)
                cells = ["" if total is None else f"{total:.2f} s"]
                for lr in lrs:
                    c = per.get(lr)
                    cells.append("" if c is None else f"{c['seconds']:.2f} s, " + " + ".join(
                        _short(p["ended"], p["epochs"]) for p in c["phases"]))
                lines.append(f"  | {tname} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


# ---- the verdict table ----------------------------------------------------------------------------

CELL = {PASS: "PASS", FAIL: "FAIL", NA: "N/A", EXEMPT: "EXEMPT", XFAIL: "XFAIL", XPASS: "XPASS",
        MEASURED: "MEASURED", BLOCKED: "BLOCKED", ERROR: "ERROR"}


def _column(item: CheckItem) -> str:
    """The case without the subject and, for P1, without the target (the target becomes the row)."""
    return item.column


def _row(item: CheckItem) -> str:
    import re

    name = re.sub(r"^p\d+_", "", item.test.removeprefix("test_"))  # test_p05_grad_untouched -> grad_untouched
    row = f"{item.prop} {name}"
    return f"{row}: {item.target}" if item.target and item.target != item.subject else row


def counts(verdicts: Sequence[Verdict]) -> dict[str, int]:
    out: dict[str, int] = OrderedDict((o, 0) for o in CELL)
    for v in verdicts:
        out[v.outcome] += 1
    return {k: n for k, n in out.items() if n}


def exit_code(verdicts: Sequence[Verdict]) -> int:
    """0 clean, 1 a property violated (or a stale known-bug declaration), 3 optbench's own error."""
    if any(v.outcome in BAD for v in verdicts):
        return 1
    if any(v.outcome == ERROR for v in verdicts):
        return 3
    return 0


def verdict_table(items: Sequence[CheckItem], verdicts: Sequence[Verdict]) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Per subject: (columns, rows) of a property x case grid; cells are outcomes, '' where not run."""
    tables: dict[str, tuple[list[str], list[list[str]]]] = {}
    by_subject: dict[str, list[tuple[CheckItem, Verdict]]] = OrderedDict()
    for item, v in zip(items, verdicts):
        by_subject.setdefault(item.subject, []).append((item, v))
    for subject, pairs in by_subject.items():
        cols: list[str] = list(OrderedDict.fromkeys(_column(i) for i, _ in pairs))
        rows: dict[str, dict[str, str]] = OrderedDict()
        for i, v in pairs:
            rows.setdefault(_row(i), {})[_column(i)] = CELL[v.outcome]
        body = [[r] + [cells.get(c, "") for c in cols] for r, cells in rows.items()]
        tables[subject] = (cols, body)
    return tables


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in r] for r in [header] + rows]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(lines)


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(header, widths)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(out)


def _reasons(verdicts: Sequence[Verdict], outcome: str) -> list[tuple[str, str, int]]:
    """(property, reason, how many cases) for N/A or EXEMPT verdicts, deduplicated."""
    seen: dict[tuple[str, str, str], int] = OrderedDict()
    for v in verdicts:
        if v.outcome == outcome:
            key = (v.subject, v.prop, v.message)
            seen[key] = seen.get(key, 0) + 1
    return [(f"{s} {p}", m, n) for (s, p, m), n in seen.items()]


def _blocked(verdicts: Sequence[Verdict]) -> list[tuple[str, str, list[str]]]:
    """(subject, cause, [properties]) of BLOCKED verdicts, one entry per root cause."""
    seen: dict[tuple[str, str], list[str]] = OrderedDict()
    for v in verdicts:
        if v.outcome == BLOCKED:
            props = seen.setdefault((v.subject, v.message), [])
            if v.prop not in props:
                props.append(v.prop)
    return [(s, m, ps) for (s, m), ps in seen.items()]


def _notes(verdicts: Sequence[Verdict]) -> list[tuple[str, str, int]]:
    """(subject property, note, how many cases) of passing checks that detected something on the way."""
    return _reasons([v for v in verdicts if v.outcome in (PASS, MEASURED) and v.message], PASS) + \
        _reasons([v for v in verdicts if v.outcome == MEASURED and v.message], MEASURED)


_CASE_WORDS = re.compile(r"\((?:forloop|foreach|fused|default)\) (?:float64|float32|bfloat16|float16) (?:cpu|cuda\S*): ")


def _same_findings(verdicts: Sequence[Verdict]) -> list[tuple[Verdict, list[Verdict]]]:
    """FAIL/XPASS/ERROR verdicts, each with the later ones of the same check and subject whose diagnosis is the same
    but for the case (another dtype or implementation): one finding per cause."""
    groups: dict[tuple[str, str, str, str], tuple[Verdict, list[Verdict]]] = OrderedDict()
    for v in verdicts:
        if v.outcome in (FAIL, XPASS, ERROR):
            key = (v.subject, v.test, v.outcome, _CASE_WORDS.sub("", v.message))
            if key in groups:
                groups[key][1].append(v)
            else:
                groups[key] = (v, [])
    return list(groups.values())


def _also(first: Verdict, same: Sequence[Verdict]) -> str:
    if not same:
        return ""
    prefix = first.subject + "-"
    ids = [v.id[len(prefix):] if v.id.startswith(prefix) else v.id for v in same]
    return f" (the same in {', '.join(ids)})"


def _stanza_lines(v: Verdict, shown: set[tuple[str, str]], indent: str) -> list[str]:
    """The exemption stanza of a FAIL, once per (subject, stanza)."""
    if not v.stanza or (v.subject, v.stanza) in shown:
        return []
    shown.add((v.subject, v.stanza))
    return [f"{indent}by design? declare it:"] + [f"{indent}  {line}" for line in v.stanza.splitlines()]


def render_text(items: Sequence[CheckItem], verdicts: Sequence[Verdict], *, reproducer_paths: dict[str, str]) -> str:
    """What ``optbench validate`` prints: the table per subject, then every finding and reason."""
    out: list[str] = []
    for subject, (cols, rows) in verdict_table(items, verdicts).items():
        sv = [v for v in verdicts if v.subject == subject]
        summary = ", ".join(f"{n} {k}" for k, n in counts(sv).items())
        out += [f"== {subject}: {summary}", _text_table(["property / check"] + cols, rows), ""]
    fails = [v for v in verdicts if v.outcome in (FAIL, XPASS, ERROR)]
    shown_stanzas: set[tuple[str, str]] = set()
    if fails:
        out.append("Findings (FAIL: a property is violated; ERROR: optbench's own defect, please report it):")
        for v, same in _same_findings(fails):
            out.append(f"  {v.outcome} {v.nodeid}{_also(v, same)}: {v.message}")
            if v.nodeid in reproducer_paths:
                out.append(f"      reproducer: {reproducer_paths[v.nodeid]}")
            out += _stanza_lines(v, shown_stanzas, "      ")
        out.append("")
    blocked = _blocked(verdicts)
    if blocked:
        out.append("Blocked (BLOCKED: not judged; one root cause, reported once above):")
        out += [f"  {who} {', '.join(props)}: {why}" for who, why, props in blocked]
        out.append("")
    for outcome, title in ((NA, "Does not apply (N/A, detected)"), (EXEMPT, "Exempt (EXEMPT, declared)"),
                           (XFAIL, "Known upstream bugs (XFAIL)")):
        rs = _reasons(verdicts, outcome)
        if rs:
            out.append(f"{title}:")
            out += [f"  {who} ({n} case{'s' if n > 1 else ''}): {why}" for who, why, n in rs]
            out.append("")
    notes = _notes(verdicts)
    if notes:
        out.append("Detected on the way (checks that pass):")
        out += [f"  {who} ({n} case{'s' if n > 1 else ''}): {why}" for who, why, n in notes]
        out.append("")
    shown: set[str] = set()
    for v in fails:
        if v.reproducer and v.prop not in shown:
            shown.add(v.prop)
            out += [f"Standalone reproducer for {v.nodeid} (imports only torch and the optimizer):", "",
                    v.reproducer.rstrip(), ""]
    return "\n".join(out).rstrip() + "\n"


def render_markdown(items: Sequence[CheckItem], verdicts: Sequence[Verdict], *, title: str,
                    reproducer_paths: dict[str, str], profiles_md: str = "") -> str:
    out = [f"# {title}", ""]
    for subject, (cols, rows) in verdict_table(items, verdicts).items():
        sv = [v for v in verdicts if v.subject == subject]
        out += [f"## {subject}", "", ", ".join(f"{n} {k}" for k, n in counts(sv).items()), "",
                _md_table(["property / check"] + cols, rows), ""]
    fails = [v for v in verdicts if v.outcome in (FAIL, XPASS, ERROR)]
    shown_stanzas: set[tuple[str, str]] = set()
    if fails:
        out += ["## Findings", ""]
        for v, same in _same_findings(fails):
            repro = f" ([reproducer]({reproducer_paths[v.nodeid]}))" if v.nodeid in reproducer_paths else ""
            out.append(f"- **{v.outcome}** `{v.nodeid}`{_also(v, same)}: {v.message}{repro}")
            if v.stanza and (v.subject, v.stanza) not in shown_stanzas:
                shown_stanzas.add((v.subject, v.stanza))
                out += ["", "  By design? Declare it:", "", "  ```toml"] + [f"  {line}" for line in v.stanza.splitlines()] \
                    + ["  ```", ""]
        out.append("")
    blocked = _blocked(verdicts)
    if blocked:
        out += ["## Blocked (one root cause, reported once above)", ""]
        out += [f"- {who} {', '.join(props)}: {why}" for who, why, props in blocked] + [""]
    for outcome, heading in ((NA, "Does not apply (N/A)"), (EXEMPT, "Exempt"), (XFAIL, "Known upstream bugs")):
        rs = _reasons(verdicts, outcome)
        if rs:
            out += [f"## {heading}", ""] + [f"- {who} ({n}): {why}" for who, why, n in rs] + [""]
    notes = _notes(verdicts)
    if notes:
        out += ["## Detected on the way (checks that pass)", ""] + [f"- {who} ({n}): {why}" for who, why, n in notes] + [""]
    if profiles_md:
        out += [profiles_md, ""]
    return "\n".join(out)


def _claim(folder: Path) -> None:
    """Refuse to write into a non-empty folder optbench validate did not create."""
    if folder.exists() and not folder.is_dir():
        raise OptbenchError(f"--out {folder} is a file; give a folder")
    if folder.exists() and any(folder.iterdir()) and not (folder / MARKER).exists():
        raise OptbenchError(f"--out {folder} exists and was not written by optbench validate; choose another --out "
                            f"or empty it")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / MARKER, "written by optbench validate; files here are regenerated\n")


def _safe_name(nodeid: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("_")[:150] + ".py"


def prepare_out(out: str | os.PathLike) -> Path:
    folder = Path(out)
    _claim(folder)
    return folder


def _torch_version() -> str:
    import sys as _sys

    if "torch" in _sys.modules:
        return _sys.modules["torch"].__version__
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:  # pragma: no cover - torch installed without metadata
        import torch

        return torch.__version__


def write_results(folder: Path, request: Request, items: Sequence[CheckItem], verdicts: Sequence[Verdict],
                  *, title: str) -> tuple[list[Path], dict[str, str]]:
    """results.json, results.md, reproducers/*.py and profiles under ``folder`` (claimed by prepare_out)."""
    written: list[Path] = []
    torch_version = _torch_version()
    repro_dir = folder / "reproducers"
    paths: dict[str, str] = {}
    for v in verdicts:
        if v.reproducer and v.outcome in (FAIL, XPASS):
            p = repro_dir / _safe_name(v.nodeid)
            atomic_write_text(p, v.reproducer)
            paths[v.nodeid] = os.path.relpath(p, folder)
    # Each profile record is stored once, in profiles.json: a verdict's data["profiles"] names its slice of the
    # records, {"file": "profiles.json", "first": i, "count": n} (schema optbench-validate/2; /1 repeated them).
    profiles: list[dict[str, Any]] = []
    rows = []
    for v in verdicts:
        row = v.as_dict()
        recs = (v.data or {}).get("profiles")
        if recs:
            row["data"] = {**v.data, "profiles": {"file": "profiles.json", "first": len(profiles), "count": len(recs)}}
            profiles.extend(recs)
        rows.append(row)
    profiles_md = ""
    if profiles:
        from .report.profiles import SCHEMA as PROFILE_SCHEMA  # not optimizers.p1: this process has no torch

        ppath = atomic_write_json(folder / "profiles.json", {"schema": PROFILE_SCHEMA, "torch": torch_version,
                                                             "records": profiles})
        written.append(ppath)
        try:
            from .report.profiles import render_section

            profiles_md = render_section([ppath], folder)
        except ImportError:  # the profiles report is optional to the verdicts
            profiles_md = ""
    times = time_table(items, verdicts)
    doc = {"schema": "optbench-validate/2", "torch": torch_version, "request": request.__dict__,
           "counts": counts(verdicts), "exit_code": exit_code(verdicts), "time": times, "verdicts": rows}
    written.append(atomic_write_json(folder / "results.json", json.loads(json.dumps(doc, default=str))))
    md = render_markdown(items, verdicts, title=title, reproducer_paths=paths, profiles_md=profiles_md)
    md += "\n## Where the time went\n\n" + render_time(times, markdown=True) + "\n"
    written.append(atomic_write_text(folder / "results.md", md))
    return written, {k: str(folder / v) for k, v in paths.items()}
