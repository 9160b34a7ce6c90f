"""Memory, measured: the registry's byte model agrees with the state optimizers really keep; the transient peak
is what the allocator saw; the planted RollbackAdam's peak is one parameter-size above Adam's; memory results
stay out of the timing records and make the report's memory table.

The measured cases are small (4,096 elements; 10,000 for the planted pair), so this costs about a second.
"""

from __future__ import annotations

import json

import pytest
import torch

from optbench.bench.memory import measure_step, model_state_bytes_fp32, peak_of, state_bytes
from optbench.bench.results import parse_run
from optbench.optimizers.contract import Case
from optbench.optimizers.info import builtin_registry
from optbench.optimizers.memory import check_state_bytes, memory_checks
from optbench.plan import Selection
from optbench.report import tables
from tests.planted.compile_bugs import CompileAdam, RollbackAdam

REG = {info.name: info for info in builtin_registry()}


def _measured(name: str, config: str = "") -> dict:
    info = REG[name]
    cfg = next(c for c in info.configs if c.name == config)
    return check_state_bytes(Case(info, cfg, "foreach" if "foreach" in info.impls["cpu"] else "default",
                                  torch.float32, "cpu"))


def test_byte_model_agrees_with_measured_state_for_every_registry_config_that_declares_one():
    checked = []
    for info in builtin_registry():
        for cfg in info.configs:
            model = model_state_bytes_fp32(cfg.step_bytes_fp32)
            if model is None:
                continue
            got = _measured(info.name, cfg.name)["state_bytes_per_param"]
            # per-tensor scalars (Adam's step: 4 B on 4,096 elements) are the only difference allowed
            assert abs(got - model) < 0.01, f"{info.config_id(cfg)}: the byte model implies {model} B/param of " \
                                            f"state (step_bytes_fp32={cfg.step_bytes_fp32}), measured {got:.4f}"
            checked.append(info.config_id(cfg))
    assert {"adam", "sgd", "sgd_momentum", "adamw", "rmsprop"} <= set(checked)


def test_adam_keeps_8_bytes_sgd_momentum_4_plain_sgd_none():
    assert round(_measured("adam")["state_bytes_per_param"], 2) == 8.0
    assert round(_measured("sgd", "momentum")["state_bytes_per_param"], 2) == 4.0
    assert _measured("sgd")["state_bytes_per_param"] == 0.0


class _Quantized(torch.Tensor):
    """A wrapper tensor subclass like torchao's OptimState4bit/8bit: a float32 tensor to its users, held as uint8
    codes and a float32 scale; its own storage is invalid (data_ptr raises)."""

    @staticmethod
    def __new__(cls, codes, scale, shape):
        return torch.Tensor._make_wrapper_subclass(cls, shape, dtype=torch.float32)

    def __init__(self, codes, scale, shape):
        self.codes, self.scale = codes, scale

    def __tensor_flatten__(self):
        return ["codes", "scale"], None

    @staticmethod
    def __tensor_unflatten__(inner, meta, outer_size, outer_stride):
        return _Quantized(inner["codes"], inner["scale"], outer_size)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise NotImplementedError(func)


def test_a_wrapper_subclass_state_counts_the_tensors_it_holds():
    """torchao 0.18's Adam4bit/Adam8bit keep their moments as wrapper subclasses: reading their storage raised
    ("Attempted to access the data pointer on an invalid python storage"), an optbench ERROR on the memory row of 6
    of its 8 optimizers. Their bytes are the codes' and scales' (here 64 + 8, not 4 bytes for each of 128 elements)."""
    codes, scale = torch.zeros(64, dtype=torch.uint8), torch.ones(2)
    q = _Quantized(codes, scale, (128,))
    assert state_bytes(_StateOnly({"exp_avg": q})) == 64 + 8


class _StateOnly:
    def __init__(self, st):
        self.state = {0: st}


def test_adafactor_state_is_sub_linear_in_the_matrix_size():
    if "adafactor" not in REG:
        pytest.skip("this torch has no torch.optim.Adafactor")

    def per_param(d: int) -> float:
        p = torch.zeros(d, d, requires_grad=True)
        opt = torch.optim.Adafactor([p], lr=1e-2)
        for _ in range(2):
            p.grad = torch.ones_like(p)
            opt.step()
        return state_bytes(opt) / p.numel()

    small, large = per_param(32), per_param(256)
    # a row and a column statistic per matrix: ~2d floats for d^2 elements, so 8x the side is ~1/8 per element
    assert large < small / 6 and large * 256 * 256 < 8 * 256 * 4 + 64, (small, large)


def test_peak_is_the_most_allocated_during_the_call_above_its_start():
    keep = []

    def fn():
        tmp = torch.empty(10_000)  # 40,000 B, freed at return
        keep.append(torch.empty(1_000))  # 4,000 B, still held
        del tmp

    pk = peak_of(fn)
    assert pk.peak == 44_000 and pk.net == 4_000, pk
    held = []

    def before():
        held.append(torch.empty(5_000))  # allocated under the profile, outside the measured call

    def free():
        held.clear()  # frees 20,000 B the profile saw allocated

    pk = peak_of(free, before=before)
    assert pk.peak == 0 and pk.net == -20_000, pk


def test_planted_rollback_adam_peaks_one_parameter_size_above_adam():
    n = 10_000

    def peak(cls) -> int:
        p = torch.rand(n, requires_grad=True)
        opt = cls([p], lr=1e-2)
        p.grad = torch.rand_like(p)
        opt.step()  # the state exists
        return measure_step(opt, [p], opt.step, before=opt.step).step_peak_bytes

    adam, rollback = peak(CompileAdam), peak(RollbackAdam)
    assert rollback - adam == 4 * n, (adam, rollback)


def test_the_memory_row_is_measured_for_every_config_and_names_its_figures():
    items = memory_checks(Selection(devices=("cpu",)))
    assert len(items) == sum(len(i.configs) for i in builtin_registry())
    assert all(i.measure and i.prop == "memory" and i.test == "test_state_bytes" for i in items)
    data = _measured("adam")
    assert data["model_state_bytes_per_param"] == 8.0 and "state 8.00 B/param" in data["summary"]


def _bench_json(memory: list[dict]) -> dict:
    timed = {"name": "test_epoch[adam]", "stats": {"median": 1e-3, "iqr": 0.0, "rounds": 5},
             "extra_info": {"kind": "loop", "optimizer": "adam", "impl": "foreach", "size": 1000, "n": 1000,
                            "device": "cpu", "dtype": "float32", "phase": "epoch", "layout": "flat"}}
    mem = [{"name": f"test_memory[{m['impl']}]", "stats": {"median": 0.5, "iqr": 0.0, "rounds": 1},
            "extra_info": {"kind": "memory", "optimizer": "adam", "layout": "flat", "device": "cpu",
                           "dtype": "float32", "phase": "step", "model_state_bytes_per_param": 8.0, **m}}
           for m in memory]
    return {"machine_info": {}, "benchmarks": [timed] + mem}


def test_memory_results_are_kept_apart_from_timings_and_tabled_foreach_beside_fused():
    ms = [{"impl": "foreach", "size": 10**7, "n": 10**7, "state_bytes_per_param": 8.0, "step_peak_bytes": 40_000_012,
           "step_peak_bytes_per_param": 4.0000012},
          {"impl": "fused", "size": 10**7, "n": 10**7, "state_bytes_per_param": 8.0, "step_peak_bytes": 12,
           "step_peak_bytes_per_param": 1.2e-6}]
    run = parse_run(json.loads(json.dumps(_bench_json(ms))))
    assert [r.phase for r in run.records] == ["epoch"] and len(run.memory) == 2
    impls = tables.memory_impls(run.memory)
    header = tables.memory_header(impls)
    [row] = tables.memory_rows(run.memory, impls)
    cells = dict(zip(header, row))
    assert cells["state B/param"] == "8.00" and cells["byte model B/param"] == "8.0"
    assert cells["foreach step peak"] == "40.0 MB (4.00 B/param)" and cells["fused step peak"] == "12 B (0.00 B/param)"
    assert header.index("fused step peak") == header.index("foreach step peak") + 1


def test_report_writes_the_memory_table_and_plot(tmp_path):
    from optbench.report import build_report

    ms = [{"impl": impl, "size": size, "n": size, "state_bytes_per_param": 8.0,
           "step_peak_bytes": peak * size, "step_peak_bytes_per_param": float(peak)}
          for size in (10**6, 10**7) for impl, peak in (("forloop", 8), ("foreach", 4), ("fused", 0))]
    src = tmp_path / "bench.json"
    src.write_text(json.dumps(_bench_json(ms)))
    [index] = build_report([src], tmp_path / "out", trajectories=False)
    text = index.read_text()
    assert "Memory: optimizer state and the step's transient peak" in text
    assert "| adam | float32 | 1e7 | 10,000,000 | 8.00 | 8.0 | 80.0 MB (8.00 B/param) | 40.0 MB (4.00 B/param) | " \
           "0 B (0.00 B/param) |" in text
    assert (index.parent / "memory_cpu.png").stat().st_size > 1000
