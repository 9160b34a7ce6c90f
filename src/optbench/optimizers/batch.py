"""P1's runs, batched: every (target, lr, start) of one optimizer case in as few optimizer runs as the
optimizer's proven independence allows, each unit bit for bit the separate run it stands for.

A *unit* is one target at one lr: its canonical and random starts and its epoch budget. A *slot* is one
parameter carrying some starts of one unit (all of them as rows of one (S, d) tensor where the update is
elementwise, else one start each). How slots share optimizers follows what was proven, bit for bit on the
CPU (to the contract's tolerance elsewhere), on the optimizer itself:

* rows (``Unit.batch_starts``): the update is elementwise (declared, or probed per target by
  :func:`optbench.optimizers.convergence.batched_equals_separate`);
* groups (``groups_exact``: P6, param groups behave as separate optimizers): slots sit in param groups of
  one optimizer, one group per lr;
* params (``params_exact``: P7, parameters behave as if optimized alone): the slots of every target at one
  lr share that lr's param group.

Where groups are not independent each lr gets its own optimizer instance; where parameters are not either,
each slot does. Instances are stepped in *lockstep*: one forward and one backward over the sum of every
slot's loss (the loss is separable, so each slot's gradient is the one its own run computes), then each
instance's ``step()`` with its own copy of the global RNG state swapped in, so an optimizer that draws random
numbers sees the stream it would see alone. Every run starts from ``torch.manual_seed(SEED)`` inside
``torch.random.fork_rng`` (the caller's RNG is left as it was). Closure optimizers (LBFGS) re-evaluate the
loss inside ``step``, so each of their instances runs alone.

A slot *retires* when its unit converged (every start within tolerance at one epoch), diverged (NaN/inf),
spent its budget, or is hopeless (below): its loss is no longer computed, so its ``.grad`` stays None and
the optimizer skips it (P4); an instance whose slots have all retired is no longer stepped. By the
independence above nothing a retired slot does reaches a live one, so the cost of a run falls as its
units finish, and the run ends when the last one does.

*Hopeless* units (``hopeless=True``). At the checkpoints B/16, B/8, B/4 and B/2 of a unit's budget B, every
start's smallest distance to x* within the window since the previous checkpoint is compared with the previous
window's. A start is *behind* when it got closer, but at that closing speed even ``SAFETY`` x the budget left
would not bring it within tol_x; a start behind at two checkpoints in a row cannot converge at its current
rate, and its unit stops there, with that reason. A start that got no closer has no rate to extrapolate and is
never judged (Prodigy, Adadelta and schedule-free methods stall or wander for hundreds of epochs before they
converge). Window minima make the rule optimistic for oscillating runs, a straight-line extrapolation is
optimistic for every run that slows down as it converges (geometric, and everything under a decaying lr), and
nothing is decided on the first window, where step sizes still grow. Measured (the audit of issue 14, full
runs of 15 optimizers, 2460 units): no unit that converges is stopped, and a third of the epochs are saved.
:mod:`optbench.optimizers.p1` *gates* the rule on a judged target: it applies only once some unit of that
target has converged (its verdict is then settled), so a target where nothing converges keeps full-budget runs
for the hovering and slow-method decisions, exactly as before. Instances that cannot run in lockstep (closure
optimizers) run one after another, the largest lr first, and a unit that converged in an earlier run opens the
rule for the later ones at the epochs lockstep would (tests/test_p1_batch.py).

One job above 500 lines: laying out and driving the shared runs (layout, lockstep, bookkeeping, stops).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from .. import gradcheck
from ..loop import call_optimizer, has_modes, run_loop
from ..schedules import make_scheduler

SEED = 0  # every P1 run starts from torch.manual_seed(SEED)
# A start is hopeless when, at SAFETY x its closing speed over the last window, the budget left would not
# bring it within tol_x. Set from measurement: see tests/test_p1_batch.py and the issue-14 notes.
SAFETY = 2.0
# checkpoints at B/16 ... B/2 of a budget B: a window is the span between two of them. Nothing is decided on the
# first window (0, B/16]: Prodigy's step size grows from d0 = 1e-6 for about a hundred epochs, so its closing
# speed there says nothing of later (measured: 1000x behind at B/16, converged by B/4)
CHECKPOINTS = (16, 8, 4, 2)
AUDIT: dict[int, list] | None = None  # when a dict, the rule is measured per unit and never applied
MIN_WINDOW = 16  # epochs: windows shorter than this are not judged (budgets below 256 epochs are run out)


@dataclass
class Unit:
    """One target at one lr: what P1 runs, and (filled by :func:`run_units`) what happened."""

    target: Any
    lr: float | None
    starts: torch.Tensor  # (S, d) float64
    epochs: int
    batch_starts: bool
    ctor_lr: float | None = None  # the lr passed to the constructor (the groups' lr overrides it)
    sched_epochs: int | None = None  # the schedule's horizon where it is not ``epochs`` (a witness: witness.py)
    x_star: torch.Tensor | None = None  # (m, d) float64; default: the target's exact minimizers
    f_star: float | None = None
    # results
    reached: list[int | None] = field(default_factory=list)  # per start: epoch it got inside (None: outside)
    diverged: int | None = None  # epoch of the first NaN/inf
    dist: torch.Tensor | None = None  # (S,) last recorded |x - x*| per start
    gap: torch.Tensor | None = None  # (S,) last recorded f - f* per start
    mid: float = math.inf  # largest |x - x*| over starts at mid-budget
    last: list[torch.Tensor] = field(default_factory=list)  # the last (up to three) x, (S, d) each
    epochs_run: int = 0
    stopped: list[int] = field(default_factory=list)  # per start: the epoch its slot retired at
    hopeless: str | None = None  # why the unit stopped before its budget, when it did
    # the hopeless rule waits until some unit of the same target has converged (a judged target: then its verdict
    # is settled, and a target where nothing converges keeps full-budget runs for the decisions that need them)
    gated: bool = False
    # stopped at mid-budget with every other lr of its target, because they hover (run_units' early_hover)
    hover_stop: bool = False
    grad_error: str | None = None

    def __post_init__(self) -> None:
        S = self.starts.shape[0]
        self.reached = [None] * S
        self.stopped = [0] * S
        self.dist = torch.full((S,), math.inf, dtype=torch.float64)
        self.gap = torch.full((S,), math.inf, dtype=torch.float64)
        if self.x_star is None:
            self.x_star = self.target.x_star(torch.float64).cpu()
        if self.f_star is None:
            self.f_star = float(self.target.f_star)

    @property
    def converged(self) -> bool:
        return self.diverged is None and all(e is not None for e in self.reached)


@dataclass
class _Slot:
    unit: Unit
    ss: list[int]  # start indices
    param: torch.Tensor
    instance: "_Instance | None" = None


@dataclass
class _Instance:
    opt: Any
    slots: list[_Slot]
    scheduler: Any = None
    rng: Any = None  # its own global-RNG state (lockstep with several instances)
    live: int = 0  # slots not yet retired


def _rng_state(cuda: bool) -> tuple[torch.Tensor, Any]:
    return torch.get_rng_state(), (torch.cuda.get_rng_state_all() if cuda else None)


def _set_rng_state(state: tuple[torch.Tensor, Any]) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


class _Lockstep:
    """Several optimizer instances driven as one by :func:`optbench.loop.run_loop`: ``step()`` steps each live
    instance with its own RNG state, then its scheduler; ``zero_grad()`` zeroes each. Instances whose slots
    have all retired are skipped."""

    def __init__(self, instances: list[_Instance], cuda: bool, modes: bool) -> None:
        self.instances = instances
        self.cuda = cuda
        if modes:  # schedule-free style train()/eval(), as optbench.loop.has_modes looks for them
            self.train = lambda: [i.opt.train() for i in self.instances if i.live]
            self.eval = lambda: [i.opt.eval() for i in self.instances if i.live]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for inst in self.instances:
            if inst.live:
                inst.opt.zero_grad()

    def step(self, closure: Callable[[], Any] | None = None) -> None:
        for inst in self.instances:
            if not inst.live:
                continue
            _set_rng_state(inst.rng)
            inst.opt.step()
            inst.rng = _rng_state(self.cuda)
            if inst.scheduler is not None:
                inst.scheduler.step()


class _Block:
    """The live slots of one target in one run (rows = the starts of its live slots, slot after slot)."""

    def __init__(self, target: Any, slots: list[_Slot], epochs: int, gate: dict[str, int]) -> None:
        self.target = target
        self.slots = slots
        self.epochs = epochs
        self.r = len(slots[0].ss)  # rows per slot (all slots of a target carry the same number of starts)
        self.d = target.dim
        self.xs_star = slots[0].unit.x_star
        self.fs = slots[0].unit.f_star
        self.one_min = self.xs_star.shape[0] == 1  # then |x - x*| needs no minimum over minimizers
        self.x: torch.Tensor | None = None  # this epoch's rows, as the forward saw them
        self.v: torch.Tensor | None = None
        self.grad_error: str | None = None
        self.history: list[torch.Tensor] = []  # the last three x of its rows (float64, CPU)
        self.checkpoints = [c for c in sorted({epochs // k for k in CHECKPOINTS}) if c >= MIN_WINDOW]
        self.prev_at = 0
        self.special = {epochs // 2, *self.checkpoints}
        self.gated = slots[0].unit.gated
        self.gate = gate  # target name -> epoch some unit of it converged at, in this run or an earlier one
        self.units = list({id(s.unit): s.unit for s in slots}.values())  # every lr of its target, in order

    @property
    def rows(self) -> int:
        return len(self.slots) * self.r

    def opened(self, epoch: int) -> bool:
        """Some unit of this target converged before ``epoch`` (in this run, or in an earlier run of the same
        :func:`run_units`: instances run one after another decide as they would in lockstep)."""
        return self.gate.get(self.target.name, math.inf) < epoch

    def open(self, epoch: int) -> None:
        self.gate[self.target.name] = min(self.gate.get(self.target.name, epoch), epoch)


class _Book:
    """Per-row bookkeeping of every live slot of a run, across targets: one vector per quantity, the blocks'
    rows one after another, so that an epoch costs a few tensor operations per target plus a few in all."""

    def __init__(self, blocks: list[_Block], hopeless: bool) -> None:
        self.blocks = blocks
        n = sum(b.rows for b in blocks)
        self.reached = torch.full((n,), -1, dtype=torch.long)  # epoch a row got inside (-1: outside)
        self.dist = torch.full((n,), math.inf, dtype=torch.float64)
        self.gap = torch.full((n,), math.inf, dtype=torch.float64)
        self.win_min = torch.full((n,), math.inf, dtype=torch.float64) if hopeless else None
        self.prev_min = torch.full((n,), math.nan, dtype=torch.float64) if hopeless else None
        self.behind = torch.zeros(n, dtype=torch.bool) if hopeless else None  # too slow at the last checkpoint
        self._index()

    def _index(self) -> None:
        self.fs = torch.cat([torch.full((b.rows,), b.fs, dtype=torch.float64) for b in self.blocks]) \
            if self.blocks else torch.zeros(0, dtype=torch.float64)
        slot_rows = [b.r for b in self.blocks for _ in b.slots]
        self.n_slots = len(slot_rows)
        self.r = slot_rows[0] if slot_rows and all(r == slot_rows[0] for r in slot_rows) else None
        self.slot_of_row = torch.repeat_interleave(torch.arange(self.n_slots), torch.tensor(slot_rows, dtype=torch.long))
        self.offsets = []  # (first row, first slot) of each block
        row = slot = 0
        for b in self.blocks:
            self.offsets.append((row, slot))
            row += b.rows
            slot += len(b.slots)

    def per_slot_all(self, flags: torch.Tensor) -> torch.Tensor:
        """Whether every row of each slot has ``flags``."""
        if self.r is not None:  # every slot has r rows
            return flags.view(-1, self.r).all(1)
        out = torch.ones(self.n_slots, dtype=torch.float64)
        return out.scatter_reduce_(0, self.slot_of_row, flags.to(torch.float64), "amin").bool()

    def keep(self, live: list[list[int]]) -> None:
        """Keep, per block, the slots at these indices (and their rows); drop blocks left empty."""
        rows, blocks = [], []
        for b, (row0, _), keep in zip(self.blocks, self.offsets, live):
            if not keep:
                continue
            local = torch.tensor([k * b.r + j for k in keep for j in range(b.r)], dtype=torch.long)
            rows.append(local + row0)
            b.history = [h[local] for h in b.history]
            b.slots = [b.slots[k] for k in keep]
            blocks.append(b)
        idx = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)
        self.reached, self.dist, self.gap = self.reached[idx], self.dist[idx], self.gap[idx]
        if self.win_min is not None:
            self.win_min, self.prev_min, self.behind = self.win_min[idx], self.prev_min[idx], self.behind[idx]
        self.blocks = blocks
        self._index()


def _new_param(case: Any, target: Any, rows: torch.Tensor) -> torch.Tensor:
    info = case.info
    x = rows.to(dtype=case.dtype, device=case.device).clone()
    if info.matrix_only:
        shape = tuple(target.shape) if target.shape is not None else (1, target.dim)
        x = x.reshape(*shape) if rows.shape[0] == 1 else x.reshape(rows.shape[0], *shape)
    elif rows.shape[0] == 1 and not info.sparse_grad:
        # one start: a 1-D parameter of shape (d,), as a user would have it; a (1, d) matrix would be
        # treated as a weight matrix by optimizers that centralise or factor 2-D gradients
        x = x.reshape(target.dim)
    return x.requires_grad_()


def _accepts_wd(case: Any) -> bool:
    from .contract import accepts

    return accepts(case.info, case.config, "weight_decay")


def _layout(slots: list[_Slot], groups_exact: bool, params_exact: bool, schedule: Any) -> list[list[list[_Slot]]]:
    """Instances as lists of param groups (lists of slots), in a fixed order. Where parameters are independent
    (P7), one optimizer per lr holds every slot at that lr in one group, so that it is dropped once they have all
    retired; else, where groups are (P6), one optimizer with a group per slot; else one optimizer per slot."""
    instances: dict[Any, dict[Any, list[_Slot]]] = {}
    for i, s in enumerate(slots):
        u = s.unit
        lr_key = (u.lr, u.epochs) if schedule is not None else (u.lr,)  # a schedule is built for its budget
        if params_exact:
            inst_key: Any = lr_key
        elif groups_exact:
            inst_key = (u.epochs,) if schedule is not None else ()
        else:
            inst_key = ("slot", i)
        group_key = lr_key if params_exact else ("slot", i)
        instances.setdefault(inst_key, {}).setdefault(group_key, []).append(s)
    return [list(groups.values()) for groups in instances.values()]


def run_units(case: Any, units: Sequence[Unit], *, groups_exact: bool, params_exact: bool,
              weight_decay: float = 0.0, check_grad: bool = True, early_stop: bool = True,
              schedule: Mapping[str, Any] | None = None, hopeless: bool = False, lockstep: bool = True,
              early_hover: Callable[[Any, list[Unit], dict[int, torch.Tensor]], bool] | None = None,
              limit_s: float | None = None) -> None:
    """Run every unit (filling its result fields) in as few optimizer runs as the flags allow (module doc).
    ``lockstep=False`` runs each instance alone: what the batched runs are tested against. ``early_hover``
    (target, its units, their |x - x*| per start now) is asked at mid-budget, on a gated target where nothing
    has converged: if it says the lrs hover, they all stop there (``Unit.hover_stop``). ``limit_s``: the first
    run is timed over its first epochs, and raises :class:`optbench.p1_limit.TooCostly` if every run
    to its budget is projected to take longer (:mod:`optbench.p1_limit`)."""
    info = case.info
    slots = [_Slot(u, ss, _new_param(case, u.target, u.starts[ss]))
             for u in units for ss in ([list(range(u.starts.shape[0]))] if u.batch_starts
                                       else [[i] for i in range(u.starts.shape[0])])]
    layout = _layout(slots, groups_exact, params_exact, schedule)
    if lockstep and not info.closure:
        runs = [layout]
    else:
        # one after another, the largest lr first: a unit that converges opens its target's hopeless rule for the
        # runs after it (a slow run at a small lr then stops where lockstep would stop it); every run starts from
        # its own seeded RNG state, so the order changes nothing else
        runs = [[inst] for inst in sorted(layout, key=lambda inst: -(inst[0][0].unit.lr or 0.0))]  # inst[group][slot]
    gate: dict[str, int] = {}
    meter = None
    if limit_s is not None:
        from ..p1_limit import Meter

        n_lrs = len({u.lr for u in units})
        what = (f"this P1 run ({len({id(u.target) for u in units})} target(s) x {n_lrs} lr(s), "
                f"{sum(u.starts.shape[0] for u in units) // max(len(units), 1)} starts each: {len(layout)} optimizer "
                f"instance(s))")
        meter = Meter(limit_s, max(u.epochs for u in units), len(runs), what, name=case.info.name)
    for run in runs:
        _run(case, run, weight_decay=weight_decay, check_grad=check_grad, early_stop=early_stop, schedule=schedule,
             hopeless=hopeless, early_hover=early_hover, gate=gate, meter=meter)
        meter = None  # the first run decides for them all


def _run(case: Any, layout: list[list[list[_Slot]]], **opts: Any) -> None:
    info = case.info
    cuda = case.device != "cpu" and torch.cuda.is_available()
    wd = opts["weight_decay"]
    over: dict[str, Any] = {}
    if wd or _accepts_wd(case):
        over["weight_decay"] = wd
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else []):
        torch.manual_seed(SEED)
        seeded = _rng_state(cuda)
        instances: list[_Instance] = []
        for groups in layout:
            _set_rng_state(seeded)  # each instance is built from the seeded state, as its own run would be
            kw = [{"params": [s.param for s in g], **({"lr": g[0].unit.lr} if g[0].unit.lr is not None else {})}
                  for g in groups]
            first = groups[0][0].unit
            extra = dict(over)
            if first.ctor_lr is not None:
                extra["lr"] = first.ctor_lr  # lr always passed (a constructor may have no lr default)
            opt = call_optimizer("the constructor", info.make, kw, case.config, case.impl, **extra)
            inst = _Instance(opt, [s for g in groups for s in g], rng=_rng_state(cuda))
            inst.scheduler = make_scheduler(opts["schedule"], opt, first.sched_epochs or first.epochs)
            inst.live = len(inst.slots)
            for s in inst.slots:
                s.instance = inst
            instances.append(inst)
        modes = has_modes(instances[0].opt)
        if len(instances) == 1:
            driver, scheduler = instances[0].opt, instances[0].scheduler
            _set_rng_state(instances[0].rng)
        else:
            driver, scheduler = _Lockstep(instances, cuda, modes), None
        _Drive(case, instances, driver, modes, opts).run(scheduler)


def _rows(slots: Sequence[_Slot], d: int, sparse: bool, detach: bool = False) -> torch.Tensor:
    xs = []
    for s in slots:
        p = s.param.detach() if detach else s.param
        if sparse and not detach:
            p = F.embedding(torch.arange(p.shape[0], device=p.device), p, sparse=True)
        xs.append(p if p.dim() == 2 and p.shape[1] == d else p.reshape(len(s.ss), d))
    return xs[0] if len(xs) == 1 else torch.cat(xs)


class _Drive:
    """One run: the loss over every live slot, and the per-epoch hook that records, retires and stops."""

    def __init__(self, case: Any, instances: list[_Instance], driver: Any, modes: bool, opts: dict[str, Any]) -> None:
        from .tolerance import GRAD_EPOCHS, GRAD_RTOL, tolerance

        self.case, self.instances, self.driver, self.modes = case, instances, driver, modes
        self.opts = opts
        self.sparse = case.info.sparse_grad
        self.wd = opts["weight_decay"]
        self.tol_x, self.tol_f, _ = tolerance(case.info, case.dtype)
        self.grad_epochs = GRAD_EPOCHS if opts["check_grad"] else frozenset()
        self.grad_rtol = GRAD_RTOL.get(case.dtype, 1e-2)
        self.scale_rtol = gradcheck.RTOL.get(case.dtype, 1e-2)
        by_target: dict[int, list[_Slot]] = {}
        for inst in instances:
            for s in inst.slots:
                by_target.setdefault(id(s.unit.target), []).append(s)
        blocks = [_Block(ss[0].unit.target, ss, ss[0].unit.epochs, opts["gate"]) for ss in by_target.values()]
        if any(s.unit.epochs != b.epochs for b in blocks for s in b.slots):
            raise ValueError("the units of one target in a run must share one epoch budget")
        self.book = _Book(blocks, opts["hopeless"])
        self.early_hover = opts.get("early_hover")

    def run(self, scheduler: Any) -> None:
        epochs = max(b.epochs for b in self.book.blocks) + 1  # the hook at epoch B reads x after a unit's last step
        params = [s.param for inst in self.instances for s in inst.slots]
        run_loop(self.loss_fn, params, self.driver, epochs, on_epoch=self.hook, record_x=False, check_finite=False,
                 closure=True if self.case.info.closure else None, scheduler=scheduler)
        if self.book.blocks:  # every unit retires in the hook; anything left means run_loop stopped early
            raise RuntimeError(f"a P1 run ended with {self.book.n_slots} slot(s) still running")

    def _current(self, b: _Block, row0: int) -> dict[int, torch.Tensor]:
        """Per unit of block b (by id), its |x - x*| per start now (live rows) or when its slots retired."""
        out = {id(u): u.dist.clone() for u in b.units}
        for k, s in enumerate(b.slots):
            out[id(s.unit)][s.ss] = self.book.dist[row0 + k * b.r:row0 + (k + 1) * b.r]
        return out

    def loss_fn(self) -> torch.Tensor:
        vs = []
        for b in self.book.blocks:
            x = _rows(b.slots, b.d, self.sparse)
            v = b.target.fn(x)
            b.x = x.detach()
            b.v = (v + 0.5 * self.wd * (x * x).sum(-1)).detach() if self.wd else v.detach()
            vs.append(v)
        # d(sum)/dx_i = f'(x_i): each row gets its own gradient, as in a run of its own
        return vs[0].sum() if len(vs) == 1 else torch.cat(vs).sum()

    def eval_rows(self) -> list[torch.Tensor]:
        """x as the method returns it (eval mode), per block: optbench.loop.read_params' convention."""
        call_optimizer("eval()", self.driver.eval)
        try:
            # copies: a lone slot's rows are a view of its parameter, which train() changes back in place
            return [_rows(b.slots, b.d, self.sparse, detach=True).double().cpu().clone() for b in self.book.blocks]
        finally:
            call_optimizer("train()", self.driver.train)

    def retire(self, b: _Block, row0: int, k: int, epoch: int, last: list[torch.Tensor]) -> None:
        """Write slot k of block b (whose rows start at ``row0``) back into its unit; take it out of the run."""
        s, book = b.slots[k], self.book
        u, rows, local = s.unit, slice(row0 + k * b.r, row0 + (k + 1) * b.r), slice(k * b.r, (k + 1) * b.r)
        u.dist[s.ss] = book.dist[rows]
        u.gap[s.ss] = book.gap[rows]
        for j, e in zip(s.ss, book.reached[rows].tolist()):
            u.reached[j] = None if e < 0 else e
        if not u.last:
            u.last = [torch.full((u.starts.shape[0], b.d), math.nan, dtype=torch.float64) for _ in range(3)]
        last = last[-3:]
        for i, x in enumerate(last):
            u.last[3 - len(last) + i][s.ss] = x[local]
        u.epochs_run = max(u.epochs_run, epoch)
        for j in s.ss:
            u.stopped[j] = epoch
        s.param.grad = None
        s.instance.live -= 1

    def _measure(self, b: _Block, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """|x - x*| and f (with the decay term) of block b's rows at x. With train/eval modes the loss was taken
        at the train-mode point, so f is evaluated at the point returned; else it is the forward's own value."""
        if self.modes:
            xd = x.to(dtype=self.case.dtype)
            fv = (b.target.fn(xd) + (0.5 * self.wd * (xd * xd).sum(-1) if self.wd else 0)).double()
        else:
            fv = b.v.double().cpu()
        if b.one_min:  # the same numbers as the minimum over one minimizer below (checked bit for bit)
            dist = ((x - b.xs_star) ** 2).sum(-1).sqrt()
        else:
            dist = ((x[:, None, :] - b.xs_star[None, :, :]) ** 2).sum(-1).sqrt().amin(1)
        return dist, fv

    def _judge_last(self, b: _Block, row0: int, x: torch.Tensor, epoch: int) -> None:
        """|x - x*|, f - f* and the reached marks of block b at its last point (the rows keep their last finite
        record where that point is not finite): what its units report, and what their starts reproduce, is the
        point after the last step, not the one before it."""
        book = self.book
        rows = slice(row0, row0 + b.rows)
        dist, fv = self._measure(b, x)
        gap = fv - book.fs[rows]
        fin = torch.isfinite(dist) & torch.isfinite(gap)
        ok = (dist <= self.tol_x) & (gap <= self.tol_f)
        reached = book.reached[rows]
        book.dist[rows] = torch.where(fin, dist, book.dist[rows])
        book.gap[rows] = torch.where(fin, gap, book.gap[rows])
        book.reached[rows] = torch.where(fin, torch.where(ok, torch.where(reached >= 0, reached, epoch), -1), reached)

    def hook(self, epoch: int, loss: torch.Tensor) -> bool:
        with torch.no_grad():
            return self._hook(epoch)

    def _hook(self, epoch: int) -> bool:
        book, opts = self.book, self.opts
        if opts["meter"] is not None:
            opts["meter"].tick(epoch)
        xe = self.eval_rows() if self.modes else None
        ended = [bi for bi, b in enumerate(book.blocks) if epoch == b.epochs]
        if ended:  # the budget is spent: x is the point after the last step, judged there
            for bi in ended:
                b = book.blocks[bi]
                x = xe[bi] if self.modes else b.x.double().cpu()
                self._judge_last(b, book.offsets[bi][0], x, epoch)
                for k in range(len(b.slots)):
                    self.retire(b, book.offsets[bi][0], k, epoch, b.history[-2:] + [x])
            book.keep([[] if bi in ended else list(range(len(b.slots))) for bi, b in enumerate(book.blocks)])
            if self.modes:
                xe = [x for bi, x in enumerate(xe) if bi not in ended]
            if not book.blocks:
                return True
        dists, fvs, xs = [], [], []
        grad_now = epoch in self.grad_epochs
        for bi, b in enumerate(book.blocks):
            xp = b.x.double().cpu()  # where the gradient was taken
            x = xe[bi] if self.modes else xp
            xs.append(x)
            b.history.append(x.clone() if x is b.x and len(b.slots) == 1 else x)  # a lone slot's x is a view
            del b.history[:-3]
            dist, fv = self._measure(b, x)
            dists.append(dist)
            fvs.append(fv)
            if grad_now and b.grad_error is None:
                _grad_check(b, xp, torch.isfinite(x).all(1) & torch.isfinite(fvs[-1]), epoch, self.sparse,
                            self.grad_rtol, self.scale_rtol)
        one = len(dists) == 1
        dist = dists[0] if one else torch.cat(dists)
        fv = fvs[0] if one else torch.cat(fvs)
        gap = fv - book.fs
        ok = (dist <= self.tol_x) & (gap <= self.tol_f)
        # |x - x*| and f are finite where x is, except when they overflow: then look row by row
        if bool(torch.isfinite(dist + fv).all()):
            slot_finite = None
            book.dist, book.gap = dist, gap
            # Converged means every start inside the tolerance at the same epoch (passing through the ball while
            # oscillating does not count): leaving it resets the mark.
            book.reached = torch.where(ok, torch.where(book.reached >= 0, book.reached, epoch), -1)
            done = book.per_slot_all(ok) if opts["early_stop"] else None
            if book.win_min is not None:
                book.win_min = torch.minimum(book.win_min, dist)
        else:
            finite = torch.cat([torch.isfinite(x).all(1) for x in xs]) & torch.isfinite(fv)
            slot_finite = book.per_slot_all(finite)
            upd = slot_finite[book.slot_of_row]  # a diverged slot keeps its last finite record
            book.dist = torch.where(upd, dist, book.dist)
            book.gap = torch.where(upd, gap, book.gap)
            book.reached = torch.where(upd, torch.where(ok, torch.where(book.reached >= 0, book.reached, epoch), -1),
                                       book.reached)
            done = ~slot_finite
            if opts["early_stop"]:
                done = done | (book.per_slot_all(ok) & slot_finite)
            if book.win_min is not None:
                book.win_min = torch.minimum(book.win_min, torch.where(torch.isfinite(dist), dist, book.win_min))
        specials = [bi for bi, b in enumerate(book.blocks) if epoch in b.special]
        for bi in specials:
            b = book.blocks[bi]
            row0, slot0 = book.offsets[bi]
            if epoch == b.epochs // 2:
                for k, s in enumerate(b.slots):
                    if slot_finite is None or bool(slot_finite[slot0 + k]):
                        worst = float(dist[row0 + k * b.r:row0 + (k + 1) * b.r].max())
                        s.unit.mid = worst if not math.isfinite(s.unit.mid) else max(s.unit.mid, worst)
                if b.gated and not b.opened(epoch) and self.early_hover and len(b.units) > 1 \
                        and self.early_hover(b.target, b.units, self._current(b, row0)):
                    for s in b.slots:
                        s.unit.hover_stop = True
                        s.unit.hopeless = (f"stopped at epoch {epoch} of {b.epochs} with every lr of {b.target.name}: "
                                           f"nothing converged, and they hover at a distance that grows with lr")
                    stop = torch.zeros(book.n_slots, dtype=torch.bool)
                    stop[slot0:slot0 + len(b.slots)] = True
                    done = stop if done is None else done | stop
            if book.win_min is not None and epoch in b.checkpoints:
                flagged = _hopeless(book, b, bi, epoch, self.tol_x)
                if flagged:
                    extra = torch.zeros(book.n_slots, dtype=torch.bool)
                    extra[[slot0 + k for k in flagged]] = True
                    done = extra if done is None else done | extra
        if done is None or not bool(done.any()):
            return False
        live: list[list[int]] = []
        for bi, b in enumerate(book.blocks):
            row0, slot0 = book.offsets[bi]
            flags = done[slot0:slot0 + len(b.slots)].tolist()
            keep = []
            for k, flag in enumerate(flags):
                # a unit is judged on all its starts: once one slot of a unit is hopeless, its others stop too
                if not flag and b.slots[k].unit.hopeless is None:
                    keep.append(k)
                    continue
                u = b.slots[k].unit
                if slot_finite is not None and not bool(slot_finite[slot0 + k]):
                    u.diverged = epoch if u.diverged is None else min(u.diverged, epoch)
                self.retire(b, row0, k, epoch, b.history)
                if u.converged:
                    b.open(epoch)
            live.append(keep)
        book.keep(live)
        return not book.blocks


def _hopeless(book: _Book, b: _Block, bi: int, epoch: int, tol_x: float) -> list[int]:
    """Slots of block ``b`` that cannot reach tol_x at their current rate (module doc); marks their units."""
    row0, _ = book.offsets[bi]
    rows = slice(row0, row0 + b.rows)
    cur, prev = book.win_min[rows], book.prev_min[rows]
    out: list[int] = []
    span = epoch - b.prev_at
    if b.prev_at > 0 and span >= MIN_WINDOW:
        left = b.epochs - epoch
        rate = (prev - cur) / span  # closing speed per epoch over the window (of the windows' best distances)
        need = torch.where(rate > 0, (cur - tol_x) / rate.clamp_min(1e-300), torch.full_like(cur, math.inf))
        # a start that got no closer (rate <= 0) has no rate to extrapolate: it is never judged behind (Prodigy and
        # Adadelta stall for hundreds of epochs before they converge; schedule-free methods wander: measured)
        slow = (cur > tol_x) & torch.isfinite(cur) & (rate > 0) & (need > SAFETY * left)
        bad = slow & book.behind[rows]  # too slow at two checkpoints in a row
        book.behind[rows] = slow
        if b.gated and not b.opened(epoch):  # nothing of this target has converged yet: keep every run to its budget
            bad = torch.zeros_like(bad)
        if AUDIT is not None:  # measuring the rule (what SAFETY must be), not applying it
            ratio = torch.where((cur > tol_x) & torch.isfinite(cur), need / max(left, 1), torch.zeros_like(need))
            for k, s in enumerate(b.slots):
                AUDIT.setdefault(id(s.unit), []).append((epoch, float(ratio[k * b.r:(k + 1) * b.r].max())))
            bad = torch.zeros_like(bad)
        if bool(bad.any()):
            badm = bad.view(-1, b.r)
            for k in badm.any(1).nonzero().flatten().tolist():
                j = int(badm[k].nonzero()[0])
                row = k * b.r + j
                s = b.slots[k]
                r = float(rate[row])
                s.unit.hopeless = (
                    f"stopped at epoch {epoch} of {b.epochs}: start {s.ss[j]} was {float(cur[row]):.3g} from x* "
                    + (f"and closing by {r:.3g} per epoch, ~{float(need[row]):.0f} epochs from tol_x at that rate "
                       f"with {left} left" if r > 0 else f"and got no closer over the last {span} epochs")
                    + f"; it was as far behind at epoch {b.prev_at}")
                out.append(k)
    book.prev_min[rows] = cur
    book.win_min[rows] = math.inf
    b.prev_at = epoch
    return out


def _grad_check(b: _Block, xp: torch.Tensor, live: torch.Tensor, epoch: int, sparse: bool, grad_rtol: float,
                scale_rtol: float) -> None:
    """p.grad against the symbolic gradient at the current x (convergence.GRAD_RTOL explains the bounds)."""
    from .tolerance import gradient_scale, symbolic_grad

    live = live.view(-1, b.r).all(1).repeat_interleave(b.r)  # rows of slots that are finite throughout
    if not bool(live.any()):
        return
    grads = []
    for s in b.slots:
        g = s.param.grad
        if g is None:
            raise RuntimeError("a live P1 slot has no gradient after backward()")
        grads.append((g.to_dense() if g.is_sparse else g).detach().reshape(len(s.ss), b.d))
    gr = torch.cat(grads).double().cpu()
    want = symbolic_grad(b.target, xp[live])
    allowed = torch.maximum(grad_rtol * (1.0 + want.abs()), scale_rtol * gradient_scale(b.target, xp[live]))
    ratio = ((gr[live] - want).abs() / allowed).amax(1)
    if float(ratio.max()) > 1.0:
        i = int(ratio.argmax())
        err = float(((gr[live][i] - want[i]).abs() / (1.0 + want[i].abs())).max())
        b.grad_error = (f"at epoch {epoch} p.grad differs from the symbolic gradient at the current x: max rel. error "
                        f"{err:.3g} > {grad_rtol:.0e} (and beyond the rounding of its terms); x = {xp[live][i].tolist()}, "
                        f"p.grad = {gr[live][i].tolist()}, exact {want[i].tolist()}")
        for s in b.slots:
            s.unit.grad_error = s.unit.grad_error or b.grad_error
