"""optbench reproducer for P6: P6 param-group independence: GrokFastAdamW (default) float32 cpu: param group 0 ({'lr': 0.01, 'weight_decay': 0.0}) differs from the same parameter under its own optimizer at step 1: max |Δx| = 0.00667, expected equal bit for bit: a param group given {'lr': 0.01, 'weight_decay': 0.0} in its own dict steps differently from the same values given to the constructor (at step 1: max |Δx| = 0.00667): the constructor transforms them before storing them in defaults (e.g. rescales lr) and a group's own values skip it, a bug. If this is by design: declare it with the exemption below (exit code 0 once declared)

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from grokfast_pytorch import GrokFastAdamW
Opt = GrokFastAdamW

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

lr = KWARGS.get("lr", 1e-2)
extra = {"weight_decay": 0.05} if "weight_decay" in KWARGS else {}
ps, loss = make_problem()
opt = Opt([{"params": [ps[0]], "lr": lr}, {"params": [ps[2]], "lr": 3 * lr, **extra}], **KWARGS)
joint = train(opt, ps, loss, 3, which=[0, 2])
for gi, (i, group_kw) in enumerate([(0, {"lr": lr}), (2, {"lr": 3 * lr, **extra})]):
    qs, qloss = make_problem()
    alone = train(Opt([qs[i]], **{**KWARGS, **group_kw}), qs, qloss, 3, which=[i])
    for k in range(3):
        if not (joint[k][i].isfinite().all() and alone[k][i].isfinite().all()):
            break  # compared up to the last finite step
        d = (joint[k][i].double() - alone[k][i].double()).abs().max().item()
        print(f"group {gi} ({group_kw}) step {k + 1}: max |dx| vs its own optimizer = {d:.3g}")
        assert d == 0, f"P6: param group {gi} differs from the same parameter under its own optimizer"
