"""Planted bugs are caught on the property that was broken; the correct hand-written optimizer passes.

Each planted optimizer is loaded as a user's would be (``--optimizer name=module:Cls``, through
``optbench.optimizers.user``), and the contract checks of its own property run through the library's plan
(``optbench.optimizers.plan``), in float32 and float64, on every implementation, CPU only: the checks
themselves, as all three front ends run them. That the pytest front ends turn a FAIL into a failed test with the
diagnosis and its reproducer is tested in ``tests/test_validate.py`` (``parametrize_with_checks``) and
``tests/test_user_optimizer.py`` (``--optimizer``); here nothing starts another interpreter (each would import
torch, Dynamo and sympy again: seconds apiece).
"""

from __future__ import annotations

import re

import pytest

from optbench.optimizers.plan import optimizer_checks
from optbench.optimizers.user import load_user_optimizers
from optbench.plan import Selection
from optbench.verdict import FAIL, PASS, run_check
from tests.planted.bugs import PLANTED

# property -> the test function(s) that check it
PROP_TESTS = {
    "P2": "test_p02_descent", "P3": "test_p03_lr_zero", "P4": "test_p04_frozen_param", "P5": "test_p05_grad_untouched",
    "P6": "test_p06_param_groups", "P7": "test_p07_param_independence", "P8": "test_p08_resume",
    "P9": "test_p09_state_dtype_device", "P10": "test_p10_closure_loss", "P11": "test_p11_maximize",
    "P12": "test_p12_weight_decay", "P13": "test_p13_translation", "P14": "test_p14_noncontiguous",
    "P15": "test_p15", "P16": "test_p16_zero_grad", "P17": "test_p17_determinism",
}


def _contract(spec: str) -> list:
    infos = load_user_optimizers([spec])
    return [i for i in optimizer_checks(Selection(optimizers=infos, devices=("cpu",)))
            if re.match(r"test_p\d\d_", i.test) and not (i.exempt or i.na)]


@pytest.mark.parametrize("name", list(PLANTED))
def test_a_planted_bug_fails_its_own_property(name):
    _, prop, what = PLANTED[name]
    items = [i for i in _contract(f"{name.lower()}=tests.planted.bugs:{name}") if i.test.startswith(PROP_TESTS[prop])]
    assert items, f"no {prop} check was planned for {name}"
    verdicts = [run_check(i) for i in items]
    failed = [v for v in verdicts if v.outcome == FAIL]
    assert failed, f"{name} ({what}) was not caught by {prop}: " + "; ".join(f"{v.id} {v.outcome}" for v in verdicts)
    assert all(v.prop.startswith(prop) for v in failed)
    assert all(v.reproducer for v in failed), "every FAIL ends with a standalone reproducer"


def test_the_correct_hand_written_adam_passes_every_contract_check():
    items = _contract("handadam=tests.planted.correct:HandAdam")
    verdicts = [run_check(i) for i in items]
    assert len(verdicts) >= 20, "the correct optimizer's contract checks did not run"
    bad = [f"{v.test}[{v.id}] {v.outcome}: {v.message}" for v in verdicts if v.outcome != PASS]
    assert not bad, bad
