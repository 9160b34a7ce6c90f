"""optbench reproducer for P5: P5 step() leaves .grad alone: MADGRAD (default) float32 cpu: step 1 with weight_decay=0.1 modified .grad in place: max |Δgrad| = 0.188 (expected untouched; use a copy, e.g. grad.mul() instead of grad.mul_()) (weight decay added to p.grad in place? g = p.grad.add(p, alpha=wd) leaves it alone; with weight decay off it does). If this is by design: declare it with the exemption below (exit code 0 once declared)

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from madgrad import MADGRAD
Opt = MADGRAD

DEVICE, DTYPE = 'cpu', torch.float32
SHAPES = [(3, 2), (3, 2), (2, 4)]
KWARGS = dict(lr=0.01, weight_decay=0.1)  # how optbench constructed it


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
for step in range(1, 4):
    opt.zero_grad()
    loss().backward()
    grads = [p.grad for p in ps]
    saved = [p.grad.detach().clone() for p in ps]
    opt.step()
    for i, (p, g) in enumerate(zip(ps, grads)):
        print(f"step {step}: param {i} .grad is {'None' if p.grad is None else 'the same tensor' if p.grad is g else 'another tensor'}")
        assert p.grad is not None, f"P5: step {step} set param {i}'s .grad to None"
        assert p.grad is g, f"P5: step {step} replaced param {i}'s .grad with another tensor"
    print(f"step {step}: max |d grad| = {max_diff([p.grad for p in ps], saved):.3g}")
    assert all(torch.equal(p.grad, s) for p, s in zip(ps, saved)), f"P5: step {step} modified p.grad in place"
