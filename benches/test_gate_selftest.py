"""The gate's real-timing self-test, as a RECORDED figure (it moved here from tests/: a verdict on real
timings of a shared machine is a measurement, not a pass/fail fact about the code).

An interleaved trio measured in this process (rounds of base Adam, an unchanged rerun and the planted
SlowAdam alternate, so load changes hit all three alike), at 1e3 parameters (dispatch-bound: the plant's
extra foreach call) and 1e6 (memory-bound: its extra pass over the first moment), step phase, for-loop
and foreach. The gate's verdicts are stored in ``extra_info`` and shown by ``optbench report``; the
separate-process rates (the CI protocol) come from ``python -m optbench.bench.selftest``.
"""

from __future__ import annotations

import pytest
import torch

from optbench.bench.cases import get_case, user_cases
from optbench.bench.results import parse_run
from optbench.bench.runner import measure_interleaved
from optbench.gate import compare_runs


@pytest.mark.bench
def test_gate_selftest_interleaved(benchmark):
    adam = get_case("adam")
    (slow,) = user_cases(["adam=optbench.bench.planted:SlowAdam"])
    specs = lambda c: [(c, impl, n, "step") for impl in ("forloop", "foreach") for n in (10**3, 10**6)]  # noqa: E731
    base, rerun, planted = (parse_run(d, name) for d, name in zip(
        measure_interleaved([specs(adam), specs(adam), specs(slow)], rounds=100, stream_elems=2**20),
        ("base", "rerun", "planted")))
    verdicts = {}

    def judge():
        # the runner's rounds carry no per-size reference phases: compared raw (rounds interleaved instead)
        ok = compare_runs(base, rerun, metric="time", drift="none")
        bad = compare_runs(base, planted, metric="time", drift="none")
        return ok, bad

    ok, bad = benchmark.pedantic(judge, rounds=1, iterations=1)
    for tag, res in (("unchanged", ok), ("planted", bad)):
        for v in res.verdicts:
            verdicts[f"{tag} {v.label}"] = {"ratio": v.ratio, "noise": v.noise, "verdict": v.verdict}
    benchmark.extra_info.update(kind="selftest", what="interleaved trio in one process, step at 1e3 and 1e6, "
                                                       "min of the CPU time per round",
                                verdicts=verdicts, unchanged_exit=ok.exit_code, planted_exit=bad.exit_code,
                                as_expected=ok.exit_code == 0 and bad.exit_code == 1,
                                threads=torch.get_num_threads())
