"""The seed experiment: one target trained with one optimizer through the five-step loop, checked
against the analytic minimizer and, for plain gradient descent on a quadratic, the exact closed form.

The original study trains f(x) = 3x^2 - 2x + 3 with the five-step loop (SGD, lr 0.01, 80 epochs from
x = -1) and reaches x ~ 0.32 against the analytic minimizer x* = 1/3. :func:`run_seed` runs any
target/optimizer through :func:`optbench.loop.run_loop` and returns a
:class:`~optbench.seed_result.SeedResult` that the ``optbench run`` command prints and saves. The exact
numbers come from :mod:`optbench.exact` and :mod:`optbench.closed_form`, the names from
:mod:`optbench.resolve`.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Sequence

import sympy
import torch

from .closed_form import ClosedFormNotApplicable, gd_closed_form_model
from .devices import parse_device, parse_dtype
from .errors import OptbenchError, SpecError
from .exact import exact_number
from .loop import run_loop
from .resolve import parse_start, resolve_optimizer, resolve_target
from .seed_result import SeedResult

# The seed study, as published.
SEED_TARGET = "seed_quadratic"
SEED_OPTIMIZER = "sgd"
SEED_LR = "0.01"
SEED_EPOCHS = 80
# torch.tensor(-1.0, requires_grad=True) in the study: torch's default dtype.
SEED_DTYPE = "float32"


def _make_optimizer(factory: Callable[..., Any], params: list[torch.Tensor], lr: float,
                    momentum: float | None, name: str) -> torch.optim.Optimizer:
    kwargs: dict[str, Any] = {"lr": lr}
    if momentum is not None:
        try:
            sig = inspect.signature(factory)
            accepts = "momentum" in sig.parameters or any(
                p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()
            )
        except (TypeError, ValueError):
            accepts = True
        if not accepts:
            raise OptbenchError(f"{name} has no momentum argument; drop --momentum or use sgd/rmsprop")
        kwargs["momentum"] = momentum
    try:
        opt = factory(params, **kwargs)
    except (TypeError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OptbenchError(f"cannot build optimizer {name} with {kwargs}: {msg}") from None
    if not isinstance(opt, torch.optim.Optimizer):
        raise SpecError(f"--optimizer {name}: the factory returned a {type(opt).__name__}, not a torch.optim.Optimizer")
    return opt


def _plain_gd_reason(opt: torch.optim.Optimizer, name: str) -> str | None:
    """None when ``opt`` is exactly plain gradient descent; else why the closed form does not model it."""
    if type(opt) is not torch.optim.SGD:
        return f"it models plain gradient descent (SGD), not {name}"
    for g in opt.param_groups:
        if g.get("momentum", 0):
            return "it models plain gradient descent, not SGD with momentum"
        if g.get("weight_decay", 0):
            return "it models plain gradient descent, not SGD with weight decay"
        if g.get("maximize", False):
            return "it models descent, not SGD with maximize=True"
    return None


def nearest_minimizer(target: Any, x: Sequence[float]) -> tuple[sympy.Expr, ...]:
    mins = [tuple(m) if isinstance(m, (tuple, list)) else (m,) for m in target.minimizers]
    if not mins:
        raise OptbenchError(f"{target.name} has no known minimizer; it cannot be used with `optbench run`")
    if not all(math.isfinite(v) for v in x):
        return mins[0]
    return min(mins, key=lambda m: sum((float(a) - b) ** 2 for a, b in zip(m, x)))


def exact_value(target: Any, x: Sequence[float]) -> sympy.Expr:
    """f at the float point ``x``, exactly (each float is an exact binary rational)."""
    subs = {v: sympy.Rational(float(c)) for v, c in zip(target.variables, x)}
    return target.expr.subs(subs)


def run_seed(
    target: Any = SEED_TARGET,
    optimizer: str | Callable[..., torch.optim.Optimizer] = SEED_OPTIMIZER,
    lr: Any = SEED_LR,
    epochs: int = SEED_EPOCHS,
    start: Any = None,
    dtype: str | torch.dtype = SEED_DTYPE,
    device: str = "cpu",
    momentum: float | None = None,
) -> SeedResult:
    """Run ``target`` with ``optimizer`` through :func:`optbench.loop.run_loop` and put the analytic
    minimizer and (for plain GD on a quadratic) the exact closed form next to the trajectory.

    With no arguments this is the seed study: SGD, lr 0.01, 80 epochs from x = -1 on 3x^2 - 2x + 3.
    Bad inputs raise :class:`OptbenchError` with a one-line message.
    """
    import time

    tgt = resolve_target(target) if isinstance(target, str) else target
    if isinstance(optimizer, str):
        opt_name, factory = resolve_optimizer(optimizer)
    else:
        opt_name, factory = getattr(optimizer, "__name__", type(optimizer).__name__), optimizer
    lr_text = str(lr).strip()
    lr_q = exact_number(lr, what="lr")
    if lr_q <= 0:
        raise OptbenchError(f"lr {lr_text} must be positive; give a number like 0.01")
    lr_f = float(lr_q)
    if isinstance(epochs, bool) or not isinstance(epochs, int):
        try:
            epochs = int(str(epochs).strip())
        except ValueError:
            raise OptbenchError(f"epochs {epochs!r} is not a whole number; give one like 80") from None
    if epochs < 1:
        raise OptbenchError(f"epochs {epochs} must be at least 1")
    if momentum is not None:
        momentum = float(exact_number(momentum, what="momentum"))
        if not 0 <= momentum < 1:
            raise OptbenchError(f"momentum {momentum:g} must be in [0, 1)")
    dt = dtype if isinstance(dtype, torch.dtype) else parse_dtype(str(dtype).strip().removeprefix("torch."))
    dev = parse_device(device)
    x0 = parse_start(start, tgt)

    x = torch.tensor([float(v) for v in x0], dtype=dt, device=dev, requires_grad=True)
    opt = _make_optimizer(factory, [x], lr_f, momentum, opt_name)
    t0 = time.perf_counter()
    traj = run_loop(lambda: tgt.fn(x), [x], opt, epochs)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        last_loss = float(tgt.fn(x.detach()))
    xs = [[float(v) for v in snap[0].detach().cpu().double()] for snap in traj.xs]
    losses = list(traj.losses) + [last_loss]

    reason = _plain_gd_reason(opt, opt_name)
    cf = None
    cf_xs = None
    if reason is None:
        try:
            cf = gd_closed_form_model(tgt, lr_q, x0)
        except ClosedFormNotApplicable as exc:
            reason = str(exc)
    if cf is not None:
        cf_xs = cf.float_trajectory(epochs)

    x_star = nearest_minimizer(tgt, xs[-1])
    f_star = sympy.sympify(tgt.f_star)
    if all(math.isfinite(v) for v in xs[-1]):
        f_gap = float(sympy.N(exact_value(tgt, xs[-1]) - f_star, 30))
    else:
        f_gap = math.nan
    return SeedResult(
        target=tgt,
        optimizer_name=opt_name,
        optimizer_type=f"{type(opt).__module__}.{type(opt).__qualname__}",
        lr_text=lr_text,
        lr=lr_f,
        momentum=momentum,
        epochs=epochs,
        dtype=dt,
        device=dev,
        start=x0,
        trajectory=traj,
        xs=xs,
        losses=losses,
        x_star=x_star,
        f_star=f_star,
        closed_form=cf,
        closed_form_reason=reason,
        closed_form_xs=cf_xs,
        f_gap=f_gap,
        seconds=seconds,
    )
