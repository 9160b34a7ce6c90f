"""Instruction counting (optbench.bench.instructions) without running valgrind: which benches are
counted, reading a Callgrind dump, and a missing valgrind as a one-line error naming the Debian
package. The valgrind run itself is measured in benches/ (pytest benches --instructions) and by the
gate self-test, where minutes are affordable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from optbench.bench import instructions as ins

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("impl, n, dt, dev, counted", [
    ("foreach", 1000, "float32", "cpu", True),
    ("forloop", 10**6, "float32", "cpu", True),
    ("fused", 1, "float32", "cpu", True),
    ("compiled", 10**6, "float32", "cpu", False),
    ("foreach", 10**7, "float32", "cpu", False),
    ("foreach", 10**5, "float32", "cpu", False),
    ("foreach", 1000, "bfloat16", "cpu", False),
    ("foreach", 1000, "float32", "cuda", False),
])
def test_which_benchmarks_are_counted(impl, n, dt, dev, counted):
    reason = ins.eligible(impl, n, dt, dev)
    assert (reason is None) == counted
    if reason:
        assert "\n" not in reason


def test_reads_the_total_of_a_callgrind_dump(tmp_path):
    dump = tmp_path / "callgrind.out.1.3"
    dump.write_text("# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\npid: 1\npart: 3\n\n"
                    "desc: Trigger: Client Request\n\npositions: line\nevents: Ir\nsummary: 283807\n\n"
                    "ob=(1) /lib/x.so\nfn=(1) f\n0 283807\n")
    assert ins.read_dump_total(dump) == 283807
    bad = tmp_path / "not-a-dump"
    bad.write_text("hello\n")
    with pytest.raises(ins.InstructionsFailed, match="no 'summary:' line"):
        ins.read_dump_total(bad)


def test_missing_valgrind_is_one_line_naming_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no valgrind, no vgdb
    reason = ins.unavailable_reason()
    assert reason and "\n" not in reason and "Debian package valgrind" in reason and "apt-get install valgrind" in reason
    with pytest.raises(ins.InstructionsUnavailable) as exc:
        ins.collect(ins.Request([ins.InstrCase("adam", "foreach", "flat", 1000, "float32", "step")]))
    assert str(exc.value) == reason


def test_pytest_benches_instructions_without_valgrind_is_a_usage_error(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "benches"), "--instructions", "--collect-only",
                           "-q", "-p", "no:randomly", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    err = [ln for ln in proc.stderr.splitlines() if "Debian package valgrind" in ln]
    assert len(err) == 1 and "--instructions" in err[0]


def test_the_child_refuses_to_run_outside_valgrind(tmp_path):
    req = tmp_path / "req.json"
    req.write_text(json.dumps({"cases": [], "result": str(tmp_path / "res.json")}))
    proc = subprocess.run([sys.executable, "-m", "optbench.bench.instructions", str(req)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "not running under valgrind" in proc.stderr
    assert not (tmp_path / "res.json").exists()


def test_the_child_environment_is_fixed(monkeypatch):
    """Two shells or checkouts must give the child the same environment (its size moves heap layouts)."""
    monkeypatch.setenv("SOME_USER_VARIABLE", "x" * 100)
    env = ins.child_env()
    assert "SOME_USER_VARIABLE" not in env
    assert env["PYTHONHASHSEED"] == "0" and env["OMP_NUM_THREADS"] == "1"
