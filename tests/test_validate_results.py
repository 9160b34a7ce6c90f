"""``optbench validate``'s results under --out store each convergence profile record once: in
profiles.json, which the report reads; results.json's verdicts name their slice of it."""

from __future__ import annotations

import json

from optbench.validation import Request, prepare_out, write_results
from optbench.verdict import MEASURED, PASS, CheckItem, Verdict


def _record(optimizer: str, target: str, start: int, lr: float, epochs: int | None) -> dict:
    return {"optimizer": optimizer, "source": f"{optimizer}=torch.optim:Adam", "target": target, "dim": 2,
            "start": start, "start_kind": "canonical" if start == 0 else "random", "lr": lr, "schedule": None,
            "epochs_to_tol": epochs, "budget": 2000, "diverged": False, "dtype": "float64", "device": "cpu",
            "tol_x": 1e-4, "tol_f": 1e-8, "final_dist": 1e-5 if epochs else 0.5, "final_gap": 1e-9 if epochs else 0.1}


def _verdicts() -> list[Verdict]:
    rosen = [_record("adam", "rosenbrock_2d", s, lr, 100 + 7 * s if lr > 1e-3 else None)
             for lr in (1e-3, 1e-2) for s in range(3)]
    beale = [_record("adam", "beale", s, 1e-2, 50 + s) for s in range(2)]
    return [
        Verdict("test_profile", "adam-foreach-rosenbrock_2d-float64-cpu", "P1", "adam", "cpu", MEASURED,
                data={"lr_band": "rosenbrock_2d: 0.01", "profiles": rosen, "converged": True, "schedule": None}),
        Verdict("test_p03_lr_zero", "adam-foreach-float64-cpu", "P3", "adam", "cpu", PASS),
        Verdict("test_profile", "adam-foreach-beale-float64-cpu", "P1", "adam", "cpu", MEASURED,
                data={"lr_band": "beale: 0.01", "profiles": beale, "converged": True, "schedule": None}),
    ]


def test_each_profile_record_is_written_once_and_results_json_points_at_it(tmp_path):
    verdicts = _verdicts()
    items = [CheckItem(v.test, v.id, v.prop, v.subject, run=lambda: None, measure=v.outcome == MEASURED)
             for v in verdicts]
    folder = prepare_out(tmp_path / "out")
    write_results(folder, Request(optimizers=["adam=torch.optim:Adam"]), items, verdicts, title="t")

    results = json.loads((folder / "results.json").read_text())
    records = json.loads((folder / "profiles.json").read_text())["records"]
    assert results["schema"] == "optbench-validate/2"
    # profiles.json holds every record, in verdict order, once
    assert records == [r for v in verdicts for r in (v.data or {}).get("profiles", [])]
    # results.json holds none of them: each verdict names its slice, which gives back its own records
    assert '"final_dist"' not in (folder / "results.json").read_text()
    for v, row in zip(verdicts, results["verdicts"]):
        if not (v.data or {}).get("profiles"):
            assert row["data"] is None
            continue
        ref = row["data"]["profiles"]
        assert ref["file"] == "profiles.json"
        assert records[ref["first"]: ref["first"] + ref["count"]] == v.data["profiles"]
        assert {k: x for k, x in row["data"].items() if k != "profiles"} == \
               {k: x for k, x in v.data.items() if k != "profiles"}
    assert v.data["profiles"] and isinstance(v.data["profiles"], list)  # the verdicts themselves are untouched
    # the report section of results.md is built from profiles.json
    assert "## Convergence profiles" in (folder / "results.md").read_text()
