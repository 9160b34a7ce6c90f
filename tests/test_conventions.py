"""Conventions are detected, not failed on: correct optimizers that refuse lr=0, need lr, have
train()/eval() modes, need a closure, 2-D parameters or sparse gradients, or move by sign(g), get no
FAIL; broken ones fail on their property with a diagnosis; optbench's own crash is an ERROR."""

from __future__ import annotations

from pathlib import Path

import pytest

from optbench.optimizers.plan import optimizer_checks
from optbench.optimizers.user import load_user_optimizers
from optbench.plan import Selection
from optbench.validation import exit_code
from optbench.optimizers.plan import narrow
from optbench.verdict import BLOCKED, ERROR, FAIL, NA, PASS, CheckItem, run_check

ROOT = Path(__file__).resolve().parents[1]
MOD = "tests.planted.conventions"
# The contract on the primary implementation in float64 (every property once), and P1 on two targets.
KEEP = ("float64-cpu",)


def _items(name: str, tests: tuple[str, ...] | None = None, ids: tuple[str, ...] = KEEP) -> list[CheckItem]:
    (info,) = load_user_optimizers([f"{name.lower()}={MOD}:{name}"], rootdir=str(ROOT))
    items = optimizer_checks(Selection(optimizers=[info], devices=("cpu",)))
    items = [i for i in items if any(k in i.id for k in ids) and (tests is None or i.test in tests)]
    items = [i for i in items if i.test not in ("test_converges", "test_profile") or i.target in ("booth", "seed_quadratic")]
    narrow(items)  # P1's shared runs cover the two targets kept
    return items


@pytest.mark.parametrize("name, detected", [
    ("RefusesLrZero", None), ("LrRequired", None), ("Moded", "train()/eval()"), ("ClosureOnly", "closure"),
    ("MatrixOnly", "2-D"), ("SparseOnly", "sparse"), ("NoClosureParam", None),
])
def test_correct_optimizers_following_a_convention_never_fail(name, detected):
    (info,) = load_user_optimizers([f"{name.lower()}={MOD}:{name}"], rootdir=str(ROOT))
    if detected:
        assert any(detected in n for n in info.detected), f"{name}: expected the convention {detected!r} to be " \
                                                         f"detected, got {info.detected}"
    verdicts = [run_check(i) for i in _items(name, ids=("foreach-float64-cpu", "default-float64-cpu"))]
    bad = [f"{v.nodeid}: {v.outcome} {v.message}" for v in verdicts if v.outcome not in (PASS, NA, "EXEMPT")]
    assert not bad, f"{name} is correct, yet:\n" + "\n".join(bad)
    assert sum(v.outcome == PASS for v in verdicts) >= 10, [v.nodeid for v in verdicts]


def test_a_step_without_a_closure_parameter_makes_p10_not_applicable():
    (item,) = _items("NoClosureParam", ("test_p10_closure_loss",))
    assert item.na and "takes no argument" in item.na, item


def test_a_constructor_refusing_lr_zero_gets_p3_through_the_param_group():
    (item,) = [i for i in _items("RefusesLrZero", ("test_p03_lr_zero",))]
    assert run_check(item).outcome == PASS
    (bad,) = [i for i in _items("MovesAtGroupLrZero", ("test_p03_lr_zero",))]
    v = run_check(bad)
    assert v.outcome == FAIL and "set to 0 after construction" in v.message and "Invalid learning rate" in v.message, v


def test_sign_updates_converge_under_the_automatic_decaying_schedule():
    (item,) = [i for i in _items("SignSGD", ("test_converges",)) if i.target == "booth"]
    v = run_check(item)
    assert v.outcome == PASS, v.message
    band = v.data["lr_band"]
    assert "ExponentialLR" in band and "hovered at a distance that grows with lr" in band, band


def test_an_exception_raised_by_the_optimizer_is_its_finding_with_its_message():
    """One root cause, one finding: the case's first check reports the exception once, with its reproducer; every
    other check of the case that meets the same exception is BLOCKED by it (a failure, told in one line)."""
    items = _items("RaisesOnSecondStep")
    contract = [i for i in items if i.test.startswith("test_p")]
    verdicts = {i.test: run_check(i) for i in contract}
    root = verdicts["test_p02_descent"]
    assert root.outcome == FAIL, root
    assert "step() raised RuntimeError: internal buffer size mismatch in RaisesOnSecondStep" in root.message, root
    assert "raised inside the optimizer, not by optbench" in root.message and "BLOCKED" in root.message, root
    assert root.reproducer and "raises inside the optimizer" in root.reproducer, root.reproducer
    blocked = verdicts["test_p05_grad_untouched"]
    assert blocked.outcome == BLOCKED, blocked
    assert "internal buffer size mismatch" in blocked.message and root.nodeid in blocked.message, blocked.message
    others = [v for t, v in verdicts.items() if t != "test_p02_descent"]
    assert not [v for v in others if v.outcome == FAIL and "internal buffer size mismatch" in v.message], \
        "the root cause repeated as a FAIL"
    assert sum(v.outcome == BLOCKED for v in others) >= 8, [(v.nodeid, v.outcome) for v in others]
    assert exit_code(list(verdicts.values())) == 1


def test_a_crash_of_optbench_itself_is_an_error_never_the_optimizers_failure():
    def crash():
        raise KeyError("optbench bookkeeping")  # not inside the optimizer

    v = run_check(CheckItem(test="test_p02_descent", id="x-cpu", prop="P2", subject="x", run=crash))
    assert v.outcome == ERROR and "optbench internal error (not the subject's fault)" in v.message, v


def test_a_fused_flag_that_works_adds_the_fused_implementation_and_one_that_raises_does_not():
    """torch.optim's convention: foreach=False/True and fused=True select the implementations. A user's
    Adam gets 'fused' (checked for parity and benched like the registry's); an optimizer whose fused
    flag raises keeps for-loop and foreach, with the reason among what was detected."""
    (adam,) = load_user_optimizers(["adam=tests.planted.unseen:Adam"], rootdir=str(ROOT))
    assert adam.impls["cpu"] == ("forloop", "foreach", "fused"), adam.impls
    assert any("fused implementation" in n for n in adam.detected), adam.detected
    (nadam,) = load_user_optimizers(["nadam=tests.planted.unseen:NAdam"], rootdir=str(ROOT))  # no fused flag
    assert nadam.impls["cpu"] == ("forloop", "foreach"), nadam.impls
    (info,) = load_user_optimizers([f"f={MOD}:FusedFlagOnly"], rootdir=str(ROOT))
    assert info.impls["cpu"] == ("forloop", "foreach"), info.impls
    assert any("fused=True raised" in n and "not supported" in n for n in info.detected), info.detected
    # the fused implementation is held to parity with the others (P15), and torch's passes
    items = optimizer_checks(Selection(optimizers=[adam], devices=("cpu",)))
    p15 = [i for i in items if i.prop == "P15" and "fused" in i.id]
    assert p15, [i.id for i in items if i.prop == "P15"]
    assert all(run_check(i).outcome == PASS for i in p15)
