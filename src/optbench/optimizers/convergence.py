"""P1 convergence, and the exact-trajectory checks of the linear methods.

P1: on a target, from its canonical start(s) and K random starts inside the global minimum's basin,
the optimizer reaches |x - x*| <= tol_x and f - f* <= tol_f (against the nearest global minimizer:
reaching any one counts) within its epoch budget. Starts of an elementwise optimizer are batched
into one (S, d) parameter, so S starts cost about one run; others run start by start. A run stops
early once every start has converged (run_loop's on_epoch hook), and at once on NaN/inf. Inside the
loop, p.grad is compared with the symbolic gradient at the current x on a sparse set of epochs.

Without an lr (user optimizers), P1 searches :data:`LR_GRID`, one param group per lr when param
groups are independent (P6), and reports the band of lrs that converged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

from ..loop import OptimizerRaised, run_loop
from ..schedules import describe as describe_schedule
from .batch import Unit, run_units
from .tolerance import tolerance
from .contract import Case, PropertyFailure
from .info import OptimizerInfo

# The lr grid searched when no lr is given: 10^(k/2) for k = -8..1, i.e. 1e-4, 3.2e-4, ..., 1, 3.2.
LR_GRID: tuple[float, ...] = tuple(10.0 ** (k / 2) for k in range(-8, 2))

K_BATCHED = 8  # random starts for elementwise optimizers (one batched run)
K_SEPARATE = 2  # random starts for optimizers run start by start

@dataclass
class P1Result:
    lrs: list[float | None]
    reached: list[list[int | None]]  # per group, per start: epoch reached (None: not)
    diverged: list[int | None]  # per group: epoch of the first NaN/inf
    last: list[list[torch.Tensor]]  # per group: last few x (S, d)
    dist: list[torch.Tensor]  # per group: final |x - x*| per start
    gap: list[torch.Tensor]  # per group: final f - f* per start
    starts: torch.Tensor
    x_star: torch.Tensor | None = None
    epochs_run: int = 0
    grad_error: str | None = None
    schedule: str | None = None  # the schedule the run used, as it reads ("ExponentialLR(gamma=0.99)")
    mid: list[float] = field(default_factory=list)  # per group: largest |x - x*| over starts at mid-budget
    hopeless: list[str | None] = field(default_factory=list)  # per group: why it stopped before its budget
    hover_stop: list[bool] = field(default_factory=list)  # per group: stopped at mid-budget with its target's lrs

    @classmethod
    def from_units(cls, units: Sequence[Unit], schedule: Mapping[str, Any] | None = None) -> "P1Result":
        """The per-lr lists of one target's units (in lr order)."""
        u0 = units[0]
        return cls([u.lr for u in units], [list(u.reached) for u in units], [u.diverged for u in units],
                   [list(u.last) for u in units], [u.dist for u in units], [u.gap for u in units], u0.starts,
                   u0.x_star, epochs_run=max(u.epochs_run for u in units),
                   grad_error=next((u.grad_error for u in units if u.grad_error), None),
                   schedule=describe_schedule(schedule, u0.epochs), mid=[u.mid for u in units],
                   hopeless=[u.hopeless for u in units], hover_stop=[u.hover_stop for u in units])

    def converged(self, g: int) -> bool:
        return self.diverged[g] is None and all(e is not None for e in self.reached[g])

    def still_converging(self, g: int, by: float = 0.5) -> bool:
        """Not there yet, but the largest distance at the end at most ``by`` times its mid-budget value: halved
        (the default) is a slow method (O(1/k) averaging halves it; a stalled or hovering one does not). P1 asks
        for less (SLOW_DECREASE) only to choose the lrs that get a longer budget, where reaching x* is the test."""
        if self.diverged[g] is not None or g >= len(self.mid) or not math.isfinite(self.mid[g]):
            return False
        end = max([float(self.dist[g].max())] + self._last_dists(g))
        return math.isfinite(end) and end <= by * self.mid[g]

    def _last_dists(self, g: int) -> list[float]:
        """The largest |x - x*| over starts at each of the last recorded points: one end snapshot may catch a
        cycle at its near phase (Fromage at lr 1 cycles between 0 and 1.41 on seed_quadratic, x* = 1/3, and
        looked as if it halved its distance)."""
        if self.x_star is None:
            return []
        xs = self.x_star.double().reshape(-1, self.starts.shape[-1])
        out = []
        for x in self.last[g] if g < len(self.last) else []:
            if x.numel() and x.shape[-1] == xs.shape[-1]:
                out.append(float(torch.cdist(x.double().reshape(-1, xs.shape[-1]), xs).min(dim=1).values.max()))
        return out


# A longer budget goes to every lr whose largest distance fell by at least a fifth over the second half: AdamG's
# min(lr, 1/sqrt(t)) steps creep (7.45 -> 5.57 on matyas) and reach x* by 16000 epochs. Only reaching x* passes;
# after the longer run, N/A still takes a halving (a biased fixed point approached slowly must not escape as N/A).
SLOW_DECREASE = 0.8


def run_p1(
    case: Case,
    target,
    starts: torch.Tensor,
    lrs: Sequence[float | None],
    epochs: int,
    *,
    batch_starts: bool,
    batch_groups: bool,
    weight_decay: float = 0.0,
    x_star: torch.Tensor | None = None,
    f_star: float | None = None,
    check_grad: bool = True,
    early_stop: bool = True,
    schedule: Mapping[str, Any] | None = None,
    hopeless: bool = False,
    limit_s: float | None = None,
) -> P1Result:
    """Run P1 on one target for every lr in ``lrs`` over ``starts`` (S, d); stop early once all have converged.

    One target's runs through :func:`optbench.optimizers.batch.run_units` (the lr grid as param groups of one
    optimizer where ``batch_groups``); :mod:`optbench.optimizers.p1` batches every target of a case instead.
    ``schedule`` (see :mod:`optbench.schedules`) decays every group's lr through a torch lr scheduler
    stepped after each optimizer step."""
    units = make_units(case, target, starts, lrs, epochs, batch_starts=batch_starts, x_star=x_star, f_star=f_star)
    run_units(case, units, groups_exact=batch_groups, params_exact=False, weight_decay=weight_decay,
              check_grad=check_grad, early_stop=early_stop, schedule=schedule, hopeless=hopeless, limit_s=limit_s)
    return P1Result.from_units(units, schedule)


def make_units(case: Case, target, starts: torch.Tensor, lrs: Sequence[float | None], epochs: int, *,
               batch_starts: bool, x_star: torch.Tensor | None = None, f_star: float | None = None) -> list[Unit]:
    """One :class:`~optbench.optimizers.batch.Unit` per lr of one target (the constructor gets the first lr)."""
    xs = (target.x_star(torch.float64) if x_star is None else x_star).cpu()
    fs = float(target.f_star) if f_star is None else f_star
    first = next((lr for lr in lrs if lr is not None), None)
    return [Unit(target, lr, starts, epochs, batch_starts, ctor_lr=first, x_star=xs, f_star=fs) for lr in lrs]


def starts_for(info: OptimizerInfo, target, dtype: torch.dtype, batch: bool, seed: int = 0) -> torch.Tensor:
    """Canonical start(s) then K random starts in the global minimum's basin, as (S, d) float64."""
    k = K_BATCHED if batch else K_SEPARATE
    if info.random_starts is not None:
        k = info.random_starts
    return torch.cat([target.start_tensor(torch.float64), target.random_starts(k, seed=seed, dtype=torch.float64)])


def batched_equals_separate(case: Case, target, epochs: int = 30) -> tuple[bool, float]:
    """Run S starts as one (S, d) parameter and as S separate runs for a fixed number of epochs. Runs that
    have not moved from their starts show nothing (a warmup that skips its first steps, as RAdam's does),
    so they count as different: separate runs are always right, batched ones only for elementwise updates."""
    starts = starts_for(case.info, target, case.dtype, batch=True)[:4]
    lr = case.info.budget(case.config, target.name).lr or case.info.contract_lr
    kw = dict(check_grad=False, early_stop=False)
    try:
        a = run_p1(case, target, starts, [lr], epochs, batch_starts=True, batch_groups=True, **kw)
        # separate: one optimizer per start (as param groups of one optimizer they would be separate only where P6
        # holds, and a one-group optimizer such as LBFGS refuses them)
        b = run_p1(case, target, starts, [lr], epochs, batch_starts=False, batch_groups=False, **kw)
    except OptimizerRaised:  # the batched form raising proves nothing: run apart; P1's own runs report a raise
        return False, math.nan
    xa, xb = a.last[0][-1], b.last[0][-1]
    if torch.equal(xb.double().cpu(), starts.to(case.dtype).double()):
        return False, 0.0
    same = torch.equal(xa, xb) if case.exact else bool(torch.allclose(xa, xb, rtol=1e-9, atol=0))
    return same, float((xa - xb).abs().max())


def _fmt_pts(xs: Sequence[torch.Tensor], row: int) -> str:
    return " -> ".join("(" + ", ".join(f"{v:.6g}" for v in x[row].tolist()) + ")" for x in xs if x.shape[0] > row)


def describe_failure(case: Case, target, res: P1Result, g: int, epochs: int, what: str = "P1") -> str:
    tol_x, tol_f, why = tolerance(case.info, case.dtype)
    lr = res.lrs[g]
    head = f"on {target.name} (lr={lr:g}, budget {epochs} epochs)" if lr is not None else f"on {target.name} (at its own step size, no lr hyperparameter; budget {epochs} epochs)"
    if res.diverged[g] is not None:
        return f"{head}: stopped at epoch {res.diverged[g]}: loss or x became NaN/inf (lr too large, or an unstable update)"
    bad = [s for s, e in enumerate(res.reached[g]) if e is None]
    s = bad[0]
    x0 = res.starts[s].tolist()
    xst = [[round(float(v), 6) for v in row] for row in (res.x_star.tolist())]
    kind = "start" if s < len(target.start) else "random start"
    pts = _fmt_pts(res.last[g], s)
    return (f"{head}: {len(bad)} of {len(res.reached[g])} starts did not converge; {kind} {s} x0={x0} ended at "
            f"|x - x*| = {float(res.dist[g][s]):.3g} (tol_x {tol_x:g}) and f - f* = {float(res.gap[g][s]):.3g} "
            f"(tol_f {tol_f:g}); expected to reach x* in {xst}; last points {pts}{_cycle(res.last[g], s, res.x_star)}"
            f"{_stall(res.last[g], s, res.x_star, target, lr)}")


def _cycle(xs: Sequence[torch.Tensor], row: int, x_star: torch.Tensor) -> str:
    """Name a period-2 cycle around x* (every other point the same, the two on either side of x*): an adaptive
    step that grows as the gradient shrinks until it sits at the stability edge (Adadelta) ends so."""
    pts = [x[row].double() for x in xs if x.shape[0] > row][-3:]
    if len(pts) < 3:
        return ""
    a, b, c = pts
    xs_ = x_star.double().reshape(-1, a.numel())
    star = xs_[int(torch.cdist(c[None], xs_).argmin())]
    jump = float((c - b).norm())
    if jump == 0 or float((c - a).norm()) > 0.05 * jump or float(torch.dot(c - star, b - star)) >= 0:
        return ""
    return (f" (a period-2 cycle: every other step returns to the same point, the two on either side of x*, "
            f"{jump:.2g} apart: the step sits at its stability edge instead of shrinking)")


STALL = 1e-3  # a last step below this fraction of what a gradient step at the lr would move is a stall


def _stall(xs: Sequence[torch.Tensor], row: int, x_star: torch.Tensor, target, lr: float | None) -> str:
    """Name a run that stalled away from x*: its last step is below STALL x lr x min(|grad|, 1) while the gradient
    there is not zero, so the step vanished before the gradient did. A step scaled by |x| (LAMB's trust ratio)
    stalls so near x = 0, and never leaves a parameter that is exactly 0 (cybertronai's pytorch-lamb has no
    guard for ‖w‖ = 0: trid's start (0, 0) never moves), a preconditioner or step size that shrinks too fast (Shampoo's with too large an exponent)
    anywhere. A slow crawl at a small lr moves about lr x |grad| a step (GD) or lr (sign and Adam-like steps), both
    above the bound; without an lr (a step size of the method's own) nothing is said."""
    pts = [x[row].double() for x in xs if x.shape[0] > row][-2:]
    if len(pts) < 2 or lr is None:
        return ""
    b, c = pts
    step = float((c - b).norm())
    x = c.reshape(1, -1).clone().requires_grad_()
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(target.fn(x).sum(), x)
    gn = float(grad.norm())
    if not (math.isfinite(gn) and gn > 1e-6) or step >= STALL * lr * min(gn, 1.0):  # 1e-6: a stationary point
        return ""
    if step == 0 and float(c.norm()) == 0:  # at 0 exactly: what a norm-scaled step cannot leave
        return (f" (stalled at x = 0 exactly: the last step did not move it at all while the gradient there is "
                f"{gn:.2g}, where a gradient step at lr {lr:g} would move {lr * gn:.2g}: a step scaled by the "
                f"parameter's norm (a trust ratio ‖w‖/‖u‖ without the guard that makes it 1 at ‖w‖ = 0, as LAMB's "
                f"reference has) never moves a parameter that is 0; or the step skips it (a mask or threshold on the "
                f"parameter) or its step size is 0)")
    if step == 0:  # not a vanishing step: none at all
        return (f" (stalled: the last step did not move it at all while the gradient there is {gn:.2g}, where a gradient "
                f"step at lr {lr:g} would move {lr * gn:.2g}: the step skips it (a mask or threshold on the parameter, "
                f"a warm-up that holds it) or its step size is 0)")
    near0 = " near x = 0" if float(c.norm()) < 1e-6 * max(1.0, float(x_star.double().norm(dim=-1).min())) else ""
    return (f" (stalled{near0}: the last step moved {step:.2g} while the gradient there is {gn:.2g}, where a gradient "
            f"step at lr {lr:g} would move {lr * gn:.2g}: the step vanished where the gradient did not, as a step "
            f"scaled by |x| (a trust ratio) does near 0, or a preconditioner or step size that shrinks too fast)")


# ------------------------------------------------------------------ exact trajectories (quadratics)


def _quadratic(target):
    qf = target.quadratic_form()
    if qf is None:
        raise PropertyFailure("P1.exact", None, f"{target.name} is not quadratic; the exact checks need one")
    A, b, _ = qf
    An = torch.tensor([[float(v) for v in A.row(i)] for i in range(A.rows)], dtype=torch.float64)
    bn = torch.tensor([float(v) for v in b], dtype=torch.float64)
    return An, bn


def _gd_run(case: Case, target, lr: float, epochs: int):
    x = target.start_tensor(torch.float64)[:1].to(case.dtype).clone().requires_grad_()
    opt = case.info.make([x], case.config, case.impl, lr=lr)
    return run_loop(lambda: target.fn(x).sum(), [x], opt, epochs, check_finite=True)


def _recurrence(kind: str, A: torch.Tensor, b: torch.Tensor, x0: torch.Tensor, lr: float, mu: float, epochs: int):
    """torch's SGD as a linear recurrence: plain, heavy ball (buf = mu*buf + g), Nesterov (g + mu*buf)."""
    xs, x, buf = [x0.clone()], x0.clone(), None
    for _ in range(epochs):
        g = A @ x - b
        if kind == "gd":
            step = g
        else:
            buf = g.clone() if buf is None else mu * buf + g
            step = g + mu * buf if kind == "nesterov" else buf
        x = x - lr * step
        xs.append(x.clone())
    return xs


def check_exact_trajectory(case: Case, target, epochs: int = 60) -> None:
    """x_k equals the linear recurrence (GD: x_k - x* = (I - lr·A)^k (x0 - x*)) at every epoch."""
    A, b = _quadratic(target)
    L = float(torch.linalg.eigvalsh(A).max())
    lr = 0.5 / L
    mu = float(case.config.kwargs.get("momentum", 0.0))
    traj = _gd_run(case, target, lr, epochs)
    want = _recurrence(case.config.exact or "gd", A, b, traj.xs[0][0][0].double(), lr, mu, epochs)
    # float64: each step adds O(d) roundings of O(|x|) values; 1e-12 relative per step leaves ~1e4 ulps.
    for k, (got, w) in enumerate(zip(traj.xs, want)):
        err = float((got[0][0].double() - w).abs().max())
        tol = 1e-12 * (k + 1) * (1.0 + float(w.abs().max()))
        if err > tol:
            raise PropertyFailure("P1.exact", case, f"on {target.name} (lr={lr:.4g}, momentum={mu:g}) the trajectory "
                                                    f"leaves the {case.config.exact} recurrence at epoch {k}: got "
                                                    f"{got[0][0].tolist()}, expected {w.tolist()} (|Δ| = {err:.3g} > "
                                                    f"{tol:.1e})")


def check_stability_edge(case: Case, target) -> None:
    """GD: lr = 0.95·2/L converges, lr = 1.05·2/L diverges (|1 - lr·L| > 1)."""
    A, b = _quadratic(target)
    L = float(torch.linalg.eigvalsh(A).max())
    xs = torch.linalg.solve(A, b)
    below = _gd_run(case, target, 0.95 * 2 / L, 400)
    e0 = float((below.xs[0][0][0].double() - xs).norm())
    e_below = float((below.xs[-1][0][0].double() - xs).norm())
    if not e_below <= 1e-6 * e0:
        raise PropertyFailure("P1.edge", case, f"on {target.name} lr = 0.95·2/L = {0.95 * 2 / L:.4g} should converge "
                                               f"(|1 - lr·L| = 0.9) but |x - x*| went {e0:.3g} -> {e_below:.3g} in 400 epochs")
    above = _gd_run(case, target, 1.05 * 2 / L, 200)
    e_above = float((above.xs[-1][0][0].double() - xs).norm()) if not above.diverged else float("inf")
    if not e_above >= 1e3 * e0:
        raise PropertyFailure("P1.edge", case, f"on {target.name} lr = 1.05·2/L = {1.05 * 2 / L:.4g} should diverge "
                                               f"(|1 - lr·L| = 1.1) but |x - x*| went {e0:.3g} -> {e_above:.3g} in 200 epochs")


def check_linear_rate(case: Case, target) -> None:
    """GD at lr = 0.5/L: the measured rate (e_k2/e_k1)^(1/(k2-k1)) equals max_i |1 - lr·λ_i|."""
    A, b = _quadratic(target)
    ev = torch.linalg.eigvalsh(A)
    L = float(ev.max())
    lr = 0.5 / L
    rho = float((1 - lr * ev).abs().max())
    k2 = max(20, min(200, int(math.log(1e-8) / math.log(rho)))) if rho > 0 else 20
    k1 = k2 // 2
    traj = _gd_run(case, target, lr, k2)
    xs = torch.linalg.solve(A, b)
    e1 = float((traj.xs[k1][0][0].double() - xs).norm())
    e2 = float((traj.xs[k2][0][0].double() - xs).norm())
    measured = (e2 / e1) ** (1.0 / (k2 - k1))
    # 1e-3: the subdominant modes have decayed by (rho_2/rho)^k1 by epoch k1, well below this.
    if abs(measured - rho) > 1e-3:
        raise PropertyFailure("P1.rate", case, f"on {target.name} at lr = {lr:.4g} the measured linear rate is "
                                               f"{measured:.6f}, theory max|1 - lr·λ| = {rho:.6f} (epochs {k1}..{k2})")
