"""A torch.optim class named by spec (``optbench validate torch.optim:NAdam``, or pytorch-optimizer's re-export of
torch's LBFGS) is validated with optbench's registry entry for it: the P1 lr and budgets, exemptions and known torch
bugs declared there, under the user's name. A subclass, other constructor kwargs than the entry's configs, or a
config table that sets P1 itself are validated as it comes (optbench.optimizers.registered)."""

from __future__ import annotations

from pathlib import Path

import pytest

from optbench.optimizers.user import load_user_optimizers
from optbench.validation import Request, build
from optbench.verdict import FAIL, PASS, XFAIL, run_check

ROOT = str(Path(__file__).resolve().parents[1])


def _one(spec: str, tmp_path: Path, toml: str = ""):
    cfg = tmp_path / "optbench.toml"
    cfg.write_text(toml)
    (info,) = load_user_optimizers([spec], config_file=str(cfg), rootdir=ROOT)
    return info


def test_a_torch_optim_class_gets_its_registry_entry_under_the_users_name(tmp_path):
    info = _one("torch.optim:NAdam", tmp_path)
    assert (info.name, info.registry, info.source, info.user) == ("NAdam", "nadam", "torch.optim:NAdam", True)
    assert [c.name for c in info.configs] == [""] and info.configs[0].lr is not None  # one config, its declared lr
    assert "P8.state_dict@float64" in info.known  # the registry's known torch bug
    assert "in optbench's registry" in info.detected[0] and "'nadam'" in info.detected[0]


@pytest.mark.parametrize("spec, toml, entry", [
    ("torch.optim:SGD", "", "sgd"),
    ("torch.optim:SGD", "[optimizers.SGD]\nkwargs = { momentum = 0.9 }\n", "sgd_momentum"),
    ("torch.optim:SGD", "[optimizers.SGD]\nkwargs = { momentum = 0.9, nesterov = true, foreach = true }\n",
     "sgd_nesterov"),  # foreach/fused select an implementation; every impl of the entry runs anyway
    ("torch.optim:LBFGS", "", "lbfgs"),
    ("torch.optim:LBFGS", '[optimizers.LBFGS]\nkwargs = { line_search_fn = "strong_wolfe" }\n', "lbfgs_strong_wolfe"),
    ("torch.optim:AdamW", "[optimizers.AdamW]\nkwargs = { weight_decay = 0.0 }\n", "adamw"),
    ("torch.optim:Adam", "[optimizers.Adam]\nkwargs = { betas = [0.9, 0.999] }\n", "adam"),  # the defaults, as a list
], ids=["sgd", "sgd-momentum", "sgd-nesterov-foreach", "lbfgs", "lbfgs-strong-wolfe", "adamw-no-decay",
        "adam-default-betas"])
def test_the_config_whose_kwargs_the_user_gives_is_the_one_validated(tmp_path, spec, toml, entry):
    assert _one(spec, tmp_path, toml).registry == entry


@pytest.mark.parametrize("spec, toml, why", [
    ("tests.planted.unseen:Adam", "", "a subclass may change step()"),
    ("torch.optim:AdamW", "", "AdamW's default weight_decay 0.01 is none of the entry's configs (0.0)"),
    ("torch.optim:SGD", "[optimizers.SGD]\nkwargs = { momentum = 0.5 }\n", "no config of the entry has momentum 0.5"),
    ("torch.optim:Adam", "[optimizers.Adam]\nlr = 0.01\n", "the user's table sets P1 itself"),
], ids=["subclass", "adamw-as-it-comes", "other-kwargs", "own-p1-settings"])
def test_otherwise_it_is_validated_as_it_comes(tmp_path, spec, toml, why):
    info = _one(spec, tmp_path, toml)
    assert info.registry == "" and info.user, why


def test_the_users_exemptions_and_known_bugs_are_added_to_the_entrys(tmp_path):
    info = _one("torch.optim:NAdam", tmp_path, '[optimizers.NAdam.exemptions]\nP13 = "mine"\n'
                                               '[optimizers.NAdam.known]\nP5 = "also mine"\n')
    assert info.registry == "nadam" and info.exemptions["P13"] == "mine" and info.known["P5"] == "also mine"
    assert "P8.state_dict@float64" in info.known


def test_a_known_torch_bug_is_an_xfail_through_the_registry_and_a_fail_as_it_comes():
    """torch.optim.NAdam's float64 state_dict resume differs (state['mu_product'] is float32): the registry's known
    bug. Named as torch.optim:NAdam it is that strict xfail; the same step under another class is a new FAIL."""
    sel = "p08_resume_state_dict and foreach-float64"
    for spec, want in (("torch.optim:NAdam", XFAIL), ("tests.planted.unseen:NAdam", FAIL)):
        items = build(Request(optimizers=[spec], plans=("optimizers",), rootdir=ROOT, select=sel))
        assert len(items) == 1, [i.id for i in items]
        v = run_check(items[0])
        assert v.outcome == want, (spec, v.outcome, v.message)


def test_p1_runs_the_entrys_declared_lr_and_says_so():
    items = build(Request(optimizers=["torch.optim:SGD"], plans=("optimizers",), rootdir=ROOT,
                          select="converges and seed_quadratic-float64"))
    assert [i.id for i in items] == ["SGD-foreach-seed_quadratic-float64-cpu"], [i.id for i in items]
    v = run_check(items[0])
    assert v.outcome == PASS and "registry: validated with its entry 'sgd'" in v.message, v.message
    assert v.data["lr_band"] is None  # one declared lr, not a band searched over the grid


def test_validated_as_it_comes_a_registry_class_keeps_the_known_bugs_of_its_class(tmp_path):
    """torch.optim.Muon's default weight_decay 0.1 is none of the entry's configs: it comes as any optimizer does,
    but its bfloat16 Newton-Schulz under FSDP2 and Inductor are torch's, whatever the kwargs (strict xfails); the
    entry's measured lr, budgets and exemptions are not carried over. A subclass carries nothing."""
    muon = _one("torch.optim:Muon", tmp_path)
    assert muon.registry == "" and {"P18", "P21.parity"} <= set(muon.known), muon.known
    assert all("optbench's registry" in why for k, why in muon.known.items() if k in ("P18", "P21.parity"))
    assert "P11" not in muon.exemptions  # the entry's exemptions stay with the entry
    assert not _one("tests.planted.unseen:NAdam", tmp_path).known
