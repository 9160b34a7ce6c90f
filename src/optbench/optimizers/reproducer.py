"""Standalone reproducers: for a failed property, a short script that imports only torch and the
optimizer under test, rebuilds the same problem, and shows the violation when run (it prints the
measured values and ends with a failing ``assert``). A maintainer can paste it into an upstream issue.

The contract's problem (``contract.Problem``) is written out inline: three 2-D parameters, seeded
uniform starts, and the separable loss sum a*(x - c)^2 + (x - c)^4/4. P1's reproducer writes the
target's expression as torch code (sympy's TorchPrinter) and runs the failing start at the failing lr.
Where the optimizer cannot be imported by name (a lambda, a local class), there is no reproducer.

One job above 500 lines: turning a failure into a script, with one template per property.
"""

from __future__ import annotations

import ast
import importlib
import string
import textwrap
from typing import Any

import torch

from ..devices import dtype_name
from ..spec import parse_spec
from .info import impl_kwargs

_PROBLEM = '''
DEVICE, DTYPE = {device!r}, torch.{dtype}
SHAPES = [(3, 2), (3, 2), (2, 4)]
KWARGS = {kwargs}  # how optbench constructed it


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
            x = {view} - c[i] - shift
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
{step}
        if modes:
            opt.eval()
        xs.append([p.detach().clone() for p in ps])
        if modes:
            opt.train()
    return xs


def max_diff(a, b):
    return max((x.double() - y.double()).abs().max().item() for x, y in zip(a, b))
'''

_STEP = {False: "        opt.step()",
         True: ("        def closure():\n            with torch.enable_grad():  # step() may call it under no_grad\n"
                "                opt.zero_grad()\n                v = loss(**loss_kw)\n"
                "                v.backward()\n            return v\n\n        opt.step(closure)")}

# Property bodies (string.Template: $name is filled in). $cmp compares two lists of tensors (bit for bit on
# CPU, to tolerance elsewhere).
_BODIES: dict[str, str] = {
    "P2": '''
ps, loss = make_problem()
q, qloss = make_problem(dtype=torch.float64)  # the loss in float64 resolves a small step in any dtype


def value(xs):
    with torch.no_grad():
        for dst, src in zip(q, xs):
            dst.copy_(src.double())
        return qloss().item()


opt = Opt(ps, **KWARGS)
for k in range(1, 4):  # a first step that only initialises state (x unchanged) is allowed; the first that moves is judged
    x0 = [p.detach().clone() for p in ps]
    g = torch.autograd.grad(loss(), ps)
    (x1,) = train(opt, ps, loss, 1)
    if all(torch.equal(a, b) for a, b in zip(x0, x1)):
        print(f"step {k}: no parameter moved")
        continue
    inner = sum(((b - a).double() * gg.double()).sum() for a, b, gg in zip(x0, x1, g)).item()
    before, after = value(x0), value(x1)
    print(f"step {k}, the first that moves: <dx, grad> = {inner:.3g} (a descent step has < 0); loss {before:.10g} -> {after:.10g}")
    assert inner < 0 and after < before, "P2: the first step that moves does not descend"
    break
else:
    raise AssertionError("P2: no parameter moved in 3 steps although the gradient is non-zero")
''',
    "P3": '''
ps, loss = make_problem()
x0 = [p.detach().clone() for p in ps]
$p3_make
xs = train(opt, ps, loss, 3)
for k, x in enumerate(xs, 1):
    print(f"step {k}: max |dx| = {max_diff(x, x0):.3g} (lr = 0 must leave x unchanged)")
    assert all(torch.equal(a, b) for a, b in zip(x, x0)), f"P3: lr = 0 moved the parameters at step {k}"
''',
    "P4": '''
ps, loss = make_problem()
opt = Opt(ps, **KWARGS)
train(opt, ps, loss, 3)  # builds state for every parameter
frozen = ps[1].detach().clone()
train(opt, ps, loss, 2, which=[0, 2])  # zero_grad sets every .grad to None; the loss omits ps[1]
print(f"ps[1].grad is {ps[1].grad}; max |dx| of the frozen parameter = {(ps[1].detach() - frozen).abs().max().item():.3g}")
assert torch.equal(ps[1].detach(), frozen), "P4: a parameter whose .grad is None was changed by step()"
''',
    "P5": '''
ps, loss = make_problem()
opt = Opt(ps, **KWARGS)
for step in range(1, 4):
    opt.zero_grad()
    loss().backward()
    grads = [p.grad for p in ps]
    saved = [p.grad.detach().clone() for p in ps]
$step1
    for i, (p, g) in enumerate(zip(ps, grads)):
        print(f"step {step}: param {i} .grad is {'None' if p.grad is None else 'the same tensor' if p.grad is g else 'another tensor'}")
        assert p.grad is not None, f"P5: step {step} set param {i}'s .grad to None"
        assert p.grad is g, f"P5: step {step} replaced param {i}'s .grad with another tensor"
    print(f"step {step}: max |d grad| = {max_diff([p.grad for p in ps], saved):.3g}")
    assert all(torch.equal(p.grad, s) for p, s in zip(ps, saved)), f"P5: step {step} modified p.grad in place"
''',
    "P6": '''
lr = KWARGS.get("lr", 1e-2)
extra = {"weight_decay": 0.05} if "weight_decay" in KWARGS else {}
ps, loss = make_problem()
opt = Opt([{"params": [ps[0]], "lr": lr}, {"params": [ps[2]], "lr": 3 * lr, **extra}], **KWARGS)
joint = train(opt, ps, loss, $coupling_steps, which=[0, 2])
for gi, (i, group_kw) in enumerate([(0, {"lr": lr}), (2, {"lr": 3 * lr, **extra})]):
    qs, qloss = make_problem()
    alone = train(Opt([qs[i]], **{**KWARGS, **group_kw}), qs, qloss, $coupling_steps, which=[i])
    for k in range($coupling_steps):
        if not (joint[k][i].isfinite().all() and alone[k][i].isfinite().all()):
            break  # compared up to the last finite step
        d = (joint[k][i].double() - alone[k][i].double()).abs().max().item()
        print(f"group {gi} ({group_kw}) step {k + 1}: max |dx| vs its own optimizer = {d:.3g}")
        assert $cmp1, f"P6: param group {gi} differs from the same parameter under its own optimizer"
''',
    "P7": '''
ps, loss = make_problem()
joint = train(Opt(ps, **KWARGS), ps, loss, $coupling_steps)
for i in range(3):
    qs, qloss = make_problem()
    alone = train(Opt([qs[i]], **KWARGS), qs, qloss, $coupling_steps, which=[i])
    for k in range($coupling_steps):
        if not (joint[k][i].isfinite().all() and alone[k][i].isfinite().all()):
            break  # compared up to the last finite step
        d = (joint[k][i].double() - alone[k][i].double()).abs().max().item()
        print(f"parameter {i} step {k + 1}: max |dx| joint vs alone = {d:.3g}")
        assert $cmp1, f"P7: parameter {i} optimized jointly differs from optimizing it alone"
''',
    "P8": '''
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
if $how_repr == "state_dict":
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
    print(f"step {3 + j}: max |dx| resumed ($how) vs uninterrupted = {d:.3g}")
    assert $cmp(resumed[j], reference[2 + j]), "P8: the resumed run differs from the uninterrupted one"
''',
    "P9": '''
DECLARED = $declared  # state dtypes the constructor's dtype arguments declare
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
''',
    "root": '''
ps, loss = make_problem()
train(Opt(ps, **KWARGS), ps, loss, $steps)  # raises inside the optimizer
print("the plain run did not raise")
assert False, "the plain run did not raise"
''',
    "P10": '''
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
''',
    "P11": '''
ps, loss = make_problem()
t_min = train(Opt(ps, **KWARGS), ps, loss, 3)
qs, qloss = make_problem()
t_max = train(Opt(qs, **{**KWARGS, "maximize": True}), qs, qloss, 3, sign=-1.0)
for k in range(3):
    d = max_diff(t_min[k], t_max[k])
    print(f"step {k + 1}: max |dx| of maximize=True on -f vs minimizing f = {d:.3g}")
    assert $cmp(t_min[k], t_max[k]), "P11: maximize=True on -f differs from minimizing f"
''',
    "P12": '''
ps, _ = make_problem()
x0 = [p.detach().clone() for p in ps]
opt = Opt(ps, **{**KWARGS, "weight_decay": 0.1})
for _ in range(3):
    opt.zero_grad()
    sum((p * 0).sum() for p in ps).backward()  # a zero gradient: only weight decay acts
$step0
n0 = sum((x.double() ** 2).sum() for x in x0).sqrt().item()
n1 = sum((p.detach().double() ** 2).sum() for p in ps).sqrt().item()
grew = max((p.detach().abs() - x.abs()).max().item() for p, x in zip(ps, x0))
print(f"|x| {n0:.6g} -> {n1:.6g}; largest growth of any |x_i| = {grew:.3g}")
assert n1 < n0 and grew <= $grow_tol, "P12: weight decay with a zero gradient did not shrink the parameters"
''',
    "P13": '''
SHIFT = 3.0
ps, loss = make_problem()
base = train(Opt(ps, **KWARGS), ps, loss, 3)
qs, qloss = make_problem(shift=SHIFT)
shifted = train(Opt(qs, **KWARGS), qs, qloss, 3)
eps = torch.finfo(DTYPE).eps
for k in range(3):
    d = max_diff([x - SHIFT for x in shifted[k]], base[k])
    tol = 1e3 * eps * (SHIFT + 2.0) * (k + 1)  # rounding at the shifted magnitude
    print(f"step {k + 1}: max |dx| of the shifted run, shifted back, vs the base run = {d:.3g} (tol {tol:.1e})")
    assert d <= tol, "P13: minimizing f(x - s) from x0 + s is not the shifted trajectory"
''',
    "P14": '''
ps, loss = make_problem()
contiguous = train(Opt(ps, **KWARGS), ps, loss, 3)
qs, qloss = make_problem(noncontiguous=True)
strided = train(Opt(qs, **KWARGS), qs, qloss, 3)
for k in range(3):
    d = max_diff(contiguous[k], strided[k])
    scale = 1 + max(x.abs().max().item() for x in contiguous[k])
    print(f"step {k + 1}: max |dx| non-contiguous vs contiguous = {d:.3g}")
    assert d <= $rtol * scale, "P14: non-contiguous parameters give a different result"
''',
    "P15": '''
OTHER = $other_kwargs
ps, loss = make_problem($other_dtype_arg)
a = train(Opt(ps, **KWARGS), ps, loss, 5)
qs, qloss = make_problem($dtype_arg)
b = train(Opt(qs, **{**KWARGS, **OTHER}), qs, qloss, 5)
for k in range(5):
    d = max_diff(a[k], b[k])
    tol = $p15_tol
    print(f"step {k + 1}: max |dx| $a_name vs $b_name = {d:.3g} (tol {tol:.1e})")
    assert d <= tol, "P15: $a_name and $b_name disagree"
''',
    "P16": '''
for set_to_none in (True, False):
    ps, loss = make_problem()
    opt = Opt(ps, **KWARGS)
    train(opt, ps, loss, 1)
    opt.zero_grad(set_to_none=set_to_none)
    for i, p in enumerate(ps):
        g = p.grad
        size = 0.0 if g is None else g.abs().max().item()
        print(f"zero_grad(set_to_none={set_to_none}): param {i} grad max |g| = {size}")
        assert size == 0.0, "P16: zero_grad() left a nonzero gradient"
''',
    "P17": '''
ps, loss = make_problem()
a = train(Opt(ps, **KWARGS), ps, loss, 5)
qs, qloss = make_problem()
b = train(Opt(qs, **KWARGS), qs, qloss, 5)
for k in range(5):
    print(f"step {k + 1}: max |dx| between two identical runs = {max_diff(a[k], b[k]):.3g}")
    assert $cmp(a[k], b[k]), "P17: two identical runs differ"
''',
}


def _opt_import(info: Any) -> str | None:
    """``import`` lines that bind ``Opt`` to the optimizer, or None when it has no importable name."""
    if info.user and info.source:
        try:
            spec = parse_spec(info.source, option="--optimizer")
            module, attr = spec.module, spec.attr
        except Exception:  # noqa: BLE001 - fall back to the object's own name below
            module = attr = None
    else:
        module = attr = None
    if module is None:
        obj = info.factory
        module, attr = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
        if not module or "<" in attr:
            return None
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception:  # noqa: BLE001
        return None
    if module == "torch" or module.startswith("torch."):
        return f"Opt = {module}.{attr}" if module != "torch" else f"Opt = torch.{attr}"
    head, _, rest = attr.partition(".")
    line = f"from {module} import {head}"
    return line + (f"\nOpt = {head}.{rest}" if rest else f"\nOpt = {head}")


def _literal(value: Any) -> bool:
    try:
        return ast.literal_eval(repr(value)) == value
    except Exception:  # noqa: BLE001
        return False


def _kwargs(case: Any, **overrides: Any) -> dict[str, Any] | None:
    info, cfg = case.info, case.config
    kw = {**dict(info.extra_kwargs), **dict(cfg.kwargs), **impl_kwargs(case.impl), **case.kwargs(**overrides)}
    return kw if all(_literal(v) for v in kw.values()) else None


def _fmt_kwargs(kw: dict[str, Any]) -> str:
    return "dict(" + ", ".join(f"{k}={v!r}" for k, v in kw.items()) + ")"


def _header(case: Any, kw: dict[str, Any], prop: str, message: str, *, problem: bool = True) -> str | None:
    imp = _opt_import(case.info)
    if imp is None:
        return None
    info = case.info
    view = "torch.nn.functional.embedding(torch.arange(ps[i].shape[0], device=DEVICE), ps[i], sparse=True)" \
        if info.sparse_grad else "ps[i]"
    if problem:
        setup = _PROBLEM.format(device=case.device, dtype=dtype_name(case.dtype), kwargs=_fmt_kwargs(kw), view=view,
                                step=_STEP[bool(info.closure)])
    else:
        setup = (f"\nDEVICE, DTYPE = {case.device!r}, torch.{dtype_name(case.dtype)}\n"
                 f"KWARGS = {_fmt_kwargs(kw)}  # how optbench constructed it\n\n")
    note = " ".join(message.split())
    where = "" if imp.startswith("Opt = torch.") else (" from a folder where the optimizer's module imports (e.g. "
                                                        "PYTHONPATH=. python this_file.py)")
    return (f'"""optbench reproducer for {prop}: {note}\n\nRun it with `python this_file.py`{where}: it prints what it '
            f'measures and fails with AssertionError where the property is violated."""\n\nimport torch\n\n{imp}\n'
            f"{setup}")


def _contract_body(prop: str, case: Any, details: dict[str, Any]) -> str | None:
    key = "root" if details.get("kind") == "root" else prop.split(".")[0].split(":")[0]
    body = _BODIES.get(key)
    if body is None:
        return None
    exact = case.device == "cpu"
    from .contract import rel_tol

    rtol = rel_tol(case.dtype)
    cmp = "(lambda a, b: all(torch.equal(x, y) for x, y in zip(a, b)))" if exact else \
        f"(lambda a, b: max_diff(a, b) <= {rtol:g} * (1 + max(x.abs().max().item() for x in b)))"
    cmp1 = "d == 0" if exact else f"d <= {rtol:g} * (1 + joint[k][i].abs().max().item())"
    how = details.get("how", "state_dict")
    from .problem import declared_dtypes

    declared = "{" + ", ".join(f"torch.{dtype_name(d)}" for d in sorted(set(declared_dtypes(case).values()), key=str)) + "}"
    fields: dict[str, Any] = dict(cmp=cmp, cmp1=cmp1, rtol=f"{rtol:g}", grow_tol=f"{rtol * 10:g}", how=how, how_repr=repr(how),
                                  declared=declared if declared != "{}" else "set()", steps=details.get("steps", 5),
                                  coupling_steps=details.get("steps", 3),  # P6, P7
                                  step1=textwrap.indent(textwrap.dedent(_STEP[bool(case.info.closure)]).strip("\n")
                                                        .replace("loss(**loss_kw)", "loss()"), "    "),
                                  step0=textwrap.indent(_STEP[False].strip(), "    "))
    if key == "P3":
        if "constructor" in str(details.get("how", "constructor")) and "after construction" not in str(details.get("how", "")):
            fields["p3_make"] = 'opt = Opt(ps, **{**KWARGS, "lr": 0.0})'
        else:
            fields["p3_make"] = ("opt = Opt(ps, **KWARGS)  # the constructor refuses lr=0\nfor group in opt.param_groups:\n"
                                 "    group['lr'] = 0.0  # as a warmup or annealing scheduler does")
    if key == "P15":
        other = details.get("other")
        if other in ("float32",):
            fields.update(other_kwargs="{}", other_dtype_arg="torch.float64", dtype_arg="torch.float32",
                          a_name="float64", b_name="float32",
                          p15_tol="1e3 * torch.finfo(torch.float32).eps * (k + 1) * (1 + max(x.abs().max().item() for x in a[k]))")
        else:
            fields.update(other_kwargs=repr(impl_kwargs(str(other))), other_dtype_arg="", dtype_arg="",
                          a_name=case.impl, b_name=str(other),
                          p15_tol=f"{rtol:g} * (1 + max(x.abs().max().item() for x in a[k]))")
    try:
        return string.Template(body).substitute(fields)
    except (KeyError, ValueError):
        return None


def _p1_body(case: Any, details: dict[str, Any]) -> str | None:
    from ..catalogue import get_target
    from sympy.printing.pytorch import TorchPrinter

    target = get_target(details["target"])
    names = [str(v) for v in target.variables]
    expr = TorchPrinter().doprint(target.expr)
    start = [float(v) for v in details["start"]]
    x_star = details["x_star"]
    from .tolerance import tolerance

    tol_x, tol_f, _ = tolerance(case.info, case.dtype)
    f_star = details.get("f_star")
    f_star = float(target.f_star) if f_star is None else float(f_star)
    wd = float(details.get("weight_decay") or 0.0)
    sched = details.get("schedule")
    lines = [
        f"def f({', '.join(names)}):",
        f"    return {expr}",
        "",
        "",
        f"x = torch.tensor({start!r}, dtype=DTYPE, device=DEVICE, requires_grad=True)",
        (f"opt = Opt([x], **{{**KWARGS, 'lr': {details['lr']!r}" if details["lr"] is not None else
         "opt = Opt([x], **{**{k: v for k, v in KWARGS.items() if k != 'lr'}")  # no lr hyperparameter: none given
        + (f", 'weight_decay': {wd!r}" if wd else "") + "})",
    ]
    if sched:
        name, _, args = str(sched).partition("(")
        lines.append(f"sched = torch.optim.lr_scheduler.{name}(opt, {args}")
    lines += [
        "if callable(getattr(opt, 'train', None)) and callable(getattr(opt, 'eval', None)):",
        "    opt.train()  # train()/eval() modes: step in train mode",
        f"for epoch in range({int(details['epochs'])}):",
        "    opt.zero_grad()",
        "    value = f(*x)",
        "    value.backward()",
    ]
    if case.info.closure:
        lines += ["", "    def closure():", "        with torch.enable_grad():  # step() may call it under no_grad",
                  "            opt.zero_grad()", "            v = f(*x)", "            v.backward()",
                  "        return v", "", "    opt.step(closure)"]
    else:
        lines.append("    opt.step()")
    if sched:
        lines.append("    sched.step()")
    lines += [
        "if callable(getattr(opt, 'train', None)) and callable(getattr(opt, 'eval', None)):",
        "    opt.eval()  # read x as the method returns it",
        f"x_star = torch.tensor({x_star!r}, dtype=torch.float64)",
        "xf = x.detach().double().cpu()",
        "dist = (xf - x_star).norm(dim=1).min().item()",
        f"gap = (f(*xf){' + 0.5 * ' + repr(wd) + ' * (xf * xf).sum()' if wd else ''}).item() - {f_star!r}",
        f"print(f'after {int(details['epochs'])} epochs from {start}: x = {{xf.tolist()}}, |x - x*| = {{dist:.3g}} "
        f"(tol {tol_x:g}), f - f* = {{gap:.3g}} (tol {tol_f:g})')",
        f"assert dist <= {tol_x!r} and gap <= {tol_f!r}, 'P1: did not converge to the exact minimum of {target.name}'",
    ]
    return "\n".join(lines) + "\n"


def script(failure: Any, case: Any) -> str | None:
    """The reproducer for ``failure`` (a PropertyFailure) on ``case``, or None when none can be written."""
    details = dict(getattr(failure, "details", {}) or {})
    prop = failure.prop
    if prop.split(".")[0].split(":")[0] == "P1":
        if details.get("kind") != "converge":
            return None
        kw = _kwargs(case)
        header = _header(case, kw, prop, str(failure), problem=False) if kw is not None else None
        body = _p1_body(case, details) if header else None
    else:
        # the check's own constructor overrides (P5 with weight decay on), and P7's second look's lr
        overrides = {**dict(details.get("overrides") or {}),
                     **({"lr": details["lr"]} if details.get("lr") is not None else {})}
        kw = _kwargs(case, **overrides)
        header = _header(case, kw, prop, str(failure)) if kw is not None else None
        body = _contract_body(prop, case, details) if header else None
    if not header or not body:
        return None
    return header + "\n" + body.lstrip("\n")
