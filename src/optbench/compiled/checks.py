"""P21, the compiled step: what a user meets when they wrap ``opt.step()`` in ``torch.compile``.

The step is compiled the way PyTorch's recipe "Compiling the optimizer with an LR scheduler" does it:
``torch.compile(fn)``, default backend (Inductor), where ``fn`` calls ``opt.step()`` (``opt.step(closure)``
for a closure optimizer) and then the scheduler's ``step()`` (from step 6 on); the optimizer is built as
a user builds it (no implementation flag: what it picks by default on the device), with a tensor lr where
it accepts one (the recipe's advice; else a float lr). The rest of the five-step loop (zero_grad,
forward, backward) runs eagerly, as in the recipe. The problem is the contract's
(:class:`optbench.optimizers.contract.Problem`) with two of its parameters, of different shapes (SHAPES: a
for-loop step is unrolled per parameter in the graph, so a third one would only add compile time), in float32
(the dtype people compile; the first of ``contract_dtypes`` where float32 is not one of them).

ONE compiled run serves the three checks (Inductor's C++ compile dominates the cost on CPU, so a
well-behaved step is compiled once per optimizer config), memoized per process, against one eager run
from the same start and the same RNG state:

* ``torch.optim.lr_scheduler.LinearLR`` is created with the optimizer, as in the recipe (so ``opt.step`` is
  already LinearLR's wrapper when the step is first compiled); its constructor sets the lr to half the
  contract's lr, which stays constant for
* steps 1-2, warm-up (the first creates the state, the second is the first to see it), and
* steps 3-6, counted at a constant lr; ``LinearLR.step()`` (inside the compiled function, after
  ``opt.step()``) runs from the end of step 6 on, so
* steps 7-10, counted, each run with a new lr.

A run whose steps 3-6 each compiled a new graph stops there (its verdict is known; every further step would
cost another Inductor compile).

torch.compile patches torch.optim once per process, when it first compiles something (torch._dynamo's
``TorchPatcher``: LBFGS's and SparseAdam's ``step`` and every ``_init_group`` wrapped in
``torch.compiler.disable``). A step first compiled before that patch is traced anyway (torch.optim.LBFGS: 5
graphs, 6 breaks), after it not at all, so LBFGS's P21 verdicts were MEASURED or N/A depending on what the
process had compiled earlier (the suite in random order, a validate worker's share). Every run here first
compiles a no-op (``_patched``), so each verdict is the one of a process that has compiled before, which
holds torch's declared support ("step not supported").

``check_p21_parity`` (PASS/FAIL)
    Every step's parameters, compiled against eager: the first step and parameter that differ beyond the
    contract's relative tolerance (``contract.rel_tol``: float32 1e-4, float64 1e-9, times 1 + max|x|) FAIL.
    Inductor reorders floating-point operations, so bit for bit is not expected. A difference names its cause
    where one is seen: a Python number of the optimizer's state (``state['step'] = 0``, a float schedule) that the
    compiled steps leave other than the eager ones (timm's NAdamLegacy: its ``m_schedule`` stops following eager's
    once Inductor makes the int step symbolic), else rounding that the step amplifies (nudged eager runs differ as
    much; :mod:`optbench.optimizers.rounding`). Random draws come from
    eager's generator (``torch._inductor.config.fallback_random``), so a stochastic optimizer is compared
    with itself. An exception under compile that the eager steps do not raise is a FAIL naming the frame of
    the optimizer where it happened; when the eager steps raise, there is nothing to compare (N/A: the other
    properties report it). A step of which torch.compile compiles no graph at all (``torch.compiler.disable``,
    or Dynamo skipping the frame after a break in a loop) runs eagerly: N/A, with the reason.
``check_p21_recompiles`` (MEASURED, or FAIL)
    Graphs compiled in each counted phase, with the guard that failed at each recompilation (Dynamo's
    recompile reasons, what ``TORCH_LOGS=recompiles`` prints). A new graph at every step of a phase, or
    Dynamo's recompile limit reached, is a FAIL; fewer are MEASURED.
``check_p21_graph_breaks`` (MEASURED, or FAIL with ``fullgraph = true``)
    The graph breaks with Dynamo's reason and their place (file:line in function). An optimizer whose config
    declares ``fullgraph = true`` FAILs on any break in its own code; a break in the closure optbench passes
    to a closure optimizer (its loss and backward) is reported, never counted against the optimizer.

Measured on torch 2.13 (2-core CPU): a float lr that a scheduler changes makes torch.optim's foreach step
recompile at every step under Inductor (AOTAutograd's float "tensorify" pass re-specializes it), which
Dynamo's ``eager`` backend alone does not show: hence the real backend for the counts too. An optimizer
that recompiles at every step pays an Inductor compile per step, 6 at most (the run stops after step 6).

The backend is Inductor unless the optimizer's config declares ``compile_backend`` (``aot_eager``, ``eager``:
:data:`optbench.optimizers.info.COMPILE_BACKENDS`), the steps of PyTorch's own bisection of a torch.compile
problem: a FAIL under Inductor that ``aot_eager`` does not show is Inductor's code generation. ``aot_eager``
shows every verdict of the planted bugs of tests/planted/compile_bugs.py that Inductor shows (graph breaks,
recompilations with a float lr, parity, crash) at a quarter of the cost (no C++ compile), which is what the
suite's own tests of the decision logic use; torch.optim's P21 in the suite, and every validation by default,
is Inductor's.
Nothing here imports pytest.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from ..loop import OptimizerRaised, call_optimizer, has_modes, read_params, training_closure
from ..optimizers import rounding
from ..optimizers.contract import Case, Problem, PropertyFailure, accepts, max_diff, rel_tol
from ..verdict import NotApplicable
from .watch import GraphBreak, StepRecord, Watch, crash_frame, one_line, raised_in_torch

WARMUP = 2  # the first step creates the state, the second is the first to see it
COUNTED = 4  # steps counted per phase (constant lr, then scheduled lr)
STEPS = WARMUP + 2 * COUNTED
SCHEDULE_FROM = WARMUP + COUNTED  # steps SCHEDULE_FROM + 1 on each run with a new lr
SCHEDULER = {"name": "LinearLR", "start_factor": 0.5, "end_factor": 1.0, "total_iters": 100}  # lr changes every step
PHASES = (("constant lr", WARMUP, SCHEDULE_FROM), ("scheduled lr", SCHEDULE_FROM, STEPS))
SHAPES = ((3, 2), (2, 4))  # 2-D (Muon takes nothing else), of different shapes


def compile_dtype(info: Any) -> str:
    return "float32" if "float32" in info.contract_dtypes else info.contract_dtypes[0]


def optimizer_files(case: Case, opt: Any) -> list[str]:
    """Source files of the optimizer (its class and bases, and its factory), where a crash frame is looked for."""
    files: list[str] = []
    objs: list[Any] = [c for c in type(opt).__mro__ if c is not object] + [case.info.factory]
    for obj in objs:
        mod = sys.modules.get(getattr(obj, "__module__", "") or "")
        path = getattr(mod, "__file__", None)
        if path:
            files.append(path)
        try:
            files.append(inspect.getsourcefile(obj) or "")
        except TypeError:
            pass
    return list(dict.fromkeys(f for f in files if f))


class _Run:
    """The contract's problem, one optimizer over it and its LinearLR, stepped by the five-step loop. ``body()``
    is what is compiled: ``opt.step()`` (or ``opt.step(closure)``), then the scheduler's ``step()`` once
    ``scheduling`` (from step SCHEDULE_FROM, so that every later step runs with a new lr)."""

    def __init__(self, case: Case, lr: Any, nudge: int = 0) -> None:
        self.case = case
        self.prob = Problem(case, SHAPES, nudge=nudge)  # nudge: x0 moved by that many ulps (parity's rounding probe)
        # lr None: the optimizer has no lr hyperparameter (A2Grad, AliG): constructed as every contract check
        # constructs it, and no scheduler, which would need group['lr']
        self.opt = case.make(self.prob.params) if lr is None else case.make(self.prob.params, lr=lr)
        kw = {k: v for k, v in SCHEDULER.items() if k != "name"}
        cls = getattr(torch.optim.lr_scheduler, SCHEDULER["name"])
        self.sched = None if lr is None else call_optimizer(
            f"torch.optim.lr_scheduler.{SCHEDULER['name']}(optimizer)", cls, self.opt, **kw)
        self.scheduling = False
        self.numbers: list[dict[tuple[int, str], float]] = []  # per step: the state's Python numbers (numbers())
        self.xs: list[list[torch.Tensor]] = []  # x after each step, once trained (_eager_run)
        self.loss = self.prob.loss_fn()
        self.closure = training_closure(self.opt, self.loss)

    def body(self) -> Callable[[], None]:
        run, use_closure = self, bool(self.case.info.closure)

        def step_fn() -> None:
            if use_closure:
                run.opt.step(run.closure)
            else:
                run.opt.step()
            if run.scheduling and run.sched is not None:
                run.sched.step()

        return step_fn

    def train(self, step: Callable[[], Any], on_step: Callable[[Callable[[], Any]], Any] | None = None,
              stop: Callable[[], bool] | None = None) -> list[list[torch.Tensor]]:
        """The protocol's STEPS epochs (the scheduler stepped at the end of step SCHEDULE_FROM and of every later
        one; ``stop()`` asked once the constant-lr steps are done); x after each step, read as the method returns
        it (eval mode for optimizers with train()/eval() modes)."""
        opt = self.opt
        if has_modes(opt):
            call_optimizer("train()", opt.train)
        xs = []
        for k in range(STEPS):
            if k == SCHEDULE_FROM - 1 and self.sched is not None:
                self.scheduling = True  # LinearLR steps after this step's update: the next steps see a new lr each
            if k == SCHEDULE_FROM and stop is not None and stop():
                break
            call_optimizer("zero_grad()", opt.zero_grad)
            value = self.loss()
            value.backward()
            if on_step is None:
                step()
            else:
                on_step(step)
            xs.append(read_params(self.prob.params, opt))
            self.numbers.append(numbers(opt))
        return xs


def numbers(opt: Any) -> dict[tuple[int, str], float]:
    """The optimizer's per-parameter state entries that are Python numbers (ints and floats, not bools), by
    (parameter index, key). torch.compile treats them unlike tensors: a constant of the graph, or a symbolic
    value that Dynamo computes in the graph and writes back after it."""
    out = {}
    for i, p in enumerate(p for g in opt.param_groups for p in g["params"]):
        for key, value in (opt.state[p].items() if p in opt.state else ()):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[(i, str(key))] = float(value)
    return out


def numbers_diff(case: Case, want: Sequence[dict[tuple[int, str], float]],
                 got: Sequence[dict[tuple[int, str], float]]) -> tuple[int, int, str, float, float] | None:
    """The first (step, parameter, key, eager, compiled) where a Python number of the state differs between the
    eager and the compiled run beyond the contract's relative tolerance, or None."""
    rel = rel_tol(case.dtype)
    for k, (w, g) in enumerate(zip(want, got), start=1):
        for (i, key), e in w.items():
            c = g.get((i, key))
            if c is not None and not abs(c - e) <= rel * (1.0 + abs(e)):
                return k, i, key, e, c
    return None


def _lines(outer: Callable[..., Any], name: str) -> range:
    """The source lines of the nested function ``name`` defined in ``outer``."""
    for const in outer.__code__.co_consts:
        if inspect.iscode(const) and const.co_name == name:
            lines = [ln for _, _, ln in const.co_lines() if ln]
            return range(min(lines), max(lines) + 1)
    return range(0)


_CLOSURE_LINES = _lines(_Run.__init__, "closure")
_CALL_LINES = _lines(_Run.body, "step_fn")


def attribute(breaks: Sequence[GraphBreak]) -> list[GraphBreak]:
    """Whose each break is. In the closure optbench passes: the closure's (its backward). A call Dynamo does not
    trace because torch's LRScheduler wrapped ``opt.step`` in a function of torch/optim/lr_scheduler.py (a file
    Dynamo skips): the scheduler's, which every optimizer under a scheduler has. At the call of ``opt.step()`` in
    the compiled function: Dynamo's echo of a break inside the step (dropped when a break is reported inside
    the optimizer), else the step's as a whole (a step torch.compile does not trace at all)."""
    here = __file__
    inside = any(b.file != here and "lr_scheduler.py" not in b.explanation for b in breaks)
    out = []
    for b in breaks:
        if "torch/optim/lr_scheduler.py" in b.explanation.replace("\\", "/") or "lr_scheduler.py" in b.file:
            out.append(dataclasses.replace(b, owner="scheduler"))
        elif b.file == here and b.line in _CLOSURE_LINES:
            out.append(dataclasses.replace(b, owner="closure"))
        elif b.file == here and b.line in _CALL_LINES:
            if not inside:
                # named, not as optbench's file:line, which a user cannot act on and which moves with every edit
                out.append(dataclasses.replace(b, file="", line=0, func="the compiled function's call of step()"))
        else:
            out.append(b)
    return out


def _seeded(fn: Callable[[], Any], device: str) -> Any:
    """Run ``fn`` from torch's RNG state seeded with 0 (CPU, and the case's CUDA device), restored afterwards."""
    devices = [torch.device(device).index or 0] if device.startswith("cuda") and torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        return fn()


def _eager_run(case: Case, lr: Any, nudge: int = 0) -> _Run:
    """The eager run, trained: its ``train()`` result is kept as ``xs``. Eager throughout: a step that compiles
    parts of itself (kron-torch's Kron: ``@torch.compile`` on its preconditioner update, which draws
    ``torch.randn_like``) runs them uncompiled (``torch.compiler.set_stance("force_eager")``), so its random draws
    come from torch's generator as the compiled run's do (``fallback_random``), not from Inductor's own."""
    def go() -> _Run:
        run = _Run(case, lr, nudge)
        with torch.compiler.set_stance("force_eager"):
            run.xs = run.train(lambda: call_optimizer("step()", run.body()))
        return run

    return _seeded(go, case.device)


def _eager(case: Case, lr: Any, nudge: int = 0) -> list[list[torch.Tensor]]:
    return _eager_run(case, lr, nudge).xs


# ---- the one compiled run --------------------------------------------------------------------------


@dataclass
class CompiledRun:
    """What the compiled run of one case found (plain data: no tensors, optimizers or tracebacks kept)."""

    lr: str  # "tensor" or "float"
    lr_note: str = ""  # why a float lr
    eager_raised: str | None = None  # the eager run raised: nothing to compare
    raised: str | None = None  # the compiled run raised (one line) ...
    raised_step: int | None = None  # ... at this step (1-based)
    frame: str | None = None  # ... at this frame of the optimizer
    torch_frame: str | None = None  # ... raised by torch.compile's compiled code at run time, no optimizer frame on the way
    diff: tuple | None = None  # (step, parameter, shape, max|Δ|, index, eager, compiled, tolerance)
    max_abs_diff: float = 0.0
    compared: int = 0  # steps compared (fewer than STEPS when the run stopped after the constant-lr steps)
    steps: list[StepRecord] = field(default_factory=list)
    breaks: list[GraphBreak] = field(default_factory=list)
    limit_hit: str | None = None
    amplified: str | None = None  # the parity difference is rounding amplified by the step (optimizers.rounding)
    numbers_diff: tuple | None = None  # a Python number of the state differs first: (step, param, key, eager, compiled)
    float_lr_runs: bool = False  # the run raised with a tensor lr, and the same steps compile and run with a float lr

    @property
    def graphs(self) -> int:
        return sum(s.graphs for s in self.steps)

    def phase(self, lo: int, hi: int) -> list[StepRecord]:
        return self.steps[lo:hi]

    def own_breaks(self) -> list[GraphBreak]:
        return [b for b in self.breaks if b.owner == "optimizer"]

    def closure_breaks(self) -> list[GraphBreak]:
        return [b for b in self.breaks if b.owner == "closure"]

    def scheduler_breaks(self) -> list[GraphBreak]:
        return [b for b in self.breaks if b.owner == "scheduler"]


def _first_diff(case: Case, want: Sequence[Sequence[torch.Tensor]], got: Sequence[Sequence[torch.Tensor]]
                ) -> tuple[tuple | None, float]:
    """The first difference beyond tolerance as (step, parameter, shape, max|Δ|, index, eager, compiled, tol),
    and the largest |Δ| over every step compared."""
    rel = rel_tol(case.dtype)
    worst, first = 0.0, None
    for k, (ws, gs) in enumerate(zip(want, got)):
        scale = 1.0 + max(float(w.detach().double().abs().nan_to_num(0.0).max()) for w in ws)
        tol = rel * scale
        for i, (w, g) in enumerate(zip(ws, gs)):
            w64, g64 = w.detach().double().cpu(), g.detach().double().cpu()
            close = torch.isclose(g64, w64, rtol=0.0, atol=tol, equal_nan=True)
            d = (g64 - w64).abs().nan_to_num(float("inf"))
            d = torch.where(torch.isnan(g64) & torch.isnan(w64), torch.zeros_like(d), d)
            worst = max(worst, float(d.max()) if d.numel() else 0.0)
            if first is None and not bool(close.all()):
                d = torch.where(close, torch.zeros_like(d), d)
                flat = int(d.argmax())
                idx = tuple(int(j) for j in torch.unravel_index(torch.tensor(flat), w.shape)) if w.dim() else ()
                first = (k + 1, i, tuple(w.shape), float(d.max()), idx, float(w64.reshape(-1)[flat]),
                         float(g64.reshape(-1)[flat]), tol)
    return first, worst


def _noop() -> None:
    pass


@functools.cache
def _patched() -> None:
    """torch.compile's once-per-process patch of torch.optim applied (module docstring), whatever ran before."""
    torch.compile(_noop, backend="eager")()  # the eager backend: Dynamo only, nothing for Inductor to build


def _compile_run(case: Case) -> CompiledRun:
    import torch._inductor.config as inductor_config

    _patched()

    # the eager reference, which also tells whether a tensor lr is accepted (constructor, steps and scheduler)
    # a fresh lr for each run: a scheduler changes a tensor lr in place
    # an optimizer with no lr hyperparameter (A2Grad, AliG) runs with none and no scheduler
    tries: list[tuple[str, Callable[[], Any]]] = (
        [("none", lambda: None)] if not accepts(case.info, case.config, "lr") else
        [("tensor", lambda: torch.tensor(case.info.contract_lr)), ("float", lambda: case.info.contract_lr)])
    out = CompiledRun(tries[0][0])
    for kind, lr in tries:
        try:
            eager = _eager_run(case, lr())
            want = eager.xs
            break
        except OptimizerRaised as exc:
            if kind == "tensor":  # retried with a float lr
                out = CompiledRun("float", lr_note=f"with a tensor lr {exc}")
                continue
            out.eager_raised = str(exc)
            return out
    run = _seeded(lambda: _Run(case, lr()), case.device)
    files = optimizer_files(case, run.opt)
    compiled = torch.compile(run.body(), backend=backend(case))  # the default: Inductor
    got: list[list[torch.Tensor]] | None = None
    def every_step() -> bool:  # steps 3-6 each compiled a graph: the verdict is known, stop paying for compiles
        return all(s.graphs for s in watch.steps[WARMUP:SCHEDULE_FROM])

    with inductor_config.patch(fallback_random=True), Watch() as watch:
        try:
            got = _seeded(lambda: run.train(compiled, on_step=watch.step, stop=every_step), case.device)
        except Exception as exc:  # noqa: BLE001 - whatever torch.compile raises on this step is the finding
            out.raised = one_line(exc)
            out.raised_step = len(watch.steps)
            out.frame = crash_frame(exc, files)
            out.torch_frame = raised_in_torch(exc, files)
    if out.raised is not None and out.lr == "tensor":
        out.float_lr_runs = _float_lr_runs(case, out.raised_step or 1)
    out.steps, out.breaks, out.limit_hit = watch.steps, attribute(watch.breaks), watch.limit_hit
    if got is not None:
        out.diff, out.max_abs_diff = _first_diff(case, want, got)
        out.compared = len(got)
    if out.diff is not None:
        out.numbers_diff = numbers_diff(case, eager.numbers, run.numbers)
        if out.numbers_diff is None:  # else that is the cause, seen directly: no rounding probe to run
            out.amplified = _amplified(case, lr, want, out.diff)
    return out


def _float_lr_runs(case: Case, steps: int) -> bool:
    """Whether the steps that raised under compile with a tensor lr compile and run with a float lr (bitsandbytes:
    its custom op declares ``lr: float``, which its eager step satisfies and Dynamo's fake tensor does not)."""
    import torch._inductor.config as inductor_config

    run = _seeded(lambda: _Run(case, case.info.contract_lr), case.device)
    compiled = torch.compile(run.body(), backend=backend(case))
    done = [0]

    def stop() -> bool:
        return True

    def on_step(step: Callable[[], Any]) -> None:
        if done[0] < steps:
            step()
            done[0] += 1

    try:
        with inductor_config.patch(fallback_random=True, compile_threads=1):
            _seeded(lambda: run.train(compiled, on_step=on_step, stop=stop), case.device)
    except Exception:  # noqa: BLE001 - raising with a float lr too: the tensor lr is not the cause
        return False
    return done[0] == steps


def _amplified(case: Case, lr: Callable[[], Any], want: Sequence[Sequence[torch.Tensor]], diff: tuple) -> str | None:
    """Whether eager runs from x0 moved by a few ulps differ from the eager run as much as the compiled one does
    at the first step beyond tolerance (Inductor reorders float operations: a step that amplifies rounding makes
    that reordering show, with no fault in the compiled step)."""
    k, dmax = diff[0], diff[3]
    try:
        s = max(max_diff(want[k - 1], _eager(case, lr(), n)[k - 1]) for n in rounding.NUDGES)
    except Exception:  # noqa: BLE001 - a nudged eager run that raises gives no evidence either way
        return None
    return rounding.wording(case.dtype, k, s, dmax)


_MEMO: dict[tuple, CompiledRun] = {}


def _key(case: Case) -> tuple:
    """What the run depends on (not the optimizer's name, nor what is only judged, such as ``fullgraph``)."""
    info = case.info
    kw = repr(sorted({**dict(info.extra_kwargs), **dict(case.config.kwargs)}.items()))
    return (id(info.factory), kw, info.contract_lr, bool(info.closure), bool(info.sparse_grad), case.impl,
            str(case.dtype), case.device, backend(case))


def compiled_run(case: Case) -> CompiledRun:
    """The compiled run of ``case``, once per process (the three P21 checks share it)."""
    key = _key(case)
    if key not in _MEMO:
        _MEMO[key] = _compile_run(case)
    return _MEMO[key]


# ---- the checks ------------------------------------------------------------------------------------


def _phase_of(step: int, r: CompiledRun) -> str:
    if step <= WARMUP:
        return "warm-up, constant lr"
    if r.lr == "none":
        return "no lr to schedule"
    return "constant lr" if step <= SCHEDULE_FROM else f"{SCHEDULER['name']} changing the lr every step"


def backend(case: Case) -> str:
    """The torch.compile backend of the case's P21 run: its config's ``compile_backend``, Inductor by default."""
    return getattr(case.info, "compile_backend", "inductor")


def _backend_words(case: Case) -> str:
    name = backend(case)
    return "default backend, Inductor" if name == "inductor" else f"backend {name!r}, as its config declares"


def _lr_words(r: CompiledRun) -> str:
    if r.lr == "none":
        return "no lr (it has no lr hyperparameter, so no scheduler)"
    return "a tensor lr" if r.lr == "tensor" else f"a float lr ({r.lr_note})" if r.lr_note else "a float lr"


def _nothing_compiled(r: CompiledRun) -> str:
    why = "; ".join(b.text() for b in r.own_breaks()) or "no reason reported"
    return (f"torch.compile compiled no graph of this step, which therefore runs eagerly ({why}); "
            f"test_p21_graph_breaks reports it")


def _common_na(r: CompiledRun) -> None:
    if r.eager_raised is not None:
        raise NotApplicable(f"the eager step raises ({r.eager_raised}), so there is no eager result to compare the "
                            f"compiled step with; the other properties report it")


def check_p21_parity(case: Case) -> dict[str, Any]:
    """Every compiled step equals the eager one to the contract's relative tolerance; an exception under
    compile that eager does not raise is a FAIL naming the optimizer's frame."""
    r = compiled_run(case)
    _common_na(r)
    if r.raised is not None:
        step = r.raised_step or 1
        if r.torch_frame:
            raise PropertyFailure(
                "P21", case, f"under torch.compile ({_backend_words(case)}) with {_lr_words(r)}, the compiled "
                             f"step raises at step {step} ({_phase_of(step, r)}) {r.raised}, where the same {STEPS} "
                             f"eager steps run: raised by torch.compile's own compiled code at run time "
                             f"({r.torch_frame}), "
                             f"not in the optimizer's Python (no frame of it on the way): a torch.compile bug or "
                             f"limitation this step triggers; the reproducer shows it on the optimizer alone",
                kind="crash", lr=r.lr, step=step)
        where = f" at {r.frame}" if r.frame else ""
        lr_cause = (f"; with a float lr the same {step} compiled step{'s' if step > 1 else ''} run: the tensor lr is "
                    f"what fails (lr handed to an op or a Python path declared for a float, which eager converts and "
                    f"Dynamo's fake tensor does not)" if r.float_lr_runs else "")
        raise PropertyFailure(
            "P21", case, f"under torch.compile ({_backend_words(case)}) with {_lr_words(r)}, the compiled step "
                         f"raises at step {step} ({_phase_of(step, r)}) {r.raised}{where}, where the same {STEPS} eager "
                         f"steps run{lr_cause}; an exception under torch.compile is the optimizer's finding",
            kind="crash", lr=r.lr, step=step)
    if r.graphs == 0:
        raise NotApplicable(_nothing_compiled(r))
    if r.diff is not None:
        k, i, shape, dmax, idx, w, g, tol = r.diff
        rel = f"the contract's rel. {rel_tol(case.dtype):.0e} x (1 + max|x|); torch.compile reorders float operations"
        beyond = (f" at index {list(idx)} (eager {w:.9g}, compiled {g:.9g}) > {tol:.2g} ({rel}, so bit for bit is not "
                  f"expected, but this is beyond rounding")
        if r.numbers_diff is not None:
            ks, pi, key, e, c = r.numbers_diff
            cause = (f"{beyond}): the compiled step leaves a Python number of the state other than the eager step "
                     f"does: after step {ks}, state[{key!r}] of parameter {pi} is {c:.9g} compiled, {e:.9g} eager "
                     f"(Dynamo makes such a number a constant of the graph, or a symbolic value computed in the graph "
                     f"and written back: a torch.compile bug this step triggers, or a branch on "
                     f"torch.compiler.is_compiling(); state kept in a tensor is data to the graph)")
        elif r.amplified:
            cause = f" > {tol:.2g} ({rel}): {r.amplified}"
        else:
            cause = (f"{beyond}: a branch on torch.compiler.is_compiling(), Python state baked into the graph as a "
                     f"constant, or low-precision math that Inductor fuses in float32, which "
                     f"torch._inductor.config.emulate_precision_casts=True would show?)")
        raise PropertyFailure(
            "P21", case, f"the compiled step (torch.compile, {_backend_words(case)}, {_lr_words(r)}) and the eager "
                         f"step differ at step {k} ({_phase_of(k, r)}), parameter {i} {list(shape)}: max |Δ| = "
                         f"{dmax:.3g}{cause}",
            kind="parity", lr=r.lr, step=k, param=i)
    sched = (f", a new lr from {SCHEDULER['name']} at steps {SCHEDULE_FROM + 1}-{STEPS}"
             if r.compared > SCHEDULE_FROM and r.lr != "none" else "")
    return {"steps": r.compared, "backend": backend(case), "lr": r.lr, "max_abs_diff": r.max_abs_diff,
            "tolerance_rel": rel_tol(case.dtype), "graphs": r.graphs,
            "summary": f"{r.compared} compiled steps ({_lr_words(r)}{sched}) equal the eager ones to rel. "
                       f"{rel_tol(case.dtype):.0e} (max |Δ| {r.max_abs_diff:.2g})"}


def _crash_na(r: CompiledRun) -> None:
    if r.raised is not None:
        raise NotApplicable(f"the compiled step raises ({r.raised}); test_p21_compiled_parity reports it, with its "
                            f"reproducer")


def check_p21_recompiles(case: Case) -> dict[str, Any]:
    """Graphs compiled after the warm-up at a constant lr and while a scheduler changes the lr every step; a new
    graph at every step of a phase (or Dynamo's recompile limit) FAILs, fewer are MEASURED."""
    r = compiled_run(case)
    _common_na(r)
    _crash_na(r)
    if r.graphs == 0:
        raise NotApplicable(_nothing_compiled(r))
    phases: dict[str, Any] = {}
    for name, lo, hi in PHASES:
        recs = r.phase(lo, hi)
        compiling = [lo + j + 1 for j, s in enumerate(recs) if s.graphs]
        guards = [g for s in recs for g in s.guards]
        phases[name] = {"steps": [lo + 1, hi], "graphs": sum(s.graphs for s in recs), "recompiling_steps": compiling,
                        "guards": guards, "ran": len(recs)}
        if recs and (len(compiling) == len(recs) or (r.limit_hit and compiling)):
            setting = ("at a constant lr" if name == "constant lr" else "at its own step size" if r.lr == "none" else
                       f"while torch.optim.lr_scheduler.{SCHEDULER['name']} changes {_lr_words(r)} every step")
            # the optimizer's guard, not the flip of this harness's own `scheduling` flag at step SCHEDULE_FROM
            theirs = [g for g in guards if "run.scheduling" not in g]
            guard = (theirs or guards)[-1] if guards else "(Dynamo gave no reason)"
            limit = f"; Dynamo's recompile limit was reached ({r.limit_hit})" if r.limit_hit else ""
            hint = (" (a float lr is a constant of the graph: construct the optimizer with lr=torch.tensor(...), or "
                    "let it accept one)" if "lr" in guard and r.lr == "float" else
                    " (a Python number or object that changes every step is a constant of the graph: keep it in a "
                    "tensor, or out of the compiled step)")
            raise PropertyFailure(
                "P21", case, f"the compiled step recompiles at every step {setting}: steps "
                             f"{', '.join(map(str, compiling))} each compiled a new graph after {WARMUP} warm-up "
                             f"steps{limit}; the guard that failed: {guard}{hint}",
                kind="recompiles", lr=r.lr, phase=name)
    first = sum(s.graphs for s in r.steps[:WARMUP])
    text = (f"{r.graphs} graph(s) in {STEPS} steps ({first} in the warm-up); after it "
            f"{phases['constant lr']['graphs']} at a constant lr, {phases['scheduled lr']['graphs']} while "
            f"{SCHEDULER['name']} changes {_lr_words(r)} every step" if r.lr != "none" else
            f"{r.graphs} graph(s) in {STEPS} steps ({first} in the warm-up), "
            f"{phases['constant lr']['graphs'] + phases['scheduled lr']['graphs']} after it ({_lr_words(r)})")
    return {"lr": r.lr, "graphs": r.graphs, "graphs_warmup": first, "graphs_per_step": [s.graphs for s in r.steps],
            "phases": phases, "recompile_limit_hit": r.limit_hit, "backend": backend(case), "summary": text}


def check_p21_graph_breaks(case: Case) -> dict[str, Any]:
    """The graph breaks of the compiled step with their reasons and places (MEASURED); with ``fullgraph = true``
    declared, any break in the optimizer's own code FAILs."""
    r = compiled_run(case)
    _common_na(r)
    _crash_na(r)
    own, closure = r.own_breaks(), r.closure_breaks()
    if own and getattr(case.info, "fullgraph", False):
        listed = "; ".join(b.text() for b in own)
        raise PropertyFailure(
            "P21", case, f"fullgraph = true is declared, but the compiled step has {len(own)} graph "
                         f"break{'s' if len(own) > 1 else ''}: {listed} (torch.compile(..., fullgraph=True) raises at "
                         f"the first; a .item(), a print, a data-dependent Python branch or an unsupported call splits "
                         f"the graph)", kind="graph_breaks")
    text = f"{len(own)} graph break{'s' if len(own) != 1 else ''}" + (": " + "; ".join(b.text() for b in own)
                                                                        if own else "")
    if r.graphs == 0:
        text += " (no graph compiled: the step runs eagerly)"
    if closure:
        text += (f" (and {len(closure)} in the closure optbench passes, its loss and backward, which every "
                 f"step(closure) has)")
    sched = r.scheduler_breaks()
    if sched:
        text += (f" (and {len(sched)} at the LRScheduler's wrapper of step(), in torch/optim/lr_scheduler.py, which "
                 f"Dynamo does not trace: every optimizer under a scheduler has it)")
    return {"graph_breaks": len(own), "breaks": [b.as_dict() for b in own],
            "closure_breaks": [b.as_dict() for b in closure], "scheduler_breaks": [b.as_dict() for b in sched],
            "graphs": r.graphs, "summary": text}
