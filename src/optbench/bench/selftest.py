"""The gate's self-test: false-alarm and detection rates of the CI protocol, measured for real.

``python -m optbench.gate --selftest [--metric time|instructions] [--trials 10] [--out FILE.json]``

Each trial runs the protocol of ``.github/workflows/optbench.yml``: separate ``pytest benches``
processes, one after the other, on this machine, then ``optbench gate`` on their JSON:

* base: ``--optimizer adam=torch.optim:Adam``;
* unchanged: the same command again (the gate must pass: exit 0);
* planted: ``--optimizer adam=optbench.bench.planted:SlowAdam`` (one extra read-modify-write pass over
  the first moment per step; the gate must flag it: exit 1).

With ``--base-once`` the base runs once and every trial gates against it (a baseline from earlier
in the session). Every gate verdict, ratio and the load average (``/proc/loadavg``) at each run are
written to ``--out``. This measures; it asserts nothing, so it belongs to the bench env, not tests/.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

ADAM = "adam=torch.optim:Adam"
PLANTED = "adam=optbench.bench.planted:SlowAdam"
# The matrices of the CI example (keep in sync with .github/workflows/optbench.yml).
TIME_ARGS = ["--device", "cpu", "--sizes", "1e3,1e6", "-p", "no:randomly", "-q", "-k", "not compiled and not selftest"]
INSTR_ARGS = ["--instructions", "--device", "cpu", "--sizes", "1e3,1e6", "-p", "no:randomly", "-q",
              "-k", "float32 and not compiled and not overhead and not selftest"]


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()
    except OSError:
        return "?"


def run_benches(benches: str, optimizer: str, out: Path, extra: Sequence[str], env: dict[str, str] | None = None,
                timeout_s: float = 1800) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pytest", benches, *extra, "--optimizer", optimizer, "--benchmark-json", str(out)]
    t0 = time.time()
    load0 = loadavg()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    return {"cmd": " ".join(cmd), "rc": proc.returncode, "wall_s": round(time.time() - t0, 1), "load_before": load0,
            "load_after": loadavg(), "tail": proc.stdout.strip().splitlines()[-1:] if proc.stdout else []}


def gate(base: Path, cur: Path, metric: str, threshold: str | None) -> dict[str, Any]:
    from ..gate import compare_runs, parse_threshold
    from .results import load_run

    res = compare_runs(load_run(base), load_run(cur), metric=metric,
                       threshold=None if threshold is None else parse_threshold(threshold))
    return {"exit": res.exit_code, "regressed": [v.label for v in res.regressed], "clock": res.clock,
            "drift": {k: round(v, 4) for k, v in res.drift.items()},
            "residual": None if res.drift_residual is None else round(res.drift_residual, 4),
            "ratios": {v.label: [round(v.ratio, 4), round(v.noise, 4), v.verdict] for v in res.verdicts}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m optbench.gate --selftest", description=__doc__.splitlines()[0])
    p.add_argument("--metric", choices=("time", "instructions"), default="time")
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--benches", default="benches", help="the benches folder (default: ./benches)")
    p.add_argument("--threshold", default=None)
    p.add_argument("--base-once", action="store_true", help="one base run for all trials")
    p.add_argument("--out", default=None, help="write every run and verdict here (JSON)")
    p.add_argument("--keep", default=None, help="keep the benchmark JSON files in this folder")
    a = p.parse_args(argv)
    extra = INSTR_ARGS if a.metric == "instructions" else TIME_ARGS
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="optbench-selftest-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    fa = det = 0
    base = None
    started = _dt.datetime.now(_dt.timezone.utc).isoformat()
    for i in range(a.trials):
        trial: dict[str, Any] = {"trial": i + 1}
        if base is None or not a.base_once:
            base = work / f"base_{i + 1}.json"
            trial["base"] = run_benches(a.benches, ADAM, base, extra)
        for kind, spec in (("unchanged", ADAM), ("planted", PLANTED)):
            out = work / f"{kind}_{i + 1}.json"
            trial[kind] = run_benches(a.benches, spec, out, extra)
            if trial[kind]["rc"] not in (0,) or not out.exists():
                trial[kind]["gate"] = {"exit": 2, "error": "bench run failed"}
                continue
            trial[kind]["gate"] = gate(base, out, a.metric, a.threshold)
        fa += trial["unchanged"]["gate"]["exit"] != 0
        det += trial["planted"]["gate"]["exit"] == 1
        rows.append(trial)
        print(f"trial {i + 1}: unchanged exit {trial['unchanged']['gate']['exit']}, planted exit "
              f"{trial['planted']['gate']['exit']} (load {trial['planted']['load_after']})", flush=True)
        if a.out:
            _write(a.out, a, started, rows, fa, det)
    print(f"{a.metric}: false alarms {fa}/{a.trials} unchanged pairs; detections {det}/{a.trials} planted pairs")
    if a.out:
        _write(a.out, a, started, rows, fa, det)
    return 0


def _write(path: str, a: argparse.Namespace, started: str, rows: list, fa: int, det: int) -> None:
    from ..io import atomic_write_json

    atomic_write_json(path, {"metric": a.metric, "trials": len(rows), "base_once": a.base_once, "started": started,
                             "protocol": {"base": ADAM, "planted": PLANTED, "args": INSTR_ARGS if a.metric == "instructions" else TIME_ARGS},
                             "false_alarms": fa, "detections": det, "host_cpus": os.cpu_count(), "rows": rows})
