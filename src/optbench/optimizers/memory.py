"""The ``memory`` plan: what each optimizer configuration keeps in state, as a MEASURED row of the verdicts.

One :class:`~optbench.verdict.CheckItem` per (optimizer config, device): ``test_state_bytes`` (property
``memory``), measured on one 64 x 64 parameter (4,096 elements: a per-tensor scalar such as Adam's
``step`` adds 0.001 B per element) of the contract's problem, in float32 (the dtype of the byte model; the first
of ``contract_dtypes`` where float32 is not one of them), with the primary implementation (foreach where it
exists). The data: state bytes per parameter after three steps, the transient peak of the third step above
parameters + gradients + state (for a closure optimizer the closure's forward and backward are in it), and
the state the registry's byte model implies (``OptConfig.step_bytes_fp32``). Measured, never judged here;
``tests/test_memory.py`` holds the byte model to it. The measurement is :mod:`optbench.bench.memory`'s.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from ..bench.memory import measure_step, model_state_bytes_fp32
from ..devices import cuda_skip_reason, dtype_name, parse_dtype
from ..loop import OptimizerRaised, call_optimizer, has_modes, training_closure
from ..verdict import CheckItem, NotApplicable
from .contract import Case, Problem
from .plan import primary_impl

SHAPE = (64, 64)


def memory_dtype(info: Any) -> str:
    return "float32" if "float32" in info.contract_dtypes else info.contract_dtypes[0]


def _grads(case: Case, prob: Problem, opt: torch.optim.Optimizer) -> None:
    call_optimizer("zero_grad()", opt.zero_grad)
    prob.loss_fn()().backward()


def check_state_bytes(case: Case) -> dict[str, Any]:
    """State bytes per parameter and the step's transient peak, on one 64 x 64 parameter (MEASURED)."""
    prob = Problem(case, shapes=(SHAPE,))
    loss = prob.loss_fn()
    try:
        opt = case.make(prob.params)
        if has_modes(opt):
            call_optimizer("train()", opt.train)

        closure = training_closure(opt, loss)

        def step() -> Any:
            return call_optimizer("step()", opt.step, closure) if case.info.closure else \
                call_optimizer("step()", opt.step)

        _grads(case, prob, opt)
        step()  # the first step creates the state

        def before() -> None:  # a warm step and fresh gradients, under the profile (see bench.memory.peak_of)
            _grads(case, prob, opt)
            step()
            _grads(case, prob, opt)

        mem = measure_step(opt, prob.params, step, case.device, before=before)
    except OptimizerRaised as exc:
        raise NotApplicable(f"the step raises ({exc}); the other properties report it") from None
    scale = torch.finfo(case.dtype).bits / 32
    model = model_state_bytes_fp32(case.config.step_bytes_fp32)
    model = None if model is None else model * scale
    data = {**mem.as_dict(), "dtype": dtype_name(case.dtype), "impl": case.impl, "shape": list(SHAPE),
            "model_state_bytes_per_param": model}
    data["summary"] = (f"state {mem.state_bytes_per_param:.2f} B/param ({mem.state_bytes:,} B for {mem.n:,} "
                       f"{dtype_name(case.dtype)} elements" + (f"; the byte model says {model:.1f}" if model is not None
                                                               else "") +
                       f"); step transient peak {mem.step_peak_bytes_per_param:.2f} B/param above params, grads and "
                       f"state")
    return data


def memory_checks(selection: Any) -> list[CheckItem]:
    """The state-memory row for every optimizer config of ``selection`` on each of its devices (none when the
    selection is user targets alone)."""
    if selection.user_targets and not selection.user_optimizers:
        return []
    items: list[CheckItem] = []
    for info in selection.optimizer_infos():
        for config in info.configs:
            for device in selection.devices:
                if not info.impls.get(device):
                    continue
                dt = memory_dtype(info)
                case = Case(info, config, primary_impl(info, device), parse_dtype(dt), device)
                subject = info.config_id(config)
                na = (cuda_skip_reason() if device.startswith("cuda") else None) or info.unsupported
                items.append(CheckItem(test="test_state_bytes", id=f"{subject}-{case.impl}-{dt}-{device}",
                                       prop="memory", subject=subject, run=functools.partial(check_state_bytes, case),
                                       na=na, device=device, measure=True,
                                       marks=("cuda",) if device.startswith("cuda") else ()))
    return items
