"""Bench cases come from the one optimizer registry: byte models, implementations and user optimizers
(such as the planted SlowAdam) all go through OptimizerInfo."""

from __future__ import annotations

import pytest
import torch

from optbench.bench.cases import DEFAULT_SET, bytes_per_phase, cases_from_info, default_cases, get_case, registry_cases, user_cases
from optbench.errors import ConfigError
from optbench.optimizers import builtin_registry


def _full_size_state(info, config) -> int:
    """Number of per-parameter state tensors (same numel as the parameter) after one step."""
    p = torch.zeros(64, requires_grad=True)
    opt = info.make([p], config, lr=1e-3)
    p.grad = torch.ones_like(p)
    opt.step()
    return sum(1 for v in opt.state[p].values() if torch.is_tensor(v) and v.numel() == p.numel())


_MODELLED = [(i, c) for i in builtin_registry() for c in i.configs if c.step_bytes_fp32]


@pytest.mark.parametrize("info, config", _MODELLED, ids=[i.config_id(c) for i, c in _MODELLED])
def test_step_byte_model_reads_and_writes_every_state_tensor_once(info, config):
    # compulsory fp32 traffic of one step: read p and g, write p (12 B), then read+write each state tensor (8 B)
    assert config.step_bytes_fp32 == 12 + 8 * _full_size_state(info, config), info.config_id(config)


def test_cases_carry_the_registry_byte_models_and_implementations():
    by_id = {info.config_id(c): (info, c) for info in builtin_registry() for c in info.configs}
    cases = default_cases()
    assert [c.name for c in cases] == list(DEFAULT_SET)
    for case in registry_cases():
        info, config = by_id[case.name]
        assert case.step_bytes_fp32 == config.step_bytes_fp32
        assert set(info.impls["cpu"]) <= set(case.impls_on("cpu"))
        assert ("compiled" in case.impls_on("cpu")) == ("foreach" in info.impls["cpu"])
    names = {c.name for c in registry_cases()}
    for info in builtin_registry():  # closure, sparse and matrix-only optimizers are left out of the loop benches
        if info.closure or info.sparse_grad or info.matrix_only:
            assert not any(info.config_id(c) in names for c in info.configs)


def test_bytes_per_phase_follow_the_model():
    adam = get_case("adam")
    assert bytes_per_phase(adam, "step", 1000, torch.float32) == adam.step_bytes_fp32 * 1000
    assert bytes_per_phase(adam, "epoch", 1000, torch.bfloat16) == (adam.step_bytes_fp32 + 12) * 1000 / 2


def test_a_user_optimizer_is_adapted_through_the_registry_path():
    (slow,) = user_cases(["adam=optbench.bench.planted:SlowAdam"])
    assert slow.name == "adam" and slow.step_bytes_fp32 is None and slow.source.startswith("user:")
    assert slow.impls_on("cpu") == ("forloop", "foreach", "fused", "compiled")  # an Adam: fused=True steps
    p = torch.zeros(4, requires_grad=True)
    assert type(slow.make([p], "foreach")).__name__ == "SlowAdam"
    # the same adapter as for built-ins
    (info,) = [i for i in builtin_registry() if i.name == "adam"]
    assert [c.name for c in cases_from_info(info)] == ["adam", "adam_amsgrad"]


def test_an_unknown_config_is_a_one_line_error():
    with pytest.raises(ConfigError, match="no registry config 'adamm'") as exc:
        get_case("adamm")
    assert "\n" not in str(exc.value)
