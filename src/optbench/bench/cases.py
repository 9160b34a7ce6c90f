"""Benchmark cases: optimizers with their byte models, parameter layouts, implementations, and the
phase functions of the five-step loop.

One registry describes every optimizer: the cases are built from ``OptimizerInfo``
(:mod:`optbench.optimizers.info`), the built-ins by :func:`registry_cases` and user optimizers
(``--optimizer``) by :func:`cases_from_info`, the same adapter for both. The byte model of a config's
``step()`` is ``OptConfig.step_bytes_fp32`` (fp32 bytes per parameter per step: SGD 12, SGD momentum
20, Adam 28, AMSGrad 36, ...). The forward+backward of the elementwise loss adds its compulsory
traffic, :data:`FWD_BWD_BYTES_FP32`: read x in the forward (4), read x and write the gradient in the
backward (8). That is a lower bound on the traffic autograd really moves, so "% of roofline" is a
lower bound on efficiency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from ..errors import ConfigError

IMPLS = ("forloop", "foreach", "fused", "compiled")
LAYOUTS = ("flat", "mlp")
FWD_BWD_BYTES_FP32 = 12  # compulsory: forward reads x (4); backward reads x, writes grad (8)
PHASES = ("epoch", "zero_grad", "forward", "backward", "step")
BENCH_LR = 1e-3  # every case runs at this lr: small enough that long timing runs stay finite
# The registry configs benched by default (the rest with OPTBENCH_BENCH_FULL=1): plain SGD, heavy ball,
# Adam, AdamW and AMSGrad span the byte models 12, 20, 28 and 36 B/param.
DEFAULT_SET = ("sgd", "sgd_momentum", "adam", "adamw", "adam_amsgrad")


@dataclass(frozen=True)
class BenchCase:
    """One optimizer configuration as the benches see it."""

    name: str
    factory: Callable[[Sequence[torch.Tensor], str], torch.optim.Optimizer]  # factory(params, impl)
    step_bytes_fp32: float | None  # bytes per parameter per step, fp32; None = unknown model
    impls: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {"cpu": ("default",), "cuda": ("default",)})
    source: str = "registry"

    def make(self, params: Sequence[torch.Tensor], impl: str) -> torch.optim.Optimizer:
        return self.factory(params, "foreach" if impl == "compiled" else impl)

    def impls_on(self, device: str) -> tuple[str, ...]:
        return tuple(self.impls.get(device, self.impls.get("cpu", ("default",))))


def cases_from_info(info: Any, *, lr: float = BENCH_LR) -> list[BenchCase]:
    """Adapt a registry ``OptimizerInfo`` (built-in or user) to one :class:`BenchCase` per config.

    Closure, sparse-gradient and matrix-only optimizers are left out: the elementwise loop on a flat
    parameter does not apply to them. A foreach implementation also gets ``compiled`` (the foreach
    step under ``torch.compile``).
    """
    if info.closure or info.sparse_grad or info.matrix_only:
        return []
    impls = {dev: tuple(tup) + (("compiled",) if "foreach" in tup else ()) for dev, tup in dict(info.impls).items()}
    src = "user" if info.user else "registry"
    source = f"{src}:{info.source}" if info.source else src
    out = []
    for config in info.configs:
        def factory(params, impl, _info=info, _config=config):
            return _info.make(params, _config, impl=impl, lr=lr)

        out.append(BenchCase(info.config_id(config), factory, config.step_bytes_fp32, impls, source))
    return out


def registry_cases() -> list[BenchCase]:
    """Every config of the built-in registry that the elementwise loop applies to, as bench cases."""
    from ..optimizers.info import builtin_registry

    return [c for info in builtin_registry() for c in cases_from_info(info)]


def default_cases(full: bool = False) -> list[BenchCase]:
    """The registry's configs: all of them with ``full``, else :data:`DEFAULT_SET` (in that order)."""
    cases = registry_cases()
    if full:
        return cases
    by = {c.name: c for c in cases}
    return [by[n] for n in DEFAULT_SET if n in by]


def get_case(name: str) -> BenchCase:
    """The registry config ``name`` (a config id such as ``adam`` or ``sgd_momentum``) as a case."""
    cases = {c.name: c for c in registry_cases()}
    if name not in cases:
        raise ConfigError(f"no registry config {name!r} to bench; choose one of {', '.join(cases)}")
    return cases[name]


def user_cases(specs: Sequence[str], *, config_file: str | None = None, rootdir: str | None = None) -> list[BenchCase]:
    """``--optimizer [NAME=]module:attr`` specs as cases, through the registry's user-optimizer path."""
    from ..optimizers.user import load_user_optimizers

    infos = load_user_optimizers(list(specs), config_file=config_file, rootdir=rootdir)
    return [c for info in infos for c in cases_from_info(info)]


@dataclass(frozen=True)
class BenchSpec:
    """One benchmark's coordinates (a single pytest parameter, so its id reads as one phrase)."""

    case: BenchCase
    impl: str
    layout: str
    size: int
    dtype: str
    device: str
    phase: str = "epoch"


# ---- parameter layouts ---------------------------------------------------------------------------

def mlp_shapes(n: int) -> list[tuple[int, ...]]:
    """A realistic list of tensors with about ``n`` elements: an MLP d -> 4d -> d -> 10 with biases.

    Weights dominate; d is chosen so the total is close to n (exact count in ``extra_info``).
    """
    if n < 64:
        return [(n,)]
    # total ~ 8 d^2 + 10 d + 5 d + 10 (weights d*4d + 4d*d + d*10, biases 4d + d + 10)
    d = max(2, int((-15 + math.sqrt(225 + 32 * max(n - 10, 1))) / 16))
    return [(4 * d, d), (4 * d,), (d, 4 * d), (d,), (10, d), (10,)]


def make_params(n: int, layout: str, *, device: str, dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    """Leaf tensors for ``n`` parameters: one flat tensor, or an MLP's list of weights and biases."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(n,)] if layout == "flat" else mlp_shapes(n)
    out = []
    for s in shapes:
        # start near the seed quadratic's minimum x*=1/3 so long runs stay finite at any lr
        t = (torch.rand(s, generator=g, dtype=torch.float32) * 0.5).to(device=device, dtype=dtype)
        out.append(t.requires_grad_(True))
    return out


def numel(params: Sequence[torch.Tensor]) -> int:
    return sum(p.numel() for p in params)


def seed_loss(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The seed quadratic 3x^2 - 2x + 3, summed over every element of every parameter.

    Elementwise and cheap, so at large n the epoch cost is optimizer plus autograd memory traffic.
    """
    total = None
    for p in params:
        term = ((3 * p - 2) * p + 3).sum()
        total = term if total is None else total + term
    return total


def bytes_per_epoch(case: BenchCase, n: int, dtype: torch.dtype) -> float | None:
    """Modelled bytes moved by one epoch of the loop (step model + compulsory fwd/bwd traffic)."""
    if case.step_bytes_fp32 is None:
        return None
    scale = torch.finfo(dtype).bits / 32  # state in the parameter dtype
    return (case.step_bytes_fp32 + FWD_BWD_BYTES_FP32) * n * scale


def bytes_per_phase(case: BenchCase, phase: str, n: int, dtype: torch.dtype) -> float | None:
    scale = torch.finfo(dtype).bits / 32
    if phase == "epoch":
        return bytes_per_epoch(case, n, dtype)
    if phase == "step":
        return None if case.step_bytes_fp32 is None else case.step_bytes_fp32 * n * scale
    if phase == "forward":
        return 4 * n * scale
    if phase == "backward":
        return 8 * n * scale
    return 0.0  # zero_grad(set_to_none=True) moves nothing


# ---- the loop, whole and by phase ----------------------------------------------------------------

class LoopState:
    """Parameters, optimizer and loss for one bench case, with the loop's phases as methods.

    :meth:`epoch` performs exactly the five steps of :func:`optbench.loop.run_loop` (non-closure
    path, ``record_x=False``, ``check_finite=False``): zero_grad, forward+loss, backward, step,
    record the loss as a Python float. ``benches/test_loop_parity.py`` checks it against run_loop.
    """

    def __init__(self, case: BenchCase, impl: str, n: int, layout: str, device: str, dtype: torch.dtype,
                 loss_fn: Callable[[Sequence[torch.Tensor]], torch.Tensor] = seed_loss) -> None:
        self.case, self.impl, self.layout, self.device, self.dtype = case, impl, layout, device, dtype
        self.params = make_params(n, layout, device=device, dtype=dtype)
        self.n = numel(self.params)
        self.opt = case.make(self.params, impl)
        self._loss_fn = loss_fn
        self.losses: list[float] = []
        self.loss: torch.Tensor | None = None
        self.compile_time_s: float | None = None
        self._step = self.opt.step
        if impl == "compiled":
            self._step = torch.compile(self.opt.step)

    def loss_fn(self) -> torch.Tensor:
        return self._loss_fn(self.params)

    def warm_up(self, epochs: int = 2) -> None:
        """Run past the first step: optimizer state is created lazily there (and compiled steps compile)."""
        import time

        for k in range(epochs):
            t0 = time.perf_counter()
            self.epoch()
            if k == 0 and self.impl == "compiled":
                self.compile_time_s = time.perf_counter() - t0
        self.losses.clear()

    # -- the five steps
    def epoch(self) -> None:
        self.opt.zero_grad()  # 1
        loss = self.loss_fn()  # 2
        loss.backward()  # 3
        self._step()  # 4
        self.losses.append(float(loss.detach().sum()))  # 5

    # -- phases alone (each leaves the state ready for the next call of the same phase)
    def zero_grad(self) -> None:
        self.opt.zero_grad()

    def prepare_grads(self) -> None:
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)

    def forward(self) -> torch.Tensor:
        loss = self.loss_fn()
        self.loss = loss
        return loss

    def prepare_backward(self) -> None:
        """Setup for timing backward alone: a fresh graph (untimed), grads cleared."""
        self.opt.zero_grad()
        self.loss = self.loss_fn()

    def forward_backward(self) -> None:
        """Clear the grads, forward+loss and backward: the optimizer-independent part of an epoch (the
        benches' in-round reference: no optimizer code runs in it; it leaves fresh gradients for a step)."""
        for p in self.params:
            p.grad = None
        self.loss_fn().backward()

    def backward(self) -> None:
        assert self.loss is not None
        self.loss.backward()
        self.loss = None

    def step(self) -> None:
        self._step()

    def phase(self, name: str) -> tuple[Callable[[], Any], Callable[[], Any] | None]:
        """``(timed, setup)`` for a phase; setup (untimed) runs before every timed call when not None."""
        if name == "epoch":
            return self.epoch, None
        if name == "zero_grad":
            return self.zero_grad, self.prepare_grads
        if name == "forward":
            # forward+loss; the graph is dropped each call so memory does not grow
            def fwd() -> None:
                self.forward()
                self.loss = None

            return fwd, None
        if name == "backward":
            return self.backward, self.prepare_backward
        if name == "step":
            self.prepare_grads()
            return self.step, None
        raise ValueError(f"unknown phase {name!r}; use one of {', '.join(PHASES)}")
