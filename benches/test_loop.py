"""Per-epoch cost of the five-step loop, and of each phase alone, across optimizers, sizes,
layouts, implementations, devices and dtypes.

Ids read as: test_epoch[adam-foreach-flat-1e6-float32-cpu], test_phase[backward-adam-foreach-flat-1e6-float32-cpu].
The default matrix is trimmed to fit ``tox -e bench`` in 10 minutes on 2 cores: every optimizer x
implementation x size for flat float32 epochs; the MLP layout and bfloat16 (CPU: up to 1e5) at the
foreach implementation; the step alone for every optimizer and implementation (not compiled),
zero_grad/forward/backward alone once per size; torch.compile of the step for ``adam`` at 1e6 only
(compiling takes ~25 s here, reported apart as compile_time_s). ``OPTBENCH_BENCH_FULL=1`` runs the full cross product.
"""

from __future__ import annotations

import os

import pytest
import torch

from optbench.bench.cases import BenchSpec, LoopState, bytes_per_phase, cases_from_info, default_cases
from optbench.bench.machine import allocator_setting
from optbench.bench.results import fmt_size
from optbench.bench.timing import (CacheFlusher, CpuClock, choose_rounds, minor_faults, synchronize, time_rounds,
                                   timed)
from optbench.devices import cuda_skip_reason, parse_dtype
from pytest_optbench.plugin import options

CPU_SIZES = [1, 10**3, 10**5, 10**6, 10**7]
CUDA_SIZES = CPU_SIZES + [10**8]
PHASES_ALONE = ("zero_grad", "forward", "backward", "step")
FULL = os.environ.get("OPTBENCH_BENCH_FULL") == "1"
COMPILE_AT = {("adam", 10**6)}  # (optimizer, size) pairs that get the compiled impl by default
# bfloat16 on this CPU build is ~80x slower than float32 at 1e6 (no native bf16 vector path), so by
# default CPU bfloat16 stops at 1e5 to keep tox -e bench within 10 minutes; CUDA runs every size.
BF16_CPU_MAX = 10**5
BUDGET_S = float(os.environ.get("OPTBENCH_BENCH_BUDGET", "0.2"))  # seconds of timed rounds per benchmark
MIN_ROUNDS = 20
REF_MAX_SIZE = 10**6  # the in-round reference doubles a round's work; above 1e6 the size's phases serve


def _cases(config):
    opts = options(config)
    if opts.user_optimizers:
        return [c for i in opts.user_optimizers for c in cases_from_info(i)]
    return default_cases(full=FULL)


def _sizes(config, device):
    opts = options(config)
    if opts.sizes:
        return opts.sizes
    return CUDA_SIZES if device == "cuda" else CPU_SIZES


def _device_marks(device):
    if device != "cuda":
        return []
    reason = cuda_skip_reason()
    return [pytest.mark.cuda] + ([pytest.mark.skip(reason=reason)] if reason else [])


def _default_impl(case, device):
    impls = case.impls_on(device)
    return "foreach" if "foreach" in impls else impls[0]


def _matrix(config, with_phases):
    out = []
    for device in options(config).devices:
        cases = _cases(config)
        for case in cases:
            base = _default_impl(case, device)
            for size in _sizes(config, device):
                combos = []
                for impl in case.impls_on(device):
                    if impl == "compiled" and not FULL and (case.name, size) not in COMPILE_AT:
                        continue
                    combos.append((impl, "flat", "float32"))
                if size >= 1000 or FULL:
                    combos.append((base, "mlp", "float32"))
                if device == "cuda" or size <= BF16_CPU_MAX or FULL:
                    combos.append((base, "flat", "bfloat16"))
                for impl, layout, dtype in combos:
                    if not with_phases:
                        phases = ("epoch",)
                    elif FULL:
                        phases = PHASES_ALONE
                    elif impl == base and layout == "flat" and dtype == "float32":
                        # zero_grad, forward+loss and backward do not depend on the optimizer: measured
                        # once per size (with the first optimizer); step for every optimizer
                        phases = PHASES_ALONE if case is cases[0] else ("step",)
                    elif layout == "flat" and dtype == "float32" and impl != "compiled":
                        # the step of every other implementation too: in an epoch the forward+backward dilutes
                        # a change of the step (fused Adam at 1e6: +20 % step time is ~+8 % of the epoch)
                        phases = ("step",)
                    else:
                        phases = ()
                    for phase in phases:
                        pid = f"{case.name}-{impl}-{layout}-{fmt_size(size)}-{dtype}-{device}"
                        if with_phases:
                            pid = f"{phase}-{pid}"
                        spec = BenchSpec(case, impl, layout, size, dtype, device, phase)
                        out.append(pytest.param(spec, id=pid, marks=_device_marks(device)))
    return out


def pytest_generate_tests(metafunc):
    if "bspec" in metafunc.fixturenames:
        with_phases = metafunc.function.__name__ == "test_phase"
        metafunc.parametrize("bspec", _matrix(metafunc.config, with_phases))


def _build(b):
    case, impl, layout, size, dtype, device = b.case, b.impl, b.layout, b.size, b.dtype, b.device
    try:
        st = LoopState(case, impl, size, layout, device, parse_dtype(dtype))
        st.warm_up(2)  # past the first step: state is lazy, and the compiled step compiles here
    except (RuntimeError, ValueError, TypeError, NotImplementedError, AssertionError) as exc:
        msg = " ".join(str(exc).split())[:160]
        pytest.skip(f"{case.name} {impl} not supported for {dtype} on {device}: {type(exc).__name__}: {msg}")
    return st


def _run(benchmark, st, spec, request, roofline, instructions):
    phase, size = spec.phase, spec.size
    opts = options(request.config)
    device = st.device
    fn, setup = st.phase(phase)
    flush = CacheFlusher(device) if opts.l2_flush else None
    fn_t = timed(fn, device)

    # CPU time of each round beside pytest-benchmark's wall clock (CPU device): it excludes the time the
    # thread waited preempted, which dominates ms-long rounds on a shared host; the gate compares it.
    cpu = CpuClock() if device == "cpu" else None
    # An in-round reference for the epoch and the step (CPU, up to REF_MAX_SIZE): the loop's own forward+
    # backward, timed in the untimed setup of every round. The gate divides a result by its reference's
    # ratio, the drift of that very moment (measured at 1e3: the minimum of a step moved 5-9 % between
    # blocks seconds apart, its ratio to the in-round reference 3 %). It is the work that precedes the
    # step in the loop anyway, so the step meets the cache state of a real epoch.
    ref = CpuClock() if (cpu is not None and phase in ("epoch", "step") and size <= REF_MAX_SIZE) else None

    def round_setup():  # untimed by pytest-benchmark
        if flush is not None:
            flush()
        if ref is not None:
            ref.start()
            st.forward_backward()
            ref.stop()
        if setup is not None:
            setup()
        synchronize(device)
        if cpu is not None:
            cpu.start()

    def round_teardown():
        if cpu is not None:
            cpu.stop()

    # calibrate the round count from untimed calls (state stays warm): 1 call when slow, else 3
    probe = time_rounds(fn, rounds=1, setup=setup, device=device)
    if probe[0] < 0.02:
        probe = time_rounds(fn, rounds=3, setup=setup, device=device)
    # at least MIN_ROUNDS rounds below 20 ms a call: a minimum over fewer rounds rarely reaches the floor on a
    # loaded host (measured: 5 rounds of a 1e6 epoch left its CPU-time minimum 17 % above another run's)
    per_call = sorted(probe)[len(probe) // 2]
    rounds, _ = choose_rounds(per_call, budget_s=BUDGET_S, max_rounds=400, min_round_s=0,
                              min_rounds=MIN_ROUNDS if per_call < 0.02 else 5)
    if flush is not None:  # each round pays a flush of 2x the LLC: cap the flushing at ~2 s per benchmark
        import time

        t0 = time.perf_counter()
        flush()
        rounds = max(5, min(rounds, int(2.0 / max(time.perf_counter() - t0, 1e-6))))
    # one call per round, so every round gets its setup (fresh graph, flush, sync)
    faults0 = minor_faults()
    benchmark.pedantic(fn_t, setup=round_setup, teardown=round_teardown, rounds=rounds, iterations=1, warmup_rounds=1)
    faults = (minor_faults() - faults0) / (rounds + 1)  # page faults per call (setup included): the allocator at work

    ei = benchmark.extra_info
    ei.update(kind="loop", optimizer=st.case.name, impl=st.impl, layout=st.layout, size=size,
              n=st.n, device=device, dtype=str(st.dtype).removeprefix("torch."), phase=phase,
              source=st.case.source, threads=torch.get_num_threads(), allocator=allocator_setting()["summary"],
              l2_flush=bool(flush), step_bytes_per_param_fp32=st.case.step_bytes_fp32,
              compile_time_s=st.compile_time_s, minor_faults_per_call=faults)
    if cpu is not None:
        ei["cpu_time"] = cpu.stats(skip=1)  # the warmup round is not in pytest-benchmark's stats either
    if ref is not None:
        ei["ref_cpu_time"] = {**ref.stats(skip=1), "what": "forward+backward in the round's setup"}
    counts = instructions(spec)
    if counts is not None:  # from the session's one valgrind run (benches/conftest.py, --instructions)
        ei.update(instructions=counts["instructions"], instructions_repeats=counts["repeats"],
                  instructions_calls=counts["calls"])
    nbytes = bytes_per_phase(st.case, phase, st.n, st.dtype)
    ei["bytes"] = nbytes
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None and nbytes:
        bw = roofline(device)
        gbps = nbytes / stats.median / 1e9
        ei.update(gbps=gbps, stream_gbps=bw, roofline_pct=100.0 * gbps / bw)


@pytest.mark.bench
def test_epoch(benchmark, request, roofline, instruction_counts, bspec):
    """One epoch of the five-step loop: zero_grad, forward+loss, backward, step, record the loss."""
    st = _build(bspec)
    benchmark.group = f"epoch {bspec.device} {bspec.dtype} {bspec.layout} n={fmt_size(bspec.size)}"
    _run(benchmark, st, bspec, request, roofline, instruction_counts)


@pytest.mark.bench
def test_phase(benchmark, request, roofline, instruction_counts, bspec):
    """One phase of the loop alone; the others run untimed in setup where the phase needs them."""
    st = _build(bspec)
    benchmark.group = f"phases {bspec.device} {bspec.dtype} {bspec.layout} n={fmt_size(bspec.size)} {bspec.case.name}"
    _run(benchmark, st, bspec, request, roofline, instruction_counts)


@pytest.mark.bench
@pytest.mark.parametrize("sdevice", ["cpu", pytest.param("cuda", marks=_device_marks("cuda"))])
def test_stream(benchmark, request, roofline, sdevice):
    """The roofline: streaming bandwidth of an in-place mul_ on a buffer much larger than the LLC."""
    device = sdevice
    if device not in options(request.config).devices:
        pytest.skip(f"device {device} not selected (--device)")
    from optbench.bench.timing import stream_buffer_elems

    bw = roofline(device)  # measured once per session; this benchmark records it in the JSON
    n = stream_buffer_elems(device)
    buf = torch.ones(n, dtype=torch.float32, device=device)
    fn = timed(lambda: buf.mul_(1.0), device)
    benchmark.group = f"stream {device}"
    benchmark.pedantic(fn, rounds=7, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(kind="stream", device=device, bytes=8 * n, n=n, phase="stream", optimizer="-",
                                impl="-", size=n, dtype="float32", session_gbps=bw,
                                threads=torch.get_num_threads(), allocator=allocator_setting()["summary"])
