"""P20: schedulefree 1.4.1 SGDScheduleFree / AdamWScheduleFree resumed through torch.distributed.checkpoint
silently lose their state (one process, no FSDP needed).

A schedule-free optimizer must be in train mode to step, and DCP's get_state_dict initialises a fresh
optimizer by stepping it, so the user calls opt.train() first. train() reads self.state[p] for every param
(a defaultdict), which leaves empty entries; torch's _init_optim_state sees `if optim.state:` true and skips
its initialising step, so the fresh optimizer's state dict holds no 'z' for dcp.load to fill and
set_state_dict restores nothing. The next step re-creates z from the current parameters: the run differs
from the uninterrupted one. optimizer.state_dict()/load_state_dict() resumes bit for bit (P8 passes).
Run: python sf_dcp_resume.py [SGDScheduleFree|AdamWScheduleFree|RAdamScheduleFree [STEPS]]   (AssertionError:
differs after resume; RAdamScheduleFree loses its state too, but its silent first 4 steps hide it: give STEPS=6)
"""
import sys
import tempfile
import warnings

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

import schedulefree

warnings.filterwarnings("ignore")  # DCP warns that no process group is initialised: one process is fine
Opt = getattr(schedulefree, sys.argv[1] if len(sys.argv) > 1 else "SGDScheduleFree")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 2  # steps before the checkpoint and after it
dtype = torch.float64
g = torch.Generator().manual_seed(7)
x, y = torch.randn(8, 4, generator=g, dtype=dtype), torch.randn(8, 3, generator=g, dtype=dtype)


def build():
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6, dtype=dtype), nn.Tanh(), nn.Linear(6, 3, dtype=dtype))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.rand(p.shape, generator=gen, dtype=dtype) - 0.5)
    opt = Opt(model.parameters(), lr=0.01)
    opt.train()
    return model, opt


def steps(model, opt, n):
    for _ in range(n):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()


ref, ref_opt = build()
steps(ref, ref_opt, 2 * N)  # uninterrupted
model, opt = build()
steps(model, opt, N)
with tempfile.TemporaryDirectory() as ckpt:
    msd, osd = get_state_dict(model, opt)
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=ckpt)
    model2, opt2 = build()
    msd2, osd2 = get_state_dict(model2, opt2)
    print("state keys saved:", sorted(next(iter(osd["state"].values()))), "| state keys of the fresh optimizer's "
          "state dict:", sorted(next(iter(osd2["state"].values()), {})))
    sd = {"model": msd2, "optim": osd2}
    dcp.load(sd, checkpoint_id=ckpt)
    set_state_dict(model2, opt2, model_state_dict=sd["model"], optim_state_dict=sd["optim"])
print("state keys after set_state_dict:", sorted(opt2.state[next(model2.parameters())]))
steps(model2, opt2, N)
diff = max((a - b).abs().max().item() for a, b in zip(ref.parameters(), model2.parameters()))
print(f"max |x_resumed - x_uninterrupted| after {N} more steps: {diff:.3g}")
assert diff == 0, "P20: the run resumed through torch.distributed.checkpoint differs from the uninterrupted one"
