"""``optbench run``: the seed reproduced from the command line, its files, and its errors.

In-process through ``optbench.cli.main`` (torch and matplotlib load once per session); one
subprocess checks ``python -m optbench run`` end to end.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from optbench.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
X80 = 0.32388909312437  # 1/3 - 4/3 (47/50)^80, the closed form of the seed


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        rc = main(["run", *argv])
    except SystemExit as exc:  # argparse's own errors (missing value, unknown flag)
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def _fields(out: str) -> dict[str, str]:
    """``name: value`` lines of the printed summary."""
    return {m.group(1).strip(): m.group(2).strip() for m in re.finditer(r"^([^:\n]+):\s+(.*)$", out, re.M)}


def test_default_run_reproduces_the_seed_and_writes_json_and_png(tmp_path, capsys):
    out_dir = tmp_path / "run"
    rc, out, err = _run(capsys, "--out", str(out_dir))
    assert rc == 0, err
    assert err == ""
    f = _fields(out)
    assert out.startswith("seed_quadratic: f = 3*x**2 - 2*x + 3; sgd lr 0.01, 80 epochs from x0 = -1, float32 on cpu")
    assert float(f["final x"]) == pytest.approx(X80, abs=1e-6)  # float32: see validation/test_seed.py
    assert f["analytic x*"] == "1/3 = 0.333333333333333"
    assert f["closed form"] == "x_k = x* + (x0 - x*)*(1 - 6*lr)**k = 1/3 - 4/3*(47/50)**k"
    assert f["factor 1 - 6*lr"] == "47/50 = 0.94"
    assert float(f["closed form x_80"]) == pytest.approx(X80, abs=1e-15)
    assert float(f["|x_final - x*|"]) == pytest.approx(1 / 3 - X80, rel=1e-3)
    assert 0 <= float(f["|x_final - closed form|"]) < 1e-6
    assert float(f["f(x_final) - f*"].split()[0]) == pytest.approx(3 * (1 / 3 - X80) ** 2, rel=1e-3)
    assert "(f* = 8/3 = 2.66666666666667)" in f["f(x_final) - f*"]
    assert f["wrote"] == f"{out_dir / 'trajectory.json'}, {out_dir / 'trajectory.png'}"

    data = json.loads((out_dir / "trajectory.json").read_text())
    meta = data["metadata"]
    assert (meta["target"], meta["optimizer"], meta["lr"], meta["dtype"], meta["device"]) == (
        "seed_quadratic", "sgd", 0.01, "float32", "cpu")
    assert meta["torch"] and meta["epochs"] == meta["epochs_run"] == 80
    traj = data["trajectory"]
    assert traj["epoch"] == list(range(81))
    assert len(traj["x"]) == len(traj["loss"]) == len(traj["closed_form_x"]) == 81
    assert traj["x"][0] == [-1.0] and traj["loss"][0] == 8.0
    assert traj["x"][-1][0] == float(f["final x"])
    assert traj["closed_form_x"][-1][0] == pytest.approx(X80, abs=1e-15)
    assert data["analytic"]["x_star"] == ["1/3"] and data["analytic"]["f_star"] == "8/3"
    assert data["closed_form"]["applies"] and data["closed_form"]["factor"] == "47/50"
    assert (out_dir / "trajectory.png").read_bytes()[:8] == PNG_MAGIC


def test_default_out_is_a_new_folder_each_time(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dirs = []
    for _ in range(2):
        rc, _, err = _run(capsys, "--epochs", "3", "--no-plot")
        assert rc == 0, err
        dirs.append(sorted((tmp_path / "reports" / "runs").iterdir()))
    assert len(dirs[0]) == 1 and len(dirs[1]) == 2  # never reused, even within the same second
    for d in dirs[1]:
        assert (d / "trajectory.json").is_file() and not (d / "trajectory.png").exists()


def test_refuses_to_overwrite_results(tmp_path, capsys):
    out_dir = tmp_path / "run"
    assert _run(capsys, "--out", str(out_dir), "--epochs", "3", "--no-plot")[0] == 0
    before = (out_dir / "trajectory.json").read_bytes()
    rc, out, err = _run(capsys, "--out", str(out_dir), "--epochs", "5")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("optbench run: error: --out ") and "already holds results" in err and "--force" in err
    assert (out_dir / "trajectory.json").read_bytes() == before
    rc, _, err = _run(capsys, "--out", str(out_dir), "--epochs", "5", "--force", "--no-plot")
    assert rc == 0, err
    assert json.loads((out_dir / "trajectory.json").read_text())["metadata"]["epochs"] == 5


@pytest.mark.parametrize(
    "argv, needle",
    [
        pytest.param(["--lr", "abc"], "lr 'abc' is not a number", id="lr-not-a-number"),
        pytest.param(["--lr", "-0.1"], "must be positive", id="lr-negative"),
        pytest.param(["--epochs", "ten"], "not a whole number", id="epochs-not-an-int"),
        pytest.param(["--epochs", "0"], "at least 1", id="epochs-zero"),
        pytest.param(["--dtype", "float8"], "unknown dtype", id="dtype-unknown"),
        pytest.param(["--device", "tpu"], "device", id="device-unknown"),
        pytest.param(["--optimizer", "nosuch"], "unknown optimizer 'nosuch'", id="optimizer-unknown"),
        pytest.param(["--optimizer", "no_such_mod:Opt"], "module 'no_such_mod' not found", id="optimizer-spec-missing"),
        pytest.param(["--target", "nosuch"], "unknown target 'nosuch'", id="target-unknown"),
        pytest.param(["--start", "1,2"], "2 coordinate(s) but seed_quadratic is 1-dimensional", id="start-wrong-dim"),
        pytest.param(["--start", "x"], "not a number", id="start-not-a-number"),
        pytest.param(["--optimizer", "adam", "--momentum", "0.9"], "no momentum argument", id="momentum-unsupported"),
        pytest.param(["--momentum", "2"], "must be in [0, 1)", id="momentum-out-of-range"),
        pytest.param(["--lr"], "expected one argument", id="lr-missing-value"),
        pytest.param(["--bogus"], "unrecognized arguments: --bogus", id="unknown-flag"),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(tmp_path, capsys, argv, needle):
    rc, out, err = _run(capsys, *argv, "--out", str(tmp_path / "run"))
    assert rc == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("optbench run: error: "), err
    assert needle in err
    assert not (tmp_path / "run" / "trajectory.json").exists()


def test_divergence_exit_1_and_json_written(tmp_path, capsys):
    out_dir = tmp_path / "run"
    rc, out, err = _run(capsys, "--lr", "0.35", "--epochs", "500", "--out", str(out_dir))
    assert rc == 1
    assert out == "" and err.count("\n") == 1
    assert err.startswith("optbench run: diverged: loss or x became non-finite at epoch 457 of 500")
    assert "stable only for lr < 1/3" in err
    data = json.loads((out_dir / "trajectory.json").read_text())  # valid JSON: inf written as null
    assert data["result"]["stopped"] == "nonfinite" and data["result"]["nonfinite_epoch"] == 457
    assert data["metadata"]["epochs_run"] == 458
    assert data["trajectory"]["loss"][457] is None and data["trajectory"]["loss"][456] > 1e38
    assert (out_dir / "trajectory.png").read_bytes()[:8] == PNG_MAGIC


def test_closed_form_does_not_apply_to_adam(tmp_path, capsys):
    rc, out, err = _run(capsys, "--optimizer", "Adam", "--lr", "0.1", "--no-plot", "--out", str(tmp_path / "run"))
    assert rc == 0, err
    f = _fields(out)
    assert f["closed form"].startswith("does not apply: it models plain gradient descent (SGD), not adam")
    assert "|x_final - closed form|" not in f
    assert abs(float(f["final x"]) - 1 / 3) < 1e-2


def test_two_dimensional_target_with_start(tmp_path, capsys):
    rc, out, err = _run(capsys, "--target", "booth", "--lr", "1/32", "--start", "0,0", "--dtype", "float64",
                        "--epochs", "200", "--no-plot", "--out", str(tmp_path / "run"))
    assert rc == 0, err
    f = _fields(out)
    x1, x2 = (float(v) for v in f["final x"].split(","))
    assert (x1, x2) == (pytest.approx(1, abs=1e-5), pytest.approx(3, abs=1e-5))
    assert f["analytic x*"] == "(1, 3)"
    assert float(f["|x_final - closed form|"]) < 1e-14


def test_python_dash_m_optbench_run(tmp_path):
    out_dir = tmp_path / "run"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        # --no-plot: matplotlib's import and a render are tested in-process above; this checks the entry point
        [sys.executable, "-m", "optbench", "run", "--out", str(out_dir), "--no-plot"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    f = _fields(proc.stdout)
    assert float(f["final x"]) == pytest.approx(X80, abs=1e-6)
    assert f["closed form"] == "x_k = x* + (x0 - x*)*(1 - 6*lr)**k = 1/3 - 4/3*(47/50)**k"
    assert json.loads((out_dir / "trajectory.json").read_text())["metadata"]["target"] == "seed_quadratic"
    assert not (out_dir / "trajectory.png").exists()
