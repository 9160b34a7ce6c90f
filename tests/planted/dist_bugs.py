"""Planted distributed bugs: a correct DTensor-aware optimizer, and three copies with one bug each.

``DistRef`` is Adam on an extrapolated gradient ``g + beta_x·(g - g_prev)`` (it keeps the previous
gradient, as Adan-like optimizers do), scaled by a LAMB-style trust ratio ``|p| / |update|`` per
parameter. It is correct under FSDP2 (norms of DTensors reduce across shards; state created with
``zeros_like(p)`` is sharded like ``p``), DDP and ZeRO, and through torch.distributed.checkpoint.

``PLANTED_DIST`` maps each buggy class to the property that must catch it:

* ``LocalShardNorm`` (P18): the trust ratio's norms are taken on ``.to_local()``, the rank's shard,
  so each rank scales its shard differently. Invisible in one process, DDP and ZeRO (full tensors).
* ``LocalShardState`` (P20): keeps m, v and the previous gradient as plain tensors of the local shard
  (``zeros_like(p.to_local())``) and updates the shard in place. Its steps are right (P18 holds, the
  norms are reduced by hand), but a checkpoint sees plain tensors, i.e. replicated ones: it cannot
  reshard them to another world size.
* ``GradAlias`` (P19): keeps ``p.grad`` itself, not a copy, as the previous gradient. In one process
  (``zero_grad(set_to_none=True)``) every backward makes a new tensor, so the alias is harmless; under
  DDP with ``gradient_as_bucket_view=True`` the gradient is a view into the communication bucket, which
  the next backward overwrites, so "the previous gradient" silently becomes the current one.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch.optim import Optimizer


def _is_dtensor(t: torch.Tensor) -> bool:
    return hasattr(t, "to_local") and hasattr(t, "device_mesh")


class DistRef(Optimizer):
    """Adam with gradient extrapolation and a trust ratio; ``bug`` names the planted bug (None: correct)."""

    bug: str | None = None

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, beta_x=0.5):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, beta_x=beta_x))

    def _norm(self, t: torch.Tensor, like: torch.Tensor) -> float:
        if self.bug == "local_norm" and _is_dtensor(t):
            return float(torch.linalg.vector_norm(t.to_local()))  # the bug: this rank's shard only
        if self.bug == "local_state" and _is_dtensor(like) and not _is_dtensor(t):
            sq = t.double().square().sum()  # a local shard: reduce the squares over the ranks by hand
            dist.all_reduce(sq, group=like.device_mesh.get_group())
            return float(sq.sqrt())
        n = torch.linalg.vector_norm(t)
        return float(n.full_tensor() if _is_dtensor(n) else n)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                local = self.bug == "local_state" and _is_dtensor(p)
                x = p.to_local() if local else p  # the bug: state and math on the local shard
                g = p.grad.to_local() if local else p.grad
                st = self.state[p]
                if not st:
                    st["step"] = torch.tensor(0.0)
                    st["m"] = torch.zeros_like(x)
                    st["v"] = torch.zeros_like(x)
                    st["prev"] = g.clone()
                st["step"] += 1
                t = int(st["step"].item())
                ge = g + group["beta_x"] * (g - st["prev"])
                st["prev"] = g if self.bug == "grad_alias" else g.clone()  # the bug: an alias of p.grad
                st["m"].mul_(b1).add_(ge, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(ge, ge, value=1 - b2)
                upd = (st["m"] / (1 - b1 ** t)) / ((st["v"] / (1 - b2 ** t)).sqrt() + group["eps"])
                wn, un = self._norm(x, p), self._norm(upd, p)
                ratio = wn / un if wn > 0 and un > 0 else 1.0
                x.add_(upd, alpha=-group["lr"] * ratio)
        return loss


def _planted(name: str, bug: str, doc: str) -> type:
    return type(name, (DistRef,), {"bug": bug, "__doc__": doc, "__module__": __name__})


PLANTED_DIST: dict[str, tuple[str, str, str]] = {
    # class name: (bug, property that must fail, what the bug is)
    "LocalShardNorm": ("local_norm", "P18", "takes the trust ratio's norms on the local shard (.to_local())"),
    "LocalShardState": ("local_state", "P20", "keeps its state as plain tensors of the local shard"),
    "GradAlias": ("grad_alias", "P19", "keeps p.grad itself (not a copy) as the previous gradient"),
}

for _name, (_bug, _prop, _doc) in PLANTED_DIST.items():
    globals()[_name] = _planted(_name, _bug, f"Planted distributed bug ({_prop}): {_doc}.")


class SilentWarmup(torch.optim.SGD):
    """Not a bug: a warmup that takes no step for its first 5 steps (as RAdamScheduleFree's does), so P20's
    2+2 steps never move the parameters and a state lost through the checkpoint could not show: N/A, not PASS."""

    WARMUP = 5

    def __init__(self, params: Any, lr: float = 0.01, **kwargs: Any) -> None:
        super().__init__(params, lr=lr, **kwargs)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            group["calls"] = group.get("calls", 0) + 1
        if self.param_groups[0]["calls"] > self.WARMUP:
            super().step()
        return loss


class CounterInState(torch.optim.SGD):
    """Keeps a step counter under a key of its own in ``self.state`` (MADGRAD's 'k', EmoFact's 'ema'), which is
    not a parameter: torch.distributed.checkpoint's get_state_dict maps optimizer state by parameter and raises
    KeyError at any world size. P20 must say that, not blame a resharding of DTensor state."""

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        self.state["k"] = self.state.get("k", 0) + 1
        return super().step(closure)


class GramSGD(torch.optim.SGD):
    """Correct, and not elementwise: SGD on the gradient preconditioned by its accumulated Gram matrix,
    ``G += g gᵀ``, step ``G g`` (matrix products of the gradient, as Shampoo's and SOAP's statistics are). It
    keeps no gradient and changes none, so DDP and ZeRO must match one process; but a CPU BLAS product rounds
    differently for an input at another memory alignment, and DDP's gradients are views at offsets into its
    buckets, so the match is to a rounding tolerance, not bit for bit."""

    @torch.no_grad()
    def step(self, closure=None):
        saved = []
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                m = grad.reshape(grad.shape[0], -1) if grad.dim() > 1 else grad.reshape(1, -1)
                st = self.state[p]
                if "gram" not in st:
                    st["gram"] = torch.eye(m.shape[0], dtype=m.dtype, device=m.device) * 1e-6
                st["gram"].addmm_(m, m.t())  # the accumulated statistic, as Shampoo's L += g gᵀ
                pre = st["gram"] @ m
                saved.append((p, grad))
                p.grad = pre.reshape(grad.shape)
        try:
            return super().step(closure)
        finally:
            for p, grad in saved:
                p.grad = grad


class NestedStateDict(torch.optim.SGD):
    """Returns its state_dict nested under a key of its own, as a wrapper does (pytorch-optimizer's Magma:
    ``{'base': AdamW's state_dict, 'magma_state': ...}``): torch.distributed.checkpoint's get_state_dict reads
    ``osd['state']`` and raises KeyError: 'state'. P20 must name the layout, not a key of optimizer.state."""

    def state_dict(self) -> dict:
        return {"base": super().state_dict(), "extra": 1}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict["base"])


class PartialNormInState(torch.optim.SGD):
    """Keeps the gradient's norm as state, unreduced (pytorch-optimizer's SGDSaI: state['gsnr'] = grad.norm()):
    under FSDP2 that is a DTensor with a pending Partial placement, which dcp.save refuses."""

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    self.state[p]["gnorm"] = p.grad.norm()
        return super().step(closure)


class NoiseOverLr(torch.optim.SGD):
    """Draws each parameter's initial noise state with std = 0.1 / lr (Gravity's ``std=alpha / lr``): at lr = 0
    the constructor of the state raises ZeroDivisionError. torch.distributed.checkpoint's get_state_dict
    initialises a fresh optimizer's state with one lr=0 step, so P20 fails there, inside the optimizer's own code:
    its message must say so, not blame a resharding of DTensor state."""

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and "v" not in self.state[p]:
                    self.state[p]["v"] = torch.empty_like(p).normal_(mean=0.0, std=0.1 / group["lr"])
        return super().step(closure)
