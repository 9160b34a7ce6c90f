"""Standalone reproducer: an optimizer under FSDP2 (fully_shard, 2 gloo ranks on CPU) against one process.

Imports only torch, torch.distributed and the optimizer under test (``module:Class``). Each rank trains
the same MLP (4 -> 6 -> 3, tanh) on its own micro-batch; the one-process run averages the two
micro-batch gradients the way FSDP2's reduce-scatter does (g0/2 + g1/2), so an elementwise optimizer
must match bit for bit. Prints, per step, the max |difference| of every parameter, or the exception
that step() raised under FSDP2 (op and where).

    python fsdp2_step.py torch.optim:Adam                 # 0.0 everywhere
    python fsdp2_step.py torch.optim:Muon --dtype float32 --no-bias
    python fsdp2_step.py pytorch_optimizer:Lamb --foreach 0
"""

import argparse
import importlib
import os
import socket
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn


def build(dtype, bias, seed=0):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6, bias=bias, dtype=dtype), nn.Tanh(), nn.Linear(6, 3, bias=bias, dtype=dtype))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_((torch.rand(p.shape, generator=g, dtype=torch.float64) - 0.5).to(dtype))
    return model


def batch(rank, dtype):
    g = torch.Generator().manual_seed(100 + rank)
    return torch.randn(4, 4, generator=g, dtype=torch.float64).to(dtype), \
        torch.randn(4, 3, generator=g, dtype=torch.float64).to(dtype)


def make_opt(args, params):
    module, _, name = args.optimizer.partition(":")
    cls = getattr(importlib.import_module(module), name)
    kw = {"lr": args.lr}
    if args.foreach is not None:
        kw["foreach"] = bool(args.foreach)
    return cls(params, **kw)


def one_process(args, dtype):
    model = build(dtype, not args.no_bias)
    params = list(model.parameters())
    opt = make_opt(args, params)
    traj = []
    for _ in range(args.steps):
        def closure():
            opt.zero_grad()
            grads, loss = None, 0.0
            with torch.enable_grad():
                for r in range(2):
                    x, y = batch(r, dtype)
                    value = ((model(x) - y) ** 2).mean()
                    gs = [g / 2 for g in torch.autograd.grad(value, params)]
                    grads = gs if grads is None else [a + b for a, b in zip(grads, gs)]
                    loss = loss + value.detach() / 2
            for p, g in zip(params, grads):
                p.grad = g
            return loss

        if args.closure:
            opt.step(closure)
        else:
            closure()
            opt.step()
        traj.append([p.detach().clone() for p in params])
    return traj


def rank_main(rank, port, args, out):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    dtype = getattr(torch, args.dtype)
    mesh = init_device_mesh("cpu", (2,))
    model = build(dtype, not args.no_bias)
    for layer in (model[0], model[2]):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    params = list(model.parameters())
    opt = make_opt(args, params)
    x, y = batch(rank, dtype)
    traj = []
    try:
        for _ in range(args.steps):
            def closure():
                opt.zero_grad()
                with torch.enable_grad():
                    value = ((model(x) - y) ** 2).mean()
                    value.backward()
                value = value.detach() / 2
                dist.all_reduce(value)  # every rank sees the global loss, as the one-process closure returns
                return value

            if args.closure:
                opt.step(closure)
            else:
                closure()
                opt.step()
            traj.append([p.detach().full_tensor().clone() for p in params])
    except Exception as exc:  # noqa: BLE001 - the finding
        frames = traceback.extract_tb(exc.__traceback__)
        if rank == 0:
            out.put(("raised", f"{type(exc).__name__}: {exc}", [f"{f.filename}:{f.lineno} {f.line}" for f in frames[-6:]]))
        dist.destroy_process_group()
        return
    if rank == 0:
        out.put(("ok", [[t.tolist() for t in s] for s in traj], [n for n, _ in model.named_parameters()]))
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("optimizer", help="module:Class, e.g. torch.optim:Adam")
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--foreach", type=int, choices=(0, 1), default=None)
    ap.add_argument("--no-bias", action="store_true", help="2-D parameters only (Muon)")
    ap.add_argument("--closure", action="store_true", help="step(closure) (LBFGS)")
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.SimpleQueue()
    mp.start_processes(rank_main, args=(port, args, out), nprocs=2, start_method="spawn")
    status, payload, extra = out.get()
    if status == "raised":
        print(f"step() raised under FSDP2: {payload}")
        print("  " + "\n  ".join(extra))
        return
    ref = one_process(args, getattr(torch, args.dtype))
    for k, (a, b) in enumerate(zip(ref, payload), start=1):
        diffs = {n: float((t - torch.tensor(u, dtype=t.dtype)).abs().max()) for n, t, u in zip(extra, a, b)}
        print(f"step {k}: max |FSDP2 - one process| per parameter: {diffs}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
