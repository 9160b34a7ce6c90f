"""The gate's self-test: false-alarm and detection rates of the CI protocol, measured for real.

``python -m optbench.bench.selftest [--metric time|instructions] [--trials 10] [--out FILE.json]``

Each trial runs the protocol of ``.github/workflows/optbench.yml``: separate ``pytest benches``
processes, one after the other, on this machine, then ``optbench gate`` on their JSON:

* base: ``--optimizer adam=torch.optim:Adam``;
* unchanged: the same command again (the gate must pass: exit 0);
* planted: ``--optimizer adam=optbench.bench.planted:SlowAdam`` (one extra read-modify-write pass over
  the first moment per step; the gate must flag it: exit 1).

With ``--base-once`` the base runs once and every trial gates against it (a baseline from earlier
in the session). With ``--repeats N`` each side runs N processes, interleaved with the other sides'
(base, unchanged, planted, base, ...; for time 2 by default, as in the CI example), and the gate takes each
benchmark's best run and its noise from the spread between a side's runs (:mod:`optbench.replicates`). Every gate verdict, ratio and the load average (``/proc/loadavg``) at each run are
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


def gate(base: Sequence[Path], cur: Sequence[Path], metric: str, threshold: str | None) -> dict[str, Any]:
    from ..gate import gate_files, parse_threshold

    res = gate_files(",".join(map(str, base)), ",".join(map(str, cur)), metric=metric,
                     threshold=None if threshold is None else parse_threshold(threshold))
    return {"exit": res.exit_code, "regressed": [v.label for v in res.regressed], "clock": res.clock,
            "drift": {k: round(v, 4) for k, v in res.drift.items()},
            "residual": None if res.drift_residual is None else round(res.drift_residual, 4),
            "ratios": {v.label: [round(v.ratio, 4), round(v.noise, 4), v.verdict] for v in res.verdicts}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m optbench.bench.selftest", description=__doc__.splitlines()[0])
    p.add_argument("--metric", choices=("time", "instructions"), default="time")
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--benches", default="benches", help="the benches folder (default: ./benches)")
    p.add_argument("--threshold", default=None)
    p.add_argument("--base-once", action="store_true", help="one base run (set) for all trials")
    p.add_argument("--repeats", type=int, default=None,
                   help="processes per side and trial, interleaved (base, unchanged, planted, base, ...), as the CI "
                        "example runs them (default: 2 for time, 1 for instructions, which do not vary); the gate takes each benchmark's best run and its noise from "
                        "the spread between a side's runs (optbench gate A1.json,A2.json B1.json,B2.json)")
    p.add_argument("--out", default=None, help="write every run and verdict here (JSON)")
    p.add_argument("--keep", default=None, help="keep the benchmark JSON files in this folder")
    p.add_argument("-k", dest="select", default=None, help="replace the protocol's -k selection (a smaller matrix)")
    a = p.parse_args(argv)
    if a.repeats is None:
        a.repeats = 2 if a.metric == "time" else 1
    extra = list(INSTR_ARGS if a.metric == "instructions" else TIME_ARGS)
    if a.select:
        extra[extra.index("-k") + 1] = a.select
    a.extra = extra
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="optbench-selftest-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    fa = det = 0
    base = None
    started = _dt.datetime.now(_dt.timezone.utc).isoformat()
    for i in range(a.trials):
        trial: dict[str, Any] = {"trial": i + 1}
        files: dict[str, list[Path]] = {"base": [], "unchanged": [], "planted": []}
        if base is not None and a.base_once:
            files["base"] = base
        for r in range(a.repeats):  # the sides' processes interleave: base, unchanged, planted, base, ...
            for kind, spec in (("base", ADAM), ("unchanged", ADAM), ("planted", PLANTED)):
                if kind == "base" and a.base_once and base is not None:
                    continue
                out = work / f"{kind}_{i + 1}_{r + 1}.json"
                trial[f"{kind}_{r + 1}"] = run_benches(a.benches, spec, out, extra)
                if trial[f"{kind}_{r + 1}"]["rc"] == 0 and out.exists():
                    files[kind].append(out)
        base = files["base"]
        for kind in ("unchanged", "planted"):
            if len(files[kind]) < a.repeats or len(base) < a.repeats:
                trial[kind] = {"gate": {"exit": 2, "error": "a bench run failed"}}
                continue
            trial[kind] = {"gate": gate(base, files[kind], a.metric, a.threshold), "load": loadavg()}
        fa += trial["unchanged"]["gate"]["exit"] != 0
        det += trial["planted"]["gate"]["exit"] == 1
        rows.append(trial)
        print(f"trial {i + 1}: unchanged exit {trial['unchanged']['gate']['exit']}, planted exit "
              f"{trial['planted']['gate']['exit']} (load {loadavg()})", flush=True)
        if a.out:
            _write(a.out, a, started, rows, fa, det)
    print(f"{a.metric}: false alarms {fa}/{a.trials} unchanged pairs; detections {det}/{a.trials} planted pairs")
    if a.out:
        _write(a.out, a, started, rows, fa, det)
    return 0


def _write(path: str, a: argparse.Namespace, started: str, rows: list, fa: int, det: int) -> None:
    from ..io import atomic_write_json

    atomic_write_json(path, {"metric": a.metric, "trials": len(rows), "base_once": a.base_once, "repeats": a.repeats,
                             "started": started,
                             "protocol": {"base": ADAM, "planted": PLANTED, "args": a.extra},
                             "false_alarms": fa, "detections": det, "host_cpus": os.cpu_count(), "rows": rows})


if __name__ == "__main__":
    sys.exit(main())
