"""``optbench validate`` from a user's folder, and the pytest entries a user meets: the verdict table,
exit codes, files under --out, one-line errors, ``parametrize_with_checks`` and the --optimizer guard."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

MYOPT = '''
import torch


class MyAdam(torch.optim.Adam):
    pass


class HalveGrad(torch.optim.SGD):
    """Halves p.grad in place before stepping (a P5 bug)."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.mul_(0.5)
        return super().step(closure)
'''


@pytest.fixture
def user_dir(tmp_path):
    (tmp_path / "myopt.py").write_text(MYOPT)
    return tmp_path


def _validate(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the user's folder, not this checkout
    return subprocess.run([sys.executable, "-m", "optbench", "validate", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_a_clean_optimizer_exits_0_and_a_grad_modifying_one_exits_1_naming_p5(user_dir):
    proc = _validate(user_dir, "myopt:MyAdam", "myopt:HalveGrad", "-k", "p05", "--no-distributed", "-q")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "== MyAdam: 4 PASS\n" in out and "== HalveGrad: 4 FAIL\n" in out, out  # f64, f32, for-loop, fused
    # one finding per diagnosis: the other cases with the same one are named on its line
    assert ("FAIL test_p05_grad_untouched[HalveGrad-foreach-float64-cpu] (the same in foreach-float32-cpu, "
            "forloop-float64-cpu, fused-float64-cpu): P5 step() leaves .grad alone") in out, out
    assert '[tool.optbench.optimizers.HalveGrad.exemptions]\n        P5 = "step() modifies p.grad in place"' in out, out
    assert "Standalone reproducer for test_p05_grad_untouched[HalveGrad" in out and "from myopt import HalveGrad" in out
    results = json.loads((user_dir / "optbench-validate" / "results.json").read_text())
    outcomes = {v["id"]: v["outcome"] for v in results["verdicts"]}
    assert results["exit_code"] == 1 and set(outcomes.values()) == {"PASS", "FAIL"}, outcomes
    assert all(o == "PASS" for i, o in outcomes.items() if i.startswith("MyAdam-")), outcomes
    md = (user_dir / "optbench-validate" / "results.md").read_text()
    assert "| P5 grad_untouched |" in md and "reproducers/" in md
    repro = next((user_dir / "optbench-validate" / "reproducers").glob("*HalveGrad*"))
    env = {**os.environ, "PYTHONPATH": str(user_dir)}  # as its docstring says: where `import myopt` works
    run = subprocess.run([sys.executable, str(repro)], cwd=user_dir, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1 and "AssertionError: P5" in run.stderr, run.stdout + run.stderr
    clean = _validate(user_dir, "myopt:MyAdam", "-k", "p05", "--no-distributed", "-q")
    assert clean.returncode == 0, clean.stdout + clean.stderr  # the folder is optbench's own: rewritten
    assert json.loads((user_dir / "optbench-validate" / "results.json").read_text())["exit_code"] == 0


@pytest.mark.parametrize("args, match", [
    (["myopt:Nope"], "has no attribute 'Nope'"),
    (["not a spec"], "is not of the form"),
    ([], "nothing to validate"),
    (["myopt:MyAdam", "-n", "0"], "workers >= 1"),
], ids=["missing-attr", "malformed", "nothing", "bad-workers"])
def test_bad_input_exits_2_with_one_line(user_dir, args, match, monkeypatch, capsys):
    from optbench.cli import main

    monkeypatch.chdir(user_dir)  # in-process: the same main() the console script calls
    monkeypatch.delitem(sys.modules, "myopt", raising=False)
    assert main(["validate", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "\n" not in err, err


def test_an_out_folder_the_user_owns_is_never_written(user_dir):
    mine = user_dir / "results"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    proc = _validate(user_dir, "myopt:MyAdam", "--out", str(mine), "-k", "p05")
    assert proc.returncode == 2 and "was not written by optbench validate" in proc.stderr, proc.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_parametrize_with_checks_collects_one_test_per_check_in_a_users_suite(pytester):
    pytester.makepyfile(myopt=MYOPT)
    pytester.makepyfile(test_mine='''
        from optbench.testing import parametrize_with_checks
        from myopt import MyAdam, HalveGrad

        @parametrize_with_checks([MyAdam, HalveGrad], select="float64-cpu")
        def test_optbench(check):
            check()
    ''')
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-k", "p05 or p11", "-rfs")
    # P5 for-loop, foreach and fused (both step with fused=True), P11 for each; HalveGrad fails P5 three times
    result.assert_outcomes(passed=5, failed=3)
    result.stdout.fnmatch_lines([
        "*FAILED test_mine.py::test_optbench[[]p05_grad_untouched-HalveGrad-foreach-float64-cpu[]]*",
        "*FAILED test_mine.py::test_optbench[[]p05_grad_untouched-HalveGrad-forloop-float64-cpu[]]*",
        "*FAILED test_mine.py::test_optbench[[]p05_grad_untouched-HalveGrad-fused-float64-cpu[]]*",
    ])
    assert "Standalone reproducer" in result.stdout.str()


def test_optimizer_flag_on_a_run_that_collects_no_optbench_check_is_a_usage_error(pytester):
    pytester.makepyfile(myopt=MYOPT)
    pytester.makepyfile(test_mine="def test_ok():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--optimizer", "myopt:MyAdam")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "collected no optbench validation" in err and "optbench validate myopt:MyAdam" in err, err


@pytest.mark.parametrize("expr, kept", [
    ("p05", ["test_p05_grad_untouched[adam-foreach-float64-cpu]"]),
    ("converges or profile", ["test_converges[adam-foreach-booth-float64-cpu]",
                              "test_converges[adam-foreach-booth-float32-cpu]",
                              "test_profile[adam-foreach-beale-float64-cpu]"]),
    ("booth and not float32", ["test_converges[adam-foreach-booth-float64-cpu]"]),
    ("not float64", ["test_converges[adam-foreach-booth-float32-cpu]"]),
])
def test_dash_k_joins_words_as_pytest_does_without_evaluating_anything(expr, kept):
    """`-k "converges or profile"` reruns P1's judged and profiled checks in one run (one shared P1 session);
    a plain word is a substring, as before."""
    from optbench.validation import selected

    ids = ["test_converges[adam-foreach-booth-float64-cpu]", "test_converges[adam-foreach-booth-float32-cpu]",
           "test_profile[adam-foreach-beale-float64-cpu]", "test_p05_grad_untouched[adam-foreach-float64-cpu]"]
    assert [i for i in ids if selected(expr, i)] == kept


def test_the_parent_process_never_imports_torch(tmp_path):
    """With optimizers and no -k the workers build and run the plan; the parent only starts them and writes what
    they found, so it must not spend ~3 s importing torch (it did, through --device's default before starting the
    workers, and through a constant of optimizers.p1 while writing results, until 2026-12-07). Checked in a fresh
    interpreter, with the workers' verdicts stubbed: a FAIL with its reproducer and a PASS with a profile."""
    code = """import sys, optbench.validation as v
from optbench.verdict import CheckItem, Verdict
def loaded():
    return sorted(m for m in ('torch', 'sympy') if m in sys.modules)
def run_plan(request, workers, progress):
    print('start', loaded(), request.devices, workers)
    items = [CheckItem('test_p05_grad_untouched', 'adam-foreach-float64-cpu', 'P5', 'adam', run=None),
             CheckItem('test_p03_lr_zero', 'adam-foreach-float64-cpu', 'P3', 'adam', run=None)]
    return items, [Verdict(items[0].test, items[0].id, 'P5', 'adam', 'cpu', 'FAIL', 'P5 step() modifies p.grad',
                           reproducer='import torch\\nassert False\\n', seconds=0.1),
                   Verdict(items[1].test, items[1].id, 'P3', 'adam', 'cpu', 'PASS', seconds=0.1, data={'profiles': [
                       dict(optimizer='Adam', source='torch.optim:Adam', target='himmelblau', dim=2, start=0,
                            start_kind='canonical', lr=0.01, schedule=None, epochs_to_tol=806, budget=2000,
                            diverged=False, dtype='float64', device='cpu', tol_x=1e-4, tol_f=1e-8,
                            final_dist=2.7e-05, final_gap=9.8e-09)]})]
v.run_plan = run_plan
from optbench.cli import main
code = main(['validate', 'torch.optim:Adam', '-n', '2', '--out', sys.argv[1]])
print('end', loaded(), code)
"""
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "start [] None 2" and lines[-1] == "end [] 1", proc.stdout
    out = tmp_path / "out"
    assert (out / "results.json").exists() and (out / "profiles.json").exists() and list((out / "reproducers").iterdir())


def test_the_rank_zygote_is_started_ahead_only_when_a_distributed_check_will_run():
    from optbench.validation import Request, _prestart_zygote
    from optbench.verdict import CheckItem

    p5 = CheckItem("test_p05_grad_untouched", "adam-foreach-float64-cpu", "P5", "adam", run=None)
    p18 = CheckItem("test_p18_fsdp2_parity", "adam-float64-cpu", "P18", "adam", run=None, marks=("distributed",))
    with_dist = Request(optimizers=["torch.optim:Adam"], plans=("optimizers", "distributed"))
    assert _prestart_zygote(Request(optimizers=["torch.optim:Adam"], plans=("optimizers",)), None) is None
    assert _prestart_zygote(with_dist, [p5]) is None  # -k kept no distributed check
    assert _prestart_zygote(with_dist, [p5, dataclasses.replace(p18, na="gloo is not available")]) is None
