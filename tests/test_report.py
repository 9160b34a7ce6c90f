"""optbench report: one folder per machine with index.md, a self-contained index.html and PNGs,
built from a real (tiny) measured run; never writes into a folder it did not create."""

from __future__ import annotations

import json

import pytest

from optbench.bench.cases import BUILTIN
from optbench.bench.runner import measure_run
from optbench.cli import main as cli


@pytest.fixture(scope="module")
def result_json(tmp_path_factory):
    specs = [(BUILTIN[o], impl, n, "epoch") for o in ("sgd", "adam") for impl in ("forloop", "foreach", "fused")
             for n in (1, 1000)]
    specs += [(BUILTIN["adam"], "foreach", n, ph) for n in (1, 1000) for ph in ("zero_grad", "forward", "backward", "step")]
    data = measure_run(specs, budget_s=0.005, min_rounds=3, stream_elems=2**20)
    p = tmp_path_factory.mktemp("res") / "bench.json"
    p.write_text(json.dumps(data))
    return p


def test_report_writes_markdown_html_and_plots(result_json, tmp_path, capsys):
    out = tmp_path / "reports"
    assert cli(["report", str(result_json), "--out", str(out), "--no-trajectories"]) == 0
    (folder,) = [d for d in out.iterdir() if d.is_dir()]
    md = (folder / "index.md").read_text()
    for col in ("µs/epoch", "ns/param", "GB/s", "% roofline"):
        assert col in md
    assert "Device: cpu" in md and "Phases alone" in md
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
