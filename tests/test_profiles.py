"""Convergence profiles (optbench.report.profiles): performance profiles (Dolan & Moré 2002), data
profiles (Moré & Wild 2009), the table and the report section, on hand-built record sets whose
profile values follow from the definitions. Expected fractions are derived in the comments from the
costs, never copied from the code's output."""

from __future__ import annotations

import json
import math
import random
from fractions import Fraction

import pytest

from optbench.errors import ConfigError
from optbench.report import profiles as P

INF = math.inf
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def rec(optimizer="adam", target="rosenbrock_2d", start=0, lr=0.01, epochs=None, *, dim=2, budget=1000,
        diverged=False, schedule=None, dtype="float64", device="cpu"):
    return {"optimizer": optimizer, "source": f"torch.optim.{optimizer}", "target": target, "dim": dim,
            "start": start, "start_kind": "canonical" if start == 0 else "random", "lr": lr, "schedule": schedule,
            "epochs_to_tol": epochs, "budget": budget, "diverged": diverged, "dtype": dtype, "device": device,
            "tol_x": 1e-4, "tol_f": 1e-8, "final_dist": 3e-5, "final_gap": 1e-10}


def write(path, records, *, schema=P.SCHEMA, torch="2.13.0"):
    path.write_text(json.dumps({"schema": schema, "torch": torch, "records": records}))
    return path


# 3 solvers x 4 problems. p3 is solved by nobody; p0 is a tie at the best (a and b).
#            p0   p1   p2   p3
COSTS = {"a": [10, 20, INF, INF],
         "b": [10, 20, 30, INF],
         "c": [40, 10, 90, INF]}
# best per problem: p0 10, p1 10, p2 30, p3 none
# ratios  a: 1, 2, inf, inf     b: 1, 2, 1, inf     c: 4, 1, 3, inf


def test_performance_profile_follows_dolan_more_with_ties_and_a_problem_nobody_solved():
    taus = [1.0, 1.99, 2.0, 3.0, 4.0, 1e9]
    rho = P.performance_profile(COSTS, taus)
    # the problem nobody solved stays in the denominator (4), so no curve reaches 1 (paper's r_M)
    assert rho["a"] == [1 / 4, 1 / 4, 2 / 4, 2 / 4, 2 / 4, 2 / 4]
    assert rho["b"] == [2 / 4, 2 / 4, 3 / 4, 3 / 4, 3 / 4, 3 / 4]  # the tie at p0 gives b ratio 1 too
    assert rho["c"] == [1 / 4, 1 / 4, 1 / 4, 2 / 4, 3 / 4, 3 / 4]


def test_performance_profile_matches_a_brute_force_count_on_random_costs():
    rnd = random.Random(7)
    n_prob, solvers = 25, ["s0", "s1", "s2", "s3"]
    # costs from a small set so that ties are frequent; about 1 in 5 unsolved
    costs = {s: [INF if rnd.random() < 0.2 else rnd.choice([0, 1, 3, 5, 10, 12, 30]) for _ in range(n_prob)]
             for s in solvers}
    taus = [1, 1.5, 2, 2.5, 3, 4, 6, 10, 12, 31]
    rho = P.performance_profile(costs, taus)
    for s in solvers:
        for tau, got in zip(taus, rho[s]):
            # exact arithmetic: t <= tau * t_min, with 0 epochs counted as 1 (the module's stated rule)
            want = 0
            for p in range(n_prob):
                t = costs[s][p]
                t_min = min(costs[q][p] for q in solvers)
                want += math.isfinite(t) and Fraction(max(t, 1)) <= Fraction(tau) * max(t_min, 1)
            assert got == want / n_prob, (s, tau)


def test_a_zero_epoch_cost_counts_as_one_epoch_in_ratios():
    rho = P.performance_profile({"a": [0], "b": [5], "c": [0]}, [1.0, 4.99, 5.0])
    assert rho["a"] == rho["c"] == [1.0, 1.0, 1.0]
    assert rho["b"] == [0.0, 0.0, 1.0]  # 5 / max(0, 1) = 5


def test_data_profile_scales_by_the_dimension_plus_one():
    # same cost, n_p = 1 and n_p = 4: t/(n+1) = 20/2 = 10 and 20/5 = 4 (with n alone: 20 and 5)
    costs = {"a": [20, 20], "b": [INF, 8]}
    d = P.data_profile(costs, [1, 4], [1.59, 1.6, 3.99, 4.0, 4.5, 9.99, 10.0])
    assert d["a"] == [0, 0, 0, 1 / 2, 1 / 2, 1 / 2, 1.0]
    assert d["b"] == [0, 1 / 2, 1 / 2, 1 / 2, 1 / 2, 1 / 2, 1 / 2]  # 8/5 = 1.6; the unsolved one never counts


def test_data_profile_of_the_shared_cost_table():
    dims = [2, 2, 3, 3]  # scaled a: 10/3, 20/3, inf, inf;  b: 10/3, 20/3, 30/4, inf;  c: 40/3, 10/3, 90/4, inf
    d = P.data_profile(COSTS, dims, [3.3, 10 / 3, 7.0, 7.5, 14.0, 22.5, 1e9])
    assert d["a"] == [0, 1 / 4, 2 / 4, 2 / 4, 2 / 4, 2 / 4, 2 / 4]
    assert d["b"] == [0, 1 / 4, 2 / 4, 3 / 4, 3 / 4, 3 / 4, 3 / 4]
    assert d["c"] == [0, 1 / 4, 1 / 4, 1 / 4, 2 / 4, 3 / 4, 3 / 4]


@pytest.mark.parametrize("bad", [{"a": [1, 2], "b": [1]}, {"a": [float("nan")]}, {"a": [-1]}, {}],
                         ids=["ragged", "nan", "negative", "empty"])
def test_bad_cost_tables_are_one_line_errors(bad):
    with pytest.raises(ConfigError) as err:
        P.performance_profile(bad, [1.0])
    assert "\n" not in str(err.value)


def test_data_profile_refuses_dimensions_that_do_not_match_the_problems():
    with pytest.raises(ConfigError, match="one cost per problem"):
        P.data_profile({"a": [1, 2]}, [2], [1.0])
    with pytest.raises(ConfigError, match="integers >= 1"):
        P.data_profile({"a": [1]}, [0], [1.0])


# ---------------------------------------------------------------------------- records -> costs

GRID = [
    # adam on rosenbrock/0: lr 0.1 diverges, 0.01 needs 300, 0.001 needs 500 -> best 300
    rec("adam", "rosenbrock_2d", 0, 0.1, None, diverged=True),
    rec("adam", "rosenbrock_2d", 0, 0.01, 300),
    rec("adam", "rosenbrock_2d", 0, 0.001, 500),
    # adam on rosenbrock/1: one lr diverges, the other runs out of budget -> inf
    rec("adam", "rosenbrock_2d", 1, 0.01, None, diverged=True),
    rec("adam", "rosenbrock_2d", 1, 0.001, None),
    # adam on beale/0 (dim 2): tie 40 at two lrs -> 40, shown at the smaller lr
    rec("adam", "beale", 0, 0.01, 40),
    rec("adam", "beale", 0, 0.001, 40),
    # sgd: 600 on rosenbrock/0, every lr diverges on rosenbrock/1, 10 on beale/0
    rec("sgd", "rosenbrock_2d", 0, 0.001, 600),
    rec("sgd", "rosenbrock_2d", 1, 0.1, None, diverged=True),
    rec("sgd", "rosenbrock_2d", 1, 0.01, None, diverged=True),
    rec("sgd", "beale", 0, 0.1, 10),
    rec("sgd", "beale", 0, 0.01, 80),
]


def test_best_lr_costs_take_the_fewest_epochs_over_each_grid():
    solvers, problems, costs = P.problem_costs(GRID)
    assert solvers == ["adam", "sgd"]
    assert [(p.target, p.start, p.dim) for p in problems] == [("beale", 0, 2), ("rosenbrock_2d", 0, 2),
                                                             ("rosenbrock_2d", 1, 2)]
    assert [p.label for p in problems] == ["beale/0", "rosenbrock_2d/0", "rosenbrock_2d/1"]
    assert costs["adam"] == [40, 300, INF]
    assert costs["sgd"] == [10, 600, INF]


def test_per_lr_keeps_each_lr_as_its_own_solver():
    solvers, _, costs = P.problem_costs(GRID, per="lr")
    assert set(solvers) == {"adam@lr=0.1", "adam@lr=0.01", "adam@lr=0.001", "sgd@lr=0.1", "sgd@lr=0.01",
                            "sgd@lr=0.001"}
    # problems: beale/0, rosenbrock_2d/0, rosenbrock_2d/1; an lr never run on a problem is unsolved there
    assert costs["adam@lr=0.01"] == [40, 300, INF]
    assert costs["adam@lr=0.001"] == [40, 500, INF]
    assert costs["adam@lr=0.1"] == [INF, INF, INF]
    assert costs["sgd@lr=0.1"] == [10, INF, INF]
    assert costs["sgd@lr=0.01"] == [80, INF, INF]
    assert costs["sgd@lr=0.001"] == [INF, 600, INF]


def test_per_lr_names_the_schedule_and_keeps_close_lrs_apart():
    recs = [rec("lion", lr=1e-3, epochs=50, schedule="ExponentialLR(gamma=0.99)"),
            rec("lion", lr=1e-3, epochs=70),
            rec("lion", lr=0.0010000001, epochs=90)]
    _, _, costs = P.problem_costs(recs, per="lr")
    assert costs == {"lion@lr=0.001+ExponentialLR(gamma=0.99)": [50], "lion@lr=0.001": [70],
                     "lion@lr=0.0010000001": [90]}
    # best_lr picks the scheduled run: it is the fastest
    assert P.problem_costs(recs)[2] == {"lion": [50]}


def test_profiles_of_records_use_the_recorded_dimension():
    recs = [rec("a", "quad_1d", 0, epochs=20, dim=1), rec("a", "quad_4d", 0, epochs=20, dim=4),
            rec("b", "quad_1d", 0, epochs=None, dim=1), rec("b", "quad_4d", 0, epochs=8, dim=4)]
    _, problems, costs = P.problem_costs(recs)
    d = P.data_profile(costs, [p.dim for p in problems], [4.5, 10.0])
    assert d == {"a": [1 / 2, 1.0], "b": [1 / 2, 1 / 2]}  # 20/5 = 4, 20/2 = 10, 8/5 = 1.6


def test_mixed_dtypes_are_separate_problems_not_a_best_of_both():
    recs = [rec("adam", epochs=100, dtype="float64"), rec("adam", epochs=900, dtype="float32"),
            rec("sgd", epochs=200, dtype="float64"), rec("sgd", epochs=300, dtype="float32")]
    _, problems, costs = P.problem_costs(recs)
    assert [p.label for p in problems] == ["rosenbrock_2d/0/float32/cpu", "rosenbrock_2d/0/float64/cpu"]
    assert costs == {"adam": [900, 100], "sgd": [300, 200]}


def test_a_later_duplicate_run_replaces_the_earlier_one(tmp_path):
    a = write(tmp_path / "a.json", [rec("adam", epochs=100), rec("sgd", epochs=50)])
    b = write(tmp_path / "b.json", [rec("adam", epochs=None)], torch="2.14.0")
    records = P.load_profiles([a, b])
    assert [r["torch"] for r in records] == ["2.13.0", "2.13.0", "2.14.0"]
    assert P.problem_costs(records)[2] == {"adam": [INF], "sgd": [50]}


def test_unknown_per_mode_is_refused():
    with pytest.raises(ConfigError, match="best_lr"):
        P.problem_costs(GRID, per="median")


# ----------------------------------------------------------------------------------- the table


def _rows(md):
    return {r.split(" | ")[0].strip("| "): [c.strip(" |") for c in r.split(" | ")[1:]] for r in md.splitlines()[2:]}


def test_table_cells_summary_rows_and_unsolved_markers():
    md = P.profiles_table_md(GRID)
    header = md.splitlines()[0]
    assert header.split(" | ")[1:] == ["adam", "sgd |"]
    rows = _rows(md)
    assert rows["beale/0 (n=2, budget 1000)"] == ["40 (lr=0.001)", "10 (lr=0.1)"]  # tie -> smaller lr
    assert rows["rosenbrock_2d/0 (n=2, budget 1000)"] == ["300 (lr=0.01)", "600 (lr=0.001)"]
    # adam: one lr diverged, one ran out of budget -> "—"; sgd: every lr diverged -> "diverged"
    assert rows["rosenbrock_2d/1 (n=2, budget 1000)"] == ["—", "diverged"]
    # costs adam [40, 300, inf], sgd [10, 600, inf]; ratios adam [4, 1, inf], sgd [1, 2, inf]
    assert rows["**solved**"] == ["2/3", "2/3"]
    assert rows["**ρ(1)**"] == [f"{1 / 3:.2f}", f"{1 / 3:.2f}"]
    assert rows["**ρ(4)**"] == [f"{2 / 3:.2f}", f"{2 / 3:.2f}"]


def test_table_marks_a_problem_an_optimizer_never_ran():
    md = P.profiles_table_md([rec("adam", "beale", 0, epochs=5), rec("sgd", "himmelblau", 0, epochs=7)])
    rows = _rows(md)
    assert rows["beale/0 (n=2, budget 1000)"] == ["5 (lr=0.01)", "not run"]
    assert rows["himmelblau/0 (n=2, budget 1000)"] == ["not run", "7 (lr=0.01)"]


# --------------------------------------------------------------------------------- bad files


def _no_file(tmp_path):
    return tmp_path / "absent.json"


def _corrupt(tmp_path):
    (p := tmp_path / "corrupt.json").write_text('{"schema": "optbench-profiles/1", "records": [')
    return p


def _schema(tmp_path):
    return write(tmp_path / "old.json", [rec(epochs=1)], schema="optbench-profiles/0")


def _not_object(tmp_path):
    (p := tmp_path / "list.json").write_text("[]")
    return p


def _no_records(tmp_path):
    (p := tmp_path / "norecords.json").write_text(json.dumps({"schema": P.SCHEMA}))
    return p


def _empty(tmp_path):
    return write(tmp_path / "empty.json", [])


def _missing_field(tmp_path):
    r = rec(epochs=1)
    del r["epochs_to_tol"]
    return write(tmp_path / "missing.json", [r])


def _wrong_type(tmp_path):
    return write(tmp_path / "type.json", [rec(epochs="12")])


def _bool_as_count(tmp_path):
    return write(tmp_path / "bool.json", [rec(epochs=True)])


def _diverged_but_solved(tmp_path):
    return write(tmp_path / "div.json", [rec(epochs=10, diverged=True)])


def _over_budget(tmp_path):
    return write(tmp_path / "budget.json", [rec(epochs=1001, budget=1000)])


def _two_dims(tmp_path):
    return write(tmp_path / "dims.json", [rec(epochs=1, dim=2), rec("sgd", start=1, epochs=1, dim=3)])


BAD = {"missing": (_no_file, "does not exist"), "corrupt": (_corrupt, "not valid JSON"),
       "schema": (_schema, "expected 'optbench-profiles/1'"), "not-an-object": (_not_object, "schema"),
       "no-records-list": (_no_records, "'records'"), "no-records": (_empty, "hold no records"),
       "missing-field": (_missing_field, "lacks the field 'epochs_to_tol'"),
       "wrong-type": (_wrong_type, "epochs_to_tol = '12'"), "bool-as-count": (_bool_as_count, "epochs_to_tol = True"),
       "diverged-but-solved": (_diverged_but_solved, "diverged = true"),
       "over-budget": (_over_budget, "outside [0, budget = 1000]"), "two-dims": (_two_dims, "dim 2 and dim 3")}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_profiles_files_are_one_line_errors_naming_the_file(case, tmp_path):
    make, says = BAD[case]
    path = make(tmp_path)
    with pytest.raises(ConfigError) as err:
        P.problem_costs(P.load_profiles(path))
    msg = str(err.value)
    assert "\n" not in msg and says in msg
    if case != "two-dims":  # a cross-record inconsistency names the target, not one file
        assert str(path) in msg


def test_render_section_reports_a_bad_file_before_writing_anything(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError):
        P.render_section([_corrupt(tmp_path)], out)
    assert not out.exists()


# ---------------------------------------------------------------------------- plots and section


def _png_ok(path):
    data = path.read_bytes()
    return len(data) > 1000 and data.startswith(PNG_MAGIC)


def test_plot_profiles_writes_two_pngs_even_when_nothing_was_solved(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    out = tmp_path / "figs"
    paths = P.plot_profiles([rec("adam", epochs=None), rec("sgd", epochs=None, diverged=True)], out)
    assert [p.name for p in paths] == [P.PERFORMANCE_PNG, P.DATA_PNG]
    assert all(p.parent == out and _png_ok(p) for p in paths)
    assert sorted(x.name for x in out.iterdir()) == sorted([P.PERFORMANCE_PNG, P.DATA_PNG])  # no temp files left


def test_render_section_embeds_text_table_and_links_to_written_images(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    src = write(tmp_path / "profiles.json", GRID)
    out = tmp_path / "report"
    md = P.render_section([src], out)
    assert md.startswith("## Convergence profiles")
    assert "Dolan & Moré 2002" in md and "Moré & Wild 2009" in md and "torch 2.13.0" in md
    assert "3 problems" in md
    assert P.profiles_table_md(P.load_profiles(src)) in md
    links = [line[line.index("](") + 2:-1] for line in md.splitlines() if line.startswith("![")]
    assert links == [P.PERFORMANCE_PNG, P.DATA_PNG]
    assert all(_png_ok(out / name) for name in links)  # plot_profiles on the GRID: two real figures
    assert sorted(x.name for x in out.iterdir()) == sorted(links)
