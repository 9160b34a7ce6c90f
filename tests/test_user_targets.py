"""``pytest validation --target module:attr``: planted kernel bugs are caught, bad specs are usage errors."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.user_targets.planted import PLANTED

# one xdist worker for the whole module (with --dist loadgroup): the module's planted_run fixture (one pytest run
# over every planted kernel, ~6 s) is computed once per worker that runs one of its tests
pytestmark = pytest.mark.xdist_group("test_user_targets")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    """One pytest run of the target validation (T and G checks) over every planted kernel and the user
    Rosenbrock (one process: cheap)."""
    xml = tmp_path_factory.mktemp("planted") / "junit.xml"
    cmd = [
        sys.executable, "-m", "pytest", "validation/test_catalogue.py", "validation/test_gradients.py", "-q",
        "-p", "no:randomly", "-p", "no:cacheprovider", "--device", "cpu", f"--junitxml={xml}",
        "--target", "tests.user_targets.planted:all_planted", "--target", "tests.user_targets.planted:rosen",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    cases = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        failure = case.find("failure")
        if case.find("error") is not None:
            failure = case.find("error")
        # the element text holds the whole diagnosis (the message attribute is truncated)
        cases[case.get("name")] = None if failure is None else (failure.text or failure.get("message") or "")
    return proc, cases


def _results_for(cases, target_name):
    return {name: msg for name, msg in cases.items() if f"[{target_name}-" in name}


@pytest.mark.parametrize("name", ["kernel_correct", "rosen"])
def test_correct_kernel_passes_every_target_check(planted_run, name):
    proc, cases = planted_run
    mine = _results_for(cases, name)
    tests = {k.split("[")[0] for k in mine}
    # every T and G check ran on it (10 + 6 test functions)
    assert len(tests) == 16, f"{name}: only {sorted(tests)} ran:\n{proc.stdout[-2000:]}"
    assert all(msg is None for msg in mine.values()), {k: v for k, v in mine.items() if v}
    assert f"test_minimizers_start_and_basin_lie_in_the_domain[{name}-exact]" in mine


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_kernel_bug_is_caught_on_its_property(planted_run, name):
    proc, cases = planted_run
    assert proc.returncode == 1, proc.stdout[-2000:]
    failed = {k: v for k, v in _results_for(cases, name).items() if v is not None}
    prop, quantity = PLANTED[name]
    test = {"G1 value": "test_value_matches_sympy", "G2 gradient": "test_gradient_matches_sympy",
            "G3 hessian": "test_hessian_matches_sympy"}[prop]
    match = [k for k in failed if k.startswith(f"{test}[")]
    assert match, f"{name} was not caught by {prop} ({test}); failed: {sorted(failed)}"
    msg = failed[match[0]]
    # The message is a diagnosis: the property, the target, the quantity, the point, expected, got and the tolerance.
    for needle in (prop, name, f"{quantity} at x = (", "expected", "got", "allowed", "RTOL["):
        assert needle in msg, (needle, msg)
    assert "\n" not in msg.split("Standalone reproducer")[0].strip(), msg
    # the definition (expr, minima, domain) is right: no T check blames it for the kernel's bug
    assert not [k for k in failed if k.split("[")[0] in _T_TESTS], sorted(failed)


_T_TESTS = {
    "test_minimizers_start_and_basin_lie_in_the_domain", "test_gradient_is_zero_at_every_minimizer",
    "test_every_stationary_point_is_stationary_and_consistently_classified",
    "test_hessian_at_minimizers_is_positive_definite_or_declared_psd", "test_value_at_every_minimizer_is_f_star",
    "test_local_minima_are_strictly_above_f_star", "test_no_sampled_point_beats_f_star",
    "test_compiled_function_matches_the_exact_value", "test_quadratic_form_reproduces_the_expression",
    "test_separable_transcendental_global_claim_by_1d_enumeration",
}


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("no_such_module_xyz:thing", "module 'no_such_module_xyz' not found"),
        ("tests.user_targets.not_targets:missing", "has no attribute 'missing'"),
        ("tests.user_targets.not_targets:number", "not an optbench.Target"),
        ("tests.user_targets.not_targets:things", "not an optbench.Target"),
        ("tests.user_targets.not_targets:raises", "raised RuntimeError: boom"),
        ("just-a-name", "is not of the form module:attr"),
        ("tests.user_targets.unfinishable:t", "raised TargetError: target 't': grad f = 0 has gradient components of "
                                              "degree 4999"),
    ],
    ids=["no-module", "no-attribute", "a-number", "a-list-of-non-targets", "factory-raises", "malformed",
         "derivation-cannot-finish"],
)
def test_bad_target_spec_is_a_one_line_usage_error(pytester, monkeypatch, spec, needle):
    monkeypatch.syspath_prepend(str(ROOT))
    result = pytester.runpytest_inprocess("--target", spec, "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1 and needle in errors[0], result.errlines
