"""The ``compile`` check plan: P21 (the compiled step) for every optimizer configuration and device.

Three :class:`~optbench.verdict.CheckItem` per (optimizer config, device), marked ``compile``. For the built-in
registry, the first (default) config of each optimizer only: a compile costs about a second per config with
Inductor's cache warm (several when cold), and the suite's time budget allows one per optimizer; every other
registry config was measured passing P21 on torch 2.13 (docs/compiled.md), and a user's optimizer has its one
config checked. The items come in a fixed order (optimizer, config, device, then parity, recompilations, graph breaks, so that the three checks of
one config, which share one compiled run per process, are neighbours on a pytest-xdist worker). The case is
the optimizer as a user constructs it (impl ``default``: no implementation flag, what it picks on the
device; the recipe's ``torch.optim.Adam(params, lr=...)``) in float32 (``checks.compile_dtype``).
Exemptions (``P21``, ``P21.parity``, ``P21.recompiles``, ``P21.graph_breaks``) and known upstream bugs (the
same keys, optionally ``@impl`` or ``@dtype``) are read from the registry or the user's config; what cannot
apply here (no Dynamo for this Python or platform, no C++ compiler for Inductor on CPU, no CUDA) is
detected and carried as ``na``.
"""

from __future__ import annotations

import functools
import shutil
from typing import Any, Callable

from ..devices import cuda_skip_reason, parse_dtype
from ..optimizers.contract import Case, PropertyFailure
from ..optimizers.info import OptConfig, OptimizerInfo
from ..verdict import CheckItem
from .checks import backend, check_p21_graph_breaks, check_p21_parity, check_p21_recompiles, compile_dtype

IMPL = "default"
MARKS = ("compile",)
# (pytest test name, registry keys, check, measured)
TESTS: tuple[tuple[str, tuple[str, ...], Callable[[Case], Any], bool], ...] = (
    ("test_p21_compiled_parity", ("P21", "P21.parity"), check_p21_parity, False),
    ("test_p21_recompiles", ("P21", "P21.recompiles"), check_p21_recompiles, True),
    ("test_p21_graph_breaks", ("P21", "P21.graph_breaks"), check_p21_graph_breaks, True),
)


def _known(info: OptimizerInfo, config: OptConfig, keys: tuple[str, ...], impl: str, dtype: str) -> str | None:
    for key in reversed(keys):  # the most specific key first
        for k in (f"{key}@{impl}", f"{key}@{dtype}", key):
            reason = config.known.get(k) or info.known.get(k)
            if reason:
                return f"{k} in {info.source or info.name}: {reason}"
    return None


@functools.lru_cache(maxsize=None)
def device_na(device: str, backend: str = "inductor") -> str | None:
    """Why torch.compile with ``backend`` (Inductor by default) cannot run on ``device`` here, or None. Only
    Inductor generates code (C++ on CPU, Triton on CUDA); the other backends need Dynamo alone."""
    import torch

    reason = cuda_skip_reason() if device.startswith("cuda") else None
    if reason:
        return reason
    try:
        import torch._dynamo

        if not torch._dynamo.is_dynamo_supported():
            return (f"torch.compile (Dynamo) is not supported on this platform or Python with torch "
                    f"{torch.__version__}")
    except Exception as exc:  # noqa: BLE001 - an import failure of torch._dynamo says the same
        return f"torch.compile is not available in this torch build ({type(exc).__name__}: {exc})"
    if backend != "inductor":
        return None
    if device.startswith("cuda"):
        from torch.utils._triton import has_triton

        if not has_triton():
            return "Inductor (torch.compile's default backend) generates Triton kernels on CUDA, and triton is not installed"
    if device == "cpu":
        try:
            from torch._inductor.cpp_builder import get_cpp_compiler

            compiler = get_cpp_compiler()
        except Exception:  # noqa: BLE001 - Inductor raises when it finds no compiler
            compiler = None
        if not compiler or not shutil.which(str(compiler).split()[0]):
            return ("Inductor (torch.compile's default backend) compiles C++ on CPU and no C++ compiler was found; "
                    "install one (Debian/Ubuntu: apt-get install g++) or set CXX")
    return None


def with_reproducer(check: Callable[[Case], Any], case: Case) -> Any:
    """Run a P21 check; every PropertyFailure it raises gets a standalone reproducer."""
    from . import reproducer

    try:
        return check(case)
    except PropertyFailure as failure:
        if failure.reproducer is None:
            failure.reproducer = reproducer.script(failure, case)
        raise


def compiled_checks(selection: Any) -> list[CheckItem]:
    """P21 for every optimizer config of ``selection`` on each of its devices (none when the selection is user
    targets alone)."""
    if selection.user_targets and not selection.user_optimizers:
        return []
    items: list[CheckItem] = []
    for info in selection.optimizer_infos():
        for config in (info.configs if info.user else info.configs[:1]):
            for device in selection.devices:
                if not info.impls.get(device):
                    continue
                dt = compile_dtype(info)
                case = Case(info, config, IMPL, parse_dtype(dt), device)
                subject = info.config_id(config)
                for test, keys, check, measured in TESTS:
                    exempt = next((r for r in (info.exemption(k, config) for k in reversed(keys)) if r), None)
                    items.append(CheckItem(
                        test=test, id=f"{subject}-{IMPL}-{dt}-{device}", prop="P21", subject=subject,
                        run=functools.partial(with_reproducer, check, case), exempt=exempt,
                        known=None if exempt else _known(info, config, keys, IMPL, dt),
                        # what no generic check can drive (a wrapper, a Hessian in step) is N/A with that reason,
                        # as every other check of it, not "the eager step raises"
                        na=None if exempt else info.unsupported or device_na(device, backend(case)), device=device,
                        marks=MARKS,
                        measure=measured,
                        # the three checks read one compiled run (memoized per process): one process runs them, or a
                        # second one compiles the same step again (pytest-xdist workers, validate -n)
                        share=f"p21-{info.name}-{subject}-{device}"))
    return items
