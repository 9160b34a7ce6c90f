"""What each optimizer costs in memory, for every optimizer x implementation x size the timing benches run.

Ids read as ``test_memory[adam-foreach-flat-1e6-float32-cpu]``: the optimizers, implementations (the compiled
one where ``benches/test_loop.py`` benches it: Adam at 1e6 by default, everywhere with
``OPTBENCH_BENCH_FULL=1``) and sizes of the per-epoch benches, flat float32. Each result's ``extra_info``
carries ``state_bytes_per_param`` (the optimizer's state after the warm-up, per parameter element) and
``step_peak_bytes`` (the transient peak of one warm ``step()`` above parameters + gradients + state; CPU:
torch.profiler's allocator events, CUDA: ``torch.cuda.max_memory_allocated``), measured by
:mod:`optbench.bench.memory`.

This is a pass of its own, never a timed round: the profiler slows the step it watches, so these results have
``kind = "memory"`` and their pytest-benchmark times (one profiled call) are not timings: the report reads only
their memory figures, and the gate and ``optbench compare`` skip them.
"""

from __future__ import annotations

import pytest
import torch

from optbench.bench.cases import BenchSpec, LoopState
from optbench.bench.memory import measure_step, model_state_bytes_fp32
from optbench.bench.results import fmt_size
from optbench.devices import parse_dtype
from pytest_optbench.plugin import options
from test_loop import COMPILE_AT, FULL, _cases, _device_marks, _sizes  # the timing benches' matrix


def _matrix(config):
    out = []
    for device in options(config).devices:
        for case in _cases(config):
            for size in _sizes(config, device):
                for impl in case.impls_on(device):
                    if impl == "compiled" and not FULL and (case.name, size) not in COMPILE_AT:
                        continue
                    spec = BenchSpec(case, impl, "flat", size, "float32", device, "step")
                    out.append(pytest.param(spec, id=f"{case.name}-{impl}-flat-{fmt_size(size)}-float32-{device}",
                                            marks=_device_marks(device)))
    return out


def pytest_generate_tests(metafunc):
    if "mspec" in metafunc.fixturenames:
        metafunc.parametrize("mspec", _matrix(metafunc.config))


@pytest.mark.bench
def test_memory(benchmark, mspec):
    """State bytes per parameter and the transient peak of one warm step (kind "memory": not a timing)."""
    b = mspec
    try:
        st = LoopState(b.case, b.impl, b.size, b.layout, b.device, parse_dtype(b.dtype))
        st.warm_up(2)  # the state exists after the first step; a compiled step compiles here
    except (RuntimeError, ValueError, TypeError, NotImplementedError, AssertionError) as exc:
        msg = " ".join(str(exc).split())[:160]
        pytest.skip(f"{b.case.name} {b.impl} not supported for {b.dtype} on {b.device}: {type(exc).__name__}: {msg}")
    st.prepare_grads()
    got = {}

    def measure():
        # the previous step runs under the same profile, so the blocks the measured step frees are known
        got["m"] = measure_step(st.opt, st.params, st.step, st.device, before=st.step)

    benchmark.group = f"memory {b.device} {b.dtype} {b.layout} n={fmt_size(b.size)}"
    benchmark.pedantic(measure, rounds=1, iterations=1)
    m = got["m"]
    model = model_state_bytes_fp32(b.case.step_bytes_fp32)
    benchmark.extra_info.update(
        kind="memory", optimizer=b.case.name, impl=b.impl, layout=b.layout, size=b.size, device=b.device,
        dtype=str(st.dtype).removeprefix("torch."), phase="step", source=b.case.source,
        threads=torch.get_num_threads(), model_state_bytes_per_param=model, **m.as_dict())
