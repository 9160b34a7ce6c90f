"""User targets whose torch implementation (a custom autograd.Function) carries one planted bug.

Each is what a user would pass with ``pytest validation --target tests.user_targets.planted:NAME``.
The symbolic ``expr`` is the truth; ``impl`` is the kernel under test. ``correct`` must pass.
"""

from __future__ import annotations

import torch

from optbench import Target

EXPR = "(1 - x)**2 + 10*(y - x**2)**2"  # a Rosenbrock with b = 10: nonzero mixed and third derivatives


def _value(x: torch.Tensor) -> torch.Tensor:
    a, b = x[..., 0], x[..., 1]
    return (1 - a) ** 2 + 10 * (b - a**2) ** 2


def _grad(x: torch.Tensor) -> torch.Tensor:
    a, b = x[..., 0], x[..., 1]
    return torch.stack([-2 * (1 - a) - 40 * a * (b - a**2), 20 * (b - a**2)], dim=-1)


def _function(name: str, *, forward_offset: float = 0.0, grad_scale: float = 1.0, detach_backward: bool = False):
    class Kernel(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return _value(x) + forward_offset

        @staticmethod
        def backward(ctx, grad_out):
            (x,) = ctx.saved_tensors
            # Written with differentiable ops, so double backward (the Hessian) flows through it,
            # unless the planted bug detaches x and silently loses the second order.
            g = _grad(x.detach() if detach_backward else x)
            return grad_out.unsqueeze(-1) * grad_scale * g

    Kernel.__name__ = Kernel.__qualname__ = name
    return Kernel.apply


def _target(name: str, **bug) -> Target:
    return Target(name, EXPR, variables=["x", "y"], start=[(-1.5, 2.0)], impl=_function(name, **bug))


correct = _target("kernel_correct")
wrong_sign = _target("kernel_wrong_sign", grad_scale=-1.0)
wrong_factor = _target("kernel_wrong_factor", grad_scale=0.5)
zero_second_order = _target("kernel_zero_second_order", detach_backward=True)
forward_offset = _target("kernel_forward_offset", forward_offset=0.25)

PLANTED = {
    # name -> (the property that must catch it, the quantity its diagnosis names)
    "kernel_wrong_sign": ("G2 gradient", "gradient"),
    "kernel_wrong_factor": ("G2 gradient", "gradient"),
    "kernel_zero_second_order": ("G3 hessian", "hessian"),
    "kernel_forward_offset": ("G1 value", "value"),
}


def _rosen(x: torch.Tensor) -> torch.Tensor:
    return (1 - x[..., 0]) ** 2 + 100 * (x[..., 1] - x[..., 0] ** 2) ** 2


# The classic Rosenbrock with its classic start and a correct torch implementation, written as a user
# would, without domain=: it must pass every target check (its derived default domain once left the
# start outside, and T1 failed with a bare assert).
rosen = Target("rosen", "(1 - x)**2 + 100*(y - x**2)**2", variables=["x", "y"], start=[-1.2, 1.0], impl=_rosen)


def all_planted() -> list[Target]:
    return [correct, wrong_sign, wrong_factor, zero_second_order, forward_offset]
