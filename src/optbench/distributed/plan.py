"""The ``distributed`` check plan: P18-P20 for every optimizer configuration and device.

One :class:`~optbench.verdict.CheckItem` per (check, optimizer config, device), in a fixed order
(check, then registry order, configs, devices), each marked ``distributed``. The case is the
config's primary implementation (foreach where it exists: the path FSDP2 users on GPUs get by default)
in float64 (or the first of the optimizer's ``contract_dtypes``). Exemptions (``P18``, ``P19``,
``P19.ddp``, ``P19.zero``, ``P20``) and known upstream bugs (the same keys, optionally ``@impl`` or
``@dtype``) are read from the registry; what cannot apply is detected here and carried as ``na``.
"""

from __future__ import annotations

import functools
import pickle
from typing import Any, Callable

from ..devices import cuda_skip_reason, dtype_name, parse_dtype
from ..optimizers.contract import Case, PropertyFailure
from ..optimizers.info import OptConfig, OptimizerInfo
from ..verdict import CheckItem
from .checks import check_p18, check_p19_ddp, check_p19_zero, check_p20

# (pytest test name, property, registry keys, check)
TESTS: tuple[tuple[str, str, tuple[str, ...], Callable[[Case], Any]], ...] = (
    ("test_p18_fsdp2_parity", "P18", ("P18",), check_p18),
    ("test_p19_ddp_parity", "P19", ("P19", "P19.ddp"), check_p19_ddp),
    ("test_p19_zero_parity", "P19", ("P19", "P19.zero"), check_p19_zero),
    ("test_p20_dcp_resume", "P20", ("P20",), check_p20),
)
IMPL_PREFERENCE = ("foreach", "forloop", "default")
MARKS = ("distributed",)


def dist_impl(info: OptimizerInfo, device: str) -> str | None:
    impls = tuple(info.impls.get(device, ()))
    if not impls:
        return None
    return next((i for i in IMPL_PREFERENCE if i in impls), impls[0])


def dist_dtype(info: OptimizerInfo) -> str:
    return "float64" if "float64" in info.contract_dtypes else info.contract_dtypes[0]


def _known(info: OptimizerInfo, config: OptConfig, keys: tuple[str, ...], impl: str, dtype: str) -> str | None:
    for key in keys:
        for k in (f"{key}@{impl}", f"{key}@{dtype}", key):
            reason = config.known.get(k) or info.known.get(k)
            if reason:
                return reason
    return None


def with_reproducer(key: str, check: Callable[[Case], Any], case: Case) -> Any:
    """Run a distributed check; every PropertyFailure it raises (a difference, or the optimizer raising under
    DTensor, DDP or DCP) gets a standalone reproducer of ``key`` (the test's most specific registry key), unless it
    is the root cause of the case reported once by the contract (then it is BLOCKED)."""
    from ..optimizers.plan import blocked_by_root
    from . import reproducer

    try:
        return check(case)
    except PropertyFailure as failure:
        blocked = blocked_by_root(case, failure, "")
        if blocked is not None:
            raise blocked from None
        if failure.reproducer is None:
            failure.reproducer = reproducer.script(failure, case, key)
        raise


@functools.lru_cache(maxsize=None)
def device_na(device: str) -> str | None:
    """Why no process group of 2 ranks can run on ``device`` here, or None."""
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        return f"this torch build ({torch.__version__}) has no torch.distributed"
    if device == "cpu":
        return None if dist.is_gloo_available() else f"this torch build ({torch.__version__}) has no gloo backend"
    reason = cuda_skip_reason()
    if reason:
        return reason
    if not dist.is_nccl_available():
        return f"this torch build ({torch.__version__}) has no NCCL backend"
    n = torch.cuda.device_count()
    if n < 2:
        return f"NCCL runs one rank per GPU and the checks use 2 ranks: {n} CUDA device is visible"
    return None


def case_na(case: Case, test: str) -> str | None:
    """Why this check cannot apply to this optimizer (a declared capability), or None."""
    info, name = case.info, case.name
    if info.unsupported:
        return info.unsupported
    if info.sparse_grad:
        if test in ("test_p18_fsdp2_parity", "test_p20_dcp_resume"):
            return (f"FSDP2 (fully_shard) reduce-scatters dense gradients only, and {name} declares sparse gradients "
                    f"(sparse_grad)")
        return (f"the distributed checks train a dense MLP, and {name} declares sparse gradients (sparse_grad), "
                f"which it requires")
    if test == "test_p19_zero_parity":
        if info.closure:
            return (f"ZeroRedundancyOptimizer steps each rank's partition of the parameters with its own optimizer, "
                    f"and {name} declares step(closure) (closure): every closure call is a forward and backward with "
                    f"collectives, which the ranks' optimizers would make a different number of times")
        coupled = info.exemption("P7", case.config)
        if coupled:
            return (f"ZeroRedundancyOptimizer steps each rank's partition of the parameters separately, and {name} "
                    f"couples parameters (P7 exempt: {coupled})")
    if test == "test_p20_dcp_resume" and info.closure:
        return (f"torch.distributed.checkpoint's get_state_dict initialises a fresh optimizer's state with "
                f"step(closure=None), which {name} (closure: step needs a closure) cannot take")
    if getattr(info.factory, "__module__", None) == "__main__":
        return (f"{name} is defined in __main__, which the rank processes cannot import; define it in an importable "
                f"module")
    try:
        pickle.dumps(case)
    except Exception as exc:  # noqa: BLE001
        return (f"{name} cannot be sent to the rank processes ({type(exc).__name__}: {exc}); give a module-level "
                f"Optimizer subclass or factory")
    return None


def distributed_checks(selection: Any) -> list[CheckItem]:
    """P18-P20 for every optimizer config of ``selection`` on each of its devices (none when the selection is
    user targets alone)."""
    if selection.user_targets and not selection.user_optimizers:
        return []
    items: list[CheckItem] = []
    infos = selection.optimizer_infos()
    for test, prop, keys, check in TESTS:
        for info in infos:
            for config in info.configs:
                for device in selection.devices:
                    impl = dist_impl(info, device)
                    if impl is None:
                        continue
                    dt = dist_dtype(info)
                    case = Case(info, config, impl, parse_dtype(dt), device)
                    subject = info.config_id(config)
                    exempt = next((r for r in (info.exemption(k, config) for k in keys) if r), None)
                    na = None if exempt else (device_na(device) or case_na(case, test))
                    items.append(CheckItem(
                        test=test, id=f"{subject}-{dt}-{device}", prop=prop, subject=subject,
                        run=functools.partial(with_reproducer, keys[-1], check, case), exempt=exempt,
                        known=_known(info, config, keys, impl, dtype_name(case.dtype)), na=na, device=device,
                        marks=MARKS, share=f"distributed-{device}"))  # one rank pool per process: keep them together
    return items
