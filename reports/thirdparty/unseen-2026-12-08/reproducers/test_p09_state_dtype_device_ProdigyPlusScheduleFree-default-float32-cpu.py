"""optbench reproducer for P9: P9 state dtype and device: ProdigyPlusScheduleFree (default) float32 cpu: state['p0'] of parameter 0 (shape (1,), a statistic, not a counter: it holds 1.59375) is bfloat16, the param float32, and no constructor argument declares a state dtype: the update computed from it has bfloat16 precision (create it in the param's dtype, e.g. torch.zeros((), dtype=p.dtype, device=p.device), or take a state_dtype argument). If this is by design: declare it with the exemption below (exit code 0 once declared)

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from prodigyplus import ProdigyPlusScheduleFree
Opt = ProdigyPlusScheduleFree

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

DECLARED = set()  # state dtypes the constructor's dtype arguments declare
ps, loss = make_problem()
opt = Opt(ps, **KWARGS)
train(opt, ps, loss, 2)


def tensors(state, label="state"):  # every tensor of the state, however nested (state[p][0]['exp_avg'])
    if torch.is_tensor(state):
        yield label, state
    elif isinstance(state, dict):
        for k, v in state.items():
            yield from tensors(v, f"{label}[{k!r}]")
    elif isinstance(state, (list, tuple)):
        for j, v in enumerate(state):
            yield from tensors(v, f"{label}[{j}]")


for i, p in enumerate(ps):
    state = list(tensors(opt.state[p]))
    # integer state shaped like the param: moments kept quantized by design, their scales part of that format
    quantized = any(v.shape == p.shape and not v.dtype.is_floating_point and v.dtype != torch.bool for _, v in state)
    for label, val in state:
        if val.shape == p.shape and (val.dtype.is_floating_point or val.device != p.device):
            print(f"param {i} {label}: {val.dtype} on {val.device} (param: {p.dtype} on {p.device})")
            assert val.device == p.device, "P9: state on another device than its param"
            assert val.dtype == p.dtype or val.dtype in DECLARED, "P9: state in another dtype than its param, undeclared"
        elif (not quantized and val.dtype.is_floating_point and p.dtype.is_floating_point and val.dtype not in DECLARED
              and torch.finfo(val.dtype).bits < torch.finfo(p.dtype).bits):
            # state of another shape (a per-layer statistic) of lower precision: fine for a counter (whole numbers)
            whole = torch.equal(val, val.round())
            print(f"param {i} {label}: {val.dtype}, shape {tuple(val.shape)}, {'a counter' if whole else 'a statistic'}"
                  f" (param: {p.dtype})")
            assert whole, "P9: a statistic kept in lower precision than its param, undeclared"
