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

import sympy
import torch
import torch.nn.functional as F

from .. import gradcheck
from ..devices import dtype_name
from ..loop import call_optimizer, has_modes, read_params, run_loop
from ..schedules import describe as describe_schedule
from ..schedules import make_scheduler
from .contract import Case, PropertyFailure, check_p6
from .info import OptConfig, OptimizerInfo

# P1 tolerances per dtype: (tol_x, tol_f).
# float64: 1e-4 in x and 1e-8 in f: far above float64 rounding (eps 2.2e-16), so what is tested is
#   the optimizer's convergence, not the arithmetic; f - f* ~ (L/2)|x - x*|^2 makes 1e-8 consistent.
# float32: 1e-3 in x and 1e-5 in f: float32's eps is 1.2e-7, so f near f* = O(1) is resolved to
#   ~1e-7 and the gradient to ~sqrt(eps)-relative accuracy in x on ill-conditioned targets.
TOL: dict[torch.dtype, tuple[float, float]] = {torch.float64: (1e-4, 1e-8), torch.float32: (1e-3, 1e-5)}

# p.grad against the symbolic gradient: within GRAD_RTOL relative to 1 + |g| (1e-9 in float64: a few hundred
# ulps of the polynomial's terms; 1e-4 in float32: ~1e3 ulps), or, where the gradient cancels large terms,
# within optbench.gradcheck.RTOL of its running-error scale (every sum's terms added in absolute value: what
# rounding is proportional to). Without the second bound, Rosenbrock far out in its valley (terms ~1e9,
# gradient ~1, float64 autograd off by 1e-7) was reported as a wrong gradient.
GRAD_RTOL: dict[torch.dtype, float] = {torch.float64: 1e-9, torch.float32: 1e-4}

# The lr grid searched when no lr is given: 10^(k/2) for k = -8..1, i.e. 1e-4, 3.2e-4, ..., 1, 3.2.
LR_GRID: tuple[float, ...] = tuple(10.0 ** (k / 2) for k in range(-8, 2))

K_BATCHED = 8  # random starts for elementwise optimizers (one batched run)
K_SEPARATE = 2  # random starts for optimizers run start by start
GRAD_EPOCHS = frozenset({0, 1, 2, 3, 5, 10, 30, 100, 300, 1000, 3000})


def tolerance(info: OptimizerInfo, dtype: torch.dtype) -> tuple[float, float, str]:
    if dtype_name(dtype) in info.tol:
        return info.tol[dtype_name(dtype)]
    tx, tf = TOL.get(dtype, (1e-2, 1e-3))
    return tx, tf, "suite default"


_GRAD_FNS: dict[str, Any] = {}


def _grad_fn(target):
    if target.name not in _GRAD_FNS:
        _GRAD_FNS[target.name] = sympy.lambdify(target.variables, list(target.gradient), "math")
    return _GRAD_FNS[target.name]


def symbolic_grad(target, x: torch.Tensor) -> torch.Tensor:
    """The exact gradient's value at each row of x (S, d), evaluated in float64."""
    fn = _grad_fn(target)
    rows = x.detach().double().cpu().tolist()
    return torch.tensor([[float(v) for v in fn(*r)] for r in rows], dtype=torch.float64)


def _magnitude(e: sympy.Expr) -> sympy.Expr:
    """An expression for the running-error scale of ``e``: every sum of terms becomes the sum of their
    magnitudes (products and integer powers follow); other functions count with their value."""
    if e.is_Number or e.is_NumberSymbol or e.is_Symbol:
        return sympy.Abs(e)
    if e.is_Add:
        return sympy.Add(*[_magnitude(a) for a in e.args])
    if e.is_Mul:
        return sympy.Mul(*[_magnitude(a) for a in e.args])
    if e.is_Pow and e.args[1].is_Integer and e.args[1] > 0:
        return _magnitude(e.args[0]) ** e.args[1]
    return sympy.Abs(e)


_SCALE_FNS: dict[str, Any] = {}


def gradient_scale(target, x: torch.Tensor) -> torch.Tensor:
    """The running-error scale of each gradient component at each row of x (S, d), float64."""
    if target.name not in _SCALE_FNS:
        exprs = [_magnitude(sympy.diff(target.expr, v)) for v in target.variables]  # unexpanded, like autograd
        _SCALE_FNS[target.name] = sympy.lambdify(target.variables, exprs, "math")
    fn = _SCALE_FNS[target.name]
    rows = x.detach().double().cpu().tolist()
    return torch.tensor([[float(v) for v in fn(*r)] for r in rows], dtype=torch.float64)


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

    def converged(self, g: int) -> bool:
        return self.diverged[g] is None and all(e is not None for e in self.reached[g])

    def still_converging(self, g: int) -> bool:
        """Not there yet, but the largest distance at least halved over the second half of the budget
        (a slow method: O(1/k) averaging halves it; a stalled or hovering one does not)."""
        if self.diverged[g] is not None or g >= len(self.mid) or not math.isfinite(self.mid[g]):
            return False
        end = float(self.dist[g].max())
        return math.isfinite(end) and end <= 0.5 * self.mid[g]


def _param_shape(info: OptimizerInfo, target) -> tuple[int, ...] | None:
    if not info.matrix_only:
        return None
    if target.shape is not None:
        return tuple(target.shape)
    return (1, target.dim)


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
) -> P1Result:
    """Run P1 for every lr in ``lrs`` over ``starts`` (S, d); stop early once all have converged.

    ``schedule`` (see :mod:`optbench.schedules`) decays every group's lr through a torch lr scheduler
    stepped after each optimizer step."""
    info, dt, dev = case.info, case.dtype, case.device
    tol_x, tol_f, _ = tolerance(info, dt)
    xs_star = (target.x_star(torch.float64) if x_star is None else x_star).cpu()
    fs = float(target.f_star) if f_star is None else f_star
    shape = _param_shape(info, target)
    S = starts.shape[0]
    res_x_star = xs_star
    res = P1Result(list(lrs), [[None] * S for _ in lrs], [None] * len(lrs), [[] for _ in lrs],
                   [torch.full((S,), math.inf, dtype=torch.float64) for _ in lrs],
                   [torch.full((S,), math.inf, dtype=torch.float64) for _ in lrs], starts, res_x_star,
                   mid=[math.inf] * len(lrs))

    # units: (group index, start indices, param)
    def new_param(rows: torch.Tensor) -> torch.Tensor:
        x = rows.to(dtype=dt, device=dev).clone()
        if shape is not None:
            x = x.reshape(*shape) if rows.shape[0] == 1 else x.reshape(rows.shape[0], *shape)
        elif rows.shape[0] == 1 and not info.sparse_grad:
            # one start: a 1-D parameter of shape (d,), as a user would have it; a (1, d) matrix would be
            # treated as a weight matrix by optimizers that centralise or factor 2-D gradients
            x = x.reshape(target.dim)
        return x.requires_grad_()

    runs: list[list[tuple[int, list[int], torch.Tensor]]] = []
    start_sets = [list(range(S))] if batch_starts else [[i] for i in range(S)]
    group_sets = [list(range(len(lrs)))] if batch_groups else [[g] for g in range(len(lrs))]
    for gs in group_sets:
        for ss in start_sets:
            runs.append([(g, ss, new_param(starts[ss])) for g in gs])

    for units in runs:
        _one_run(case, target, units, lrs, epochs, res, tol_x, tol_f, xs_star, fs, weight_decay, check_grad, early_stop,
                 schedule)
    res.schedule = describe_schedule(schedule, epochs)
    return res


def _one_run(case, target, units, lrs, epochs, res: P1Result, tol_x, tol_f, xs_star, fs, weight_decay, check_grad,
             early_stop, schedule=None):
    """One optimizer over ``units`` (group index, start indices, parameter). The loss and the per-epoch
    bookkeeping are computed for all units at once (one (sum S_u, d) tensor), so an lr grid of ten
    param groups costs about one group's tensor ops per epoch."""
    info = case.info
    params = [p for _, _, p in units]
    d = target.dim
    sizes = [len(ss) for _, ss, _ in units]
    bounds = [sum(sizes[:u]) for u in range(len(units) + 1)]
    sparse = info.sparse_grad
    vals: list[torch.Tensor] = []

    def view(p: torch.Tensor) -> torch.Tensor:
        if sparse:
            return F.embedding(torch.arange(p.shape[0], device=p.device), p, sparse=True)
        return p

    def rows(ps) -> torch.Tensor:
        xs = [view(p).reshape(n, d) for p, n in zip(ps, sizes)]
        return xs[0] if len(xs) == 1 else torch.cat(xs)

    def loss_fn() -> torch.Tensor:
        x = rows(params)
        v = target.fn(x)
        # f + λ/2·|x|² is what coupled decay minimises; the decay itself is the optimizer's (not in the loss)
        vals[:] = [(v + 0.5 * weight_decay * (x * x).sum(-1)).detach() if weight_decay else v.detach()]
        return v.sum()  # d(sum)/dx_i = f'(x_i) for every row: the same gradient as a loss per unit

    groups = []
    for g, _, p in units:
        kw: dict[str, Any] = {"params": [p]}
        if lrs[g] is not None:
            kw["lr"] = lrs[g]
        groups.append(kw)
    over: dict[str, Any] = {}
    if weight_decay or _accepts_wd(case):
        over["weight_decay"] = weight_decay
    # lr is always passed to the constructor too (a constructor may have no lr default); the groups override it
    first_lr = next((lr for lr in lrs if lr is not None), None)
    if first_lr is not None:
        over["lr"] = first_lr
    opt = call_optimizer("the constructor", info.make, groups, case.config, case.impl, **over)
    scheduler = make_scheduler(schedule, opt, epochs)
    modes = has_modes(opt)
    done = [False] * len(units)
    history: list[torch.Tensor] = []  # the last three x of all units, (sum S_u, d) float64
    grad_rtol = GRAD_RTOL.get(case.dtype, 1e-2)
    scale_rtol = gradcheck.RTOL.get(case.dtype, 1e-2)

    def hook(epoch: int, loss: torch.Tensor) -> bool:
        with torch.no_grad():
            xp = rows([p.detach() for p in params]).double().cpu()  # where the gradient was taken
            # x as the method returns it: eval mode for optimizers with train()/eval() modes
            x = rows(read_params(params, opt)).double().cpu() if modes else xp
        history.append(x)
        del history[:-3]
        if modes:  # the loss was taken at the train-mode point: the gap belongs to the point the method returns
            with torch.no_grad():
                xe = x.to(dtype=case.dtype)
                fv = (target.fn(xe) + (0.5 * weight_decay * (xe * xe).sum(-1) if weight_decay else 0)).double()
        else:
            fv = vals[0].double().cpu()
        finite = (torch.isfinite(x).all(1) & torch.isfinite(fv)).tolist()
        if check_grad and epoch in GRAD_EPOCHS and res.grad_error is None:
            grads = [p.grad.to_dense() if p.grad.is_sparse else p.grad for p in params]
            gr = torch.cat([gg.detach().reshape(n, d) for gg, n in zip(grads, sizes)]).double().cpu()
            live = torch.tensor([all(finite[bounds[u]:bounds[u + 1]]) and not done[u] for u in range(len(units))
                                 for _ in range(sizes[u])])
            if bool(live.any()):
                want = symbolic_grad(target, xp[live])
                allowed = torch.maximum(grad_rtol * (1.0 + want.abs()),
                                        scale_rtol * gradient_scale(target, xp[live]))
                ratio = ((gr[live] - want).abs() / allowed).amax(1)
                if float(ratio.max()) > 1.0:
                    i = int(ratio.argmax())
                    err = float(((gr[live][i] - want[i]).abs() / (1.0 + want[i].abs())).max())
                    res.grad_error = (f"at epoch {epoch} p.grad differs from the symbolic gradient at the current x: "
                                      f"max rel. error {err:.3g} > {grad_rtol:.0e} (and beyond the rounding of its "
                                      f"terms); x = {xp[live][i].tolist()}, p.grad = {gr[live][i].tolist()}, exact "
                                      f"{want[i].tolist()}")
        dist = ((x[:, None, :] - xs_star[None, :, :]) ** 2).sum(-1).sqrt().amin(1)
        gap = fv - fs
        ok = ((dist <= tol_x) & (gap <= tol_f)).tolist()
        for u, (g, ss, _) in enumerate(units):
            if done[u]:
                continue
            lo, hi = bounds[u], bounds[u + 1]
            if not all(finite[lo:hi]):
                res.diverged[g] = epoch if res.diverged[g] is None else min(res.diverged[g], epoch)
                done[u] = True
                continue
            res.dist[g][ss] = dist[lo:hi]
            res.gap[g][ss] = gap[lo:hi]
            if epoch == epochs // 2:
                worst = float(dist[lo:hi].max())
                res.mid[g] = worst if not math.isfinite(res.mid[g]) else max(res.mid[g], worst)
            # Converged means every start inside the tolerance at the same epoch (passing through the
            # ball while oscillating does not count): leaving it resets the mark.
            for j, s in enumerate(ss):
                if not ok[lo + j]:
                    res.reached[g][s] = None
                elif res.reached[g][s] is None:
                    res.reached[g][s] = epoch
            if early_stop and all(res.reached[g][s] is not None for s in ss):
                done[u] = True
                res.last[g] = _last(res, g, ss, [h[lo:hi] for h in history], d)
        return early_stop and all(done) or all(res.diverged[g] is not None for g, _, _ in units)

    traj = run_loop(loss_fn, params, opt, epochs, on_epoch=hook, record_x=False, check_finite=False,
                    closure=True if info.closure else None,
                    scheduler=scheduler)
    res.epochs_run = max(res.epochs_run, traj.epochs_run)
    with torch.no_grad():
        final = rows(read_params(params, opt) if modes else [p.detach() for p in params]).double().cpu()
    for u, (g, ss, _) in enumerate(units):
        if done[u] and res.diverged[g] is None:
            continue  # converged: its last points were taken when it got there
        lo, hi = bounds[u], bounds[u + 1]
        res.last[g] = _last(res, g, ss, [h[lo:hi] for h in history[-2:]] + [final[lo:hi]], d)


def _last(res: P1Result, g: int, ss: list[int], hist: list[torch.Tensor], d: int) -> list[torch.Tensor]:
    """Write the last (up to three) points of starts ``ss`` into group ``g``'s record of last points."""
    last = res.last[g] or [torch.full((res.starts.shape[0], d), math.nan, dtype=torch.float64) for _ in range(3)]
    hist = hist[-3:]
    for k, x in enumerate(hist):
        last[3 - len(hist) + k][ss] = x
    return last


def _accepts_wd(case: Case) -> bool:
    from .contract import accepts

    return accepts(case.info, case.config, "weight_decay")


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
    kw = dict(batch_groups=True, check_grad=False, early_stop=False)
    a = run_p1(case, target, starts, [lr], epochs, batch_starts=True, **kw)
    b = run_p1(case, target, starts, [lr], epochs, batch_starts=False, **kw)
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
    head = f"on {target.name} (lr={lr:g}, budget {epochs} epochs)" if lr is not None else f"on {target.name} (budget {epochs} epochs)"
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
            f"(tol_f {tol_f:g}); expected to reach x* in {xst}; last points {pts}")


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
