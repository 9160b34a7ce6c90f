"""Standalone reproducers for P21: a short script that imports only torch and the optimizer, rebuilds the
contract's problem, runs the protocol of :mod:`optbench.compiled.checks` (10 steps, the step compiled with
``torch.compile``, LinearLR changing the lr for steps 7-10, a tensor lr where the run used one) and shows the
finding:

* parity: the compiled and eager parameters after every step, failing at the first step beyond tolerance;
* crash: the eager run completes, then the compiled run raises with torch's own traceback;
* recompiles: graphs compiled per step (``TORCH_LOGS=recompiles`` output turned on), failing when a phase
  compiles at every step;
* graph breaks: ``torch.compile(..., fullgraph=True)`` of the step, which raises at the first break.

The problem, the loop and the optimizer's import come from :mod:`optbench.optimizers.reproducer` (the
contract's reproducers), so a P21 script reads like the others.
"""

from __future__ import annotations

from typing import Any

from ..optimizers.reproducer import _header, _kwargs
from .checks import SCHEDULE_FROM, SCHEDULER, SHAPES, STEPS, WARMUP, backend

_RUN = '''
import torch._dynamo
import torch._inductor.config
from torch._dynamo.utils import counters

torch._inductor.config.fallback_random = True  # random draws as in eager, as optbench compares them
STEPS, SCHEDULE_FROM, WARMUP = {steps}, {schedule_from}, {warmup}
TENSOR_LR = {tensor_lr}  # the run used a tensor lr (the recipe's advice) where the optimizer accepts one
NO_LR = {no_lr}  # the optimizer has no lr hyperparameter: constructed as given, no scheduler
BACKEND = {backend!r}  # torch.compile's backend ("inductor", the default; "aot_eager": no code generation)


def run(compiled, fullgraph=False):
    """The five-step loop, with opt.step() and (from step SCHEDULE_FROM on) LinearLR's step compiled."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    ps, loss = make_problem()
    lr = torch.tensor(KWARGS["lr"]) if TENSOR_LR else KWARGS["lr"]
    opt = Opt(ps, **KWARGS) if NO_LR else Opt(ps, **{{**KWARGS, "lr": lr}})
    # as in the recipe; stepped from step SCHEDULE_FROM
    sched = None if NO_LR else torch.optim.lr_scheduler.{sched_name}(opt, {sched_kw})
    holder = {{"on": False}}

    def closure():
        with torch.enable_grad():  # a step() under no_grad may call it without enable_grad
            opt.zero_grad()
            value = loss()
            value.backward()
        return value

    def step_fn():
{call}
        if holder["on"] and sched is not None:
            sched.step()

    # eager throughout: a step that compiles parts of itself runs them uncompiled too
    step = (torch.compile(step_fn, fullgraph=fullgraph, backend=BACKEND) if compiled else
            torch.compiler.set_stance("force_eager")(step_fn))
    modes = callable(getattr(opt, "train", None)) and callable(getattr(opt, "eval", None))
    if modes:
        opt.train()
    xs, graphs, numbers = [], [], []
    for k in range(STEPS):
        if k == SCHEDULE_FROM - 1:
            holder["on"] = True  # LinearLR steps after this step's update: every later step sees a new lr
        opt.zero_grad()
        loss().backward()
        before = counters["stats"]["unique_graphs"]
        step()
        graphs.append(counters["stats"]["unique_graphs"] - before)
        if modes:
            opt.eval()
        xs.append([p.detach().clone() for p in ps])
        # the state's Python numbers (torch.compile makes them graph constants or symbolic values it writes back)
        numbers.append({{(i, key): v for i, p in enumerate(ps) for key, v in opt.state.get(p, {{}}).items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)}})
        if modes:
            opt.train()
    return xs, graphs, numbers

'''

_BODIES = {
    "parity": '''
eager, _, eager_numbers = run(False)
compiled, graphs, compiled_numbers = run(True)
print(f"graphs compiled per step: {graphs}")
for k, (a, b, na, nb) in enumerate(zip(eager, compiled, eager_numbers, compiled_numbers), 1):
    tol = REL * (1 + max(x.abs().max().item() for x in a))
    d = max_diff(a, b)
    apart = {f"param {i} state[{key!r}]": (v, nb[(i, key)]) for (i, key), v in na.items()
             if (i, key) in nb and not abs(nb[(i, key)] - v) <= REL * (1 + abs(v))}
    print(f"step {k}: max |compiled - eager| = {d:.3g} (tolerance {tol:.2g})"
          + (f"; Python numbers of the state apart (eager, compiled): {apart}" if apart else ""))
    assert d <= tol, f"P21: the compiled step differs from the eager one at step {k}"
''',
    "crash": '''
run(False)
print("the eager steps run; now the same steps with opt.step() under torch.compile:")
run(True)  # raises: the traceback names the optimizer's frame
''',
    "recompiles": '''
torch._logging.set_logs(recompiles=True)  # prints the guard that failed at each recompilation
_, graphs, _ = run(True)
print(f"graphs compiled per step: {graphs} (warm-up: steps 1-{WARMUP}; constant lr: steps {WARMUP + 1}-{SCHEDULE_FROM}; "
      f"LinearLR changing the lr: steps {SCHEDULE_FROM + 1}-{STEPS})")
for name, part in (("at a constant lr", graphs[WARMUP:SCHEDULE_FROM]), ("under LinearLR", graphs[SCHEDULE_FROM:])):
    assert not all(part), f"P21: the compiled step recompiles at every step {name}"
''',
    "graph_breaks": '''
try:
    run(True, fullgraph=True)  # fullgraph=True raises at the first graph break
except Exception as exc:
    raise AssertionError(f"P21: the step does not compile to one graph (fullgraph = true is declared): {exc}") from exc
print("the step compiles with fullgraph=True")
''',
}


def script(failure: Any, case: Any) -> str | None:
    """The reproducer of a P21 ``failure`` (a PropertyFailure with ``details['kind']``) on ``case``, or None
    where the optimizer has no importable name or its kwargs are not literals."""
    details = dict(getattr(failure, "details", {}) or {})
    kind = details.get("kind")
    if kind not in _BODIES:
        return None
    kw = _kwargs(case)
    if kw is None:
        return None
    header = _header(case, kw, failure.prop, str(failure))
    if header is None:
        return None
    contract_shapes = "SHAPES = [(3, 2), (3, 2), (2, 4)]"
    if contract_shapes not in header:  # the contract's problem changed: a script on other shapes would mislead
        return None
    header = header.replace(contract_shapes, f"SHAPES = {list(SHAPES)!r}  # the two P21 runs on")
    from ..optimizers.contract import rel_tol

    call = "        opt.step(closure)" if case.info.closure else "        opt.step()"
    sched_kw = ", ".join(f"{k}={v!r}" for k, v in SCHEDULER.items() if k != "name")
    run = _RUN.format(steps=STEPS, schedule_from=SCHEDULE_FROM, warmup=WARMUP,
                      tensor_lr=details.get("lr", "tensor") == "tensor", no_lr=details.get("lr") == "none", call=call,
                      sched_name=SCHEDULER["name"], sched_kw=sched_kw, backend=backend(case))
    rel = f"REL = {rel_tol(case.dtype)!r}  # the contract's relative tolerance for {str(case.dtype)[6:]}\n"
    return header + run + rel + _BODIES[kind]
