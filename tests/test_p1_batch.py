"""P1's shared runs (optimizers/batch.py, p1.Session) are the separate runs they stand for, bit for bit, and
P1 made cheaper still catches its planted bugs.

* batched == separate: units of several targets and lrs, batched as the proven independence allows (lrs as
  param groups or optimizers in lockstep, targets as parameters of one group), give the same reached epochs,
  final distances and gaps, mid-budget distances and last points as each slot (a unit's starts as rows of one
  tensor where the update is elementwise, else each start) run alone from the same seed, for torch.optim's Adam (foreach) and SGD with momentum (for-loop), a
  schedule-free optimizer (train/eval modes), an optimizer with a global-norm statistic (P7 fails: one
  optimizer per slot) and one that draws from the global RNG (lockstep with its own RNG state per optimizer);
* the hopeless-run rule on synthetic windows: a start behind at two checkpoints in a row stops, one that stalls
  once and resumes does not;
* a legal optimizer that reads p.grad without a None check is not failed by the shared runs (a retired slot has
  no gradient): the run is redone with one optimizer per slot;
* planted P1 bugs still fail P1 on every judged target, and a correct optimizer's lr band is the same whether
  its targets share their runs or not.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from optbench.catalogue import get_target
from optbench.optimizers import batch as B
from optbench.optimizers import p1 as P1
from optbench.optimizers.contract import Case
from optbench.optimizers.convergence import LR_GRID, make_units, starts_for
from optbench.optimizers.info import OptConfig, OptimizerInfo
from optbench.validation import Request, build
from optbench.verdict import FAIL, MEASURED, PASS, run_check

ROOT = str(Path(__file__).resolve().parents[1])


class GlobalNormSGD(torch.optim.SGD):
    """SGD on gradients scaled by 1/max(1, global norm): parameters interact (P6 and P7 fail)."""

    @torch.no_grad()
    def step(self, closure=None):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        norm = torch.sqrt(sum((gr * gr).sum() for gr in grads)) if grads else torch.tensor(0.0)
        scale = 1.0 / max(1.0, float(norm))
        for gr in grads:
            gr.mul_(scale)
        return super().step(closure)


class NoisySGD(torch.optim.SGD):
    """SGD plus a small noise drawn from torch's global RNG at each step (a stochastic method)."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    p.add_(torch.randn_like(p), alpha=1e-3 * g["lr"])
        return loss


def _case(factory, impl="default", elementwise=True, **kw) -> Case:
    info = OptimizerInfo(getattr(factory, "__name__", "opt"), factory, configs=(OptConfig("", kw),),
                         elementwise=elementwise, user=True, weight_decay=None, maximize=False,
                         impls={"cpu": (impl,), "cuda": (impl,)})
    return Case(info, info.configs[0], impl, torch.float64, "cpu")


def _schedule_free():
    sf = pytest.importorskip("schedulefree")
    return sf.SGDScheduleFree


CASES = {
    "adam-foreach": lambda: _case(torch.optim.Adam, "foreach"),
    "sgd_momentum-forloop": lambda: _case(torch.optim.SGD, "forloop", momentum=0.9),
    "globalnorm": lambda: _case(GlobalNormSGD, elementwise=False),
    "noisy": lambda: _case(NoisySGD, elementwise=False),
    "schedulefree": lambda: _case(_schedule_free()),
}
TARGETS = ("seed_quadratic", "booth", "himmelblau")  # 1-D, 2-D, and four global minimizers
LRS = (1e-3, 3e-2, 0.3)  # slow (runs out), converging, and (for SGD on booth) diverging
EPOCHS = 200


def _units(case: Case, rows: bool):
    out = []
    for name in TARGETS:
        t = get_target(name)
        starts = starts_for(case.info, t, case.dtype, True)[:4 if rows else 2]  # alone, each start costs a run
        out += make_units(case, t, starts, list(LRS), EPOCHS, batch_starts=rows)
    return out


def _same(a, b) -> str | None:
    for ua, ub in zip(a, b):
        where = f"{ua.target.name} lr {ua.lr}"
        if ua.reached != ub.reached or ua.diverged != ub.diverged:
            return f"{where}: reached {ua.reached} vs {ub.reached}, diverged {ua.diverged} vs {ub.diverged}"
        for field in ("dist", "gap"):
            if not torch.equal(getattr(ua, field), getattr(ub, field)):
                return f"{where}: {field} {getattr(ua, field)} vs {getattr(ub, field)}"
        if not (ua.mid == ub.mid or (math.isinf(ua.mid) and math.isinf(ub.mid))):
            return f"{where}: mid {ua.mid} vs {ub.mid}"
        if ua.diverged is None and not all(torch.equal(x, y) for x, y in zip(ua.last, ub.last)):
            return f"{where}: last points {ua.last} vs {ub.last}"
    return None


@pytest.mark.parametrize("name", list(CASES))
def test_shared_runs_equal_each_start_run_alone_bit_for_bit(name):
    case = CASES[name]()
    groups_exact, params_exact = P1.probe(case, "P6"), P1.probe(case, "P7")
    if name in ("adam-foreach", "sgd_momentum-forloop", "schedulefree"):
        assert groups_exact and params_exact, "torch.optim's own optimizers pass P6 and P7 bit for bit"
    if name == "globalnorm":
        assert not params_exact, "a global norm couples the parameters: P7 must not hold"
    rows = bool(case.info.elementwise)
    shared = _units(case, rows=rows)
    B.run_units(case, shared, groups_exact=groups_exact, params_exact=params_exact)
    alone = _units(case, rows=rows)
    for u in alone:  # the reference: every slot of every unit (all its starts as rows, or each start) alone
        B.run_units(case, [u], groups_exact=False, params_exact=False, lockstep=False)
    assert _same(shared, alone) is None, _same(shared, alone)
    assert any(u.converged for u in shared) and any(not u.converged for u in shared), "a test with no contrast"


def test_the_noisy_optimizer_really_draws_from_the_global_rng():
    case = CASES["noisy"]()
    a, b = _units(case, rows=False)[:1], _units(case, rows=False)[:1]  # seed_quadratic at lr 1e-3
    B.run_units(case, a, groups_exact=False, params_exact=False, lockstep=False)
    torch.manual_seed(1)  # the caller's RNG does not matter: every run starts from SEED
    B.run_units(case, b, groups_exact=False, params_exact=False, lockstep=False)
    assert _same(a, b) is None
    old, B.SEED = B.SEED, 1
    try:
        c = _units(case, rows=False)[:1]
        B.run_units(case, c, groups_exact=False, params_exact=False, lockstep=False)
    finally:
        B.SEED = old
    assert _same(a, c) is not None, "another seed must give another run"


class _FakeBlock:
    def __init__(self, r: int, epochs: int, gated: bool = False) -> None:
        self.r, self.epochs, self.prev_at = r, epochs, 0
        self.gated, self.open_from = gated, math.inf
        self.slots = [type("S", (), {"unit": type("U", (), {"hopeless": None})(), "ss": list(range(r))})()]

    @property
    def rows(self) -> int:
        return self.r

    def opened(self, epoch: int) -> bool:
        return self.open_from <= epoch


@pytest.mark.parametrize("windows, stops_at, why", [
    ([1.0, 0.99, 0.98, 0.97], 2, "closing by 1e-4 per epoch: ~1e4 epochs from tol, behind at checkpoints 1 and 2"),
    ([1.0, 1.2, 0.3, 0.01], None, "stalled in one window, then resumed: behind once only"),
    ([1.0, 0.5, 0.1, 1e-5], None, "converging: never behind"),
    ([1.0, 1.0, 1.0, 1.0], None, "no closer at all: no rate to extrapolate, never judged (Prodigy stalls so)"),
])
def test_a_start_stops_only_when_behind_at_two_checkpoints_in_a_row(windows, stops_at, why):
    """Synthetic window minima at checkpoints 100, 200, 300, 400 of a 1000-epoch budget (tol_x 1e-4)."""
    assert _stops(windows, gated=False) == stops_at, why


def test_on_a_judged_target_the_rule_waits_until_some_lr_has_converged():
    windows = [1.0, 0.99, 0.98, 0.97, 0.96]
    assert _stops(windows, gated=True) is None, "nothing of the target converged: run to the budget"
    assert _stops(windows, gated=True, open_at=3) == 3, "behind at 200 and 300, stopped once open (at 400)"


def test_runs_one_after_another_stop_a_hopeless_lr_where_lockstep_stops_it():
    """A closure optimizer (and any run apart) runs its instances one after another: the largest lr first, and a
    unit that converges opens its target's rule for the runs after it. Before, each run only saw its own units, so
    on a judged target the rule never applied apart: torch's LBFGS ran every small lr of the grid to its budget
    (its P1 over the collection's grid did not finish in 30 min)."""
    case = _case(torch.optim.SGD, elementwise=True)

    def units():
        t = get_target("seed_quadratic")  # SGD at lr 0.1 converges in ~20 epochs; at 1e-6 it crawls
        us = make_units(case, t, starts_for(case.info, t, case.dtype, True)[:2], [1e-6, 0.1], 1024,
                        batch_starts=False)
        for u in us:
            u.gated = True
        return us

    together, apart = units(), units()
    B.run_units(case, together, groups_exact=True, params_exact=True, hopeless=True)
    B.run_units(case, apart, groups_exact=False, params_exact=False, hopeless=True, lockstep=False)
    for u in (together, apart):
        slow, fast = u
        assert fast.converged and not slow.converged
        assert slow.hopeless and slow.epochs_run < 1024 // 2, (slow.epochs_run, slow.hopeless)
    assert together[0].epochs_run == apart[0].epochs_run and together[0].hopeless == apart[0].hopeless
    assert _same(together, apart) is None, _same(together, apart)


def _stops(windows, *, gated: bool, open_at: int | None = None):
    b = _FakeBlock(1, 1000, gated=gated)
    book = type("Book", (), {})()
    book.offsets = [(0, 0)]
    book.prev_min = torch.tensor([math.nan], dtype=torch.float64)
    book.behind = torch.zeros(1, dtype=torch.bool)
    for i, m in enumerate(windows):
        b.open_from = math.inf if open_at is None else 100 * (open_at + 1)
        book.win_min = torch.tensor([m], dtype=torch.float64)
        if B._hopeless(book, b, 0, 100 * (i + 1), 1e-4):
            msg = b.slots[0].unit.hopeless
            assert "stopped at epoch" in msg and "as far behind" in msg, msg
            return i
    return None


def _p1_verdicts(spec: str, tmp_path, targets=("seed_quadratic", "booth"), **entry):
    cfg = tmp_path / "optbench.toml"
    lines = [f"[optimizers.{spec.split('=')[0]}]", "targets = [" + ", ".join(f'"{t}"' for t in targets) + "]",
             "profile_targets = []"] + [f"{k} = {str(v).lower() if isinstance(v, bool) else v}" for k, v in entry.items()]
    cfg.write_text("\n".join(lines) + "\n")
    items = build(Request(optimizers=[spec], plans=("optimizers",), config=str(cfg), rootdir=str(tmp_path)))
    return {i.target: run_check(i) for i in items if i.prop == "P1" and "float64" in i.id}


def test_reading_p_grad_without_a_none_check_is_not_failed_by_the_shared_runs(tmp_path):
    verdicts = _p1_verdicts("crash=tests.planted.p1_bugs:CrashOnNoneGrad", tmp_path, elementwise=True, epochs=400)
    assert verdicts and all(v.outcome == PASS for v in verdicts.values()), {t: v.message for t, v in verdicts.items()}


@pytest.mark.parametrize("name", ["BiasedSGD", "StallingSGD"])
def test_planted_p1_bugs_still_fail_p1_on_every_judged_target_and_say_where_the_time_went(name, tmp_path):
    """Also where the time went, a FAIL's as a PASS's: each verdict carries its lrs' runs (``p1_time``) and its
    seconds are its part of the session the two targets share (the first check ran it all, the other none of
    it: both had their wall time before); the parts hold at least the runs apportioned to them."""
    from optbench.validation import render_time, time_table
    from optbench.verdict import SHARE
    from tests.planted.p1_bugs import PLANTED_P1

    verdicts = _p1_verdicts(f"{name.lower()}=tests.planted.p1_bugs:{name}", tmp_path, epochs=400)
    assert set(verdicts) == {"seed_quadratic", "booth"}
    for target, v in verdicts.items():
        assert v.outcome == FAIL, f"{name} ({PLANTED_P1[name]}) on {target}: {v.outcome} {v.message}"
        assert "did not converge" in v.message or "no lr" in v.message or "ended at" in v.message, v.message
        runs = sum(p["seconds"] for ph in v.data["p1_time"].values() for p in ph)
        assert len(v.data["p1_time"]) == len(LR_GRID) and v.seconds == v.data[SHARE] and v.seconds >= runs > 0
    items = [SimpleNamespace(target=t, id=f"{name}-foreach-{t}-float64-cpu") for t in verdicts]
    table = time_table(items, list(verdicts.values()))[name.lower()]
    assert set(table["p1"]) == set(table["p1_seconds"]) == {"seed_quadratic-float64", "booth-float64"}, table
    assert "| booth-float64 | " in render_time({name: table}, markdown=True)


def test_a_correct_optimizer_gets_the_same_band_with_shared_or_separate_runs(tmp_path, monkeypatch):
    shared = _p1_verdicts("adam=torch.optim:Adam", tmp_path, epochs=400)
    assert all(v.outcome == PASS for v in shared.values())
    monkeypatch.setattr(P1, "probe", lambda case, prop: False)  # nothing proven: every slot alone
    P1._SESSIONS.clear()
    alone = _p1_verdicts("adam=torch.optim:Adam", tmp_path, epochs=400)
    assert {t: v.data["lr_band"] for t, v in shared.items()} == {t: v.data["lr_band"] for t, v in alone.items()}
    assert MEASURED not in {v.outcome for v in shared.values()}


def test_lrs_that_hover_stop_at_mid_budget_and_are_rerun_in_full_only_when_the_schedule_fails(tmp_path):
    """Sign descent hovers at constant lr: its constant-lr runs stop at mid-budget and the schedule makes it
    converge (PASS, as with full runs). Biased sign descent hovers too and never converges: its constant-lr runs
    are run again to their budget, so its FAIL rests on full runs, as before the early stop."""
    ok = _p1_verdicts("sign=tests.planted.p1_bugs:SignDescent", tmp_path, targets=("booth",), epochs=400)["booth"]
    assert ok.outcome == PASS and "under ExponentialLR" in ok.data["lr_band"], ok.data["lr_band"]
    phases = {p["phase"] for ph in ok.data["p1_time"].values() for p in ph}
    assert phases == {"runs", "rerun under the automatic schedule"}, phases
    assert all(ph[0]["epochs"] == 200 for ph in ok.data["p1_time"].values() if "div" not in ph[0]["ended"])
    P1._SESSIONS.clear()
    bad = _p1_verdicts("biased=tests.planted.p1_bugs:BiasedSignDescent", tmp_path, targets=("booth",), epochs=400)
    v = bad["booth"]
    assert v.outcome == FAIL and "did not converge either" in v.message, v.message


def test_a_selection_narrows_the_shared_runs_to_the_targets_it_keeps(tmp_path):
    """``-k booth`` (or pytest's deselection) keeps booth's items: their shared run covers booth alone, not the
    case's other targets, which nobody asked for."""
    every = build(Request(optimizers=["adam=tests.planted.unseen:Adam"], plans=("optimizers",), rootdir=ROOT))
    booth = build(Request(optimizers=["adam=tests.planted.unseen:Adam"], plans=("optimizers",), rootdir=ROOT,
                          select="booth"))
    runs = [getattr(i.run, "run", i.run) for i in booth if i.prop == "P1"]
    assert runs and all(r.batch == (("booth", True),) for r in runs), [r.batch for r in runs]
    full = [getattr(i.run, "run", i.run) for i in every if i.prop == "P1" and "float64" in i.id]
    assert len(full[0].batch) == 14, "all 11 judged targets and 3 profiles share a run when nothing is deselected"


def test_an_optimizer_without_lr_runs_once_at_its_own_step_size(tmp_path):
    """No lr hyperparameter (A2Grad, AliG): every lr of the grid would be the same run, so P1 runs one; its band
    and its FAIL name its own step size, never an lr of the grid it does not have."""
    ok = _p1_verdicts("own=tests.planted.p1_bugs:OwnStepGD", tmp_path, epochs=400)
    for target, v in ok.items():
        assert v.outcome == PASS, (target, v.message)
        assert "its own step size" in v.data["lr_band"], v.data["lr_band"]
        assert list(v.data["p1_time"]) == ["None"] or len(v.data["p1_time"]) == 1, v.data["p1_time"]
    P1._SESSIONS.clear()
    bad = _p1_verdicts("tiny=tests.planted.p1_bugs:own_step_too_small", tmp_path, epochs=400)
    for target, v in bad.items():
        assert v.outcome == FAIL and "did not converge" in v.message, (target, v.message)
        assert "lr=" not in v.message and "lr grid" not in v.message, v.message
        assert "its own" in v.reproducer or "k != 'lr'" in v.reproducer


def test_a_one_group_optimizer_is_probed_with_one_optimizer_per_start():
    """torch's LBFGS refuses param groups (a one-group optimizer): the rows-batching probe compared rows with
    starts held as groups of one optimizer, so as re-exported by pytorch-optimizer (before the registry's entry was
    used for torch's own classes) every P1 target FAILed on 'LBFGS doesn't support per-parameter options'. Separate
    starts are separate optimizers (an LBFGS subclass: validated as it comes)."""
    from optbench.optimizers.convergence import batched_equals_separate
    from optbench.optimizers.user import load_user_optimizers

    info = load_user_optimizers(["lbfgs=tests.planted.unseen:LBFGS"], rootdir=ROOT)[0]
    case = Case(info, info.configs[0], "default", torch.float64, "cpu")
    same, diff = batched_equals_separate(case, get_target("booth"), epochs=3)
    assert not math.isnan(diff), "the separate runs raised"
    assert same is False  # LBFGS couples the coordinates of a parameter (one line search): rows are not separate


def test_a_coupling_the_probes_miss_is_caught_by_the_witness_and_run_apart():
    """D-Adaptation's d is one number over every parameter and stays at d0 for the probes' three steps: P7 and
    the rows probe passed and P1 shared d across every target, lr and start. P6's and P7's second look (32 steps)
    now see D-Adaptation; a statistic that holds still longer still escapes them (LaterCountScaledSGD: 64 steps).
    The witness (one start run again alone) sees the shared run differ; the case is then run apart, and P1 reads
    exactly the runs it would have made had the probes failed."""
    from tests.planted.p1_bugs import LaterCountScaledSGD

    targets = (("seed_quadratic", True), ("booth", True))
    case = _case(LaterCountScaledSGD, elementwise=None)
    key = P1._case_key(case)
    assert P1.probe(case, "P6") and P1.probe(case, "P7"), "the premise: the probes' 32 steps see no coupling"
    shared = P1.Session(case, targets)
    shared.compute()
    assert P1._PROBES[key + ("witness",)] is False
    assert not any(P1._PROBES[key + (k,)] for k in ("P6", "P7", ("rows", "booth")) if isinstance(k, str)) and \
        P1._PROBES[key + ("rows", "booth")] is False
    for k in list(P1._PROBES):  # the reference: every run apart from the start, no witness needed
        if k[:len(key)] == key:
            P1._PROBES[k] = k[len(key)] == "witness"
    for name, _ in targets:
        P1._PROBES[key + ("rows", name)] = False
    apart = P1.Session(case, targets)
    apart.compute()
    for name, _ in targets:
        a, b = shared.runs[name], apart.runs[name]
        assert a.rows is False and a.starts.shape == b.starts.shape
        assert a.ok == b.ok and a.ok, (name, a.ok, b.ok)
        assert all(torch.equal(x, y) for x, y in zip(a.res.dist, b.res.dist)), name
        assert isinstance(a.outcome, dict) and "run apart, one optimizer per start" in a.outcome["lr_band"]
        assert "run apart" not in b.outcome["lr_band"]


@pytest.mark.parametrize("elementwise", [None, False], ids=["rows-probed", "one-slot-per-start"])
def test_an_independent_optimizer_passes_the_witness_and_keeps_its_shared_runs(elementwise):
    """The witness must not send an optimizer apart for nothing: Adam's starts share a tensor (rows probed) or sit
    one parameter each (then a slot retires when its start converges, before its unit's other starts)."""
    case = _case(torch.optim.Adam, "foreach", elementwise=elementwise)
    key = P1._case_key(case)
    s = P1.Session(case, (("seed_quadratic", True), ("booth", True)))
    s.compute()
    assert P1._PROBES[key + ("witness",)] is True
    assert P1._PROBES[key + ("P7",)] is True
    for tr in s.runs.values():
        assert "run apart" not in tr.outcome["lr_band"], tr.outcome["lr_band"]
        if elementwise is False:
            u_stops = [e for e in tr.res.reached[tr.ok[0]] if e is not None]
            assert len(set(u_stops)) > 1, "a test with no contrast: the starts should converge at different epochs"


def test_the_witness_compares_a_start_alone_at_the_epoch_its_own_slot_retired():
    """One slot per start: start 0 may converge, and retire, long before its unit's last start; run alone to the
    unit's last epoch it would have moved on (Adam keeps stepping inside the tolerance) and look coupled."""
    from optbench.optimizers import witness

    case = _case(torch.optim.Adam, "foreach", elementwise=False)
    units = _units(case, rows=False)
    B.run_units(case, units, groups_exact=True, params_exact=True)
    early = [u for u in units if u.diverged is None and 0 < u.stopped[0] < u.epochs_run]
    assert early, "a test with no contrast: some unit's start 0 should retire before its other starts"
    for u in early:
        assert witness.differs(case, [u], schedule=None, weight_decay=0.0) is None, (u.target.name, u.lr)


def test_a_fail_names_the_lr_where_most_starts_reached_x_star_on_a_tie(tmp_path):
    """SaRA's P1 FAILs named lr 1e-4: the starts it never trains end at the same distance at every lr, and the
    first lr of that tie was reported although at lr 0.1 the canonical start converges."""
    v = _p1_verdicts("small=tests.planted.p1_bugs:TrainsSmallOnly", tmp_path, targets=("booth",), epochs=400)["booth"]
    assert v.outcome == FAIL, v.message
    assert "(lr=0.0001," not in v.message, v.message
    import re

    failed, starts = map(int, re.search(r"(\d+) of (\d+) starts did not converge", v.message).groups())
    assert failed < starts, f"the lr reported is one where the canonical start converged: {v.message}"


@pytest.mark.parametrize("rows", [True, False], ids=["rows", "one-slot-per-start"])
def test_a_unit_that_spends_its_budget_reports_the_distance_of_its_last_point(rows):
    """VSGD's FAIL said |x - x*| = 0.000657 where its reproducer, run for the budget, ended at 0.000125: the
    distance reported was the point before the last step's. A unit's distance and gap are its last point's."""
    case = _case(torch.optim.Adam, "foreach")
    t = get_target("booth")
    [u] = make_units(case, t, starts_for(case.info, t, case.dtype, True)[:3], [1e-3], 50, batch_starts=rows)
    B.run_units(case, [u], groups_exact=False, params_exact=False)
    assert u.epochs_run == 50 and not u.converged
    last = u.last[-1]
    assert torch.equal(u.dist, ((last - u.x_star) ** 2).sum(-1).sqrt()), (u.dist, last)
    assert torch.equal(u.gap, t.fn(last) - u.f_star)


def test_a_case_dealt_over_workers_gives_each_target_the_verdict_of_one_shared_run(tmp_path):
    """``optbench validate`` of one optimizer on k cores deals its float64 P1 targets round-robin into k shared
    runs (optimizers/plan.py), which k workers run side by side: where targets share runs they are independent bit
    for bit, so every target's verdict, band and profile records are those of the one shared run."""
    targets = ("seed_quadratic", "seed_quadratic_pow2", "sphere_2d", "sphere_4d", "sum_squares_3d", "booth",
               "trid_2d", "trid_4d")
    cfg = tmp_path / "optbench.toml"
    cfg.write_text("[optimizers.sgd]\ntargets = [" + ", ".join(f'"{t}"' for t in targets) + "]\n"
                   "profile_targets = []\nepochs = 600\nlr = 0.1\n")  # one lr: the grid adds nothing here

    def p1(workers):
        P1._SESSIONS.clear()
        items = build(Request(optimizers=["sgd=tests.planted.unseen:SGD"], plans=("optimizers",), config=str(cfg),
                              rootdir=ROOT, workers=workers))
        items = [i for i in items if i.prop == "P1" and "float64" in i.id]
        return items, {i.target: run_check(i) for i in items}

    one, alone = p1(1)
    dealt, shared = p1(2)
    assert len({i.share for i in one}) == 1
    batches = {i.share: getattr(i.run, "run", i.run).batch for i in dealt}
    assert len(batches) == 2, batches
    a, b = ({t for t, _ in batch} for batch in batches.values())
    assert not a & b and a | b == set(targets), batches

    def what(v):  # everything but the seconds it took
        return v.outcome, v.message, v.data and (v.data["lr_band"], v.data["profiles"])

    assert {t: what(v) for t, v in alone.items()} == {t: what(v) for t, v in shared.items()}
    assert {v.outcome for v in alone.values()} == {PASS}
