"""Issue 15's distinctions: a bug against a trait of the method that breaks the same property, randomness
compared with itself, one root cause reported once, and the exemption stanza a user pastes.

The planted optimizers are in ``tests/planted/traits.py``; each goes through the user path
(``load_user_optimizers``, as ``--optimizer`` does) and the library's plan, in float64 on the CPU unless said.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from optbench.compiled.plan import compiled_checks
from optbench.optimizers import contract as C
from optbench.optimizers import rng
from optbench.optimizers.memory import memory_checks
from optbench.optimizers.plan import optimizer_checks
from optbench.optimizers.user import load_user_optimizers
from optbench.plan import Selection
from optbench.validation import render_markdown, render_text
from optbench.verdict import BLOCKED, ERROR, EXEMPT, FAIL, NA, PASS, CheckItem, run_check
from tests.planted.traits import PLANTED

ROOT = Path(__file__).resolve().parents[1]
MOD = "tests.planted.traits"


def _info(name: str, rootdir: Path = ROOT):
    (info,) = load_user_optimizers([f"{name.lower()}={MOD}:{name}"], rootdir=str(rootdir))
    return info


def _items(name: str, props: tuple[str, ...] | None = None, dtypes: tuple[str, ...] = ("float64",),
           rootdir: Path = ROOT) -> list[CheckItem]:
    items = optimizer_checks(Selection(optimizers=[_info(name, rootdir)], devices=("cpu",)))
    return [i for i in items if i.test.startswith("test_p") and i.prop != "P1" and (props is None or i.prop in props)
            and any(f"-{d}-cpu" in i.id for d in dtypes)]


def _case(name: str, dtype: torch.dtype = torch.float64) -> C.Case:
    info = _info(name)
    return C.Case(info, info.configs[0], "default", dtype, "cpu")


@pytest.mark.parametrize("key", sorted(PLANTED))
def test_each_planted_optimizer_lands_on_its_verdict_with_its_diagnosis(key):
    name = key.split(".")[0]
    prop, outcome, words = PLANTED[key]
    how = "deepcopy" if key.endswith(".deepcopy") else ""  # P8: through state_dict first, unless the key says
    dtypes = ("float32",) if key.endswith(".float32") else ("float64",)
    item = [i for i in _items(name, (prop,), dtypes) if "_vs_" not in i.id and how in i.test][0]
    v = run_check(item)
    said = v.message + " " + str((v.data or {}).get("note", ""))  # a PASS says what it judged in its note
    assert v.outcome == outcome, f"{item.nodeid}: expected {outcome}, got {v.outcome}: {v.message}"
    assert words in said, f"{item.nodeid}: the diagnosis lacks {words!r}: {said}"
    raised = "step() raised" in v.message  # the optimizer raised: a finding of its code, no trait to declare
    if outcome == FAIL and prop in C.BY_DESIGN and not raised:  # a property some methods break on purpose: stanza
        assert v.stanza and f"[tool.optbench.optimizers.{name.lower()}.exemptions]" in v.stanza, v.stanza


@pytest.mark.parametrize("name", sorted({k.split(".")[0] for k in PLANTED}))
def test_no_planted_optimizer_makes_optbench_crash(name):
    """Whatever the optimizer does (sets p.grad to None, shares state, draws random numbers), a check ends in PASS,
    FAIL, N/A or BLOCKED: never in an ERROR of optbench's own."""
    verdicts = [run_check(i) for i in _items(name, dtypes=("float64", "float32"))]
    errors = [f"{v.nodeid}: {v.message}" for v in verdicts if v.outcome == ERROR]
    assert verdicts and not errors, "\n".join(errors)


def test_an_optimizer_drawing_from_the_global_rng_is_compared_with_itself_and_said_to():
    """Correct noise from torch's global RNG: P6, P7, P8, P13, P14 and P17 pass in both dtypes; P17 says the
    optimizer draws from the global RNG, P6 and P7 what they compared instead of the draws' order."""
    want = ("P6", "P7", "P8", "P13", "P14", "P17")
    verdicts = [run_check(i) for i in _items("GlobalRngNoise", want, ("float64", "float32"))]
    assert {v.prop for v in verdicts} == set(want)
    bad = [f"{v.nodeid}: {v.outcome} {v.message}" for v in verdicts if v.outcome != PASS]
    assert not bad, "\n".join(bad)
    for v in verdicts:
        if v.prop in ("P6", "P7", "P17"):
            assert "draws random numbers from torch's CPU generator" in v.message, v.message
        if v.prop in ("P6", "P7"):
            assert "in a different order" in v.message and "compared order-independently" in v.message, v.message


def test_same_seed_same_run_another_seed_another_run():
    use = C.rng_use(_case("GlobalRngNoise"))
    assert use.kind == "global" and use.drawn == ("torch's CPU generator",), use
    assert C.rng_use(_case("InitFirstStep")).kind == "none"
    own = C.rng_use(_case("OwnGenerator"))
    assert own.kind == "own" and own.own == ("self._gen",), own


def test_a_check_leaves_the_callers_rng_as_it_was():
    """Every contract check that takes a case alone (each reseeds torch's RNG for its runs, inside a fork)."""
    import inspect

    checks = [getattr(C, n) for n in sorted(dir(C)) if n.startswith("check_p")
              and len(inspect.signature(getattr(C, n)).parameters) == 1]
    assert len(checks) >= 15, [c.__name__ for c in checks]
    for check in checks:
        torch.manual_seed(1234)
        before = torch.get_rng_state()
        try:
            check(_case("GlobalRngNoise"))
        except Exception:  # noqa: BLE001 - a FAIL or N/A is not what is tested here
            pass
        assert torch.equal(before, torch.get_rng_state()), f"{check.__name__} changed the caller's RNG state"


def test_p6_and_p7_keep_their_exact_meaning_for_p1():
    """P1 batches lrs as param groups (and starts as parameters) only where check_p6 (check_p7) returns: they raise
    whenever grouped (joint) differs from separate, whatever the diagnosis, a pass by draw order included."""
    for name in ("GlobalRngNoise", "GlobalClip"):
        for check in (C.check_p6, C.check_p7):
            with pytest.raises(Exception):
                check(_case(name))
    assert C.check_p6(_case("InitFirstStep")) is None and C.check_p7(_case("InitFirstStep")) is None
    with pytest.raises(C.DrawOrder):
        C.check_p7(_case("GlobalRngNoise"))


def test_a_statistic_that_acts_only_later_or_at_a_larger_lr_is_seen_by_the_second_look():
    """P6 and P7 pass the contract's first 3 steps at lr 0.01 for these (the first look alone passed them, as it
    passed D-Adaptation); the second look (32 steps at the contract's lr, then at lr 1) fails them with the cause,
    says where it looked, and writes a reproducer that runs those steps at that lr."""
    from optbench.optimizers import coupling as K

    clip = _case("LargeStepClip")
    assert K._p7_compare(clip, K.STEPS, None, finite_only=False) is None  # the first look: equal
    assert K._p6_compare(clip, K.STEPS, None, finite_only=False) is None
    with pytest.raises(C.PropertyFailure) as p7:
        C.check_p7(clip)
    msg = str(p7.value)
    assert p7.value.trait and "at step 1 at lr 1 (equal over the first 3 steps at the contract's lr 0.01" in msg, msg
    assert "coupled through a norm-like global statistic" in msg, msg
    assert p7.value.details == {"lr": 1.0, "steps": 1}
    with pytest.raises(C.PropertyFailure) as p6:
        C.check_p6(clip)
    assert p6.value.trait and "the groups interact through a shared statistic" in str(p6.value), str(p6.value)

    (late,) = load_user_optimizers(["latecount=tests.planted.p1_bugs:LateCountScaledSGD"], rootdir=str(ROOT))
    with pytest.raises(C.PropertyFailure) as count:  # lr scaled by the number of elements from step 9 on
        C.check_p7(C.Case(late, late.configs[0], "foreach", torch.float64, "cpu"))
    msg = str(count.value)
    assert "at step 9 at lr 0.01 (equal over the first 3 steps" in msg, msg
    assert "any neighbour's presence changes parameter 0's steps, whatever its gradient" in msg, msg
    from optbench.optimizers.reproducer import script

    repro = script(count.value, C.Case(late, late.configs[0], "foreach", torch.float64, "cpu"))
    assert "train(Opt(ps, **KWARGS), ps, loss, 9)" in repro and "lr=0.01" in repro, repro

    with pytest.raises(C.PropertyFailure) as stacked:  # the first look fails it; the cause is the batch
        C.check_p7(_case("StackedByShape"))
    assert stacked.value.trait and "not beside one of another shape" in str(stacked.value), str(stacked.value)
    assert C.check_p7(_case("StackedByShape", torch.float32)) is None  # in float32 the batch changes nothing


def test_rounding_amplified_by_the_step_is_measured_from_a_few_ulps_of_x0_and_a_bug_is_not_covered_by_it():
    """The probe behind P13/P14/P15's wording: runs from x0 moved by 1-8 ulps. SignOfNoise (the sign of rounding
    noise) moves by lr-sized amounts; a correct Adam moves by ulps, so a step-sized difference there stays a
    finding of its own."""
    from optbench.optimizers import rounding

    noisy = rounding.spread(_case("SignOfNoise"), 3)
    plain = rounding.spread(C.Case(_info("StateDtypeArg"), _info("StateDtypeArg").configs[0], "default",
                                   torch.float64, "cpu"), 3)
    assert min(noisy) > 1e-3 and max(plain) < 1e-12, (noisy, plain)
    assert rounding.explains(_case("SignOfNoise"), 1, 0.01, 3) is not None
    assert rounding.explains(_case("StateDtypeArg"), 1, 0.01, 3) is None  # a step-sized difference: the finding


def test_a_float64_difference_that_goes_with_the_declared_state_precision_is_named_as_that_declaration():
    """heavyball's HyperBallAdamW (storage_dtype="float32") failed P14 in float64 by 1.4e-7 with "is the update
    written into a reshape() copy?": its update carries float32 rounding, as its argument declares. Named so only
    where the declaration is in effect and the check's comparison holds with it set to float64."""
    from optbench.optimizers import rounding

    declared = _case("StateDtypeArg")  # state_dtype=torch.float32, kept so
    seen = []

    def holds(c):
        seen.append(dict(c.config.kwargs))
        return True

    text = rounding.declared_precision(declared, holds)
    assert text and "the float32 its argument state_dtype declares" in text and "agree to float64's" in text, text
    assert seen == [{"state_dtype": torch.float64}]  # rerun with the declaration at float64, as its default is spelled
    assert rounding.declared_precision(declared, lambda c: False) is None  # still differs at float64: a finding
    assert rounding.declared_precision(_case("StateDtypeArg", torch.float32), holds) is None
    assert rounding.declared_precision(_case("SilentFloat32State"), holds) is None  # nothing declares it


def test_a_trait_stanza_pasted_into_pyproject_declares_the_exemption(tmp_path):
    (item,) = _items("GlobalClip", ("P7",))
    v = run_check(item)
    assert v.outcome == FAIL and "a trait of the method, not a bug" in v.message and v.stanza, v
    (tmp_path / "pyproject.toml").write_text(v.stanza + "\n")
    info = _info("GlobalClip", rootdir=tmp_path)
    assert info.exemption("P7") == "parameters are coupled through a global statistic (e.g. a global gradient norm)"
    (again,) = _items("GlobalClip", ("P7",), rootdir=tmp_path)
    assert run_check(again).outcome == EXEMPT


def test_a_failure_is_rendered_with_its_stanza_and_a_blocked_cause_once(tmp_path):
    items = _items("GlobalClip", ("P7",)) + [i for i in _items("SharedStateDict") if i.prop in ("P2", "P7")]
    verdicts = [run_check(i) for i in items]
    text = render_text(items, verdicts, reproducer_paths={})
    assert "by design? declare it:" in text and "  [tool.optbench.optimizers.globalclip.exemptions]" in text, text
    md = render_markdown(items, verdicts, title="t", reproducer_paths={})
    assert "```toml" in md and 'P7 = "parameters are coupled through a global statistic' in md, md
    blocked = [v for v in verdicts if v.outcome == BLOCKED]
    assert not blocked  # nothing raises here: no check is blocked


def test_what_no_generic_check_can_drive_is_not_applicable_with_the_reason():
    for name, words in (("TakesModel", "takes a model"), ("NeedsCreateGraph", "create_graph=True")):
        info = _info(name)
        assert info.unsupported and words in info.unsupported, info.unsupported
        selection = Selection(optimizers=[info], devices=("cpu",))
        # every check, P21 and the memory row included: one cause, one reason (not "the eager step raises")
        items = optimizer_checks(selection) + compiled_checks(selection) + memory_checks(selection)
        verdicts = [run_check(i) for i in items]
        assert {i.prop for i in items} >= {"P1", "P21", "memory"}, {i.prop for i in items}
        assert verdicts and all(v.outcome == NA and words in v.message for v in verdicts), \
            {(v.nodeid, v.outcome, v.message[:80]) for v in verdicts if v.outcome != NA or words not in v.message}


_DRIVER = r"""
import json, runpy, sys, io, contextlib
out = {}
for path in sys.argv[1:]:
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            runpy.run_path(path, run_name="__main__")
        out[path] = "passed"
    except AssertionError as exc:
        out[path] = "AssertionError: " + str(exc)
    except Exception as exc:
        out[path] = type(exc).__name__ + ": " + str(exc)
print(json.dumps(out))
"""


def test_the_reproducers_of_the_planted_bugs_fail_when_run(tmp_path):
    """Each reproducer starts its runs from one seed and, for P8, saves and restores the RNG with the checkpoint,
    as the check does: it fails on the optimizer's bug, not on the luck of its draws."""
    scripts = {}
    for key, (prop, outcome, _) in PLANTED.items():
        name = key.split(".")[0]
        if outcome != FAIL or "." in key:
            continue
        for item in _items(name, (prop,)):
            v = run_check(item)
            if v.outcome == FAIL and v.reproducer:
                path = tmp_path / f"{name}_{item.test}.py"
                path.write_text(v.reproducer)
                # the violation shows as the property's assertion, or as the exception the optimizer raised
                raised = v.message.split(" raised ", 1)[1].split(":")[0] if "inside the optimizer" in v.message \
                    else "AssertionError"
                scripts[str(path)] = (item.nodeid, raised)
    assert len(scripts) >= 9, sorted(scripts.values())
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", _DRIVER, *scripts], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    wrong = {scripts[p][0]: r for p, r in results.items()
             if not (r.startswith("AssertionError: P") or (scripts[p][1] != "AssertionError"
                                                          and r.startswith(scripts[p][1] + ":")))}
    assert not wrong, wrong


def test_a_resumed_run_restores_the_global_rng_saved_with_the_checkpoint():
    """P8 passes for noise from the global RNG only because the checkpoint carries the RNG state: resuming
    without restoring it would differ (the check is not vacuous)."""
    case = _case("GlobalRngNoise")
    with rng.isolated():
        ref = C.fresh_run(case, 4)
        rng.reseed()
        prob = C.Problem(case)
        opt = case.make(prob.params)
        C._run(case, prob, opt, 2)
        rng.reseed(rng.OTHER_SEED)  # not restored
        resumed = C._run(case, prob, opt, 2)
    assert not all(torch.equal(a, b) for a, b in zip(resumed.xs[-1], ref.xs[-1]))


def test_distributed_ranks_start_from_one_seed_and_checkpoints_carry_the_rng():
    """Under DDP every rank draws alike (with the per-rank-seed drift named as a trait); under FSDP2 the noise of the
    whole parameter is sharded, so it equals one process; P20's checkpoints carry each rank's RNG state, so a
    resumed run draws what the uninterrupted one did, while a torch.Generator outside state_dict() still fails."""
    from optbench.distributed.plan import distributed_checks

    infos = load_user_optimizers([f"g={MOD}:GlobalRngNoise", f"o={MOD}:OwnGenerator"], rootdir=str(ROOT))
    got = {(i.subject, i.test): run_check(i) for i in distributed_checks(Selection(optimizers=infos, devices=("cpu",)))}
    table = "\n".join(f"{s} {t} {v.outcome} {v.message[:200]}" for (s, t), v in got.items())
    for test in ("test_p18_fsdp2_parity", "test_p19_ddp_parity", "test_p20_dcp_resume"):
        assert got[("g", test)].outcome == PASS, table
    assert "under per-rank seeds its replicas would drift apart" in got[("g", "test_p19_ddp_parity")].message, table
    assert got[("g", "test_p19_zero_parity")].outcome == NA and "its own partition" in \
        got[("g", "test_p19_zero_parity")].message, table
    assert got[("o", "test_p20_dcp_resume")].outcome == FAIL, table


def test_a_step_that_raises_for_a_whole_dtype_is_one_finding_and_blocks_the_rest():
    """One root cause, one finding: the float64 step raises in both implementations; the first float64 check of the
    primary implementation reports it once with its reproducer, every other float64 check (P1 included) is
    BLOCKED by it, and the float32 checks run as usual."""
    info = _info("Float64Raises")
    assert any("steps float32 parameters, not float64 ones" in n for n in info.detected), info.detected
    items = optimizer_checks(Selection(optimizers=[info], devices=("cpu",)))
    f64 = [i for i in items if i.id.endswith("-float64-cpu") and not i.exempt and not i.na]
    verdicts = [run_check(i) for i in f64 if i.test != "test_profile"]
    fails = [v for v in verdicts if v.outcome == FAIL]
    assert len(fails) == 1, [(v.nodeid, v.outcome, v.message[:80]) for v in verdicts]
    root = fails[0]
    assert root.nodeid == "test_p02_descent[float64raises-foreach-float64-cpu]", root.nodeid
    assert "supports float32 parameters only" in root.message and root.reproducer, root
    blocked = [v for v in verdicts if v.outcome == BLOCKED]
    assert len(blocked) == len(verdicts) - 1, [(v.nodeid, v.outcome) for v in verdicts if v.outcome != BLOCKED]
    assert all(root.nodeid in v.message for v in blocked)
    assert any("forloop" in v.id for v in blocked) and any(v.test == "test_converges" for v in blocked)
    f32 = [run_check(i) for i in _items("Float64Raises", dtypes=("float32",))]
    assert f32 and all(v.outcome in (PASS, NA) for v in f32), [(v.nodeid, v.outcome, v.message) for v in f32]


def test_what_the_optimizer_raised_is_reported_without_memory_addresses():
    """Dynamo's errors name ``<function einsum at 0x7f...>`` (heavyball's compiled steps): the address differs from
    run to run, so it is left out of the message and of the root cause that groups findings."""
    from optbench.loop import OptimizerRaised
    from optbench.optimizers.findings import raised_cause

    def exc(addr: str) -> OptimizerRaised:
        return OptimizerRaised("step()", RuntimeError(f"call_function <function einsum at {addr}>(*('...ab',))"))

    a, b = exc("0x7f5157e59620"), exc("0x7f32a184db20")
    assert str(a) == "step() raised RuntimeError: call_function <function einsum>(*('...ab',))", str(a)
    assert raised_cause(a) == raised_cause(b)
