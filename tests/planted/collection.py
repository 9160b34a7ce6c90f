"""A package-like module for ``module:*`` (every optimizer a module exports): one optimizer exported under two
names, a wrapper that takes another optimizer, one whose constructor needs an argument no default gives, one
whose arguments default to None and are computed with, one that takes its parameters in two lists, and an
abstract base class exported beside the optimizer built on it, one that allocates on CUDA, one whose constructor
refuses its own default, and one whose every step raises, and names that are not optimizers. Only the loader's expansion is tested on it; nothing here is planted as a bug."""

from __future__ import annotations

import torch

__all__ = ["PlainSGD", "AliasSGD", "Wrapper", "NeedsHorizon", "NoneHorizon", "TwoLists", "CoreBase", "FromCore", "OnCuda", "RefusesMomentum",
           "StepAlwaysRaises", "helper",
           "CONSTANT"]

CONSTANT = 3


def helper() -> int:
    return CONSTANT


class PlainSGD(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-2) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])


AliasSGD = PlainSGD  # the same class under a second name: validated once


class Wrapper(torch.optim.Optimizer):
    """Lookahead-like: wraps the optimizer it is given."""

    def __init__(self, optimizer: torch.optim.Optimizer, k: int = 5) -> None:
        self.optimizer = optimizer
        self.k = k

    def step(self, closure=None):
        return self.optimizer.step(closure)


class NeedsHorizon(PlainSGD):
    """Ranger21-like: the constructor needs the training length."""

    def __init__(self, params, num_iterations: int, lr: float = 1e-2) -> None:
        super().__init__(params, lr)
        self.num_iterations = num_iterations


class NoneHorizon(PlainSGD):
    """ranger21's Ranger21: the training length in two arguments that default to None and are multiplied."""

    def __init__(self, params, lr: float = 1e-2, num_epochs=None, num_batches_per_epoch=None, warmup=None) -> None:
        super().__init__(params, lr)
        self.total = num_epochs * num_batches_per_epoch


class TwoLists(PlainSGD):
    """MuonAdamAtan2-like (lucidrains' adam-atan2-pytorch): matrices and the other parameters in two lists."""

    def __init__(self, muon_params, params, lr: float = 1e-2) -> None:
        super().__init__([*muon_params, *params], lr)


class CoreBase(torch.optim.Optimizer):
    """prodigy-plus-schedule-free's CoreOptimiser: a base whose step reads a setting only its subclasses give."""

    def __init__(self, params, lr: float = 1e-2, **kwargs) -> None:
        super().__init__(params, {"lr": lr, **kwargs})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"] * group["d0"])


class FromCore(CoreBase):
    def __init__(self, params, lr: float = 1e-2, d0: float = 1.0) -> None:
        super().__init__(params, lr, d0=d0)


class OnCuda(PlainSGD):
    """kron-torch's DistributedKron: its constructor allocates a buffer on "cuda"."""

    def __init__(self, params, lr: float = 1e-2) -> None:
        super().__init__(params, lr)
        self.buffer = torch.empty(4, device="cuda")


class RefusesMomentum(PlainSGD):
    """bitsandbytes' SGD: momentum defaults to 0, which its constructor refuses."""

    def __init__(self, params, lr: float = 1e-2, momentum: float = 0) -> None:
        if momentum == 0:
            raise NotImplementedError("SGD without momentum is not supported!")
        super().__init__(params, lr)


class StepAlwaysRaises(PlainSGD):
    """bitsandbytes' PytorchLARS: at its default momentum=0 the update is never assigned (UnboundLocalError)."""

    def __init__(self, params, lr: float = 1e-2, momentum: float = 0) -> None:
        torch.optim.Optimizer.__init__(self, params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if group["momentum"] != 0:
                    update = p.grad
                p.add_(update, alpha=-group["lr"])  # noqa: F821 - unbound at momentum 0, the planted bug
