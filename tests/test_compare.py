"""optbench compare: two CPU runs at different thread counts side by side (synthetic seeded runs: no
timing in tests/), and the GPU crossover."""

from __future__ import annotations

import json

import pytest

from optbench.bench.results import Record
from optbench.bench.synthetic import default_matrix, synthetic_run
from optbench.cli import main as cli
from optbench.compare import crossover


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("cmp")
    benches = default_matrix(("sgd", "adam"), (1, 10**4), ("foreach",))
    paths = []
    for threads, drift in ((1, 1.0), (2, 0.6)):  # two threads: 1.7x faster
        p = d / f"t{threads}.json"
        p.write_text(json.dumps(synthetic_run(benches, seed=threads, drift=drift, threads=threads)))
        paths.append(p)
    return paths


def test_two_thread_counts_side_by_side(two_runs, tmp_path, capsys):
    out = tmp_path / "compare.md"
    assert cli(["compare", *map(str, two_runs), "--out", str(out)]) == 0
    text = out.read_text()
    assert "/1t µs/epoch" in text and "/2t µs/epoch" in text and "/2t speedup" in text and "% roof" in text
    assert text.count("| adam | foreach | cpu |") == 2 and "No CUDA results" in text
    assert "| adam | foreach | cpu |" in capsys.readouterr().out
    # rewriting its own file is fine; a user's file is refused
    assert cli(["compare", *map(str, two_runs), "--out", str(out)]) == 0
    user = tmp_path / "mine.md"
    user.write_text("my notes")
    assert cli(["compare", *map(str, two_runs), "--out", str(user)]) == 2
    assert user.read_text() == "my notes"


def test_needs_two_files(two_runs, capsys):
    assert cli(["compare", str(two_runs[0])]) == 2


def _rec(opt, device, size, t):
    return Record("x", opt, "foreach", "flat", size, size, device, "float32", "epoch", t, 0.0, 5)


def test_gpu_crossover_is_the_size_from_which_the_gpu_stays_faster():
    cpu = {("adam", "foreach", "cpu", n): _rec("adam", "cpu", n, n * 1e-9 + 1e-5) for n in (1, 10**3, 10**5, 10**7)}
    gpu = {("adam", "foreach", "cuda", n): _rec("adam", "cuda", n, n * 1e-11 + 5e-5) for n in (1, 10**3, 10**5, 10**7)}
    assert crossover(cpu, gpu) == {"adam": 10**5}
