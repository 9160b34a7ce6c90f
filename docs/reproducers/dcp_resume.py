"""Standalone reproducer: resume an optimizer from a torch.distributed.checkpoint (one process).

Imports only torch, torch.distributed.checkpoint and the optimizer under test (``module:Class``).
Takes 2 steps, saves model and optimizer with ``get_state_dict`` + ``dcp.save``, loads them into a
fresh model and optimizer with ``dcp.load`` + ``set_state_dict``, takes 2 more steps, and compares
with the run that was not interrupted (bit for bit). Prints the state entries whose dtype changed
through the checkpoint, and the max |difference| per step, or the exception.

    python dcp_resume.py torch.optim:NAdam             # float64: differs by ~1e-11 (mu_product)
    python dcp_resume.py pytorch_optimizer:MADGRAD     # KeyError 'k' in get_state_dict
"""

import argparse
import importlib
import tempfile
import traceback
import warnings

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict


def build(seed, dtype):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6, dtype=dtype), nn.Tanh(), nn.Linear(6, 3, dtype=dtype))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_((torch.rand(p.shape, generator=g, dtype=torch.float64) - 0.5).to(dtype))
    return model


def steps(model, opt, n, dtype):
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(8, 4, generator=g, dtype=dtype), torch.randn(8, 3, generator=g, dtype=dtype)
    out = []
    for _ in range(n):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        out.append([p.detach().clone() for p in model.parameters()])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("optimizer", help="module:Class, e.g. torch.optim:NAdam")
    ap.add_argument("--dtype", default="float64")
    args = ap.parse_args()
    module, _, name = args.optimizer.partition(":")
    cls = getattr(importlib.import_module(module), name)
    dtype = getattr(torch, args.dtype)
    warnings.simplefilter("ignore", UserWarning)  # "assuming the intent is to save in a single process"

    ref_model = build(0, dtype)
    ref = steps(ref_model, cls(ref_model.parameters(), lr=0.01), 4, dtype)

    model = build(0, dtype)
    opt = cls(model.parameters(), lr=0.01)
    steps(model, opt, 2, dtype)
    before = {k: v.dtype for st in opt.state.values() if isinstance(st, dict) for k, v in st.items() if torch.is_tensor(v)}
    path = tempfile.mkdtemp(prefix="dcp-resume-")
    try:
        msd, osd = get_state_dict(model, opt)
        dcp.save({"model": msd, "optim": osd}, checkpoint_id=path, no_dist=True)
        model2 = build(1, dtype)
        opt2 = cls(model2.parameters(), lr=0.01)
        msd, osd = get_state_dict(model2, opt2)
        state = {"model": msd, "optim": osd}
        dcp.load(state, checkpoint_id=path, no_dist=True)
        set_state_dict(model2, opt2, model_state_dict=state["model"], optim_state_dict=state["optim"])
    except BaseException as exc:  # noqa: BLE001 - DCP raises CheckpointException, a BaseException
        print(f"checkpoint round trip raised {type(exc).__name__}: {exc}")
        print("  " + "\n  ".join(f"{f.filename}:{f.lineno} {f.line}" for f in traceback.extract_tb(exc.__traceback__)[-3:]))
        return
    after = {k: v.dtype for st in opt2.state.values() if isinstance(st, dict) for k, v in st.items() if torch.is_tensor(v)}
    changed = {k: f"{before[k]} -> {after.get(k)}" for k in before if before[k] != after.get(k)}
    print(f"state dtypes changed by the checkpoint: {changed or 'none'}")
    resumed = steps(model2, opt2, 2, dtype)
    for k, (a, b) in enumerate(zip(ref[2:], resumed), start=3):
        print(f"step {k}: max |resumed - uninterrupted| = {max(float((x - y).abs().max()) for x, y in zip(a, b)):.3g}")


if __name__ == "__main__":
    main()
