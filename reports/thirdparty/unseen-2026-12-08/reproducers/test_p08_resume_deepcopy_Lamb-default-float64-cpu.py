"""optbench reproducer for P8: P8 resume from state_dict / deepcopy: Lamb (default) float64 cpu: step() raised AttributeError: 'Lamb' object has no attribute 'adam' while resuming through deepcopy: self.adam, an instance attribute of the optimizer, is not in the copy (torch.optim.Optimizer.__getstate__ keeps defaults, state and param_groups only; keep settings in defaults, or define __getstate__/__setstate__) (raised inside the optimizer, not by optbench)

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from pytorch_lamb import Lamb
Opt = Lamb

DEVICE, DTYPE = 'cpu', torch.float64
SHAPES = [(3, 2), (3, 2), (2, 4)]
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

import copy
import io

ps, loss = make_problem()
reference = train(Opt(ps, **KWARGS), ps, loss, 4)
ps, loss = make_problem()
opt = Opt(ps, **KWARGS)
train(opt, ps, loss, 2)
rng_state = torch.get_rng_state()  # saved with the checkpoint, as a training checkpoint does
qs, qloss = make_problem()
torch.manual_seed(1)  # a new process, until the checkpoint's RNG state is restored
if 'deepcopy' == "state_dict":
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    with torch.no_grad():
        for q, p in zip(qs, ps):
            q.copy_(p)
    opt2 = Opt(qs, **KWARGS)
    opt2.load_state_dict(torch.load(buf, weights_only=False))
else:
    holder = copy.deepcopy({"ps": ps, "opt": opt})
    qs[:] = holder["ps"]  # the fresh problem's loss now reads the deep-copied parameters
    opt2 = holder["opt"]
torch.set_rng_state(rng_state)
resumed = train(opt2, qs, qloss, 2)
for j in range(2):
    d = max_diff(resumed[j], reference[2 + j])
    print(f"step {3 + j}: max |dx| resumed (deepcopy) vs uninterrupted = {d:.3g}")
    assert (lambda a, b: all(torch.equal(x, y) for x, y in zip(a, b)))(resumed[j], reference[2 + j]), "P8: the resumed run differs from the uninterrupted one"
