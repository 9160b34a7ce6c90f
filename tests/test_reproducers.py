"""Every failure ends with a standalone reproducer: a script that imports only torch and the optimizer,
rebuilds the problem, and fails when run. Checked on every planted bug, all scripts run in one child
process (one torch import), each in a fresh namespace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from optbench.optimizers.plan import optimizer_checks
from optbench.optimizers.user import load_user_optimizers
from optbench.plan import Selection
from optbench.verdict import FAIL, run_check
from tests.planted.bugs import PLANTED
from tests.scripts import imported_modules

ROOT = Path(__file__).resolve().parents[1]

_DRIVER = r"""
import json, runpy, sys, io, contextlib
out = {}
for path in sys.argv[1:]:
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            runpy.run_path(path, run_name="__main__")
        out[path] = ["passed", buf.getvalue()[-300:]]
    except AssertionError as exc:
        out[path] = ["AssertionError: " + str(exc), buf.getvalue()[-300:]]
    except Exception as exc:
        out[path] = [type(exc).__name__ + ": " + str(exc), buf.getvalue()[-300:]]
print(json.dumps(out))
"""


# P15 needs two paths (implementations or precisions): two small SGDs, and what their reproducers must compare. Until
# the failure carried the other side, every P15 script compared the failing side with itself ("foreach vs None")
# and passed where the check failed (6 of the third-party collection's 126).
P15_PLANTED = {"lrslip": ("ForeachLrSlip", "test_p15_impl_parity", "foreach vs forloop"),
               "eps32": ("Float32Eps", "test_p15_dtype_parity", "float64 vs float32")}


def test_planted_bugs_reproducers_import_only_torch_and_the_optimizer_and_fail_when_run(tmp_path):
    specs = [f"{n.lower()}=tests.planted.bugs:{n}" for n in PLANTED]
    specs += [f"{key}=tests.planted.bugs:{cls}" for key, (cls, _, _) in P15_PLANTED.items()]
    infos = load_user_optimizers(specs, rootdir=str(ROOT))
    items = optimizer_checks(Selection(optimizers=infos, devices=("cpu",)))
    want = {n.lower(): prop for n, (_, prop, _) in PLANTED.items()}
    scripts: dict[str, str] = {}
    sides: dict[str, str] = {}  # P15 script -> the two sides it must print
    for item in items:
        if item.subject in P15_PLANTED and item.test == P15_PLANTED[item.subject][1] and \
                not any(item.subject in nodeid for nodeid in scripts.values()):
            v = run_check(item)
            assert v.outcome == FAIL and v.reproducer, (item.nodeid, v.outcome, v.message)
            path = tmp_path / f"{item.subject}_{item.test}.py"
            path.write_text(v.reproducer)
            scripts[str(path)], sides[str(path)] = item.nodeid, P15_PLANTED[item.subject][2]
            continue
        # each bug's own property, primary implementation; float32 for P9 (state created in float64)
        dtype = "float32" if want.get(item.subject) == "P9" else "float64"
        if item.prop != want.get(item.subject) or item.id != f"{item.subject}-default-{dtype}-cpu":
            continue
        v = run_check(item)
        assert v.outcome == FAIL, f"{item.nodeid}: {v.outcome} {v.message}"
        assert v.reproducer, f"{item.nodeid} failed without a reproducer: {v.message}"
        imported = imported_modules(v.reproducer)
        assert imported <= {"torch", "tests", "copy", "io"}, f"{item.nodeid}: the reproducer imports {imported}"
        path = tmp_path / f"{item.subject}_{item.test}.py"
        path.write_text(v.reproducer)
        scripts[str(path)] = item.nodeid
    assert {Path(p).name.split("_test_")[0] for p in scripts} == set(want) | set(P15_PLANTED), sorted(scripts.values())
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", _DRIVER, *scripts], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    passed = {scripts[p]: r for p, r in results.items() if r[0] == "passed"}
    assert not passed, f"reproducers that did not show their violation: {passed}"
    for path, (how, printed) in results.items():
        # the violation shows as the property's own assertion, or as the exception the optimizer raised
        assert how.startswith("AssertionError: P") or "StepOutsideState" in how, (scripts[path], how, printed)
        assert path not in sides or sides[path] in printed, (scripts[path], printed)  # P15: the two sides compared


def test_a_reproducer_of_a_step_calling_its_closure_under_no_grad_shows_the_property(tmp_path):
    """AliG calls closure() inside its no_grad step: the generated closure enables grad, so the script fails on the
    property (AssertionError), not on 'element 0 of tensors does not require grad'."""
    infos = load_user_optimizers(["ngh=tests.planted.conventions:NoGradClosureHalvesGrad"], rootdir=str(ROOT))
    [item] = [i for i in optimizer_checks(Selection(optimizers=infos, devices=("cpu",)))
              if i.prop == "P5" and i.id.endswith("float64-cpu")][:1]
    v = run_check(item)
    assert v.outcome == FAIL and v.reproducer, v.message
    path = tmp_path / "repro.py"
    path.write_text(v.reproducer)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", _DRIVER, str(path)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    result = json.loads(proc.stdout.strip().splitlines()[-1])[str(path)]
    assert result[0].startswith("AssertionError"), result


def test_the_reproducer_of_an_eval_that_raises_before_the_first_step_raises_it_too(tmp_path):
    """SPlus's eval() reads state the first step creates; optbench reads x0 in eval mode, as a loop that logs its
    start would, and reports the KeyError once. Its reproducer's train() recorded x only after each step, so it
    never called eval() before step 1 and ended 'the plain run did not raise'."""
    infos = load_user_optimizers(["ens=tests.planted.conventions:EvalNeedsState"], rootdir=str(ROOT))
    verdicts = [run_check(i) for i in optimizer_checks(Selection(optimizers=infos, devices=("cpu",)))
                if i.id.endswith("float64-cpu") and i.prop in ("P2", "P3")]
    roots = [v for v in verdicts if v.outcome == FAIL and "KeyError" in v.message and v.reproducer]
    assert roots, [(v.outcome, v.message[:120]) for v in verdicts]
    path = tmp_path / "repro.py"
    path.write_text(roots[0].reproducer)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", _DRIVER, str(path)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    result = json.loads(proc.stdout.strip().splitlines()[-1])[str(path)]
    assert result[0].startswith("KeyError"), result

