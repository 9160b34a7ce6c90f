"""optbench reproducer for P10: P10 step(closure) returns the loss: RangerAdaBelief (default) float32 cpu: step(closure) never called the closure

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from ranger_adabelief import RangerAdaBelief
Opt = RangerAdaBelief

DEVICE, DTYPE = 'cpu', torch.float32
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

ps, loss = make_problem()
opt = Opt(ps, **KWARGS)
seen = []


def closure():
    with torch.enable_grad():  # step() may call it under no_grad
        opt.zero_grad()
        value = loss()
        value.backward()
    seen.append(value.detach())
    return value


got = opt.step(closure)
print(f"step(closure) returned {got!r}; the closure's loss was {seen[0] if seen else None}")
assert seen and torch.is_tensor(got) and torch.equal(got.detach(), seen[0]), "P10: step(closure) must return the loss"
