"""Harness overhead and loop parity.

* The suite's per-epoch figure for the n=1 seed loop (SGD on 3x^2 - 2x + 3, one parameter) against a
  bare ``timeit`` loop over the same five steps, both measured in this one run, interleaved. The ratio
  is a RECORDED figure (``extra_info``, shown by ``optbench report`` against the spec's 5 % bound),
  never an assertion: on a shared machine a timing ratio moves with co-tenants, and a benchmark run
  must not fail on noise.
* ``LoopState.epoch`` does exactly what :func:`optbench.loop.run_loop` does (same losses, same x):
  an exact, timing-free check.
"""

from __future__ import annotations

import statistics
import timeit

import pytest
import torch

from optbench.bench.cases import LoopState, get_case, seed_loss
from optbench.bench.timing import time_rounds
from optbench.loop import run_loop

# The spec's bound on the harness overhead, reported next to the measured ratio (not asserted).
OVERHEAD_BOUND = 0.05


def _seed_state(name: str = "sgd") -> LoopState:
    return LoopState(get_case(name), "forloop", 1, "flat", "cpu", torch.float32)


@pytest.mark.bench
def test_harness_overhead_n1(benchmark):
    st = _seed_state()
    st.warm_up(3)
    # the bare loop: the same objects, the five steps written out inline, timed by timeit
    g = {"opt": st.opt, "params": st.params, "seed_loss": seed_loss, "losses": st.losses}
    bare_stmt = "opt.zero_grad(); loss = seed_loss(params); loss.backward(); opt.step(); losses.append(float(loss.detach().sum()))"
    bare = timeit.Timer(bare_stmt, globals=g)
    number = 50
    suite_blocks, bare_blocks = [], []
    for _ in range(31):  # interleaved blocks: the suite's timed call (time_rounds, per call) vs the bare loop
        suite_blocks.append(statistics.median(time_rounds(st.epoch, rounds=number, iterations=1)))
        # per call too, and the median of the block: a block timed as one chunk absorbs every preemption
        # on a loaded host (measured: bare 140 µs/epoch against 56 µs per call, a ratio of 0.41)
        bare_blocks.append(statistics.median(bare.repeat(repeat=number, number=1)))
        st.losses.clear()
    # paired per-block ratios: drift between blocks cancels, the harness difference remains
    paired = statistics.median(s_ / b_ for s_, b_ in zip(suite_blocks, bare_blocks))
    # and the pytest-benchmark figure itself (what the report and the gate read), measured after
    benchmark.pedantic(st.epoch, rounds=300, iterations=1, warmup_rounds=10)
    bare_s = statistics.median(bare_blocks)
    pb = benchmark.stats.stats.median if getattr(benchmark, "stats", None) else statistics.median(suite_blocks)
    benchmark.extra_info.update(kind="overhead", bare_epoch_s=bare_s, suite_epoch_s=statistics.median(suite_blocks),
                                pytest_benchmark_epoch_s=pb, ratio_suite_over_bare=paired,
                                ratio_pytest_benchmark_over_bare=pb / bare_s, n=1, bound=OVERHEAD_BOUND,
                                within_bound=abs(paired - 1) <= OVERHEAD_BOUND,
                                suite_blocks_s=suite_blocks, bare_blocks_s=bare_blocks)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_epoch_matches_run_loop(name):
    a, b = _seed_state(name), _seed_state(name)
    for _ in range(5):
        a.epoch()
    traj = run_loop(b.loss_fn, b.params, b.opt, 5, record_x=False, check_finite=False)
    assert a.losses == traj.losses  # bitwise: the same ops in the same order
    assert torch.equal(a.params[0], b.params[0])
