"""The property contract P2-P17: checks that hold for every optimizer, built-in or user-supplied.

Each ``check_pN(case)`` runs a few steps through :func:`optbench.loop.run_loop` on tiny 2-D
parameters and a separable, non-quadratic loss, and raises :class:`PropertyFailure` whose message
is a diagnosis: the property, the optimizer, dtype and device, expected against got, and where it
happened. Nothing here imports pytest.

Every side of a comparison starts from the same global RNG state (:mod:`.rng`: ``reseed()`` before
each side, inside a forked RNG), so a stochastic optimizer is compared with itself. Where P6 or P7
find a difference, :mod:`.coupling` names its cause (a bug, a trait of the method, or the order of
random draws). A FAIL of a property some methods break on purpose (:data:`BY_DESIGN`) carries the
ready-to-paste exemption stanza (``PropertyFailure.stanza``, :mod:`.findings`). The problem and
its runs live in :mod:`.problem`; names other modules import from here are re-exported. One job, the
checks P2-P17 on one shared problem (P6/P7 in :mod:`.coupling`), hence one file above 500 lines.
"""

from __future__ import annotations

import copy
import io
import math
from typing import Any, Callable, Sequence

import torch

from ..devices import dtype_name
from ..loop import OptimizerRaised, call_optimizer, needs_closure, training_closure
from ..verdict import NotApplicable
from . import rng, rounding
# re-exported: the contract's names, imported from here by the plans, P1 and the distributed checks
from .coupling import (_RNG_USE, RngUse, _drawing_run, check_p6, check_p7, classify_rng,  # noqa: F401
                       property_p6, property_p7, rng_use)
from .findings import (BY_DESIGN, DrawOrder, PropertyFailure, exemption_stanza,  # noqa: F401
                       optimizer_finding, raised_cause, root_cause, root_finding)
from .problem import (LONG_STEPS, REL_TOL, SHAPES, STEPS, Case, Problem, _cmp_word, _dense, _fmt,  # noqa: F401
                      _loop, _run, _same, _traj_diff, accepts, case_key, constructs, declared_dtype_values,
                      declared_dtypes, float32_written, state_leaves, state_tensors,
                      fresh_run, max_diff, rel_tol, step_takes_closure)
from .problem import OVERWRITES, SHIFT  # noqa: F401 - re-exported
from .problem import first_step_overwrites as _first_step_overwrites

# a float64 run whose parameters come back from step() holding float32 values (problem.float32_written)
F32_COMPUTE = ("step() computes the float64 parameters in float32 and copies them back (p.data.float() ... "
               "p.data.copy_()), so a float64 run has float32 precision (compute in the parameter's dtype)")
F32_REASON = "step() computes float64 parameters in float32"

# ---------------------------------------------------------------------------------------------
# P2 - P17

P2_STEPS = 3  # a state-initialising first step (ADOPT: v0 = g0², no update) is followed by one that moves
P2_SMALLER = 100  # a descent step that overshoots at the contract lr is retried at lr / 100 ("small lr")
P2_LATE = 20  # nothing moved in P2_STEPS: how long to look for a method that waits before its first update


def _p2_first_move(case: Case, seed: int = rng.SEED, steps: int = 0, **overrides: Any
                   ) -> tuple[int, Problem, Any, list[list[torch.Tensor]]] | None:
    """(k, problem, trajectory, gradients) of the first of ``P2_STEPS`` steps that moves a parameter, or None."""
    rng.reseed(seed)
    prob = Problem(case)
    opt = case.make(prob.params, **overrides)
    grads: list[list[torch.Tensor]] = []

    def hook(epoch: int, value: torch.Tensor) -> None:
        grads.append([_dense(p.grad).detach().clone() if p.grad is not None else torch.zeros_like(p)
                      for p in prob.params])

    traj = _loop(case, prob.loss_fn(), prob.params, opt, steps or P2_STEPS, on_epoch=hook, check_finite=False)
    gmax = max(float(t.abs().max()) for gs in grads for t in gs) if grads else 0.0
    if gmax == 0.0:
        raise RuntimeError("P2's problem gave a zero gradient")  # the harness's own precondition
    for k in range(1, len(traj.xs)):
        if not all(torch.equal(a, b) for a, b in zip(traj.xs[k - 1], traj.xs[k])):
            return k, prob, traj, grads
    return None


def _inner(dx: Sequence[torch.Tensor], g: Sequence[torch.Tensor]) -> float:
    return sum(float((d.double() * gg.double()).sum()) for d, gg in zip(dx, g))


@rng.forked
def check_p2(case: Case) -> dict[str, Any] | None:
    """From fresh state, the first step that moves is a descent direction and the loss drops (small lr).

    A step that leaves every parameter exactly where it was only initialises state (ADOPT's first step,
    v0 = g0²): it is reported, and the next step that moves is judged. Nothing moving within
    ``P2_STEPS`` steps while the gradient is non-zero is a failure ("does not move"), distinct from a
    step that moves uphill; in float32, steps below the parameters' resolution that move in float64 are
    judged there. A descent step that overshoots at the contract lr is retried at lr / ``P2_SMALLER``
    (the property's "small lr"); uphill from one seed and downhill from another is a random initial
    state, a trait."""
    lr = case.info.contract_lr
    found = _p2_first_move(case)
    below = ""
    if found is None and case.dtype != torch.float64 and "float64" in case.info.contract_dtypes:
        found = _p2_first_move(Case(case.info, case.config, case.impl, torch.float64, case.device))
        if found is not None:
            below = (f"in {dtype_name(case.dtype)} no parameter moves in {P2_STEPS} steps at lr={lr:g}: the steps are "
                     f"below the parameters' resolution (they move in float64, where they are judged); ")
    if found is None:
        late = _p2_first_move(case, steps=P2_LATE)
        if late is not None:
            k, prob, traj, grads = late
            dx = [b - a for a, b in zip(traj.xs[k - 1], traj.xs[k])]
            inner = _inner(dx, grads[k - 1])
            raise PropertyFailure("P2", case, f"does not move for {k - 1} steps at lr={lr:g} although the gradient is "
                                              f"non-zero; step {k} is the first that moves "
                                              f"({'downhill' if inner < 0 else 'uphill'}: <Δx, g> = {inner:.3g}): a "
                                              f"method that waits before its first update (a rectification warm-up "
                                              f"like RAdam's without its SGD fallback, a queue of past gradients like "
                                              f"AdaShift's) is a trait, not a bug", trait=inner < 0,
                                  reason=f"waits {k - 1} steps before its first update", step=k)
        raise PropertyFailure("P2", case, f"does not move: no parameter changed in {P2_LATE} steps at lr={lr:g} "
                                          f"although the gradient is non-zero (is the update multiplied by a zero "
                                          f"state or a step counter that never advances, or does a mask or threshold "
                                          f"of the method leave parameters like these out?)",
                              reason=f"does not move within {P2_LATE} steps at lr={lr:g}", step=0)
    k, prob, traj, grads = found
    x0, x1 = traj.xs[k - 1], traj.xs[k]
    dx = [b - a for a, b in zip(x0, x1)]
    g = grads[k - 1]
    inner = _inner(dx, g)
    # in float64 at the points the method returns: a first step below float32's resolution of the loss
    # (Prodigy's d0 = 1e-6) still descends, and a moded optimizer is read in eval mode
    before, after = prob.value64(x0), prob.value64(x1)
    which = "the first step" if k == 1 else f"step {k}, the first that moves (steps 1-{k - 1} only initialised state),"
    if not inner < 0 and rng_use(case).kind == "global":
        other = _p2_first_move(case, rng.OTHER_SEED)
        if other is not None and _inner([b - a for a, b in zip(other[2].xs[other[0] - 1], other[2].xs[other[0]])],
                                        other[3][other[0] - 1]) < 0:
            raise PropertyFailure("P2", case, f"{below}{which} moves uphill from seed {rng.SEED} (<Δx, g> = "
                                              f"{inner:.3g} at lr={lr:g}) and downhill from seed {rng.OTHER_SEED}: a "
                                              f"trait of the method, not a bug: its first step follows random numbers "
                                              f"it draws from {', '.join(rng_use(case).drawn) or 'the global RNG'} (a "
                                              f"random initial state, e.g. a random velocity)", trait=True,
                                  reason="the first step follows a random initial state (uphill for some seeds)",
                                  step=k)
    if not (inner < 0 and after < before) and float32_written(case, x0, x1):
        raise PropertyFailure("P2", case, f"{which} moved the parameters to their float32 rounding (<Δx, g> = "
                                          f"{inner:.3g} at lr={lr:g}, max |Δx| = {max_diff(x1, x0):.3g}): "
                                          f"{F32_COMPUTE}; whether the step descends cannot be read below float32's "
                                          f"resolution", reason=F32_REASON, step=k)
    if not inner < 0:
        raise PropertyFailure("P2", case, f"{below}{which} moves uphill: it is not a descent direction: expected "
                                          f"<Δx, g> < 0, got {inner:.3g} (lr={lr:g}; Δx={_fmt(dx[0])}, "
                                          f"g={_fmt(g[0])}; is the update's sign or the first-step bias correction "
                                          f"wrong?)", reason=f"the first step that moves goes uphill (<Δx, g> > 0 "
                                                             f"at lr={lr:g})", step=k)
    if not after < before:
        small = lr / P2_SMALLER
        again = _p2_first_move(case, lr=small)
        if again is not None:
            kk, pp, tt, _ = again
            b2, a2 = pp.value64(tt.xs[kk - 1]), pp.value64(tt.xs[kk])
            if a2 < b2:
                return {"note": f"{below}{which} descends but overshoots at lr={lr:g} (loss {before:.6g} -> "
                                f"{after:.6g}); at lr={small:g} the loss drops ({b2:.6g} -> {a2:.6g}): its first step "
                                f"is large for its lr"}
        raise PropertyFailure("P2", case, f"{below}{which} moves but the loss did not drop at lr={lr:g}: {before:.6g} "
                                          f"-> {after:.6g}, nor at lr={small:g} (a descent direction whose size does "
                                          f"not shrink with lr?)",
                              reason=f"the loss does not drop on the first step that moves (lr={lr:g})", step=k)
    if k == 1 and not below:
        return None
    init = "" if k == 1 else (f"the first {'step' if k == 2 else f'{k - 1} steps'} only initialise"
                              f"{'s' if k == 2 else ''} state (Δx = 0 exactly, as in ADOPT's Algorithm 1); ")
    return {"note": f"{below}{init}step {k}, the first that moves, descends"}


@rng.forked
def check_p3(case: Case) -> dict[str, Any] | None:
    """lr=0 leaves every parameter unchanged, bit for bit, over several steps, or moves it by rounding only.

    lr=0 is given to the constructor; a constructor that refuses it (``ValueError: Invalid learning
    rate``, ``assert lr > 0``) gets the contract lr, and every param group's ``lr`` is then set to 0, as a
    warmup or annealing scheduler does in real training. Moving (or producing NaN) there is a bug, except where
    the diagnosis finds the cause elsewhere: a float64 parameter that moved only to its rounding to float32 (the
    step computes in float32 and copies back: a precision bug, said so), steps that do not depend on lr at all
    (the same bit for bit at lr=0, the contract lr and ten times it: lr is not used, a trait of the method whose
    step size is its own, such as Adafactor's relative step, offered as an exemption), and a move at lr=0 that
    does not come from the gradient (the same bit for bit with every gradient negated and doubled): one factor on
    every parameter is a decay toward 0 not multiplied by lr (pytorch-optimizer's SRMM); anything else is the
    method constraining its weights, a trait (Nero's projection, AdamAtan2ClipGrok's norm clip), except a move of
    at most a few ulps of each parameter that no gradient changes: arithmetic that is the identity in exact
    arithmetic, rounded (MADGRAD's (1 - c)·x + c·x0 with x = x0), a pass with that note.
    """
    traj, how = lr_run(case, 0.0)
    x0 = traj.xs[0]
    for k in range(1, len(traj.xs)):
        if all(torch.equal(a, b) for a, b in zip(traj.xs[k], x0)):
            continue
        moved = f"max |Δx| = {max_diff(traj.xs[k], x0):.3g}"
        if any(bool(torch.isnan(a).any()) for a in traj.xs[k]):
            bad = [i for i, a in enumerate(traj.xs[k]) if bool(torch.isnan(a).any())]
            raise PropertyFailure("P3", case, f"with {how}, parameter{'s' if len(bad) > 1 else ''} "
                                              f"{', '.join(map(str, bad))} became NaN at step {k} (expected unchanged; "
                                              f"is lr divided by?)", reason="lr=0 makes the parameters NaN", how=how,
                                  step=k)
        if float32_written(case, x0, traj.xs[k]):
            raise PropertyFailure("P3", case, f"with {how}, the parameters moved at step {k} to their float32 "
                                              f"rounding ({moved}): {F32_COMPUTE}", reason=F32_REASON, how=how, step=k)
        lrs = (case.info.contract_lr, 10 * case.info.contract_lr)
        if _p3_lr_unused(case, traj, lrs):
            raise PropertyFailure("P3", case, f"with {how}, the parameters moved at step {k} ({moved}), and the steps "
                                              f"do not depend on lr at all: at lr=0, lr={lrs[0]:g} and lr={lrs[1]:g} "
                                              f"the {len(traj.xs) - 1} steps are the same bit for bit: lr is not used "
                                              f"(a step size of the method's own, e.g. a relative step)",
                                  reason="lr is not used: the step size is the method's own", trait=True,
                                  how=how, step=k)
        over = _first_step_overwrites(case) if k == 1 else None
        if over:
            raise PropertyFailure("P3", case, f"with {how}, the parameters moved at step 1 ({moved}): {over}",
                                  reason=OVERWRITES, trait=True, how=how, step=k)
        if _p3_gradient_free(case, traj):
            ulps = _rounding_only(x0, traj.xs[k:])
            if ulps is not None:
                return {"note": f"with {how}, the parameters moved from step {k} on by rounding only: at most "
                                f"{ulps:.3g} ulps of their own values over {len(traj.xs) - 1} steps, the same bit for bit "
                                f"with every gradient negated or doubled: arithmetic that is the identity in exact "
                                f"arithmetic (e.g. an average (1 - c)·x + c·x0 with x = x0, rounded twice), not a step"}
            factor = _common_factor(x0, traj.xs[k])
            if factor is not None:
                raise PropertyFailure("P3", case, f"with {how}, the parameters moved at step {k} ({moved}), and the "
                                                  f"same steps with every gradient negated, or doubled, move them the "
                                                  f"same bit for bit: the move does not come from the gradient; every "
                                                  f"parameter is scaled by {factor:.9g} at step {k}: a decay toward 0 "
                                                  f"not multiplied by lr (weight decay missing its lr, or a built-in "
                                                  f"decay of the method?)",
                                      reason="the parameters decay toward 0 whatever lr", how=how, step=k)
            raise PropertyFailure("P3", case, f"with {how}, the parameters moved at step {k} ({moved}), and the same "
                                              f"steps with every gradient negated, or doubled, move them the same bit "
                                              f"for bit: the move does not come from the gradient but from a map of the "
                                              f"parameters' own values applied whatever lr: a trait of the method, not "
                                              f"a term missing its lr: it constrains its weights (a norm clip or a "
                                              f"projection of the parameters after each step)",
                                  reason="the parameters are clipped or projected every step, whatever lr", trait=True,
                                  how=how, step=k)
        raise PropertyFailure("P3", case, f"with {how}, the parameters moved at step {k}: {moved} (expected 0; is a "
                                          f"term of the update not multiplied by lr, e.g. eps or weight decay, or is lr "
                                          f"divided by?)", reason="the parameters move at lr=0", how=how, step=k)




def lr_run(case: Case, lr: float, steps: int = 3, loss_scale: float = 1.0) -> tuple[Any, str]:
    """``steps`` contract steps at ``lr`` from the seeded start, and how the lr was given: to the constructor, or set
    on every param group after construction where the constructor refuses it (as a scheduler sets it).
    ``loss_scale`` multiplies the loss (and so every gradient)."""
    rng.reseed()
    prob = Problem(case)
    how = f"lr={lr:g} given to the constructor"
    try:
        opt = case.make(prob.params, lr=lr)
    except OptimizerRaised as refused:
        opt = case.make(prob.params)
        for group in opt.param_groups:
            group["lr"] = lr
        how = (f"param_groups[i]['lr'] set to {lr:g} after construction, as an lr scheduler does (the constructor "
               f"refuses lr={lr:g}: {type(refused.original).__name__}: {' '.join(str(refused.original).split())})")
    try:
        if loss_scale == 1.0:
            traj = _run(case, prob, opt, steps)
        else:
            base = prob.loss_fn()
            traj = _loop(case, lambda: loss_scale * base(), prob.params, opt, steps, check_finite=False)
    except OptimizerRaised as exc:
        raise optimizer_finding("P3", case, exc, f"stepping with {how}") from None
    return traj, how


def _p3_gradient_free(case: Case, traj: Any) -> bool:
    """Whether the lr=0 run ``traj`` is the same bit for bit with every gradient negated and with every gradient
    doubled (the loss times -1, times 2): what moves the parameters then is not the gradient (sign-based and
    normalised updates change with the first, magnitude-based ones with the second). A run that raises says no."""
    for scale in (-1.0, 2.0):
        try:
            other, _ = lr_run(case, 0.0, loss_scale=scale)
        except PropertyFailure:
            return False
        if not same_runs(traj, other):
            return False
    return True


ROUNDING_ULPS = 16  # the rounding of a few operations in the parameters' dtype (as _common_factor allows)


def _rounding_only(x0: Sequence[torch.Tensor], later: Sequence[Sequence[torch.Tensor]]) -> float | None:
    """The largest move of any element over the steps ``later``, in ulps of its start (eps times |x0|), where every
    one stays within :data:`ROUNDING_ULPS` of it (and an element at 0 stays at 0), else None: a map of the parameters
    that is the identity in exact arithmetic, rounded (facebookresearch's MADGRAD at lr=0: (1 - c)·x + c·x0 with
    x = x0 moves float32 parameters by an ulp)."""
    if not x0 or not x0[0].dtype.is_floating_point:
        return None
    eps = torch.finfo(x0[0].dtype).eps
    a = torch.cat([x.detach().double().reshape(-1) for x in x0])
    scale = a.abs() * eps
    worst = 0.0
    for xk in later:
        b = torch.cat([x.detach().double().reshape(-1) for x in xk])
        if not bool(torch.isfinite(b).all()):
            return None
        moved = (b - a).abs()
        if bool((moved[scale == 0] != 0).any()):
            return None
        nz = scale > 0
        rel = moved[nz] / scale[nz]
        if rel.numel():
            worst = max(worst, float(rel.max()))
        if worst > ROUNDING_ULPS:
            return None
    return worst


def _common_factor(x0: Sequence[torch.Tensor], xk: Sequence[torch.Tensor]) -> float | None:
    """c where every parameter element is c times its start (a decay toward 0 or growth away from it), to the
    rounding of one multiplication in the parameters' dtype (16 ulps), else None."""
    ulps = 16 * torch.finfo(xk[0].dtype).eps if xk[0].dtype.is_floating_point else 0.0
    a = torch.cat([x.detach().double().reshape(-1) for x in x0])
    b = torch.cat([x.detach().double().reshape(-1) for x in xk])
    nz = a != 0
    if not bool(nz.any()) or bool((b[~nz] != 0).any()):
        return None
    ratio = b[nz] / a[nz]
    c = float(ratio.median())
    return c if bool(((ratio - c).abs() <= ulps * max(1.0, abs(c))).all()) else None


def same_runs(a: Any, b: Any) -> bool:
    """Two trajectories equal bit for bit, step for step."""
    return all(torch.equal(x, y) for xs, ys in zip(a.xs, b.xs) for x, y in zip(xs, ys))


def _p3_lr_unused(case: Case, traj: Any, lrs: Sequence[float]) -> bool:
    """Whether the runs at these lrs are ``traj`` (the lr=0 run) bit for bit; a run that raises says no (it is not
    the finding of P3, whose lr=0 run did not raise)."""
    for lr in lrs:
        try:
            other, _ = lr_run(case, lr)
        except PropertyFailure:
            return False
        if not same_runs(traj, other):
            return False
    return True


@rng.forked
def check_p4(case: Case) -> None:
    """A parameter whose .grad is None at a step is not changed by that step (also with built-up state)."""
    rng.reseed()
    prob = Problem(case)
    opt = case.make(prob.params)
    _run(case, prob, opt, 3)  # builds state for every parameter
    frozen = 1
    before = prob.params[frozen].detach().clone()
    active = [i for i in range(len(prob.params)) if i != frozen]
    # run_loop's zero_grad sets every .grad to None; the loss omits the frozen parameter.
    _run(case, prob, opt, 2, which=active)
    if prob.params[frozen].grad is not None:
        raise PropertyFailure("P4", case, "the frozen parameter has a .grad after zero_grad() and a loss without it")
    if not torch.equal(prob.params[frozen].detach(), before):
        raise PropertyFailure("P4", case, f"a parameter with .grad None (a frozen layer) changed after 3 normal steps: "
                                          f"max |Δx| = {max_diff([prob.params[frozen]], [before]):.3g}, "
                                          f"expected 0 (is momentum or weight decay applied to params without grads?)")


@rng.forked
def check_p5(case: Case) -> None:
    """step() leaves every .grad as it was: the same tensor object, not None, and the same values; also with
    weight decay on, where the optimizer takes it (decay added to p.grad in place, ``p.grad.add_(p, alpha=wd)``,
    is the classic way to break it, and the contract's other runs have decay off).

    With a closure, step() may call it, and the closure's zero_grad() and backward() write new gradients: they
    are the ones step() must then leave alone (compared with the last closure call's)."""
    _p5(case, {})
    if accepts(case.info, case.config, "weight_decay"):
        _p5(case, {"weight_decay": 0.1})


def _p5(case: Case, overrides: dict[str, Any]) -> None:
    rng.reseed()
    prob = Problem(case)
    opt = case.make(prob.params, **overrides)
    closure = case.info.closure or needs_closure(opt)
    loss_fn = prob.loss_fn()
    how = "".join(f" with {k}={v:g}" for k, v in overrides.items())
    for step in range(3):
        saved: list[torch.Tensor] = []
        objects: list[Any] = []

        def record() -> None:
            objects[:] = [p.grad for p in prob.params]
            saved[:] = [_dense(p.grad).detach().clone() for p in prob.params]

        if closure:
            def recording_closure() -> torch.Tensor:
                with torch.enable_grad():
                    opt.zero_grad()
                    value = loss_fn()
                    value.backward()
                record()
                return value

            call_optimizer("zero_grad()", opt.zero_grad)
            loss_fn().backward()
            record()
            call_optimizer("step(closure)", opt.step, recording_closure)
        else:
            _run_hook(prob, opt, lambda epoch, value: record())
        for i, (p, obj) in enumerate(zip(prob.params, objects)):
            if p.grad is None:
                raise PropertyFailure("P5", case, f"step {step + 1}{how} set parameter {i}'s .grad to None: the "
                                                  f"caller's gradient is gone after step() (gradient clipping, norm "
                                                  f"logging and accumulation read it; clearing it is zero_grad()'s job)",
                                      reason="step() sets p.grad to None (frees the gradient after using it)",
                                      kind="none", step=step + 1, overrides=overrides)
            if p.grad is not obj:
                raise PropertyFailure("P5", case, f"step {step + 1}{how} replaced parameter {i}'s .grad with another "
                                                  f"tensor "
                                                  f"(p.grad = ...): the caller's gradient tensor is no longer the "
                                                  f"parameter's (update a copy, leave p.grad alone)",
                                      reason="step() replaces p.grad with another tensor", kind="replaced",
                                      step=step + 1, overrides=overrides)
        now = [_dense(p.grad).detach() for p in prob.params]
        if not all(torch.equal(a, b) for a, b in zip(saved, now)):
            decay = (" (weight decay added to p.grad in place? g = p.grad.add(p, alpha=wd) leaves it alone; with "
                     "weight decay off it does)" if overrides else "")
            raise PropertyFailure("P5", case, f"step {step + 1}{how} modified .grad in place: max |Δgrad| = "
                                              f"{max_diff(saved, now):.3g} (expected untouched; use a copy, "
                                              f"e.g. grad.mul() instead of grad.mul_()){decay}",
                                  reason="step() modifies p.grad in place", step=step + 1, overrides=overrides)


def _run_hook(prob: Problem, opt: torch.optim.Optimizer, hook) -> Any:
    return _loop(prob.case, prob.loss_fn(), prob.params, opt, 1, on_epoch=hook, check_finite=False, record_x=False)


@rng.forked
def check_p8(case: Case, hows: Sequence[str] = ("state_dict", "deepcopy")) -> None:
    """Resume: k steps, save/load state_dict into a fresh optimizer on fresh params == uninterrupted.

    As a training checkpoint does, the global RNG state is saved with the optimizer's state and restored after
    the load (a resumed process starts from another seed until then), so an optimizer drawing from the global
    RNG resumes exactly; an RNG of its own kept outside ``state_dict()`` does not."""
    k_steps, n_steps = 2, 2
    tr = fresh_run(case, k_steps + n_steps)
    for how in hows:
        rng.reseed()
        prob = Problem(case)
        opt = case.make(prob.params)
        _run(case, prob, opt, k_steps)
        saved_rng = rng.get_state()
        holder: dict[str, Any] | None = None  # the deep copy, once made
        opt2 = None
        cast = [f"{label} of parameter {i} is {dtype_name(v.dtype)}"
                for i, p in enumerate(prob.params) for label, k, v in state_tensors(opt.state.get(p, {}))
                if v.is_floating_point() and v.dtype != p.dtype and k != "step"]
        try:
            if how == "state_dict":
                buf = io.BytesIO()
                call_optimizer("torch.save(optimizer.state_dict())", lambda: torch.save(opt.state_dict(), buf))
                buf.seek(0)
                state = torch.load(buf, weights_only=False)
                rng.reseed(rng.OTHER_SEED)  # a new process, until the checkpoint's RNG state is restored
                fresh = Problem(case)
                with torch.no_grad():
                    for p, q in zip(fresh.params, prob.params):
                        p.copy_(q)
                opt2 = case.make(fresh.params)
                call_optimizer("load_state_dict()", opt2.load_state_dict, state)
            else:
                holder = call_optimizer("copy.deepcopy(optimizer)", copy.deepcopy, {"params": prob.params, "opt": opt})
                fresh = Problem(case)
                fresh.params = holder["params"]
                opt2 = holder["opt"]
            rng.set_state(saved_rng)
            t2 = _run(case, fresh, opt2, n_steps)
        except OptimizerRaised as exc:
            lost = (_lost_by_deepcopy(exc, opt, holder["opt"]) if holder is not None else
                    _strings_lost(opt, prob.params, opt2, fresh.params) if how == "state_dict" and opt2 is not None
                    else "")
            raise optimizer_finding("P8", case, exc, f"resuming through {how}{lost}", how=how) from None
        for j in range(1, n_steps + 1):
            a, b = t2.xs[j], tr.xs[k_steps + j]
            if not _same(case, a, b, 1.0 + max(float(x.abs().max()) for x in b)):
                gens = rng.generators_of(opt2) if how == "state_dict" else []
                if cast and how == "state_dict" and not gens:
                    why = (f"{cast[0]}, the parameter {dtype_name(prob.params[0].dtype)}: torch.optim.Optimizer."
                           f"load_state_dict casts floating-point state to its parameter's dtype, so the resumed state "
                           f"is not the saved one (cast it back in step() or in load_state_dict())")
                else:
                    why = None
                mangled = _strings_lost(opt, prob.params, opt2, fresh.params) if how == "state_dict" else ""
                why = why or (mangled[2:] if mangled else None)
                why = why or (f"the optimizer keeps an RNG of its own outside state_dict(): {', '.join(gens)} "
                       f"{'is a torch.Generator' if len(gens) == 1 else 'are torch.Generators'} whose state is not "
                       f"saved, so the resumed run draws other numbers (save its get_state() in state_dict() and "
                       f"restore it in load_state_dict())" if gens else
                       "is 'step' or other state kept outside state_dict()?")
                raise PropertyFailure("P8", case, f"{case.name} differs after reload ({how}) at step {k_steps + j}: "
                                                  f"max |Δx| = {max_diff(a, b):.3g}, expected equal {_cmp_word(case)} "
                                                  f"to the uninterrupted run, with torch's global RNG state saved and "
                                                  f"restored with the checkpoint ({why})", how=how)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _strings_lost(opt: Any, params: Sequence[torch.Tensor], loaded: Any, params2: Sequence[torch.Tensor]) -> str:
    """Why a resume through state_dict() differs or raises, where the saved state held strings that the loaded
    state does not: torch.optim.Optimizer.load_state_dict's ``_cast`` treats a str as an iterable of values and
    rebuilds it as ``str(<generator>)`` (torch 2.13), so kron-torch's Kron, which keeps its einsum expressions in
    ``state['exprs']``, gets ``'<generator object ...>'`` back ("" where no string changed)."""
    for i, (p, q) in enumerate(zip(params, params2)):
        before = {lb: v for lb, _, v in state_leaves(opt.state.get(p, {}), _is_str)}
        after = {lb: v for lb, _, v in state_leaves(loaded.state.get(q, {}), _is_str)}
        changed = [k for k, v in before.items() if after.get(k) != v]
        if changed:
            got = after.get(changed[0])
            return (f": {changed[0]} of parameter {i} was {before[changed[0]]!r} and the loaded state holds "
                    f"{(got[:40] + '...') if isinstance(got, str) and len(got) > 40 else got!r}: torch.optim.Optimizer."
                    f"load_state_dict rebuilds every str in optimizer state as str(<generator>) (its _cast takes a str "
                    f"for an iterable of values), a torch bug that strings kept in state meet; keep them out of "
                    f"optimizer.state (recompute them from the parameter's shape) or restore them in load_state_dict()")
    return ""


def _lost_by_deepcopy(exc: OptimizerRaised, opt: Any, copied: Any) -> str:
    """Why a deep copy's step() raised AttributeError, where that is a setting the constructor kept as an instance
    attribute: torch.optim.Optimizer.__getstate__ returns defaults, state and param_groups only, so
    ``copy.deepcopy`` leaves every other attribute behind ("" where the exception is anything else)."""
    err = exc.original
    name = getattr(err, "name", None) if isinstance(err, AttributeError) else None
    if not name or name not in vars(opt) or name in vars(copied):
        return ""
    return (f": self.{name}, an instance attribute of the optimizer, is not in the copy (torch.optim.Optimizer."
            f"__getstate__ keeps defaults, state and param_groups only; keep settings in defaults, or define "
            f"__getstate__/__setstate__)")


@rng.forked
def check_p9(case: Case) -> dict[str, Any] | None:
    """Every floating-point state tensor shaped like its param has the param's dtype (or one the constructor
    declares through a dtype argument, e.g. ``momentum_dtype=torch.bfloat16``) and the param's device. State of
    another shape (a per-layer norm, Adafactor's factored rows) may not be of a lower precision than the param
    unless declared, beside quantized (integer) state, or it holds only whole numbers (a step counter, such as
    torch.optim's float32 ``step``): a statistic kept in float32 gives a float64 run float32 precision (timm's
    NvNovoGrad: its second moment, a 0-d ``torch.zeros([])``)."""
    rng.reseed()
    prob = Problem(case)
    opt = case.make(prob.params)
    _run(case, prob, opt, 2)
    declared = declared_dtypes(case)
    used: dict[str, str] = {}
    scales: dict[str, str] = {}
    reruns: dict = {}  # _chosen_by_none_arg's runs, once per argument
    for i, p in enumerate(prob.params):
        tensors = list(state_tensors(opt.state.get(p, {})))  # nested state too (heavyball: state[p][0][...])
        # integer state shaped like the param: moments kept quantized, by design; their scales are part of that
        # format (pytorch-optimizer's FlashAdamW: int8 moments, float16 scales), not a statistic kept low by mistake
        quantized = next((lb for lb, _, v in tensors if v.shape == p.shape and not v.dtype.is_floating_point
                          and not v.dtype.is_complex and v.dtype != torch.bool), None)
        for label, _, val in tensors:
            if val.shape != p.shape:
                if quantized is None:
                    _lower_statistic(case, i, p, label, val, declared, used, reruns)
                elif val.dtype.is_floating_point and val.dtype != p.dtype:
                    scales[label] = f"{dtype_name(val.dtype)} beside the quantized {quantized}"
                continue
            if val.device != p.device:
                raise PropertyFailure("P9", case, f"{label} of parameter {i} is on {val.device}, expected the "
                                                  f"param's device {p.device} (create state with torch.zeros_like(p))",
                                      reason=f"{label} is kept on {val.device}")
            if val.dtype == p.dtype or not (val.dtype.is_floating_point or val.dtype.is_complex):
                continue  # integer or boolean state (quantized moments, masks) is not a copy of the parameter
            args = [n for n, d in declared.items() if d == val.dtype]
            if args:
                used[label] = f"{dtype_name(val.dtype)} as {args[0]}={declared[args[0]]} declares"
                continue
            chosen = _chosen_by_none_arg(case, i, label, p.dtype, reruns)
            if chosen:
                used[label] = f"{dtype_name(val.dtype)}, {chosen}"
                continue
            decl = _declared_words(declared)
            lower = torch.finfo(val.dtype).bits < torch.finfo(p.dtype).bits if p.dtype.is_floating_point else False
            raise PropertyFailure("P9", case, f"{label} of parameter {i} is {dtype_name(val.dtype)}, the param "
                                              f"{dtype_name(p.dtype)}, and {decl}: "
                                              f"{'precision is silently lost' if lower else 'silently another dtype'} "
                                              f"(create state with torch.zeros_like(p), or take a state_dtype argument)",
                                  reason=f"{label} is kept in {dtype_name(val.dtype)} whatever the parameter's "
                                         f"dtype")
    notes = ([("state kept in a declared dtype: " + "; ".join(f"{k} {v}" for k, v in used.items()))] if used else []) + \
        ([("quantized state: " + "; ".join(f"{k} {v}" for k, v in scales.items()))] if scales else [])
    return {"note": "; ".join(notes)} if notes else None


def _lower_statistic(case: Case, i: int, p: torch.Tensor, label: str, val: torch.Tensor,
                     declared: dict[str, torch.dtype], used: dict[str, str], reruns: dict) -> None:
    """P9 on state not shaped like its param: a floating statistic of lower precision than the param, undeclared,
    holding a value that is not a whole number, is a FAIL (whole numbers: a counter, exact in float32 to 2**24)."""
    if not (val.dtype.is_floating_point and p.dtype.is_floating_point
            and torch.finfo(val.dtype).bits < torch.finfo(p.dtype).bits):
        return
    args = [n for n, d in declared.items() if d == val.dtype]
    if args:
        used[label] = f"{dtype_name(val.dtype)} as {args[0]}={declared[args[0]]} declares"
        return
    v = val.detach()
    if val.device.type == "meta" or bool(torch.equal(v, v.round())):
        return  # a counter (torch.optim's float32 step), or nothing accumulated yet
    chosen = _chosen_by_none_arg(case, i, label, p.dtype, reruns)
    if chosen:
        used[label] = f"{dtype_name(val.dtype)}, {chosen}"
        return
    shape = "a 0-d tensor" if val.dim() == 0 else f"shape {tuple(val.shape)}"
    held = float(v[v != v.round()].reshape(-1)[0])
    raise PropertyFailure("P9", case, f"{label} of parameter {i} ({shape}, a statistic, not a counter: it holds "
                                      f"{held:.6g}) is {dtype_name(val.dtype)}, the param {dtype_name(p.dtype)}, and "
                                      f"{_declared_words(declared)}: the update computed from it has "
                                      f"{dtype_name(val.dtype)} precision (create it in the param's dtype, e.g. "
                                      f"torch.zeros((), dtype=p.dtype, device=p.device), or take a state_dtype "
                                      f"argument)",
                          reason=f"{label} is kept in {dtype_name(val.dtype)} whatever the parameter's dtype")


def _chosen_by_none_arg(case: Case, i: int, label: str, dtype: torch.dtype, reruns: dict) -> str | None:
    """Where a dtype argument left at None (the optimizer's own choice: kron-torch's Kron, ``precond_dtype=None``,
    keeps its preconditioners in float32) decides the dtype of state ``label`` of parameter ``i``: the same run with
    that argument set to the parameter's ``dtype`` keeps it in ``dtype``. Then the words that say so, else None.
    ``reruns`` keeps each argument's rerun (its state dtypes per parameter) for the other state of the check."""
    for name, value in declared_dtype_values(case).items():
        if value is not None:
            continue
        if (name, dtype) not in reruns:
            reruns[(name, dtype)] = _state_dtypes_with(case, name, dtype)
        again = reruns[(name, dtype)]
        if again is not None and again[i].get(label) == dtype:
            return f"the default of {name}=None, which {name}={dtype} makes {dtype_name(dtype)}"
    return None


def _state_dtypes_with(case: Case, name: str, dtype: torch.dtype) -> list[dict[str, torch.dtype]] | None:
    """Each parameter's state dtypes after P9's 2 steps with the constructor argument ``name`` set to ``dtype``
    (None where that raises)."""
    rng.reseed()
    prob = Problem(case)
    try:
        opt = case.make(prob.params, **{name: dtype})
        _run(case, prob, opt, 2)
    except OptimizerRaised:
        return None
    return [{lb: v.dtype for lb, _, v in state_tensors(opt.state.get(p, {}))} for p in prob.params]


def _declared_words(declared: dict[str, torch.dtype]) -> str:
    return (f"the constructor's dtype arguments declare {', '.join(f'{n}={d}' for n, d in declared.items())}"
            if declared else "no constructor argument declares a state dtype")


@rng.forked
def check_p10(case: Case) -> None:
    """step(closure) returns the closure's loss."""
    rng.reseed()
    prob = Problem(case)
    opt = case.make(prob.params)
    loss_fn = prob.loss_fn()
    values: list[torch.Tensor] = []

    closure = training_closure(opt, loss_fn, values)

    try:
        got = call_optimizer("step(closure)", opt.step, closure)
    except OptimizerRaised as exc:
        raise optimizer_finding("P10", case, exc) from None
    if not values:
        raise PropertyFailure("P10", case, "step(closure) never called the closure")
    if got is None or not torch.is_tensor(got) or not torch.equal(got.detach(), values[0]):
        raise PropertyFailure("P10", case, f"step(closure) returned {got!r}, expected the closure's loss "
                                           f"{float(values[0]):.6g} (return the value closure() gave)")


@rng.forked
def check_p11(case: Case) -> None:
    """maximize=True on -f equals minimizing f."""
    steps = STEPS
    t_min = fresh_run(case, steps)
    rng.reseed()
    mx = Problem(case, negate=True)
    t_max = _run(case, mx, case.make(mx.params, maximize=True), steps)
    d = _traj_diff(case, t_min, t_max)
    if d is not None:
        raise PropertyFailure("P11", case, f"maximize=True on -f differs from minimizing f at step {d[0]}: max |Δx| = "
                                           f"{d[1]:.3g}, expected equal {_cmp_word(case)} (is maximize ignored or "
                                           f"applied to only part of the update?)")


@rng.forked
def check_p12(case: Case) -> dict[str, Any] | None:
    """With weight_decay > 0 and a zero gradient, params shrink toward 0: |x| decreases and no |x_i| grows.

    Where |x| shrinks but some coordinate grows, a second run whose start differs in one coordinate tells the two
    causes apart: if the other coordinates' steps change with it, the step mixes coordinates (a full-matrix
    preconditioner such as Shampoo's, a centralisation or a normalisation over the tensor), which shrinks the norm
    but not each coordinate: a trait of the method; if they do not (an elementwise step), a coordinate that decay
    moves away from 0 is a bug. Where nothing moves at all in float32, the decayed steps may be below the
    parameters' resolution (D-Adaptation's and DoG's first steps scale with d0 = 1e-6): they are judged in
    float64, as P2 judges its first step."""
    traj, x0, n0, n1, grew, shrink = _p12_measure(case)
    still = all(torch.equal(a, b) for a, b in zip(x0, traj.xs[-1]))
    if still and case.dtype != torch.float64 and "float64" in case.info.contract_dtypes:
        c64 = Case(case.info, case.config, case.impl, torch.float64, case.device)
        t64, x64, m0, m1, grew64, _ = _p12_measure(c64)
        if m1 < m0 and grew64 <= rel_tol(torch.float64) * 10:
            return {"note": f"in {dtype_name(case.dtype)} weight_decay=0.1 with zero gradient leaves every parameter "
                            f"where it was in 3 steps: the decayed steps are below the parameters' resolution; in "
                            f"float64, where they are judged, |x| shrinks by {(m0 - m1) / m0:.2g} of itself and no "
                            f"|x_i| grows"}
        if not m1 < m0 and float32_written(c64, x64, t64.xs[-1]):
            raise NotApplicable(f"in {dtype_name(case.dtype)} weight_decay=0.1 with zero gradient leaves every "
                                f"parameter where it was in 3 steps, as steps below the parameters' resolution do, and "
                                f"the float64 case, where such steps are judged, computes the float64 parameters in "
                                f"float32 (its P12 and P3 report it): the decayed steps cannot be seen")
    if not n1 < n0 and float32_written(case, x0, traj.xs[-1]):
        raise PropertyFailure("P12", case, f"weight_decay=0.1 with zero gradient did not shrink the parameters toward 0 "
                                           f"in 3 steps: {shrink}, and they hold their float32 rounding: {F32_COMPUTE}; "
                                           f"a decayed step below float32's resolution is lost in it",
                              reason=F32_REASON)
    if not n1 < n0 and still:
        raise PropertyFailure("P12", case, f"weight_decay=0.1 with zero gradient did not move the parameters at all in "
                                           f"3 steps ({shrink}, bit for bit): no step is taken when the gradient is "
                                           f"zero, decay included (an early return on a zero gradient norm, a warm-up "
                                           f"without updates, decay applied only with a gradient?)",
                              reason="no step, decay included, when the gradient is zero")
    if not n1 < n0:
        raise PropertyFailure("P12", case, f"weight_decay=0.1 with zero gradient did not shrink the parameters toward 0 "
                                           f"in 3 steps: {shrink} (expected |x| to decrease and no |x_i| to grow; is "
                                           f"decay's sign wrong or decay skipped when the gradient is 0?)",
                              reason="weight decay does not shrink the parameters when the gradient is zero")
    if grew > rel_tol(case.dtype) * 10:
        mixes = _p12_mixes(case, traj)
        if mixes is None:  # the second run raised: the cause cannot be told apart
            raise PropertyFailure("P12", case, f"weight_decay=0.1 with zero gradient moved a coordinate away from 0 in "
                                               f"3 steps: {shrink} (expected no |x_i| to grow)",
                                  reason="weight decay moves some coordinates away from 0")
        if mixes:
            raise PropertyFailure("P12", case, f"weight_decay=0.1 with zero gradient shrank |x| but not every "
                                               f"coordinate in 3 steps: {shrink}: the step mixes coordinates (changing "
                                               f"one coordinate's start changes the others' steps: a full-matrix "
                                               f"preconditioner, a centralisation or a normalisation over the tensor), "
                                               f"so decay shrinks the norm, not each coordinate",
                                  reason="the decayed step mixes coordinates: |x| shrinks, single |x_i| may grow",
                                  trait=True)
        raise PropertyFailure("P12", case, f"weight_decay=0.1 with zero gradient moved a coordinate away from 0 in 3 "
                                           f"steps: {shrink}, although the step is elementwise (changing one "
                                           f"coordinate's start changes no other's step; is decay's sign wrong for "
                                           f"some coordinates, or does it pull toward something other than 0, such "
                                           f"as an average of p?)",
                              reason="weight decay moves some coordinates away from 0")


def _p12_measure(case: Case) -> tuple[Any, list[torch.Tensor], float, float, float, str]:
    """P12's run from the seeded start: (trajectory, x0, |x0|, |x| after 3 steps, largest growth of a |x_i|, text)."""
    rng.reseed()
    prob = Problem(case)
    x0 = prob.snapshot()
    traj = _p12_run(case, prob)
    n0 = math.sqrt(sum(float((x.double() ** 2).sum()) for x in x0))
    n1 = math.sqrt(sum(float((x.double() ** 2).sum()) for x in traj.xs[-1]))
    grew = max(float((b.abs() - a.abs()).max()) for a, b in zip(x0, traj.xs[-1]))
    return traj, x0, n0, n1, grew, f"|x| {n0:.6g} -> {n1:.6g}, max growth of |x_i| {grew:.3g}"


def _p12_run(case: Case, prob: Problem) -> Any:
    opt = case.make(prob.params, weight_decay=0.1)
    return _loop(case, lambda: sum((prob.view(p) * 0).sum() for p in prob.params), prob.params, opt, 3,
                 check_finite=False)


def _p12_mixes(case: Case, traj: Any) -> bool | None:
    """Whether the zero-gradient decayed steps of one parameter mix its coordinates: the same run again with the first
    coordinate of the first parameter started elsewhere changes another coordinate's trajectory (None: that run
    raised)."""
    rng.reseed()
    prob = Problem(case)
    with torch.no_grad():
        prob.params[0].view(-1)[0] += 0.5
    try:
        other = _p12_run(case, prob)
    except OptimizerRaised:
        return None
    for k in range(1, min(len(traj.xs), len(other.xs))):
        a, b = traj.xs[k][0].reshape(-1)[1:], other.xs[k][0].reshape(-1)[1:]
        if not _same(case, [a], [b], 1.0 + float(a.abs().max())):
            return True
    return False




def _p13_holds(k: int, tol: float) -> Callable[[Case], bool]:
    """P13's comparison at step ``k`` on another case (the rounding causes' recheck)."""
    def holds(c: Case) -> bool:
        base, shifted = fresh_run(c, k), fresh_run(c, k, shift=SHIFT)
        return max_diff([x - SHIFT for x in shifted.xs[k]], base.xs[k]) <= tol
    return holds


@rng.forked
def check_p13(case: Case) -> None:
    """Minimizing f(x - s) from x0 + s gives the trajectory of f from x0, shifted by s."""
    steps = STEPS
    tb = fresh_run(case, steps)
    ts = fresh_run(case, steps, shift=SHIFT)
    # Float tolerance: x + s and (x + s) - s round at |s|, so allow 1e3 ulps at the shifted magnitude.
    eps = torch.finfo(case.dtype).eps
    for k in range(1, steps + 1):
        a = [x - SHIFT for x in ts.xs[k]]
        b = tb.xs[k]
        tol = 1e3 * eps * (SHIFT + 2.0) * k
        diff = max_diff(a, b)
        if diff > tol and float32_written(case, tb.xs[0], tb.xs[k]):
            raise PropertyFailure("P13", case, f"minimizing f(x - {SHIFT:g}) from x0 + {SHIFT:g} is not the shifted "
                                               f"trajectory at step {k}: max |Δx| = {diff:.3g} > {tol:.1e}, a float32 "
                                               f"rounding: step() computes the float64 parameters in float32 and copies "
                                               f"them back (p.data.float() ... p.data.copy_()), so the shifted run, "
                                               f"{SHIFT:g} larger, rounds differently; a precision bug (compute in the "
                                               f"parameter's dtype), not a dependence on the parameter's magnitude",
                                  reason=F32_REASON)
        over = _first_step_overwrites(case) if diff > tol and k == 1 else None
        if over:
            raise PropertyFailure("P13", case, f"minimizing f(x - {SHIFT:g}) from x0 + {SHIFT:g} is not the shifted "
                                               f"trajectory at step 1: max |Δx| = {diff:.3g} > {tol:.1e}: {over}",
                                  reason=OVERWRITES, trait=True)
        rounded = rounding.cause(case, k, diff, steps, _p13_holds(k, tol)) if diff > tol else None
        if rounded:
            raise PropertyFailure("P13", case, f"minimizing f(x - {SHIFT:g}) from x0 + {SHIFT:g} is not the shifted "
                                               f"trajectory at step {k}: max |Δx| = {diff:.3g} > {tol:.1e}: "
                                               f"{rounded[0]}", reason=rounded[1])
        if diff > tol:
            raise PropertyFailure("P13", case, f"minimizing f(x - {SHIFT:g}) from x0 + {SHIFT:g} is not the shifted "
                                               f"trajectory at step {k}: max |Δx| = {diff:.3g} > {tol:.1e}: the step "
                                               f"depends on the parameter's magnitude (a trust ratio, a projection, "
                                               f"a decay toward 0?)",
                                  reason="the step depends on the parameter's magnitude")


def _p14_run(case: Case, steps: int, layout: str):
    rng.reseed()
    n = Problem(case, noncontiguous=layout)
    if n.params[0].is_contiguous():  # the harness's own precondition, not the optimizer's
        raise RuntimeError(f"Problem(noncontiguous={layout!r}) built a contiguous parameter")
    try:
        return _run(case, n, case.make(n.params), steps)
    except OptimizerRaised as exc:
        raise optimizer_finding("P14", case, exc, f"stepping non-contiguous ({layout}) parameters") from None


def _p14_diff(case: Case, tn: Any, tc: Any, steps: int) -> tuple[int, float] | None:
    for k in range(1, steps + 1):
        a, b = tn.xs[k], tc.xs[k]
        if max_diff(a, b) > rel_tol(case.dtype) * (1.0 + max(float(x.abs().max()) for x in b)):
            return k, max_diff(a, b)
    return None


@rng.forked
def check_p14(case: Case) -> dict[str, Any] | None:
    """Non-contiguous parameters (a transposed layout) give the same result as contiguous ones.

    An optimizer drawing random numbers into tensors laid out like the parameter (``torch.empty_like(p)
    .normal_()``) fills a transposed parameter's in another order: where it does, the check is made on a
    non-contiguous layout whose memory order is the parameter's (every other column of a wider tensor)."""
    steps = STEPS
    tc = fresh_run(case, steps)
    d = _p14_diff(case, _p14_run(case, steps, "transposed"), tc, steps)
    if d is None:
        return None
    use = rng_use(case)
    if use.stochastic and _p14_diff(case, _p14_run(case, steps, "strided"), tc, steps) is None:
        return {"note": f"{use.note}; a transposed parameter differs (step {d[0]}: max |Δx| = {d[1]:.3g}) because "
                        f"tensors laid out like it draw their numbers in memory order; a non-contiguous parameter in "
                        f"the same memory order (every other column) steps exactly like a contiguous one"}
    rounded = rounding.cause(case, d[0], d[1], steps,
                             lambda c: _p14_diff(c, _p14_run(c, steps, "transposed"), fresh_run(c, steps),
                                                 steps) is None)
    if rounded:
        raise PropertyFailure("P14", case, f"non-contiguous (transposed) params differ from contiguous at step {d[0]}: "
                                           f"max |Δx| = {d[1]:.3g} (expected equal to rel. {rel_tol(case.dtype):.0e}): "
                                           f"{rounded[0]}", reason=rounded[1])
    raise PropertyFailure("P14", case, f"non-contiguous (transposed) params differ from contiguous at step {d[0]}: "
                                       f"max |Δx| = {d[1]:.3g} (expected equal to rel. {rel_tol(case.dtype):.0e}; is "
                                       f"the update written into a reshape() copy instead of the param?)")


@rng.forked
def check_p15_impls(case: Case, other_impl: str) -> None:
    """Two implementations (e.g. for-loop against foreach or fused) agree on a short horizon."""
    steps = LONG_STEPS
    ta = fresh_run(case, steps)
    other = Case(case.info, case.config, other_impl, case.dtype, case.device)
    tb = fresh_run(other, steps)
    for k in range(1, steps + 1):
        scale = 1.0 + max(float(x.abs().max()) for x in ta.xs[k])
        tol = rel_tol(case.dtype) * scale
        d = max_diff(ta.xs[k], tb.xs[k])
        if d > tol:
            rounded = rounding.cause(case, k, d, steps,
                                     lambda c, k=k, tol=tol: max_diff(fresh_run(c, k).xs[k], fresh_run(
                                         Case(c.info, c.config, other_impl, c.dtype, c.device), k).xs[k]) <= tol)
            if rounded:
                raise PropertyFailure("P15", case, f"{case.impl} and {other_impl} disagree at step {k}: max |Δx| = "
                                                   f"{d:.3g} > {tol:.1e}: {rounded[0]}", reason=rounded[1],
                                      other=other_impl)
            raise PropertyFailure("P15", case, f"{case.impl} and {other_impl} disagree at step {k}: max |Δx| = "
                                               f"{d:.3g} > {tol:.1e}; last points "
                                               f"{_fmt(ta.xs[k][0])} vs {_fmt(tb.xs[k][0])}", other=other_impl)


@rng.forked
def check_p15_dtypes(case: Case) -> None:
    """float32 and float64 agree over a short horizon, within a bound that grows with eps and steps."""
    steps = LONG_STEPS
    c64 = Case(case.info, case.config, case.impl, torch.float64, case.device)
    c32 = Case(case.info, case.config, case.impl, torch.float32, case.device)
    ta = fresh_run(c64, steps)
    tb = fresh_run(c32, steps)
    eps32 = torch.finfo(torch.float32).eps
    for k in range(1, steps + 1):
        # Bound: float32 rounding of O(1) values is eps32 per op; a step is O(100) ops and errors add
        # over k steps, amplified at most ~10x by adaptive denominators on this well-scaled problem.
        tol = 1e3 * eps32 * k * (1.0 + max(float(x.abs().max()) for x in ta.xs[k]))
        d = max_diff(ta.xs[k], tb.xs[k])
        amplified = rounding.explains(c32, k, d, steps) if d > tol else None
        if amplified:
            raise PropertyFailure("P15", case, f"float32 and float64 disagree at step {k}: max |Δx| = {d:.3g} > "
                                               f"{tol:.1e} (1e3·eps32·k·scale): in float32, {amplified}",
                                  reason=rounding.REASON, other="float32")
        if d > tol:
            raise PropertyFailure("P15", case, f"float32 and float64 disagree at step {k}: max |Δx| = {d:.3g} > "
                                               f"{tol:.1e} (1e3·eps32·k·scale); float64 {_fmt(ta.xs[k][0])} vs "
                                               f"float32 {_fmt(tb.xs[k][0])}", other="float32")


@rng.forked
def check_p16(case: Case) -> None:
    """After zero_grad() every grad is None (set_to_none) or zero."""
    for set_to_none in (True, False):
        rng.reseed()
        prob = Problem(case)
        opt = case.make(prob.params)
        _run(case, prob, opt, 1)
        call_optimizer(f"zero_grad(set_to_none={set_to_none})", opt.zero_grad, set_to_none=set_to_none)
        for i, p in enumerate(prob.params):
            g = p.grad
            if g is not None and bool(_dense(g).abs().max() != 0):
                raise PropertyFailure("P16", case, f"after zero_grad(set_to_none={set_to_none}) parameter {i}'s grad is "
                                                   f"not None or zero: max |g| = {float(_dense(g).abs().max()):.3g}")
            if set_to_none and g is not None and bool(_dense(g).abs().max() != 0):
                raise PropertyFailure("P16", case, "zero_grad(set_to_none=True) left a nonzero grad")


@rng.forked
def check_p17(case: Case) -> dict[str, Any] | None:
    """Two runs from the same global RNG state are bitwise identical (CPU); CUDA agrees with CPU to tolerance.

    A third run from another seed tells whether the optimizer draws from the global RNG: reported as a note."""
    steps = LONG_STEPS
    ta, drawn, own = _drawing_run(case, steps, rng.SEED)
    tb, _, _ = _drawing_run(case, steps, rng.SEED)
    for k in range(1, steps + 1):
        if not _same(case, ta.xs[k], tb.xs[k], 1.0 + max(float(x.abs().max()) for x in ta.xs[k])):
            raise PropertyFailure("P17", case, f"two runs from the same global RNG state (torch.manual_seed({rng.SEED}) "
                                               f"before each) differ at step {k}: max |Δx| = "
                                               f"{max_diff(ta.xs[k], tb.xs[k]):.3g}, expected equal {_cmp_word(case)} "
                                               f"(is there randomness the global seed does not reach, e.g. a "
                                               f"torch.Generator seeded from os.urandom or the time, or state shared "
                                               f"between instances?)")
    tc, _, _ = _drawing_run(case, steps, rng.OTHER_SEED)
    use = classify_rng(case, ta, tb, tc, drawn, own)
    _RNG_USE.setdefault(case_key(case), use)
    note = {"note": use.note} if use.stochastic else None
    if case.device != "cpu":
        if use.kind == "global":  # the CUDA and CPU generators give other numbers from the same seed
            return {"note": use.note + f"; {case.device} is not compared with cpu (their generators differ)"}
        cpu = Case(case.info, case.config, case.impl if case.impl in case.info.impls.get("cpu", ()) else "default",
                   case.dtype, "cpu")
        tc = fresh_run(cpu, steps)
        for k in range(1, steps + 1):
            tol = rel_tol(case.dtype) * (1.0 + max(float(x.abs().max()) for x in tc.xs[k]))
            if max_diff(ta.xs[k], tc.xs[k]) > tol:
                raise PropertyFailure("P17", case, f"{case.device} and cpu disagree at step {k}: max |Δx| = "
                                                   f"{max_diff(ta.xs[k], tc.xs[k]):.3g} > {tol:.1e}")
    return note


CHECKS: dict[str, Callable[[Case], Any]] = {
    "P2": check_p2, "P3": check_p3, "P4": check_p4, "P5": check_p5, "P6": property_p6, "P7": property_p7,
    "P8": check_p8, "P9": check_p9, "P10": check_p10, "P11": check_p11, "P12": check_p12, "P13": check_p13,
    "P14": check_p14, "P16": check_p16, "P17": check_p17,
}


def applicable(case: Case, prop: str) -> str | None:
    """None when ``prop`` applies to ``case``, else the reason it does not (an exemption or a capability)."""
    reason = case.info.exemption(prop, case.config)
    if reason:
        return reason
    if prop == "P11" and not accepts(case.info, case.config, "maximize"):
        return f"{case.name} has no maximize argument"
    if prop == "P12" and not accepts(case.info, case.config, "weight_decay"):
        return f"{case.name} has no weight_decay argument"
    return None
