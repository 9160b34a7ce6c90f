"""User optimizers: --optimizer specs, TOML config, exemptions with reasons, the P1 lr grid search."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from optbench.errors import ConfigError, SpecError
from optbench.optimizers.user import load_user_optimizers

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "planted" / "optbench.toml"


def _pytest(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "pytest", "validation/test_optimizers.py", "-p", "no:randomly", "-p", "no:xdist",
           "-p", "no:cacheprovider", "--device", "cpu", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_class_and_factory_specs_load_with_config():
    infos = load_user_optimizers(
        ["handadam=tests.planted.correct:hand_adam", "tests.planted.correct:HandAdam"],
        config_file=str(CONFIG), rootdir=str(ROOT),
    )
    assert [i.name for i in infos] == ["handadam", "HandAdam"]
    assert infos[0].configs[0].lr is None and infos[0].weight_decay == "coupled"
    assert infos[0].targets == ("seed_quadratic", "sphere_2d", "booth")
    assert infos[1].configs[0].lr is None and infos[1].maximize


def test_pyproject_tool_optbench_is_read_from_rootdir(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.optbench.optimizers.mine]\nlr = 0.1\n[tool.optbench.optimizers.mine.exemptions]\nP7 = "couples params"\n'
    )
    (info,) = load_user_optimizers(["mine=tests.planted.correct:HandAdam"], rootdir=str(tmp_path))
    assert info.configs[0].lr == 0.1 and info.exemption("P7") == "couples params"


@pytest.mark.parametrize(
    "toml, match",
    [
        ('[optimizers.h.exemptions]\nP7 = ""\n', "has no reason"),
        ('[optimizers.h.exemptions]\nP99 = "x"\n', "is not a property"),
        ("[optimizers.h]\nlearning_rate = 1\n", "unknown key"),
        ("[optimizers.h\n", "not valid TOML"),
        ('[optimizers.h]\nweight_decay = "both"\n', "weight_decay"),
    ],
    ids=["exemption-without-reason", "unknown-property", "unknown-key", "bad-toml", "bad-weight-decay"],
)
def test_bad_config_is_a_one_line_config_error(tmp_path, toml, match):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=match) as info:
        load_user_optimizers(["h=tests.planted.correct:HandAdam"], config_file=str(path), rootdir=str(ROOT))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("tests.planted.correct:NotAnOptimizer", "not a torch.optim.Optimizer subclass"),
        ("no_such_module_xyz:Opt", "not found"),
        ("tests.planted.correct:Nope", "has no attribute"),
        ("not a spec", "is not of the form"),
        ("os:getcwd", "no way of driving it worked"),
    ],
    ids=["not-an-optimizer", "missing-module", "missing-attr", "malformed", "factory-not-optimizer"],
)
def test_bad_spec_is_a_one_line_spec_error(spec, match):
    with pytest.raises(SpecError, match=match) as info:
        load_user_optimizers([spec], rootdir=str(ROOT))
    assert "\n" not in str(info.value)


def test_bad_spec_is_a_pytest_usage_error_exit_code_4():
    proc = _pytest("--optimizer", "tests.planted.correct:NotAnOptimizer", "--co", "-q")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "NotAnOptimizer" in ln]
    assert len(lines) == 1 and "not a torch.optim.Optimizer subclass" in lines[0], proc.stderr


def test_user_run_reports_lr_band_and_exemption_reason():
    """Only the --optimizer ones run; P1 without lr searches the grid and reports the band; an exemption's
    reason shows in the report."""
    proc = _pytest(
        "--optimizer", "handadam=tests.planted.correct:hand_adam",
        "--optimizer", "scalebynorm=tests.planted.bugs:ScaleByNorm",
        "--optimizer-config", str(CONFIG), "-rs", "-q",
        "-k", "(test_converges and handadam and (seed_quadratic or sphere_2d)) or (test_p13 and scalebynorm)",
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-2000:]
    assert "test_converges[handadam-default-sphere_2d-float64-cpu]: sphere_2d: converged for lr in [" in out, out[-3000:]
    assert "EXEMPT P13 for scalebynorm: scales the step by 1+|x| by design" in out, out[-3000:]
    assert "adam-" not in out.replace("handadam-", "")  # built-ins are not validated with --optimizer
