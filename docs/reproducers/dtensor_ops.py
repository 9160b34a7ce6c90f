"""Standalone: the DTensor operations behind the FSDP2 (P18) findings, each on its own (2 gloo ranks, CPU).

Imports only torch and torch.distributed. Each line prints the pattern an optimizer uses, and what
DTensor does with it in this torch release: "ok" (and whether it equals the one-process value) or the
exception. A parameter under FSDP2 is a DTensor sharded on dim 0 (``Shard(0)``); 6 rows split 3 + 3,
3 rows split 2 + 1 (uneven).

    python dtensor_ops.py
"""

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def rank_main(rank, port):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    mesh = init_device_mesh("cpu", (2,))
    g = torch.Generator().manual_seed(0)
    even = torch.randn(6, 4, generator=g, dtype=torch.float64)
    uneven = torch.randn(3, 6, generator=g, dtype=torch.float64)
    d_even, d_uneven = (distribute_tensor(t, mesh, [Shard(0)]) for t in (even, uneven))

    def full(x):
        return x.full_tensor() if hasattr(x, "full_tensor") else x

    cases = [
        # (who does this, the expression, the one-process value or None)
        ("Lamb (pytorch_optimizer): weight_norm = torch.linalg.norm(p).clamp_(min=0, max=10)",
         lambda: torch.linalg.norm(d_even).clamp_(min=0, max=10), torch.linalg.norm(even).clamp(0, 10)),
        ("  the same out of place: torch.linalg.norm(p).clamp(min=0, max=10)",
         lambda: torch.linalg.norm(d_even).clamp(min=0, max=10), torch.linalg.norm(even).clamp(0, 10)),
        ("Adafactor (torch.optim, for-loop): torch.norm(grad, dim=-2, keepdim=True).square_()",
         lambda: torch.norm(d_even, dim=-2, keepdim=True).square_(), torch.norm(even, dim=-2, keepdim=True) ** 2),
        ("Rprop (torch.optim, foreach): torch._foreach_copy_([prev], [grad])",
         lambda: torch._foreach_copy_([torch.zeros_like(d_even)], [d_even]), None),
        ("Rprop (torch.optim, for-loop): sign[sign.gt(0)] = etaplus",
         lambda: d_even.sign().__setitem__(d_even.sign().gt(0), 1.2), None),
        ("MADGRAD (pytorch_optimizer, foreach): torch._foreach_addcdiv(x0s, sums, rms, value=-1)",
         lambda: torch._foreach_addcdiv([d_even], [d_even], [d_even.abs() + 1], value=-1.0), None),
        ("Prodigy (pytorch_optimizer, for-loop): d_numerator.add_(torch.dot(g.flatten(), x.flatten()))",
         lambda: torch.tensor(0.0, dtype=torch.float64).add_(torch.dot(d_even.flatten(), d_even.flatten())), None),
        ("Prodigy (foreach) and LBFGS: an unevenly sharded parameter's .flatten() / .view(-1)",
         lambda: d_uneven.flatten(), uneven.flatten()),
        ("  an evenly sharded one's: .view(-1)", lambda: d_even.view(-1), even.view(-1)),
    ]
    for who, fn, want in cases:
        try:
            got = fn()
            text = "ok"
            if want is not None and torch.is_tensor(got):
                text += f", equals one process: {torch.allclose(full(got), want, rtol=1e-12, atol=0)}"
        except Exception as exc:  # noqa: BLE001 - what DTensor does is the point
            msg = " ".join(str(exc).split())
            text = f"{type(exc).__name__}: {msg[:160] or '(no message)'}"
        if rank == 0:
            print(f"{who}\n    -> {text}")
    dist.destroy_process_group()


if __name__ == "__main__":
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(rank_main, args=(port,), nprocs=2, start_method="spawn")
