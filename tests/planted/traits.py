"""Planted optimizers for the distinctions of issue 15: a bug against a trait of the method that breaks the same
property, and randomness drawn correctly against randomness kept where a checkpoint cannot reach it.

``PLANTED`` maps each class to (the property, the verdict it must get, words its diagnosis must contain). Each
is a small Adam (``_Adam``) with one thing changed, so what it does is obvious:

P7  SharedBuffersByShape   bug: momentum buffers cached by shape on self, shared by same-shape parameters
    SharedStateDict        bug: same-shape parameters get one state dict in optimizer.state
    GlobalClip             trait: every gradient clipped by the global norm over all parameters (LAMB-style)
    LrPerActiveParam       trait: lr / sqrt(count of parameters with a gradient): a neighbour's presence with a
                           gradient matters, its gradient's value does not (Prodigy's d = max(d, d̂) held still)
P6  FirstGroupLr           bug: every group steps with the first group's lr
    GlobalClip             trait: the global clip couples param groups too
P2  InitFirstStep          passes: the first step only initialises state (v0 = g0², no update: ADOPT)
    NeverMoves             bug: a warmup factor from a step counter that is never advanced: never moves
    UphillAfterInit        bug: an initialising first step, then a step with the wrong sign
P8  OwnGenerator           bug: noise from a torch.Generator of its own, kept outside state_dict()
    GlobalRngNoise         passes P6 P7 P8 P13 P14 P17: noise from torch's global RNG (a stochastic method)
P9  StateDtypeArg          passes: state kept in the dtype its ``state_dtype`` argument declares (float32)
    NoneStateDtype         passes: float32 state when its ``state_dtype`` is None, the dtype given otherwise (Kron)
    IgnoredStateDtype      bug: a ``state_dtype`` argument the state never follows
    SilentFloat32State     bug: float32 state for float64 parameters, no argument declares it
    NestedSilentFloat32    bug: the same in nested state (state[p][0]['m'], heavyball's layout)
    LayerNormFloat32       bug: a per-parameter second moment, a 0-d torch.zeros([]) in float32 whatever the param
                           dtype (timm's NvNovoGrad), beside a float32 step counter (torch.optim's, which passes)
P8  NestedStorageDtype     bug: nested state in the float32 its ``storage_dtype="float32"`` declares (P9 passes),
                           not cast back after load_state_dict, which casts it to the parameter's float64
    SettingAsAttribute     bug: a setting kept as an instance attribute, which copy.deepcopy leaves behind
    StringState            an einsum expression kept in state, which torch's load_state_dict turns into
                           '<generator object ...>' (kron-torch's Kron): named, torch's _cast and the string
P5  GradToNone             bug: step() sets p.grad = None after using it (a FAIL, never an optbench ERROR)
    DecayIntoGrad          bug: coupled weight decay added to p.grad in place: P5 runs with weight decay on too
P3  LrUnused               trait: lr in its defaults, but its step size is its own (lr is not used)
    Float32RoundTrip       bug: float64 parameters stepped in float32 and copied back (moves at lr=0; P13 too)
    WeightClip             trait: each row clipped to norm <= 1 after the step (AdamAtan2ClipGrok): moves at lr=0
                           whatever the gradient, named as a map of the weights, not a term missing its lr
    DecayWithoutLr         bug: x shrunk by 1 - 1e-3 every step, lr or not: named as a decay not multiplied by lr
    AveragedStep           passes: each step averaged with the point before (MADGRAD's momentum): at lr=0 an ulp
                           of rounding that no gradient changes, noted, not a decay "by 1"
    InitInStep             trait: the first step overwrites each parameter with an initialisation of its own
                           (heavyball's Scion: an orthogonal init in step 1); P13 fails for it too, named so, and P7
                           (its init is seeded by the parameter's index in its group, so a parameter alone gets another)
P13 SignOfNoise            trait or bug, named as what it is: a step that takes the sign of rounding noise (the
                           rounding error of p + g): rounding amplified by the step, which runs from x0 moved by a few
                           ulps show
P12 PreconditionedDecay    trait: decay through a preconditioner that mixes coordinates (|x| shrinks, an |x_i| grows)
    SignFlipDecay          bug: elementwise, but one coordinate decays away from 0
    ScaledByD0InFloat32    bug: d0-scaled steps computed in float32: P2 and P12 in float64 name the float32 compute
                           (not a wrong sign), and the float32 P12, which float64 would judge, is N/A
    ScaledByD0             passes: steps scaled by d0 = 1e-6, so in float32 decay is below the resolution (judged
                           in float64, as P2 judges a first step)
    NoStepOnZeroGrad       trait: no step at all when the gradient is zero (an early return), named so
--  Float64Raises          bug: every step of a float64 parameter raises (a compile-first step), in both implementations:
                           one finding, every other float64 check BLOCKED by it
--  MatrixStepRaises       bug: steps a 1-D parameter, raises on every 2-D one (heavyball's PSGDKron under compile):
                           one finding, the checks it blocks marked so, never "a structure of its own" (N/A)
--  TakesModel             correct, not drivable by a generic check: its constructor takes the model (LOMO-style)
    NeedsCreateGraph       correct, not drivable: step() differentiates the gradient (an AdaHessian-style Hessian)
    PairedFactors          correct, not drivable: its parameters come in factor pairs (LoRA-RITE); any one steps
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer

from .conventions import _SGD  # plain SGD with coupled weight decay; subclasses change _direction


class _Adam(Optimizer):
    """Adam (coupled L2 weight decay, maximize); subclasses override one hook."""

    restores_dtype = True  # casts its moments back to their dtype after load_state_dict cast them

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _state(self, p: torch.Tensor) -> dict:
        return self.state[p]

    def _state_dtype(self, p: torch.Tensor) -> torch.dtype:
        return p.dtype

    def _grads(self) -> dict:
        """Each parameter's gradient as the update uses it."""
        return {p: p.grad for group in self.param_groups for p in group["params"] if p.grad is not None}

    def _lr(self, group: dict) -> float:
        return group["lr"]

    def _noise(self, p: torch.Tensor) -> torch.Tensor | None:
        return None

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grads = self._grads()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            lr = self._lr(group)
            for p in group["params"]:
                if p not in grads:
                    continue
                g = -grads[p] if group["maximize"] else grads[p]
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                st = self._state(p)
                dt = self._state_dtype(p)
                if not st:
                    st["step"] = torch.tensor(0.0)
                    st["m"] = torch.zeros_like(p, dtype=dt)
                    st["v"] = torch.zeros_like(p, dtype=dt)
                elif st["m"].dtype != dt and self.restores_dtype:  # load_state_dict casts them to the param's
                    st["m"], st["v"] = st["m"].to(dt), st["v"].to(dt)
                st["step"] += 1
                t = int(st["step"].item())
                st["m"].mul_(b1).add_(g.to(dt), alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(g.to(dt), g.to(dt), value=1 - b2)
                upd = self._update(st, t, b1, b2, group["eps"]).to(p.dtype)
                noise = self._noise(p)
                if noise is not None:
                    upd = upd + noise
                self._apply(p, upd, lr)
        return loss

    def _apply(self, p: torch.Tensor, upd: torch.Tensor, lr: float) -> None:
        p.add_(upd, alpha=-lr)

    def _update(self, st: dict, t: int, b1: float, b2: float, eps: float) -> torch.Tensor:
        return (st["m"] / (1 - b1 ** t)) / ((st["v"] / (1 - b2 ** t)).sqrt() + eps)


# ---- P7 -------------------------------------------------------------------------------------------


class SharedBuffersByShape(_Adam):
    """Bug: the moments are cached by shape on the optimizer (a "reuse the buffer" optimisation gone wrong), so
    parameters of the same shape share them."""

    def _state(self, p: torch.Tensor) -> dict:
        if not hasattr(self, "_by_shape"):
            self._by_shape: dict = {}
        return self._by_shape.setdefault((tuple(p.shape), p.dtype), {})


class SharedStateDict(_Adam):
    """Bug: optimizer.state maps every parameter of one shape to the same dict (state keyed by shape)."""

    def _state(self, p: torch.Tensor) -> dict:
        for q, st in list(self.state.items()):
            if q is not p and torch.is_tensor(q) and q.shape == p.shape and q.dtype == p.dtype and st:
                self.state[p] = st
                return st
        return self.state[p]


class GlobalClip(_Adam):
    """Trait: SGD with momentum whose gradients are scaled by min(1, max_norm / |g|), |g| the norm over all
    parameters of all groups (global gradient-norm clipping inside the optimizer, as LAMB implementations do). It
    couples parameters (P7) and param groups (P6); a neighbour whose gradient is zero adds nothing to the norm."""

    def __init__(self, params, lr=1e-3, max_norm=1.0, **kw):
        super().__init__(params, lr=lr, **kw)
        self.defaults["max_norm"] = max_norm
        for group in self.param_groups:
            group.setdefault("max_norm", max_norm)

    def _grads(self) -> dict:
        grads = super()._grads()
        norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads.values()))
        scale = min(1.0, self.defaults["max_norm"] / (norm + 1e-6))
        return {p: g * scale for p, g in grads.items()}

    def _update(self, st: dict, t: int, b1: float, b2: float, eps: float) -> torch.Tensor:
        return st["m"] / (1 - b1 ** t)  # momentum, not normalised: the clip's scale shows in the step


class LargeStepClip(_Adam):
    """Trait: Adam whose step over all parameters is clipped to a global norm ``max_step`` (a trust region over
    the whole model). Adam's step is about lr per element, so at the contract's lr 0.01 the contract problem's
    20 elements step by ~0.045 and no step is clipped: the first steps see independent parameters (and groups).
    At lr 1 every step is clipped, and each parameter's step depends on the others' (P7's second look)."""

    def __init__(self, params, lr=1e-3, max_step=0.5, **kw):
        super().__init__(params, lr=lr, **kw)
        self.max_step = max_step

    @torch.no_grad()
    def step(self, closure=None):
        ps = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        before = [p.detach().clone() for p in ps]
        loss = super().step(closure)
        norm = math.sqrt(sum(float(((p - b).double() ** 2).sum()) for p, b in zip(ps, before)))
        if norm > self.max_step:
            for p, b in zip(ps, before):
                p.copy_(b + (p - b) * (self.max_step / norm))
        return loss


class LrPerActiveParam(_Adam):
    """Trait: lr shared out over the parameters that train, lr / sqrt(number of parameters with a non-zero
    gradient): a statistic of every parameter's gradient that no change of a neighbour's gradient moves, only its
    presence with a gradient (as prodigy-plus-schedule-free's d = max(d, d̂) held still beside a neighbour whatever
    its gradient). P7 FAILs naming a saturating statistic of the others' gradients, a trait, not a counter bug."""

    @torch.no_grad()
    def step(self, closure=None):
        grads = self._grads()
        active = sum(1 for g in grads.values() if bool(g.ne(0).any()))
        self._scale = 1.0 / math.sqrt(max(active, 1))
        return super().step(closure)

    def _lr(self, group: dict) -> float:
        return group["lr"] * self._scale


class StackedByShape(_Adam):
    """Trait of an implementation: the updates of parameters of one shape are computed as one stacked batch in
    float32 (a "fast path", as foreach Newton-Schulz implementations stack same-shape matrices), a parameter alone
    in its own dtype. Each update depends only on its own state, but in float64 a parameter beside another of its
    shape is rounded to float32: P7 FAILs, and the cause is the batch, not a shared statistic."""

    def _update(self, st: dict, t: int, b1: float, b2: float, eps: float) -> torch.Tensor:
        return st["upd"]

    @torch.no_grad()
    def step(self, closure=None):
        by_shape: dict = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    by_shape.setdefault(tuple(p.shape), []).append(p)
        for ps in by_shape.values():
            for p in ps:
                st = self.state[p]
                if not st:
                    st["step"] = torch.tensor(0.0)
                    st["m"], st["v"] = torch.zeros_like(p), torch.zeros_like(p)
                t = int(st["step"].item()) + 1
                b1, b2 = self.defaults["betas"]
                m = st["m"] * b1 + p.grad * (1 - b1)
                v = st["v"] * b2 + p.grad * p.grad * (1 - b2)
                st["upd"] = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + self.defaults["eps"])
            if len(ps) > 1:  # the batch: stacked and computed in float32
                batch = torch.stack([self.state[p]["upd"] for p in ps]).float()
                for p, u in zip(ps, batch.unbind()):
                    self.state[p]["upd"] = u.to(p.dtype)
        return super().step(closure)


# ---- P6 -------------------------------------------------------------------------------------------


class FirstGroupLr(_Adam):
    """Bug: every param group steps with the first group's lr."""

    def _lr(self, group: dict) -> float:
        return self.param_groups[0]["lr"]


# ---- P2 -------------------------------------------------------------------------------------------


class InitFirstStep(_Adam):
    """Correct: ADOPT's first step (its paper's Algorithm 1) only initialises v with g0² and does not move."""

    def _update(self, st: dict, t: int, b1: float, b2: float, eps: float) -> torch.Tensor:
        if t == 1:
            return torch.zeros_like(st["m"])
        return super()._update(st, t, b1, b2, eps)


class NeverMoves(_Adam):
    """Bug: the lr is scaled by a warmup factor min(1, t / 10) whose counter is read but never advanced: t = 0."""

    _warmup_t = 0

    def _lr(self, group: dict) -> float:
        return group["lr"] * min(1.0, self._warmup_t / 10)


class UphillAfterInit(InitFirstStep):
    """Bug: an initialising first step, then a step with the wrong sign (the first step that moves goes uphill)."""

    def _update(self, st: dict, t: int, b1: float, b2: float, eps: float) -> torch.Tensor:
        return -super()._update(st, t, b1, b2, eps)


# ---- P8 and randomness ----------------------------------------------------------------------------

NOISE = 1e-3  # relative to the unit-size Adam update: small enough that every step still descends


def _as_param(noise: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Noise drawn for the whole parameter, as the parameter is held: under FSDP2 (a DTensor) each rank keeps its
    own shard of the same draws (every rank draws from the same seed), so the run equals one process's."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(p, DTensor):
        return distribute_tensor(noise.to(device=p.device, dtype=p.dtype), p.device_mesh, p.placements,
                                 src_data_rank=None)
    return noise.to(p)


class OwnGenerator(_Adam):
    """Bug: exploration noise from a torch.Generator of its own, seeded in the constructor and kept outside
    state_dict(): a resumed optimizer draws the numbers of a fresh start again."""

    def __init__(self, params, lr=1e-3, seed=0, **kw):
        super().__init__(params, lr=lr, **kw)
        self._gen = torch.Generator().manual_seed(seed)

    def _noise(self, p: torch.Tensor) -> torch.Tensor:
        return _as_param(NOISE * torch.randn(p.shape, generator=self._gen, dtype=torch.float64), p)


class GlobalRngNoise(_Adam):
    """Correct: exploration noise from torch's global RNG (drawn in float64 and cast, so float32 and float64 runs
    see the same numbers); the same seed gives the same run, and a checkpoint that saves the RNG state resumes it."""

    def _noise(self, p: torch.Tensor) -> torch.Tensor:
        return _as_param(NOISE * torch.randn(p.shape, dtype=torch.float64), p)


# ---- P9 -------------------------------------------------------------------------------------------


class StateDtypeArg(_Adam):
    """Correct: moments kept in ``state_dtype`` (float32 by default, declared), whatever the parameter's dtype."""

    def __init__(self, params, lr=1e-3, state_dtype: torch.dtype = torch.float32, **kw):
        super().__init__(params, lr=lr, **kw)
        self.defaults["state_dtype"] = state_dtype  # a setting in defaults survives state_dict and deepcopy

    def _state_dtype(self, p: torch.Tensor) -> torch.dtype:
        return self.defaults["state_dtype"]


class NoneStateDtype(_Adam):
    """Correct: ``state_dtype=None`` means the optimizer's own choice, float32 (kron-torch's Kron:
    ``precond_dtype=None`` keeps its preconditioners in float32); given a dtype, the state follows it."""

    def __init__(self, params, lr=1e-3, state_dtype=None, **kw):
        super().__init__(params, lr=lr, **kw)
        self.defaults["state_dtype"] = state_dtype

    def _state_dtype(self, p: torch.Tensor) -> torch.dtype:
        return self.defaults["state_dtype"] or torch.float32


class IgnoredStateDtype(NoneStateDtype):
    """Bug: a ``state_dtype`` argument (None by default) that the state never follows: always float32."""

    def _state_dtype(self, p: torch.Tensor) -> torch.dtype:
        return torch.float32


class SilentFloat32State(_Adam):
    """Bug: float32 moments for float64 parameters; no argument declares it (precision silently lost)."""

    def _state_dtype(self, p: torch.Tensor) -> torch.dtype:
        return torch.float32


class NestedSilentFloat32(SilentFloat32State):
    """Bug: SilentFloat32State's float32 moments, in nested state: one dict per view of the parameter under
    state[p] (heavyball's layout), where a check that reads only state[p]['m'] sees nothing."""

    def _state(self, p: torch.Tensor) -> dict:
        return self.state[p].setdefault(0, {})


class LayerNormFloat32(Optimizer):
    """Bug: NovoGrad's per-layer second moment, the 0-d ``torch.zeros([])`` (float32 whatever the parameter's dtype,
    as timm's NvNovoGrad creates it), so a float64 run normalises by a float32 norm. Its step counter is a float32
    0-d tensor too (torch.optim's convention), which holds whole numbers and is not the finding."""

    def __init__(self, params, lr=1e-2, beta=0.95, eps=1e-8):
        super().__init__(params, dict(lr=lr, beta=beta, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = torch.zeros((), dtype=torch.float32)
                    st["v"] = torch.zeros([])  # the bug: the default dtype, float32
                st["step"] += 1
                st["v"].mul_(group["beta"]).add_((p.grad * p.grad).sum(), alpha=1 - group["beta"])
                p.add_(p.grad / (st["v"].sqrt() + group["eps"]), alpha=-group["lr"])


class NestedStorageDtype(_Adam):
    """Bug: moments kept, nested, in the dtype ``storage_dtype`` names (a string, as heavyball's does; P9 reads it
    as declared and passes), but not cast back after torch.optim.Optimizer.load_state_dict cast them to the
    parameter's dtype: a resumed float64 run continues in float64, and differs."""

    restores_dtype = False

    def __init__(self, params, lr=1e-3, storage_dtype: str = "float32", **kw):
        super().__init__(params, lr=lr, **kw)
        self.defaults["storage_dtype"] = storage_dtype

    def _state(self, p: torch.Tensor) -> dict:
        return self.state[p].setdefault(0, {})

    def _state_dtype(self, p: torch.Tensor) -> torch.dtype:
        return getattr(torch, self.defaults["storage_dtype"])


class SettingAsAttribute(_Adam):
    """Bug: a setting kept as an instance attribute (``self.scale``): torch.optim.Optimizer.__getstate__ keeps
    defaults, state and param_groups only, so a deep copy of the optimizer has no ``scale`` and its step raises."""

    def __init__(self, params, lr=1e-3, **kw):
        super().__init__(params, lr=lr, **kw)
        self.scale = 1.0

    def _lr(self, group: dict) -> float:
        return group["lr"] * self.scale


# ---- P5 -------------------------------------------------------------------------------------------


class StringState(_Adam):
    """Correct, and meets a torch bug: an einsum expression kept in its state (kron-torch's Kron keeps its
    preconditioner's in state['exprs']); torch.optim.Optimizer.load_state_dict turns every str of the state into
    '<generator object ...>', so the resumed step raises. P8 FAILs naming the string and torch's _cast."""

    def _apply(self, p: torch.Tensor, upd: torch.Tensor, lr: float) -> None:
        st = self.state[p]
        st.setdefault("expr", "...->...")
        p.add_(torch.einsum(st["expr"], upd), alpha=-lr)


class GradToNone(_Adam):
    """Bug: step() frees each gradient after using it (p.grad = None), so the caller's gradient is gone."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None
        return loss


class SignOfNoise(_Adam):
    """Rounding amplified by the step: Adam plus half a sign step of a quantity that is 0 in exact arithmetic, the
    rounding error of p + g ((p + g) - p - g), as a sign or an elementwise normalisation of values that are zero
    up to rounding does (FOCUS's sign(p - p̄) at step 1, SOAP's normalised rotated gradient). A few ulps of x0
    move each step by up to lr, and P13's shifted run (x0 + 3 rounds otherwise) differs by as much. P13 FAILs,
    named as rounding amplified by the step, not as a dependence on the parameter's magnitude."""

    def _apply(self, p: torch.Tensor, upd: torch.Tensor, lr: float) -> None:
        g = p.grad
        noise = (p + g) - p - g
        p.add_(upd + 0.5 * torch.sign(noise), alpha=-lr)


# ---- P3, P12, P13: what a moving lr=0 or a growing coordinate really is ----------------------------


class LrUnused(_Adam):
    """Trait: lr is in its defaults but the step size is the method's own (as torch_optimizer's A2Grad documents
    "lr: not used", or Adafactor's relative step ignores it): at lr=0 it still moves, exactly as at any other lr."""

    def _lr(self, group: dict) -> float:
        return 1e-2


class WeightClip(_Adam):
    """Trait: after each step every row of a parameter is clipped to norm <= 1 (lucidrains' AdamAtan2ClipGrok:
    ``clip_to_grok`` soft-clips each row's norm): at lr=0 the parameters still move, whatever the gradient."""

    def _apply(self, p: torch.Tensor, upd: torch.Tensor, lr: float) -> None:
        p.add_(upd, alpha=-lr)
        p.mul_(p.norm(dim=-1, keepdim=True).reciprocal().clamp(max=1.0))


class DecayWithoutLr(_Adam):
    """Bug: every step shrinks x by a factor 1 - 1e-3 that lr does not multiply, so lr=0 does not stop it."""

    def _apply(self, p: torch.Tensor, upd: torch.Tensor, lr: float) -> None:
        p.mul_(1 - 1e-3)
        p.add_(upd, alpha=-lr)


class AveragedStep(_Adam):
    """Correct: each step is averaged with the point before it, as MADGRAD's momentum averages the parameter with
    its dual point (``p.mul_(1 - c).add_(z, alpha=c)``): at lr=0, z = p and (1 - c)·p + c·p rounds to a neighbour
    of p now and then, a move of an ulp that no gradient changes. P3 passes, with that note."""

    def _apply(self, p: torch.Tensor, upd: torch.Tensor, lr: float) -> None:
        z = p - lr * upd
        p.mul_(0.9).add_(z, alpha=0.1)


class Float32RoundTrip(_Adam):
    """Bug: each parameter is stepped in float32 and copied back (``p.data.float()`` ... ``p.data.copy_()``, as
    torch_optimizer's RAdam and Ranger do), so a float64 run has float32 precision: at lr=0 the parameters still
    move, to their float32 rounding, and the shifted run of P13 rounds differently."""

    def _state_dtype(self, p: torch.Tensor) -> torch.dtype:
        return torch.float32

    def _apply(self, p: torch.Tensor, upd: torch.Tensor, lr: float) -> None:
        p32 = p.float()
        p32.add_(upd.float(), alpha=-lr)
        p.copy_(p32)


class InitInStep(_Adam):
    """Trait: its first step replaces each parameter with an initialisation of its own (a seeded orthogonal
    matrix, as heavyball's Scion does for the norm-constrained method it implements), then steps as Adam."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for i, p in enumerate(group["params"]):
                if p.grad is not None and not self.state[p]:
                    init = torch.empty(p.shape, dtype=torch.float64)
                    torch.nn.init.orthogonal_(init, generator=torch.Generator().manual_seed(i))
                    p.copy_(init)
        return super().step(closure)


class PreconditionedDecay(_SGD):
    """Trait: the direction (gradient plus coupled decay) is multiplied by the preconditioner I + 11ᵀ over each
    tensor's elements (positive definite: it mixes coordinates, as Shampoo's Kronecker factors do), so with a zero
    gradient |x| shrinks while a coordinate whose sign differs from the tensor's mean grows."""

    def _direction(self, p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return g + g.sum()


class DecayIntoGrad(_SGD):
    """Bug: coupled weight decay added to p.grad in place (``p.grad.add_(p, alpha=wd)``: pytorch-optimizer's shared
    apply_weight_decay, torch-optimizer's AccSGD, AdaBelief, ..., DoG, schedulefree's SGD), so with weight decay on
    the caller's gradient changes. With decay off it steps as plain SGD and leaves p.grad alone: P5 passed."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and group["weight_decay"]:
                    p.grad.add_(p, alpha=group["weight_decay"])
                    p.add_(p.grad, alpha=-group["lr"])
                elif p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])
        return None


class ScaledByD0(_SGD):
    """Correct: every step scaled by d = 1e-6, a D-Adaptation-style distance estimate that has learned nothing yet
    (its d0), so with a zero gradient the decay step lr·d·wd·x is below float32's resolution (x does not move) and
    shrinks x in float64: P12 passes, judged in float64 (DoG's and dadaptation's DAdaptLion float32 P12 FAILed)."""

    def _direction(self, p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return g * 1e-6


class ScaledByD0InFloat32(_SGD):
    """Bug: ScaledByD0 stepped in float32 and copied back (prodigy-plus-schedule-free's ProdigyPlusScheduleFree,
    "designed for bf16 and fp32"): a float64 step of lr·d0·g is below float32's resolution, so the parameters land
    on a float32 neighbour of their start, here the one against the step (where ProdigyPlusScheduleFree's landed
    on the contract's problem: uphill), and the zero-gradient decay is lost in it (P12): P2 and P12 FAIL naming
    the float32 compute, not a wrong sign; the float32 case's P12 (steps below its resolution, judged in float64,
    where they cannot be seen) is N/A."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.float().add(p.float(), alpha=group["weight_decay"])
                p32 = p.float().add_(g * 1e-6, alpha=-group["lr"])
                if p.dtype == torch.float64:  # a float32 neighbour of the start, against the step
                    p32 = torch.nextafter(p.float(), p.float() + g.sign() * torch.inf)
                p.copy_(p32)


class NoStepOnZeroGrad(_SGD):
    """Trait: returns early when the gradient norm over all parameters is 0 (D-Adaptation's DAdaptAdan and
    DAdaptSGD): no step at all, decay included; P12 FAILs naming that, not a wrong sign of the decay."""

    @torch.no_grad()
    def step(self, closure=None):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        if closure is None and grads and all(not bool(g.any()) for g in grads):
            return None
        return super().step(closure)


class SignFlipDecay(_SGD):
    """Bug: elementwise, but the decay of each tensor's first element has the wrong sign (it grows away from 0)."""

    def _direction(self, p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        wd = self.param_groups[0]["weight_decay"]  # _SGD has added wd * p into g: take it out twice at element 0
        g = g.clone()
        g.view(-1)[0] -= 2 * wd * p.view(-1)[0]
        return g


# ---- one root cause ---------------------------------------------------------------------------------


class Float64Raises(_Adam):
    """Bug: its step (compiled for float32, say) raises for every float64 parameter, in its for-loop and foreach
    implementations alike (torch.optim's ``foreach`` flag selects them)."""

    def __init__(self, params, lr=1e-3, foreach=None, **kw):
        super().__init__(params, lr=lr, **kw)
        self.defaults["foreach"] = foreach
        for group in self.param_groups:
            group.setdefault("foreach", foreach)

    @torch.no_grad()
    def step(self, closure=None):
        if any(p.dtype == torch.float64 for group in self.param_groups for p in group["params"]):
            raise RuntimeError("Float64Raises: the compiled step supports float32 parameters only")
        return super().step(closure)


class MatrixStepRaises(_Adam):
    """Bug: a 1-D parameter steps, every 2-D parameter raises (heavyball's PSGDKron: its compiled Kronecker
    preconditioner update fails for matrices). One parameter stepping is no sign of a structure of its own."""

    @torch.no_grad()
    def step(self, closure=None):
        if any(p.dim() > 1 for group in self.param_groups for p in group["params"]):
            raise RuntimeError("MatrixStepRaises: the preconditioner update fails for a matrix")
        return super().step(closure)


# ---- what no generic check can drive: every check N/A with the reason ----------------------------


class TakesModel(Optimizer):
    """SGD whose constructor takes the model itself (as LOMO or Adam-mini do), not its parameters."""

    def __init__(self, model, lr=1e-3):
        super().__init__(list(model.parameters()), dict(lr=lr))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])


class NeedsCreateGraph(Optimizer):
    """Gradient descent preconditioned by a Hutchinson estimate of the Hessian diagonal (AdaHessian-style): step()
    differentiates p.grad again, so the loss must be backpropagated with create_graph=True."""

    def __init__(self, params, lr=1e-3):
        super().__init__(params, dict(lr=lr))

    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                z = torch.randint_like(p, 0, 2) * 2.0 - 1.0
                (hz,) = torch.autograd.grad(p.grad, p, grad_outputs=z)
                with torch.no_grad():
                    p.sub_(p.grad / (hz * z).abs().clamp_min(1.0), alpha=group["lr"])


class PairedFactors(Optimizer):
    """Correct, for the parameters it is meant for: a LoRA-RITE-style method whose step reads its parameters as
    factor pairs (A, B) with A @ B defined, so any one parameter steps alone but an unpaired list raises."""

    def __init__(self, params, lr=1e-3):
        super().__init__(params, dict(lr=lr))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            for a, b in zip(ps[::2], ps[1::2]):
                scale = 1.0 / (1.0 + (a @ b).norm())  # the pair's product: (3, 2) @ (3, 2) is undefined
                a.sub_(a.grad, alpha=group["lr"] * float(scale))
                b.sub_(b.grad, alpha=group["lr"] * float(scale))
            if len(ps) % 2:
                ps[-1].sub_(ps[-1].grad, alpha=group["lr"])


# class name: (property, verdict it must get, words its message must contain)
PLANTED: dict[str, tuple[str, str, str]] = {
    "SharedBuffersByShape": ("P7", "FAIL", "state is shared between parameters of the same shape, a bug"),
    "SharedStateDict": ("P7", "FAIL", "state is shared between parameters (state["),
    "GlobalClip": ("P7", "FAIL", "a trait of the method, not a bug: the parameters are coupled through a norm-like "
                                 "global statistic"),
    "LargeStepClip": ("P7", "FAIL", "at lr 1 (equal over the first 3 steps at the contract's lr 0.01: what couples "
                                    "them acts later or at a larger lr): max |Δx| = "),
    "LargeStepClip.P6": ("P6", "FAIL", "(equal over the first 3 steps at the contract's lr 0.01: what couples them "
                                       "acts later or at a larger lr)"),
    "LrPerActiveParam": ("P7", "FAIL", "a trait of the method, not a bug: the parameters are coupled through a "
                                       "statistic of the others' gradients that saturates"),
    "StackedByShape": ("P7", "FAIL", "a trait of the implementation, not a bug: parameters of one shape are computed "
                                     "as one batch"),
    "FirstGroupLr": ("P6", "FAIL", "one group's lr is applied to the other, a bug"),
    "GlobalClip.P6": ("P6", "FAIL", "a trait of the method, not a bug: the groups interact through a shared statistic"),
    "InitFirstStep": ("P2", "PASS", "the first step only initialises state"),
    "NeverMoves": ("P2", "FAIL", "does not move: no parameter changed in 20 steps"),
    "UphillAfterInit": ("P2", "FAIL", "step 2, the first that moves (steps 1-1 only initialised state), moves uphill"),
    "OwnGenerator": ("P8", "FAIL", "self._gen is a torch.Generator whose state is not saved"),
    "GlobalRngNoise": ("P17", "PASS", "draws random numbers from torch's CPU generator"),
    "StateDtypeArg": ("P9", "PASS", "as state_dtype=torch.float32 declares"),
    "NoneStateDtype": ("P9", "PASS", "float32, the default of state_dtype=None, which state_dtype=torch.float64 makes "
                                     "float64"),
    "IgnoredStateDtype": ("P9", "FAIL", "is float32, the param float64, and no constructor argument declares"),
    "SilentFloat32State": ("P9", "FAIL", "is float32, the param float64, and no constructor argument declares"),
    "NestedSilentFloat32": ("P9", "FAIL", "state[0]['m'] of parameter 0 is float32, the param float64, and no "
                                          "constructor argument declares"),
    "LayerNormFloat32": ("P9", "FAIL", "state['v'] of parameter 0 (a 0-d tensor, a statistic, not a counter: it "
                                       "holds"),
    "NestedStorageDtype": ("P8", "FAIL", "(state[0]['m'] of parameter 0 is float32, the parameter float64: torch.optim."
                                         "Optimizer.load_state_dict casts floating-point state to its parameter's dtype"),
    "NestedStorageDtype.P9": ("P9", "PASS", "state[0]['m'] float32 as storage_dtype=torch.float32 declares"),
    "SettingAsAttribute.deepcopy": ("P8", "FAIL", "self.scale, an instance attribute of the optimizer, is not in the "
                                                  "copy (torch.optim.Optimizer.__getstate__ keeps defaults, state and "
                                                  "param_groups only"),
    "StringState": ("P8", "FAIL", "state['expr'] of parameter 0 was '...->...' and the loaded state holds '<generator "
                                  "object"),
    "GradToNone": ("P5", "FAIL", "set parameter 0's .grad to None"),
    "LrUnused": ("P3", "FAIL", "the 3 steps are the same bit for bit: lr is not used"),
    "WeightClip": ("P3", "FAIL", "move them the same bit for bit: the move does not come from the gradient but from a "
                                 "map of the parameters' own values applied whatever lr: a trait of the method"),
    "DecayWithoutLr": ("P3", "FAIL", "every parameter is scaled by 0.999 at step 1: a decay toward 0 not multiplied "
                                     "by lr"),
    "Float32RoundTrip": ("P3", "FAIL", "moved at step 1 to their float32 rounding"),
    "AveragedStep": ("P3", "PASS", "moved from step 1 on by rounding only: at most"),
    "AveragedStep.float32": ("P3", "PASS", "the same bit for bit with every gradient negated or doubled: arithmetic "
                                           "that is the identity in exact arithmetic"),
    "Float32RoundTrip.P13": ("P13", "FAIL", "a float32 rounding: step() computes the float64 parameters in float32"),
    "InitInStep": ("P3", "FAIL", "step 1 sets the parameters to the same values from x0 and from x0 + 3 under the "
                                 "same gradient: it overwrites them with values of its own"),
    "InitInStep.P13": ("P13", "FAIL", "trajectory at step 1: max |Δx| = 3 > 1.1e-12: step 1 sets the parameters to "
                                      "the same values from x0 and from x0 + 3 under the same gradient: it overwrites "
                                      "them with values of its own, whatever they were"),
    "SignOfNoise": ("P13", "FAIL", "rounding amplified by the step: the same run from x0 moved by 1-8 ulps "
                                   "(2.2e-16 relative each) moves the parameters by"),
    "InitInStep.P7": ("P7", "FAIL", "a trait of the method, not a bug: step 1 sets the parameters to the same values "
                                    "from x0 and from x0 + 3 under the same gradient"),
    "PreconditionedDecay": ("P12", "FAIL", "the step mixes coordinates"),
    "SignFlipDecay": ("P12", "FAIL", "moved a coordinate away from 0 in 3 steps"),
    "DecayIntoGrad": ("P5", "FAIL", "step 1 with weight_decay=0.1 modified .grad in place: max |Δgrad| = 0.188 (expected "
                                    "untouched; use a copy, e.g. grad.mul() instead of grad.mul_()) (weight decay added "
                                    "to p.grad in place?"),
    "ScaledByD0": ("P12", "PASS", ""),
    "ScaledByD0.float32": ("P12", "PASS", "the decayed steps are below the parameters' resolution; in float64, "
                                          "where they are judged, |x| shrinks by 3e-09 of itself"),
    "ScaledByD0InFloat32.P2": ("P2", "FAIL", "moved the parameters to their float32 rounding (<Δx, g> = "),
    "ScaledByD0InFloat32": ("P12", "FAIL", "and they hold their float32 rounding: step() computes the float64 "
                                           "parameters in float32"),
    "ScaledByD0InFloat32.float32": ("P12", "N/A", "the float64 case, where such steps are judged, computes the "
                                                  "float64 parameters in float32"),
    "NoStepOnZeroGrad": ("P12", "FAIL", "did not move the parameters at all in 3 steps (|x| 4.51325 -> 4.51325, max "
                                        "growth of |x_i| 0, bit for bit): no step is taken when the gradient is zero"),
    "MatrixStepRaises": ("P2", "FAIL", "step() raised RuntimeError: MatrixStepRaises: the preconditioner update "
                                       "fails for a matrix"),
    "PairedFactors": ("P2", "N/A", "in one group raise (RuntimeError: mat1 and mat2 shapes cannot be multiplied "
                                   "(3x2 and 3x2)), while each of those shapes alone steps: it takes its parameters "
                                   "only in a structure of its own"),
    "TakesModel": ("P2", "N/A", "its constructor takes a model (an nn.Module) instead of parameters"),
    "NeedsCreateGraph": ("P2", "N/A", "it needs the loss backpropagated with loss.backward(create_graph=True)"),
}
