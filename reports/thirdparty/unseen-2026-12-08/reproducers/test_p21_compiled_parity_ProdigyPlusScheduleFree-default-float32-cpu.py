"""optbench reproducer for P21: P21 compiled step (torch.compile): ProdigyPlusScheduleFree (default) float32 cpu: under torch.compile (default backend, Inductor) with a tensor lr, the compiled step raises at step 1 (warm-up, constant lr) TypeError: unsupported operand type(s) for -=: 'NoneType' and 'int' at prodigyplus/core_optimiser.py:344 in on_end_step, where the same 10 eager steps run; an exception under torch.compile is the optimizer's finding

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from prodigyplus import ProdigyPlusScheduleFree
Opt = ProdigyPlusScheduleFree

DEVICE, DTYPE = 'cpu', torch.float32
SHAPES = [(3, 2), (2, 4)]  # the two P21 runs on
KWARGS = dict(lr=0.01, weight_decay=0.0)  # how optbench constructed it


def seeded(shape, seed, lo, hi, dtype=None):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(*shape, generator=g, dtype=torch.float64)
    return (lo + (hi - lo) * u).to(dtype=dtype or DTYPE, device=DEVICE)


def make_problem(dtype=None, shift=0.0, noncontiguous=False):
    """Parameters and the separable loss sum a*(x - c - shift)^2 + (x - c - shift)^4 / 4.
    Every run starts from the same global RNG state, as optbench's do (an optimizer may draw random numbers)."""
    torch.manual_seed(0)
    dtype = dtype or DTYPE
    a = [seeded(s, 100 + i, 0.5, 2.0, dtype) for i, s in enumerate(SHAPES)]
    c = [seeded(s, 200 + i, -1.0, 1.0, dtype) for i, s in enumerate(SHAPES)]
    ps = []
    for i, s in enumerate(SHAPES):
        x0 = seeded(s, 300 + i, -2.0, 2.0, dtype) + shift
        p = torch.empty_strided(s, (1, s[0]), dtype=dtype, device=DEVICE).copy_(x0) if noncontiguous else x0.clone()
        ps.append(p.requires_grad_())

    def loss(which=None, sign=1.0):
        total = 0
        for i in (range(len(ps)) if which is None else which):
            x = ps[i] - c[i] - shift
            total = total + sign * (a[i] * x * x + 0.25 * x ** 4).sum()
        return total

    return ps, loss


def train(opt, ps, loss, steps, **loss_kw):
    """The five-step loop: zero_grad, forward and loss, backward, step; returns x after each step.
    An optimizer with train()/eval() modes steps in train mode and x is read in eval mode, the start included
    (as optbench reads it: eval() before the first step)."""
    modes = callable(getattr(opt, "train", None)) and callable(getattr(opt, "eval", None))
    xs = []
    if modes:
        opt.train()
        opt.eval()  # x0 read as the method returns it, before any step
        opt.train()
    for _ in range(steps):
        opt.zero_grad()
        value = loss(**loss_kw)
        value.backward()
        opt.step()
        if modes:
            opt.eval()
        xs.append([p.detach().clone() for p in ps])
        if modes:
            opt.train()
    return xs


def max_diff(a, b):
    return max((x.double() - y.double()).abs().max().item() for x, y in zip(a, b))

import torch._dynamo
import torch._inductor.config
from torch._dynamo.utils import counters

torch._inductor.config.fallback_random = True  # random draws as in eager, as optbench compares them
STEPS, SCHEDULE_FROM, WARMUP = 10, 6, 2
TENSOR_LR = True  # the run used a tensor lr (the recipe's advice) where the optimizer accepts one
NO_LR = False  # the optimizer has no lr hyperparameter: constructed as given, no scheduler
BACKEND = 'inductor'  # torch.compile's backend ("inductor", the default; "aot_eager": no code generation)


def run(compiled, fullgraph=False):
    """The five-step loop, with opt.step() and (from step SCHEDULE_FROM on) LinearLR's step compiled."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    ps, loss = make_problem()
    lr = torch.tensor(KWARGS["lr"]) if TENSOR_LR else KWARGS["lr"]
    opt = Opt(ps, **KWARGS) if NO_LR else Opt(ps, **{**KWARGS, "lr": lr})
    # as in the recipe; stepped from step SCHEDULE_FROM
    sched = None if NO_LR else torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.5, end_factor=1.0, total_iters=100)
    holder = {"on": False}

    def closure():
        with torch.enable_grad():  # a step() under no_grad may call it without enable_grad
            opt.zero_grad()
            value = loss()
            value.backward()
        return value

    def step_fn():
        opt.step()
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
        numbers.append({(i, key): v for i, p in enumerate(ps) for key, v in opt.state.get(p, {}).items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)})
        if modes:
            opt.train()
    return xs, graphs, numbers

REL = 0.0001  # the contract's relative tolerance for float32

run(False)
print("the eager steps run; now the same steps with opt.step() under torch.compile:")
run(True)  # raises: the traceback names the optimizer's frame
