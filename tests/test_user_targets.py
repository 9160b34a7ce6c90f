"""``pytest validation --target module:attr``: planted kernel bugs are caught, bad specs are usage errors."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.user_targets.planted import PLANTED

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    """One pytest run of the gradient validation over every planted kernel (one process: cheap)."""
    xml = tmp_path_factory.mktemp("planted") / "junit.xml"
    cmd = [
        sys.executable, "-m", "pytest", "validation/test_gradients.py", "-q", "-p", "no:randomly",
        "-p", "no:cacheprovider", "--device", "cpu", f"--junitxml={xml}",
        "--target", "tests.user_targets.planted:all_planted",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    cases = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        failure = case.find("failure")
        cases[case.get("name")] = None if failure is None else (failure.get("message") or "")
    return proc, cases


def _results_for(cases, target_name):
    return {name: msg for name, msg in cases.items() if f"[{target_name}-" in name}


def test_correct_kernel_passes(planted_run):
    proc, cases = planted_run
    mine = _results_for(cases, "kernel_correct")
    assert mine, f"no test ran on kernel_correct:\n{proc.stdout[-2000:]}"
    assert all(msg is None for msg in mine.values()), {k: v for k, v in mine.items() if v}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_kernel_bug_is_caught(planted_run, name):
    proc, cases = planted_run
    assert proc.returncode == 1, proc.stdout[-2000:]
    failed = {k: v for k, v in _results_for(cases, name).items() if v is not None}
    match = [k for k in failed if k.startswith("test_value_gradient_hessian_match_sympy[")]
    assert match, f"{name} was not caught by the sympy comparison; failed: {sorted(failed)}"
    msg = failed[match[0]]
    # The message is a diagnosis: the target, which quantity, the point, expected and got.
    expected_check = PLANTED[name]
    assert name in msg and f"{expected_check} at x = (" in msg and "expected" in msg and "got" in msg, msg


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("no_such_module_xyz:thing", "module 'no_such_module_xyz' not found"),
        ("tests.user_targets.not_targets:missing", "has no attribute 'missing'"),
        ("tests.user_targets.not_targets:number", "not an optbench.Target"),
        ("tests.user_targets.not_targets:things", "not an optbench.Target"),
        ("tests.user_targets.not_targets:raises", "raised RuntimeError: boom"),
        ("just-a-name", "is not of the form module:attr"),
    ],
    ids=["no-module", "no-attribute", "a-number", "a-list-of-non-targets", "factory-raises", "malformed"],
)
def test_bad_target_spec_is_a_one_line_usage_error(pytester, monkeypatch, spec, needle):
    monkeypatch.syspath_prepend(str(ROOT))
    result = pytester.runpytest_inprocess("--target", spec, "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1 and needle in errors[0], result.errlines
