"""The model, data and training step that every distributed check runs, in one process and on the ranks.

A two-layer tanh MLP, 4 -> 6 -> 3, with a mean-squared loss. Small on purpose (a check is a few steps
of it), but shaped to exercise sharding: under FSDP2 (``Shard(0)`` over 2 ranks) the 6-row weight
and bias split evenly (3 + 3) and the 3-row ones unevenly (2 + 1, padded), the way real layers do.
Optimizers that take 2-D parameters only (``matrix_only``, e.g. Muon) get the MLP without biases.

Every rank trains on its own micro-batch. The one-process run that a distributed run must equal
(:func:`reference_step`) computes each micro-batch's gradient separately and averages them as the
data-parallel reduction does (``g_r / world_size``, summed): DDP and FSDP2 both divide by the world
size before a sum-reduction (float64 on gloo; FSDP2 averages float32 with ``ReduceOp.AVG``, the same
value for 2 ranks), and with 2 ranks a sum of two terms does not depend on the order. So the
comparison can be bit for bit: what differs is only what the optimizer does with sharded or
bucketed tensors, which is what the checks are about.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..optimizers.contract import Case

IN, HIDDEN, OUT = 4, 6, 3
BATCH = 4  # rows per rank
SEED = 0  # the model the runs start from
OTHER_SEED = 1  # a different start, for a model that a checkpoint load must overwrite


def _seeded(shape: Sequence[int], seed: int, dtype: torch.dtype, device: str, scale: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (scale * (2 * torch.rand(*shape, generator=g, dtype=torch.float64) - 1)).to(dtype=dtype, device=device)


def build_model(case: Case, seed: int = SEED, device: str | None = None) -> nn.Module:
    """The MLP with deterministic weights (independent of the global RNG), in ``case.dtype``."""
    device = device or case.device
    bias = not case.info.matrix_only
    kw: dict[str, Any] = {"bias": bias, "dtype": case.dtype, "device": device}
    model = nn.Sequential(nn.Linear(IN, HIDDEN, **kw), nn.Tanh(), nn.Linear(HIDDEN, OUT, **kw))
    with torch.no_grad():
        for i, (_, p) in enumerate(model.named_parameters()):
            fan_in = p.shape[-1] if p.dim() > 1 else HIDDEN
            p.copy_(_seeded(p.shape, 1000 * seed + i, case.dtype, device, fan_in ** -0.5 * 1.5))
    return model


def batch(case: Case, rank: int, device: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank ``rank``'s micro-batch (inputs, targets); the same on every step."""
    device = device or case.device
    x = _seeded((BATCH, IN), 500 + rank, case.dtype, device, 2.0)
    y = _seeded((BATCH, OUT), 600 + rank, case.dtype, device, 1.0)
    return x, y


def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((out - y) ** 2).mean()


def param_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def reference_step(model: nn.Module, opt: torch.optim.Optimizer, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                   step: Callable[[Callable[[], Any] | None], Any], closure: bool) -> None:
    """One step of the five-step loop in one process, with the data-parallel gradient of ``batches``.

    ``step(closure_or_None)`` calls ``opt.step`` (the caller wraps it to attribute exceptions); ``closure``:
    the optimizer takes ``step(closure)`` (LBFGS-like).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    ws = len(batches)

    def grads_and_loss() -> torch.Tensor:
        opt.zero_grad()
        total_grads: list[torch.Tensor] | None = None
        total_loss: torch.Tensor | None = None
        with torch.enable_grad():
            for x, y in batches:  # rank order; for 2 ranks a + b == b + a, so the order does not matter
                loss = loss_fn(model(x), y)
                gs = torch.autograd.grad(loss, params)
                gs = [g / ws for g in gs]
                lw = loss.detach() / ws
                total_grads = gs if total_grads is None else [a + b for a, b in zip(total_grads, gs)]
                total_loss = lw if total_loss is None else total_loss + lw
        for p, g in zip(params, total_grads or []):
            p.grad = g
        assert total_loss is not None
        return total_loss

    if closure:
        opt.zero_grad()  # 1
        step(grads_and_loss)  # 2-4: the closure does forward, loss and backward
    else:
        grads_and_loss()  # 1-3
        step(None)  # 4


def distributed_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, world_size: int,
                     step: Callable[[Callable[[], Any] | None], Any], closure: bool) -> None:
    """One step on a rank: the DDP/FSDP2 module reduces the gradients in backward.

    A closure returns the loss averaged over the ranks (``l_r / world_size`` summed), as the one-process
    reference does, so that every rank's line search or tolerance test sees the same value.
    """
    import torch.distributed as dist

    def closure_fn() -> torch.Tensor:
        opt.zero_grad()
        with torch.enable_grad():
            loss = loss_fn(model(x), y)
            loss.backward()
        value = loss.detach() / world_size
        dist.all_reduce(value)
        return value

    if closure:
        opt.zero_grad()
        step(closure_fn)
    else:
        opt.zero_grad()  # 1
        loss = loss_fn(model(x), y)  # 2
        loss.backward()  # 3
        step(None)  # 4


def snapshot(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Full (unsharded) CPU copies of the parameters; a DTensor is gathered (a collective)."""
    out = []
    for p in params:
        t = p.detach()
        if hasattr(t, "full_tensor"):
            t = t.full_tensor()
        out.append(t.clone().cpu())
    return out
