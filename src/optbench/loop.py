"""The five-step training loop of the seed study, shared by validation, benches and the CLI.

    1. optimizer.zero_grad()
    2. forward and loss
    3. loss.backward()
    4. optimizer.step()            (step(closure) for closure optimizers such as LBFGS)
    5. record the loss

Everything that trains in optbench goes through :func:`run_loop`. Two conventions of real training
are followed here, so that every caller gets them:

* an lr scheduler (``scheduler=``, any ``torch.optim.lr_scheduler`` object) is stepped after each
  ``optimizer.step()``, as a training loop does;
* optimizers with ``train()``/``eval()`` modes (schedule-free methods) step in train mode, and the
  recorded parameters are read in eval mode (the point the method returns), then train mode is restored.

An exception raised by the optimizer's own ``zero_grad``/``step`` is re-raised as
:class:`OptimizerRaised`, so callers can tell the optimizer's failure from their own.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch

LossFn = Callable[[], torch.Tensor]
# on_epoch(epoch, loss) is called after step 3 (backward) and before step 4 (step), when every p.grad
# holds the gradient at the current x. Returning True stops the run there, before that epoch's step (P1's
# shared runs stop once every unit has finished: a further step would be taken for nothing).
EpochHook = Callable[[int, torch.Tensor], "bool | None"]


def no_address(text: str) -> str:
    """``<function LBFGS.step at 0x7f81...>`` -> ``<function LBFGS.step>``: a memory address differs from run to
    run, and a verdict's message must not."""
    return re.sub(r" at 0x[0-9a-fA-F]+(?=>)", "", text)


class OptimizerRaised(Exception):
    """The optimizer's own code raised; ``call`` names the call (``step()``...), ``original`` the exception (its
    message on one line, without memory addresses: Dynamo's errors name ``<function einsum at 0x7f...>``)."""

    def __init__(self, call: str, original: BaseException) -> None:
        self.call = call
        self.original = original
        msg = no_address(" ".join(str(original).split()))
        super().__init__(f"{call} raised {type(original).__name__}: {msg}" if msg else f"{call} raised "
                         f"{type(original).__name__}")


def call_optimizer(call: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call into the optimizer; its exceptions become :class:`OptimizerRaised` (KeyboardInterrupt passes)."""
    try:
        return fn(*args, **kwargs)
    except OptimizerRaised:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the optimizer raises is its finding
        raise OptimizerRaised(call, exc) from exc


def has_modes(optimizer: Any) -> bool:
    """Whether the optimizer has schedule-free style ``train()``/``eval()`` modes."""
    return callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))


def training_closure(optimizer: torch.optim.Optimizer, loss_fn: Callable[[], torch.Tensor],
                     seen: list[torch.Tensor] | None = None) -> Callable[[], torch.Tensor]:
    """The closure ``step(closure)`` gets: zero_grad, loss, backward, the loss returned (and appended to ``seen``).
    It enables grad itself: a step() under no_grad may call it without enable_grad (AliG does)."""

    def closure() -> torch.Tensor:
        with torch.enable_grad():
            optimizer.zero_grad()
            value = loss_fn()
            value.backward()
        if seen is not None:
            seen.append(value.detach())
        return value

    return closure


def needs_closure(optimizer: torch.optim.Optimizer) -> bool:
    """Closure optimizers re-evaluate the loss inside ``step``; torch's LBFGS is the built-in one."""
    return bool(getattr(optimizer, "_optbench_needs_closure", isinstance(optimizer, torch.optim.LBFGS)))


@dataclass
class Trajectory:
    """What a run recorded. ``xs[k]`` is the parameters before epoch k's step (``xs[0]`` = start)."""

    losses: list[float] = field(default_factory=list)
    xs: list[list[torch.Tensor]] = field(default_factory=list)
    epochs_run: int = 0
    stopped: str | None = None  # None (budget spent), "hook" (on_epoch asked to stop), "nonfinite"
    nonfinite_epoch: int | None = None

    @property
    def diverged(self) -> bool:
        return self.stopped == "nonfinite"

    def x(self, k: int = -1, i: int = 0) -> torch.Tensor:
        """Parameter ``i`` after recorded snapshot ``k`` (default: the last)."""
        return self.xs[k][i]

    def stacked(self, i: int = 0) -> torch.Tensor:
        """All snapshots of parameter ``i`` stacked along a new first dim."""
        return torch.stack([snap[i] for snap in self.xs])


def _snapshot(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def read_params(params: Sequence[torch.Tensor], optimizer: Any) -> list[torch.Tensor]:
    """A copy of the parameters as the method returns them: in eval mode for optimizers with modes."""
    if not has_modes(optimizer):
        return _snapshot(params)
    call_optimizer("eval()", optimizer.eval)
    try:
        return _snapshot(params)
    finally:
        call_optimizer("train()", optimizer.train)


def _finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def run_loop(
    loss_fn: LossFn,
    params: Iterable[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    epochs: int,
    *,
    zero_grad: bool = True,
    record_x: bool = True,
    on_epoch: EpochHook | None = None,
    closure: bool | None = None,
    check_finite: bool = True,
    scheduler: Any = None,
) -> Trajectory:
    """Run the five-step loop for at most ``epochs`` epochs and return the :class:`Trajectory`.

    ``zero_grad=False`` skips step 1, so gradients accumulate across epochs (the seed's warning).
    A non-finite loss or parameter stops the run at once and sets ``stopped="nonfinite"`` and
    ``nonfinite_epoch``; callers turn that into a diagnosis instead of iterating on NaN.
    ``scheduler`` (a ``torch.optim.lr_scheduler`` object over ``optimizer``) is stepped after each step.
    """
    params = list(params)
    use_closure = needs_closure(optimizer) if closure is None else closure
    modes = has_modes(optimizer)
    if modes:  # a training loop puts a moded optimizer in train mode before stepping
        call_optimizer("train()", optimizer.train)
    traj = Trajectory()
    if record_x:
        traj.xs.append(read_params(params, optimizer) if modes else _snapshot(params))
    for epoch in range(epochs):
        if use_closure:
            calls: list[torch.Tensor] = []
            _closure = training_closure(optimizer, loss_fn, calls)

            if zero_grad:
                call_optimizer("zero_grad()", optimizer.zero_grad)
            loss = loss_fn()
            loss.backward()
            stop = bool(on_epoch(epoch, loss.detach())) if on_epoch is not None else False
            if stop:
                traj.stopped = "hook"
                break
            call_optimizer("step(closure)", optimizer.step, _closure)
        else:
            if zero_grad:
                call_optimizer("zero_grad()", optimizer.zero_grad)  # 1
            loss = loss_fn()  # 2
            loss.backward()  # 3
            stop = bool(on_epoch(epoch, loss.detach())) if on_epoch is not None else False
            if stop:
                traj.stopped = "hook"
                break
            call_optimizer("step()", optimizer.step)  # 4
        if scheduler is not None:
            scheduler.step()
        value = float(loss.detach().sum())  # 5
        traj.losses.append(value)
        traj.epochs_run = epoch + 1
        if record_x:
            traj.xs.append(read_params(params, optimizer) if modes else _snapshot(params))
        if check_finite and (not math.isfinite(value) or not all(_finite(p.detach()) for p in params)):
            traj.stopped, traj.nonfinite_epoch = "nonfinite", epoch
            break
    return traj
