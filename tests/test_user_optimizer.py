"""User optimizers: --optimizer specs, TOML config, exemptions with reasons, the P1 lr grid search."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from optbench.errors import ConfigError, SpecError
from optbench.optimizers.user import load_user_optimizers
from optbench.validation import exit_code

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


def test_known_bug_in_config_is_an_xfail_and_a_fixed_one_an_xpass(tmp_path):
    """``[optimizers.NAME.known]`` declares a confirmed upstream bug the way the registry does (torch's NAdam
    P8.state_dict): the FAIL shows as XFAIL with the reason (exit 0), and on an optimizer without that bug the
    stale declaration is an XPASS (exit 1)."""
    (tmp_path / "c.toml").write_text(
        '[optimizers.halve.known]\n"P5@foreach" = "halves p.grad in place"\n'
        '[optimizers.clean.known]\nP5 = "declared but not there"\n'
    )
    (tmp_path / "myopt.py").write_text(
        "import torch\n\n\nclass HalveGrad(torch.optim.SGD):\n"
        "    @torch.no_grad()\n    def step(self, closure=None):\n"
        "        for g in self.param_groups:\n            for p in g['params']:\n"
        "                if p.grad is not None:\n                    p.grad.mul_(0.5)\n"
        "        return super().step(closure)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def validate(*specs: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "optbench", "validate", *specs, "--config", "c.toml", "-k",
                               "p05", "--no-distributed", "-q"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)

    # one run, both optimizers (each validate run pays ~5 s of interpreter start): each gets its own table line
    proc = validate("halve=myopt:HalveGrad", "clean=torch.optim:SGD")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    # foreach float64 and float32 declared; the for-loop and the fused impl (an SGD subclass steps with fused=True)
    # not: still FAILs
    assert "== halve: 2 FAIL, 2 XFAIL\n" in out, out
    assert "known: P5@foreach in halve=myopt:HalveGrad: halves p.grad in place | observed: P5" in out, out
    assert "== clean: 4 XPASS\n" in out, out
    rows = json.loads((tmp_path / "optbench-validate" / "results.json").read_text())["verdicts"]
    clean = [SimpleNamespace(outcome=r["outcome"]) for r in rows if r["id"].startswith("clean-")]
    assert len(clean) == 4 and exit_code(clean) == 1, rows  # the stale declarations alone exit 1 too


@pytest.mark.parametrize("toml, match", [
    ('[optimizers.h.known]\nP5 = ""\n', "has no reason"),
    ('[optimizers.h.known]\n"P99@foreach" = "x"\n', "is not a property"),
], ids=["known-without-reason", "known-bad-key"])
def test_bad_known_bug_is_a_one_line_config_error(tmp_path, toml, match):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=match) as info:
        load_user_optimizers(["h=tests.planted.correct:HandAdam"], config_file=str(path), rootdir=str(ROOT))
    assert "\n" not in str(info.value)


def test_module_wildcard_loads_every_exported_optimizer_once():
    """``module:*``: each optimizer class the module exports, once, named as exported; one that cannot be driven
    as it comes (a wrapper, a required argument) is N/A with its reason and fix instead of ending the run."""
    infos = {i.name: i for i in load_user_optimizers(["tests.planted.collection:*"], rootdir=str(ROOT))}
    assert sorted(infos) == ["CoreBase", "FromCore", "NeedsHorizon", "NoneHorizon", "OnCuda", "PlainSGD",
                             "RefusesMomentum", "StepAlwaysRaises", "TwoLists", "Wrapper"]  # AliasSGD is PlainSGD
    # a default its own constructor refuses: named, with the config stanza
    assert ("its constructor refuses its default momentum=0 (NotImplementedError: SGD without momentum is not "
            "supported!)") in infos["RefusesMomentum"].unsupported
    assert "kwargs = { momentum = ... }" in infos["RefusesMomentum"].unsupported
    # every step raises inside the optimizer: a finding of its code, which the checks report (not N/A)
    raising = infos["StepAlwaysRaises"]
    assert raising.unsupported is None and any("every attempt's step() raised inside the optimizer (UnboundLocalError"
                                               in n for n in raising.detected), raising.detected
    if not torch.cuda.is_available():  # where there is a GPU it is driven like any other
        assert infos["OnCuda"].unsupported.startswith("needs CUDA, which this machine does not have"), \
            infos["OnCuda"].unsupported
    # a base class that cannot be driven is named as the base of the optimizer exported beside it, which runs
    assert "it is the base class of FromCore, which the module exports too" in infos["CoreBase"].unsupported
    assert infos["FromCore"].unsupported is None
    assert infos["PlainSGD"].unsupported is None and infos["PlainSGD"].source == "tests.planted.collection:PlainSGD"
    assert "wraps another optimizer" in infos["Wrapper"].unsupported
    assert "requires num_iterations" in infos["NeedsHorizon"].unsupported
    assert "kwargs = { num_iterations = ... }" in infos["NeedsHorizon"].unsupported
    # arguments that default to None, computed with: the ones on the line that raised, and where (not "no way worked")
    assert ("its constructor's num_epochs, num_batches_per_epoch default to None and are computed with (TypeError: "
            "unsupported operand type(s) for *: 'NoneType' and 'NoneType' at tests/planted/collection.py:") \
        in infos["NoneHorizon"].unsupported, infos["NoneHorizon"].unsupported
    assert "self.total = num_epochs * num_batches_per_epoch" in infos["NoneHorizon"].unsupported
    assert "kwargs = { num_epochs = ..., num_batches_per_epoch = ... }" in infos["NoneHorizon"].unsupported
    # parameters in two lists: no config can give a list of tensors, so not "give params in its config"
    assert "takes its parameters in 2 lists (muon_params, params)" in infos["TwoLists"].unsupported
    assert "kwargs" not in infos["TwoLists"].unsupported
    # named on its own, the same optimizer is still a one-line error
    with pytest.raises(SpecError, match="requires num_iterations"):
        load_user_optimizers(["tests.planted.collection:NeedsHorizon"], rootdir=str(ROOT))


def test_an_optimizer_whose_every_step_raises_is_one_finding_of_its_code_not_na():
    """bitsandbytes' PytorchLARS steps with ``update`` unbound at its default momentum=0: every attempt's step()
    raises inside the optimizer. That is its bug, reported once per root cause with the checks it blocks, where it
    was N/A ("no way of driving it worked"), which a CI reads as nothing to see."""
    from optbench.optimizers.plan import optimizer_checks
    from optbench.plan import Selection
    from optbench.verdict import BLOCKED, FAIL, run_check

    (info,) = load_user_optimizers(["s=tests.planted.collection:StepAlwaysRaises"], rootdir=str(ROOT))
    verdicts = [run_check(i) for i in optimizer_checks(Selection(optimizers=[info], devices=("cpu",)))
                if i.prop in ("P2", "P3", "P4", "P5")]
    raised = [v for v in verdicts if v.outcome == FAIL]
    assert len(raised) == 1 and "step() raised UnboundLocalError" in raised[0].message, [v.message for v in raised]
    assert all(v.outcome == BLOCKED for v in verdicts if v is not raised[0]), [v.outcome for v in verdicts]


@pytest.mark.parametrize("spec, match", [
    ("all=tests.planted.collection:*", "cannot name a whole module"),
    ("optbench.errors:*", "exports no torch.optim.Optimizer subclass"),
], ids=["named-wildcard", "no-optimizers"])
def test_bad_module_wildcard_is_a_one_line_spec_error(spec, match):
    with pytest.raises(SpecError, match=match) as info:
        load_user_optimizers([spec], rootdir=str(ROOT))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("config, tables", [("optbench.toml", 60), ("torch_optimizer.toml", 15)])
def test_the_thirdparty_configs_are_valid_configs(config, tables):
    """Each config of tox -e thirdparty (thirdparty/*.toml) is read like a user's: every table, key and reason is
    valid, so the env cannot fail on its own config before validating anything."""
    from optbench.optimizers.user import _check_entry, load_config

    path = ROOT / "thirdparty" / config
    table, where = load_config(str(path), None)
    assert len(table) > tables, sorted(table)
    for name, entry in table.items():
        _check_entry(name, entry, where)
