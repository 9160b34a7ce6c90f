"""The regression gate's decision logic, on synthetic seeded samples (optbench.bench.synthetic): no
timing happens here. A shared machine is modelled as a per-size drift between sessions, each bench's
own share of it, lognormal round noise and heavy-tailed (Pareto) preemptions; a regression as a
relative shift of one optimizer's epoch and step. Every rate asserted below is over fixed seeds, so
the test is deterministic; the real-timing self-tests live in benches/ (test_gate_selftest.py) and
only record their figures."""

from __future__ import annotations

import json

import pytest

from optbench.bench.planted import SlowAdam
from optbench.bench.results import parse_run
from optbench.bench.synthetic import Bench, default_matrix, synthetic_run
from optbench.cli import main as cli
from optbench.gate import compare_runs, gate_files, parse_threshold

MATRIX = default_matrix(("sgd", "adam"), (1, 10**3, 10**6), ("forloop", "foreach"))
SEEDS = range(40)
# Another session on the same shared host: every size slower, large sizes most (the 12-48 % measured
# when a whole run was gated against a baseline from another session), each bench feeling its own
# ±2 % share of it, 3 % round noise and 10 % of rounds preempted.
OTHER_SESSION = dict(drift={1: 1.12, 10**3: 1.2, 10**6: 1.45}, bench_sigma=0.02, sigma=0.03, preempt_p=0.1)


def _run(seed: int, **kw):
    return parse_run(synthetic_run(MATRIX, seed=seed, **kw), f"synthetic-{seed}")


def _write(tmp_path, name, obj) -> str:
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return str(p)


def _flagged(res) -> set[str]:
    return {v.label for v in res.regressed}


def test_drift_between_sessions_is_divided_out_and_a_planted_20_percent_is_flagged():
    """Over 40 seeded session pairs, on both clocks: the acceptance targets of the wall-clock gate,
    at most 1 % of results false alarms and planted detection in at least 9 of 10 pairs."""
    pairs = fa_pairs = fa_results = results = detected = raw_alarms = 0
    for s in SEEDS:
        base = _run(2 * s, sigma=0.03, preempt_p=0.1)
        same, planted = _run(2 * s + 1, **OTHER_SESSION), _run(2 * s + 1, shift={"adam": 0.2}, **OTHER_SESSION)
        for clock in ("cpu", "wall"):
            pairs += 1
            res = compare_runs(base, same, metric="time", clock=clock)
            fa_pairs += bool(res.regressed)
            fa_results += len(res.regressed)
            results += len(res.verdicts)
            flagged = _flagged(compare_runs(base, planted, metric="time", clock=clock))
            detected += bool(flagged)
            # a flag always names the planted optimizer's epoch or step, never sgd or a reference
            assert all(lab.startswith("adam-") and lab.endswith(("-epoch", "-step")) for lab in flagged), flagged
        raw_alarms += bool(compare_runs(base, same, metric="time", drift="none").regressed)
    assert fa_results <= 0.01 * results and fa_pairs <= 0.025 * pairs, (fa_results, results, fa_pairs, pairs)
    assert detected >= 0.9 * pairs, (detected, pairs)
    # without the drift model the same unchanged pairs are false alarms (the 45 % drift at 1e6 exceeds 10 %)
    assert raw_alarms == len(SEEDS)


def test_heavy_tailed_preemptions_move_wall_medians_not_minima_nor_cpu_time():
    """More than half the rounds preempted by Pareto(1.5) slices of ~2 ms: wall-clock minima stay put,
    wall-clock medians do not; CPU time (what the CPU benches record per round) never sees them."""
    min_alarms = med_alarms = cpu_med_alarms = 0
    for s in SEEDS:
        base = _run(2 * s, preempt_p=0.05, sigma=0.02)
        cur = _run(2 * s + 1, preempt_p=0.55, sigma=0.02)
        min_alarms += bool(compare_runs(base, cur, metric="time", clock="wall").regressed)
        med_alarms += bool(compare_runs(base, cur, metric="time", clock="wall", stat="median", drift="none").regressed)
        cpu_med_alarms += bool(compare_runs(base, cur, metric="time", clock="cpu", stat="median").regressed)
        planted = _run(2 * s + 1, preempt_p=0.55, sigma=0.02, shift={"adam": 0.2})
        assert compare_runs(base, planted, metric="time", clock="wall").regressed, f"seed {s}"
        assert compare_runs(base, planted, metric="time").regressed, f"seed {s}"
    assert min_alarms == 0 and cpu_med_alarms == 0
    assert med_alarms > len(SEEDS) // 2  # why the gate compares minima of wall time


def test_a_slowdown_within_the_measured_noise_is_noisy_not_regressed():
    for s in range(10):
        base = _run(2 * s, sigma=0.6)
        cur = _run(2 * s + 1, sigma=0.6, shift={"adam": 0.15})
        res = compare_runs(base, cur, metric="time")
        assert res.regressed == [], f"seed {s}"
        assert any(v.verdict == "noisy" for v in res.verdicts)


def test_without_reference_benches_the_gate_compares_raw_and_says_so():
    epochs = [b for b in MATRIX if b.phase == "epoch"]
    base = parse_run(synthetic_run(epochs, seed=1))
    cur = parse_run(synthetic_run(epochs, seed=2, drift=1.3))
    res = compare_runs(base, cur, metric="time")
    assert res.regressed and not res.drift
    assert any("no reference bench" in w for w in res.warnings)


def test_instruction_gate_flags_one_percent_and_passes_the_measured_jitter():
    for s in SEEDS:
        base, same = _run(2 * s), _run(2 * s + 1, **OTHER_SESSION)  # wall-clock drift does not touch counts
        res = compare_runs(base, same)
        assert res.metric == "instructions" and res.regressed == [], f"seed {s}"
        slow = compare_runs(base, _run(2 * s + 1, shift={"adam": 0.02}))
        assert _flagged(slow) and all(lab.startswith("adam-") for lab in _flagged(slow))
        assert compare_runs(base, _run(2 * s + 1, shift={"adam": 0.004})).regressed == []  # below 1 %


def test_instruction_gate_allows_a_few_thousand_instructions_of_process_history_on_small_counts():
    # Measured: SGD's zero_grad at 1e6 counted 66,420 alone and 67,566 inside the whole bench matrix (+1.7 %).
    # That many instructions are history, not code: not a regression on a small count, while the same 1.7 % on an epoch of
    # 700,000 instructions (11,900 more) is a regression, and so is +10 % on the small count.
    def verdicts(base_count, cur_count):
        b = parse_run(synthetic_run(MATRIX, seed=1), "b")
        c = parse_run(synthetic_run(MATRIX, seed=1), "c")
        for run, count in ((b, base_count), (c, cur_count)):
            for r in run.records:
                r.extra.update(instructions=count, instructions_repeats=[count] * 3)
        res = compare_runs(b, c, metric="instructions")
        return {v.verdict for v in res.verdicts}, res.exit_code

    assert verdicts(66_420, 67_566) == ({"noisy"}, 0)  # shown as above 1 %, within the noise: not a failure
    assert verdicts(700_000, 711_900) == ({"REGRESSED"}, 1)
    assert verdicts(66_420, 73_062) == ({"REGRESSED"}, 1)


def test_metric_choice_and_missing_counts(tmp_path, capsys):
    with_counts = _write(tmp_path, "i.json", synthetic_run(MATRIX, seed=1))
    without = _write(tmp_path, "t.json", synthetic_run(MATRIX, seed=2, instructions=False))
    assert gate_files(with_counts, with_counts).metric == "instructions"
    assert gate_files(with_counts, without).metric == "time"  # auto: counts on one side only
    assert cli(["gate", with_counts, without, "--metric", "instructions"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no instruction counts" in err and "--instructions" in err


@pytest.mark.parametrize("change, metric", [
    ({"threads": 2}, "time"),
    ({"allocator": "default (mallopt not applied)"}, "time"),
    ({"torch_version": "2.14.0+cpu"}, "instructions"),
    ({"python": "3.12.1"}, "instructions"),
    ({"cpu_capability": "AVX512"}, "instructions"),
], ids=["threads", "allocator", "torch", "python", "cpu-capability"])
def test_results_under_different_settings_are_refused_or_compared_marked(tmp_path, capsys, change, metric):
    base = _write(tmp_path, "b.json", synthetic_run(MATRIX, seed=1))
    cur = _write(tmp_path, "c.json", synthetic_run(MATRIX, seed=2, **change))
    assert cli(["gate", base, cur, "--metric", metric]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "different settings" in err and "--allow-setting-change" in err
    assert cli(["gate", base, cur, "--metric", metric, "--allow-setting-change"]) == 0
    out = capsys.readouterr().out
    assert "COMPARED ACROSS SETTINGS" in out and "ok *" in out


def test_another_cpu_model_is_refused_for_time_and_a_warning_for_instructions(tmp_path, capsys):
    a = synthetic_run(MATRIX, seed=1)
    b = synthetic_run(MATRIX, seed=2)
    b["machine_info"]["optbench"]["cpu_model"] = "Another CPU"
    pa, pb = _write(tmp_path, "a.json", a), _write(tmp_path, "b.json", b)
    assert cli(["gate", pa, pb, "--metric", "time"]) == 2
    assert "CPU model" in capsys.readouterr().err
    res = gate_files(pa, pb, metric="instructions")
    assert res.exit_code == 0 and any("CPU model differs" in w for w in res.warnings)


def test_cli_table_and_exit_codes(tmp_path, capsys):
    base = _write(tmp_path, "b.json", synthetic_run(MATRIX, seed=3))
    same = _write(tmp_path, "s.json", synthetic_run(MATRIX, seed=4, **OTHER_SESSION))
    slow = _write(tmp_path, "p.json", synthetic_run(MATRIX, seed=5, shift={"adam": 0.25}, **OTHER_SESSION))
    assert cli(["gate", base, same, "--metric", "time"]) == 0
    out = capsys.readouterr().out
    assert "drift (current/baseline of the references)" in out and "(ref)" in out and "no regression" in out
    assert cli(["gate", base, slow, "--metric", "time"]) == 1
    out = capsys.readouterr().out
    assert "REGRESSED" in out and "regressed of" in out
    assert cli(["gate", base, slow, "--metric", "time", "--threshold", "40%"]) == 0
    assert cli(["gate", base, slow]) == 1  # auto: instruction counts, +25 %
    assert "instructions per call" in capsys.readouterr().out


@pytest.mark.parametrize("content", [None, "{not json", json.dumps({"benchmarks": []}), json.dumps([1, 2])],
                         ids=["missing", "corrupt", "no-machine-info", "not-an-object"])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, content):
    good = _write(tmp_path, "g.json", synthetic_run(MATRIX, seed=1))
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    assert cli(["gate", good, str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.json" in err


def test_mismatched_files_exit_2(tmp_path, capsys):
    a = _write(tmp_path, "a.json", synthetic_run([Bench("adam", 10**6)], seed=1))
    b = _write(tmp_path, "b.json", synthetic_run([Bench("sgd", 10**3)], seed=2))
    assert cli(["gate", a, b]) == 2
    assert "share no benchmark" in capsys.readouterr().err


def test_one_side_only_results_are_listed_and_candidates_stand_under_the_baseline_name(tmp_path, capsys):
    base = _write(tmp_path, "b.json", synthetic_run([Bench("adam", 10**6), Bench("adam", 10**3)], seed=1))
    cur = _write(tmp_path, "c.json", synthetic_run([Bench("SlowAdam", 10**6), Bench("adam", 10**5)], seed=2))
    assert cli(["gate", base, cur, "--optimizer", "adam=optbench.bench.planted:SlowAdam", "--metric", "time"]) == 0
    out = capsys.readouterr().out
    assert "only in baseline (1)" in out and "n1e3" in out
    assert "only in current (1)" in out and "n1e5" in out
    assert cli(["gate", base, cur, "--optimizer", "optbench.bench.planted:SlowAdam"]) == 2  # no NAME=


def test_warns_when_torch_or_host_differ(tmp_path):
    b = _write(tmp_path, "b.json", synthetic_run(MATRIX, seed=1, instructions=False))
    c = _write(tmp_path, "c.json", synthetic_run(MATRIX, seed=2, instructions=False, torch_version="2.14.0", node="b"))
    w = " ".join(gate_files(b, c).warnings)
    assert "torch version differs" in w and "host differs" in w


def test_threshold_parsing():
    assert parse_threshold("10%") == pytest.approx(0.10)
    assert parse_threshold("0.2") == pytest.approx(0.2)
    assert parse_threshold("15") == pytest.approx(0.15)
    with pytest.raises(Exception, match="not a percentage"):
        parse_threshold("ten")


def test_planted_slow_adam_is_adam_to_the_bit():
    """The plant adds memory traffic, not a numerical change: its trajectory equals Adam's exactly."""
    import torch

    xs = []
    for cls in (torch.optim.Adam, SlowAdam):
        x = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
        opt = cls([x], lr=0.1, foreach=True)
        for _ in range(5):
            opt.zero_grad()
            ((x - 1) ** 2).sum().backward()
            opt.step()
        xs.append(x.detach().clone())
    assert torch.equal(xs[0], xs[1])


def _slow_whole_bench(data: dict, name_part: str, factor: float) -> dict:
    """One benchmark measured during a bad moment of its process: every round (wall and CPU) slower."""
    for b in data["benchmarks"]:
        if name_part in b["name"]:
            for k in ("min", "q1", "median", "iqr", "q3", "max", "mean"):
                b["stats"][k] *= factor
            for k in ("min", "q1", "median", "iqr", "q3"):
                b["extra_info"]["cpu_time"][k] *= factor
    return data


def test_interleaved_runs_per_side_take_each_benchmarks_best_run(tmp_path, capsys):
    """A1 B1 A2 B2: a whole benchmark slowed 1.6x in one process (measured on the loaded dev VM: a 1e6
    epoch's CPU-time minimum 17-51 % up in one process) is a false alarm with one run per side, and
    not with two, since the other run of that side measured it at a good moment."""
    bad = "test_epoch[sgd-foreach-flat-1e6"
    a1 = _write(tmp_path, "a1.json", synthetic_run(MATRIX, seed=11))
    a2 = _write(tmp_path, "a2.json", synthetic_run(MATRIX, seed=12))
    b1 = _write(tmp_path, "b1.json", _slow_whole_bench(synthetic_run(MATRIX, seed=13), bad, 1.6))
    b2 = _write(tmp_path, "b2.json", synthetic_run(MATRIX, seed=14))
    assert cli(["gate", a1, b1, "--metric", "time"]) == 1
    capsys.readouterr()
    assert cli(["gate", f"{a1},{a2}", f"{b1},{b2}", "--metric", "time"]) == 0
    # a real regression is in every run of its side, so it survives the merge
    p1 = _write(tmp_path, "p1.json", synthetic_run(MATRIX, seed=15, shift={"adam": 0.3}))
    p2 = _write(tmp_path, "p2.json", synthetic_run(MATRIX, seed=16, shift={"adam": 0.3}))
    assert cli(["gate", f"{a1},{a2}", f"{p1},{p2}", "--metric", "time"]) == 1
    # one side's runs must share their settings
    t2 = _write(tmp_path, "t2.json", synthetic_run(MATRIX, seed=17, threads=2))
    assert cli(["gate", f"{a1},{t2}", b2]) == 2
    assert "different settings" in capsys.readouterr().err


def test_references_pair_whatever_optimizer_measured_them():
    """A full run measures the phases with its first optimizer (sgd); a run of one user optimizer
    (--optimizer adam=...) with that one. The drift still comes from forward/backward of each size."""
    full = [b for b in MATRIX]
    only_adam = [Bench("adam", b.size, b.phase, b.impl, b.layout, b.dtype, b.device, b.seconds, b.instructions)
                 for b in MATRIX if b.optimizer == "adam" or b.phase in ("forward", "backward", "zero_grad")]
    base = parse_run(synthetic_run(full, seed=21))
    cur = parse_run(synthetic_run(only_adam, seed=22, drift={1: 1.2, 10**3: 1.3, 10**6: 1.5}))
    res = compare_runs(base, cur, metric="time")
    assert set(res.drift) == {"cpu n=1", "cpu n=1e3", "cpu n=1e6"}
    assert res.drift["cpu n=1e6"] == pytest.approx(1.5, rel=0.1)
    assert res.regressed == []
    planted = parse_run(synthetic_run(only_adam, seed=23, shift={"adam": 0.25}, drift={1: 1.2, 10**3: 1.3, 10**6: 1.5}))
    assert compare_runs(base, planted, metric="time").regressed


# Processes of one shared host, minutes apart: each process's sizes drift on their own (a busier core,
# another co-tenant phase: 0.85-1.4x), each bench +-8 % of its own on top, and the in-round reference
# (forward+backward timed in the round's setup) shares that moment's drift up to 1.5 % (measured: two
# processes' fused Adam step at 1e3 over its reference agreed to 1-3 %, raw minima differed by up to 60 %).
def _process(seed: int, shift=None, ref: float | None = 0.015, bench_sigma: float = 0.08):
    import random

    rng = random.Random(10_000 + seed)
    drift = {n: rng.uniform(0.85, 1.4) for n in (1, 10**3, 10**6)}
    return synthetic_run(MATRIX, seed=seed, drift=drift, bench_sigma=bench_sigma, sigma=0.03, preempt_p=0.1,
                         shift=shift, in_round_ref=ref)


def _side(tmp_path, name, seeds, **kw) -> str:
    return ",".join(_write(tmp_path, f"{name}_{s}.json", _process(s, **kw)) for s in seeds)


def test_replicate_runs_per_side_detect_a_planted_20_percent_and_pass_unchanged_code(tmp_path):
    """The CI protocol: two processes per side, interleaved. The noise then comes from the replicates
    (the spread between a side's own processes), and each figure is divided by its in-round reference:
    per-process drifts up to 1.4x cancel, a planted +20 % on Adam is flagged in every pair at about its
    true size, and no unchanged pair cries wolf."""
    fa = detected = 0
    for s in range(20):
        base = _side(tmp_path, f"b{s}", (100 * s + 1, 100 * s + 2))
        same = _side(tmp_path, f"u{s}", (100 * s + 3, 100 * s + 4))
        planted = _side(tmp_path, f"p{s}", (100 * s + 5, 100 * s + 6), shift={"adam": 0.2})
        res = gate_files(base, same, metric="time")
        assert res.replicates == {"base": 2, "cur": 2} and res.replicate_sd
        fa += bool(res.regressed)
        res = gate_files(base, planted, metric="time")
        detected += bool(res.regressed)
        assert all(lab.startswith("adam-") and lab.endswith(("-epoch", "-step")) for lab in _flagged(res))
        assert all(1.1 < v.ratio < 1.35 for v in res.regressed), [(v.label, v.ratio) for v in res.regressed]
    assert fa == 0
    assert detected == 20


def test_replicates_that_disagree_widen_the_band_instead_of_crying_wolf(tmp_path):
    """No in-round reference and each bench +-15 % from process to process: the replicates spread, the
    band follows them, and unchanged pairs pass (what a noisy runner looks like to the gate)."""
    for s in range(20):
        base = _side(tmp_path, f"b{s}", (100 * s + 1, 100 * s + 2), ref=None, bench_sigma=0.15)
        same = _side(tmp_path, f"u{s}", (100 * s + 3, 100 * s + 4), ref=None, bench_sigma=0.15)
        res = gate_files(base, same, metric="time")
        assert res.regressed == [], (s, [(v.label, round(v.ratio, 3), round(v.noise, 3)) for v in res.regressed])
        assert max(res.replicate_sd.values()) > 0.05


def test_replicate_noise_is_printed_with_the_table(tmp_path):
    from optbench.gate import format_table

    base = _side(tmp_path, "b", (1, 2))
    cur = _side(tmp_path, "c", (3, 4))
    text = format_table(gate_files(base, cur, metric="time"))
    assert "from 2+2 replicate runs" in text and "cpu n=1e3" in text
