"""Planted bugs are caught on the property that was broken; the correct hand-written optimizer passes.

One pytest subprocess validates every planted optimizer at once (``--optimizer name=module:Cls``,
repeated) on the contract tests, then the junit report says which property failed for which
optimizer. To stay fast it selects, with ``-k``, each planted optimizer's own property test plus every
contract test of the correct optimizer, in float32 and float64, CPU only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.planted.bugs import PLANTED

ROOT = Path(__file__).resolve().parents[1]
CORRECT = "handadam"

# property -> the test function(s) that check it
PROP_TESTS = {
    "P2": "test_p02_descent", "P3": "test_p03_lr_zero", "P4": "test_p04_frozen_param", "P5": "test_p05_grad_untouched",
    "P6": "test_p06_param_groups", "P7": "test_p07_param_independence", "P8": "test_p08_resume",
    "P9": "test_p09_state_dtype_device", "P10": "test_p10_closure_loss", "P11": "test_p11_maximize",
    "P12": "test_p12_weight_decay", "P13": "test_p13_translation", "P14": "test_p14_noncontiguous",
    "P15": "test_p15", "P16": "test_p16_zero_grad", "P17": "test_p17_determinism",
}


def _run_suite(tmp_path: Path, specs: list[str], kexpr: str) -> tuple[int, dict[str, set[str]], dict[str, int], str]:
    xml = tmp_path / "report.xml"
    cmd = [sys.executable, "-m", "pytest", "validation/test_optimizers.py", "-q", "-p", "no:randomly", "-p", "no:xdist",
           "-p", "no:cacheprovider", "--device", "cpu", "-k", kexpr, f"--junitxml={xml}"]
    for s in specs:
        cmd += ["--optimizer", s]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    failed: dict[str, set[str]] = {}
    ran: dict[str, int] = {}
    if xml.exists():
        for case in ET.parse(xml).getroot().iter("testcase"):
            name = case.get("name", "")
            func, _, params = name.partition("[")
            opt = params.split("-")[0]
            ran[opt] = ran.get(opt, 0) + 1
            if case.find("failure") is not None or case.find("error") is not None:
                prop = next((p for p, t in PROP_TESTS.items() if func.startswith(t)), func)
                failed.setdefault(opt, set()).add(prop)
    return proc.returncode, failed, ran, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_planted_bugs_fail_on_their_property_and_correct_optimizer_passes(tmp_path):
    specs = [f"{n.lower()}=tests.planted.bugs:{n}" for n in PLANTED] + [f"{CORRECT}=tests.planted.correct:HandAdam"]
    own = " or ".join(f"({PROP_TESTS[prop]} and {name.lower()}-)" for name, (_, prop, _) in PLANTED.items())
    kexpr = f"test_p and ({own} or {CORRECT}-)"
    rc, failed, ran, tail = _run_suite(tmp_path, specs, kexpr)
    rows, missed = [], []
    for name, (_, prop, what) in PLANTED.items():
        got = failed.get(name.lower(), set())
        rows.append(f"{name:18s} {prop:4s} caught={'yes' if prop in got else 'NO'}  ({what})")
        if prop not in got:
            missed.append(name)
    table = "\n".join(rows)
    assert not missed, f"planted bugs not caught on their property: {missed}\n{table}\n{tail}"
    assert ran.get(CORRECT, 0) >= 20, f"the correct optimizer's contract tests did not run\n{tail}"
    assert CORRECT not in failed, f"the correct HandAdam failed {sorted(failed[CORRECT])}\n{tail}"
    assert rc == 1  # failures (the planted ones), not a usage error or a crash
