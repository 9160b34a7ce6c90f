"""optbench report: one folder per machine with index.md, a self-contained index.html and PNGs,
built from a synthetic seeded run (no timing in tests/); shows instruction counts and recorded figures
beside the wall-clock ones; never writes into a folder it did not create."""

from __future__ import annotations

import json

import pytest

from optbench.bench.synthetic import Bench, default_matrix, synthetic_run
from optbench.cli import main as cli


def _with_recorded_figures(data: dict) -> dict:
    """Add what benches/ records instead of asserting: the harness overhead and the gate self-test."""
    data["benchmarks"].append({"name": "test_harness_overhead_n1", "group": None, "stats": data["benchmarks"][1]["stats"],
                               "extra_info": {"kind": "overhead", "ratio_suite_over_bare": 1.031, "bare_epoch_s": 80e-6,
                                              "pytest_benchmark_epoch_s": 83e-6, "ratio_pytest_benchmark_over_bare": 1.04,
                                              "bound": 0.05}})
    data["benchmarks"].append({"name": "test_gate_selftest_interleaved", "group": None,
                               "stats": data["benchmarks"][1]["stats"],
                               "extra_info": {"kind": "selftest", "what": "interleaved trio", "as_expected": True,
                                              "verdicts": {"unchanged adam-step": {"ratio": 1.01, "noise": 0.03, "verdict": "ok"},
                                                           "planted adam-step": {"ratio": 1.3, "noise": 0.03,
                                                                                 "verdict": "REGRESSED"}}}})
    return data


@pytest.fixture(scope="module")
def result_json(tmp_path_factory):
    benches = default_matrix(("sgd", "adam"), (1, 10**3, 10**6), ("forloop", "foreach", "fused"))
    benches.append(Bench("adam", 10**3, "epoch", "foreach", "mlp", seconds=2e-4))  # no instruction count
    data = _with_recorded_figures(synthetic_run(benches, seed=7, preempt_p=0.05))
    p = tmp_path_factory.mktemp("res") / "bench.json"
    p.write_text(json.dumps(data))
    return p


def test_report_writes_markdown_html_and_plots(result_json, tmp_path, capsys):
    out = tmp_path / "reports"
    assert cli(["report", str(result_json), "--out", str(out), "--no-trajectories"]) == 0
    (folder,) = [d for d in out.iterdir() if d.is_dir()]
    md = (folder / "index.md").read_text()
    for col in ("µs/epoch", "CPU µs", "ns/param", "GB/s", "% roofline", "instructions", "step instructions"):
        assert col in md
    assert "Device: cpu" in md and "Phases alone" in md
    # instruction counts beside the wall-clock figures, and the instruction run's time
    data = json.loads(result_json.read_text())
    counted = [b for b in data["benchmarks"] if "instructions" in b["extra_info"]]
    assert f"{len(counted)} benchmarks counted in one valgrind process in 60 s" in md
    adam_epoch = next(b for b in counted if b["name"] == "test_epoch[adam-fused-flat-1e6-float32-cpu]")
    assert f"{adam_epoch['extra_info']['instructions']:,.0f}" in md
    # figures recorded by benches/ instead of asserted
    assert "Harness overhead" in md and "1.031, within the ±5 % bound" in md
    assert "Gate self-test" in md and "planted adam-step: ratio 1.300" in md and "as expected" in md
    pngs = {p.name for p in folder.glob("*.png")}
    assert {"cost_vs_params_cpu.png", "speedup_cpu.png", "phases_cpu.png"} <= pngs
    html = (folder / "index.html").read_text()
    assert html.count("data:image/png;base64,") == len(pngs) and 'src="http' not in html and "](" not in html
    # rerunning rewrites optbench's own folder
    assert cli(["report", str(result_json), "--out", str(out), "--no-trajectories"]) == 0


def test_report_refuses_a_folder_it_did_not_write(result_json, tmp_path, capsys):
    out = tmp_path / "mine"
    (folder_parent := out).mkdir()
    # the machine folder name is derived from machine_info; pre-create it with a user's file
    from optbench.bench.results import load_run

    folder = folder_parent / load_run(result_json).machine
    folder.mkdir()
    (folder / "notes.md").write_text("mine")
    assert cli(["report", str(result_json), "--out", str(out), "--no-trajectories"]) == 2
    assert "not written by optbench" in capsys.readouterr().err
    assert (folder / "notes.md").read_text() == "mine"


def test_report_of_a_missing_file_is_a_one_line_error(tmp_path, capsys):
    assert cli(["report", str(tmp_path / "nope.json"), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_trajectory_paths_come_from_run_loop():
    from optbench.report.plots import compute_paths

    paths = compute_paths("himmelblau", epochs=50)
    assert {"sgd", "adam"} <= set(paths) and all(p.shape == (51, 2) for p in paths.values())
