"""Loading optbench's pytest plugin costs a pytest run nothing it does not use.

The plugin comes in through its pytest11 entry point in every pytest run where optbench is installed, the
user's own unrelated suites included, and in an xdist controller, which runs no test. So it imports no torch
(~2-3 s a process) until a check is collected; its header still says which torch, which devices, and which
CUDA cases were not collected and why."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
import torch

from optbench.devices import cuda_skip_reason

pytest.importorskip("xdist")

CONFTEST = """
import os, sys

def pytest_unconfigure(config):
    who = getattr(config, "workerinput", {}).get("workerid", "controller")  # not the env: an outer xdist sets it
    with open(os.path.join(os.path.dirname(__file__), f"torch-{who}.txt"), "w") as fh:
        fh.write(str("torch" in sys.modules))
"""


def test_a_suite_that_uses_nothing_of_optbench_imports_no_torch_in_any_process(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    seen = {p.stem: p.read_text() for p in pytester.path.glob("torch-*.txt")}
    assert seen.keys() == {"torch-controller", "torch-gw0", "torch-gw1"}, seen
    assert set(seen.values()) == {"False"}, f"torch was imported by optbench's plugin in: {seen}"
    # the header still names the torch under test and the devices, and what was not collected, and why
    out = result.stdout.str()
    reason = cuda_skip_reason()
    assert f"optbench: torch {torch.__version__}, devices {['cpu'] if reason else ['cpu', 'cuda']}" in out, out
    assert (f"optbench: CUDA cases not collected ({reason}); --device all collects them as skips" in out) == bool(
        reason), out


def test_the_answers_without_importing_torch_are_the_answers_torch_gives():
    """The version comes from the distribution's metadata; a CPU-only build is told by that version (``+cpu``);
    anything else imports torch and asks it."""
    code = ("import sys; from optbench import devices; before = devices.cuda_skip_reason(); "
            "told = devices.torch_version(); imported = 'torch' in sys.modules; import torch; "
            "print(repr((before, told, imported, devices.cuda_skip_reason(), torch.__version__)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    before, told, imported, after, version = ast.literal_eval(out.stdout)
    assert before == after and told == version, (before, after, told, version)
    assert imported == (not version.endswith("+cpu")), (version, imported)
