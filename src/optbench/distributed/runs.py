"""The runs the checks compare: on the ranks (FSDP2, DDP, ZeRO, checkpoint save/load at world size 2)
and in this process (the one-process reference, checkpoint save/load at world size 1).

Rank functions take a :class:`~optbench.distributed.pool.RankContext` first and are sent to the
pool by reference, so they live at module level. Every call into the code under test (constructing
the optimizer, ``step``, and the ``torch.distributed.checkpoint`` calls that read or restore its
state) runs in a :func:`~optbench.distributed.pool.subject` section: an exception there is a finding
of the optimizer; anything else that raises is optbench's own defect.

A run returns ``{"names": [...], "traj": [[tensor per parameter] per step]}`` with full, unsharded
CPU copies; ``traj[0]`` is the start (for a resumed run: the state right after the load).

Every run starts from the same global RNG seed, on every rank (the common data-parallel convention), so an
optimizer drawing random numbers takes the same draws in each replica and in the one-process reference. A
checkpoint holds each rank's RNG state next to the DCP files (``rng_state_<rank>.pt``, as training
frameworks keep it); a resumed run starts from another seed and restores it after the load.
"""

from __future__ import annotations

import functools
import inspect
import os
import warnings
from typing import Any, Callable

import torch
from torch import nn

from ..optimizers import rng
from ..optimizers.contract import Case
from ..loop import needs_closure
from .model import OTHER_SEED, SEED, batch, build_model, distributed_step, param_names, reference_step, snapshot
from .pool import RankContext, source_files_of, subject

FSDP_WHERE = "under FSDP2 (fully_shard: parameters are DTensors, Shard(0) over 2 ranks)"


def _factory_files(case: Case) -> list[str]:
    f = case.info.factory
    if isinstance(f, type):
        return source_files_of(f)
    try:
        return [inspect.getsourcefile(f) or ""]
    except TypeError:
        return []


def make_optimizer(case: Case, params: Any, where: str) -> tuple[torch.optim.Optimizer, list[str]]:
    with subject(f"constructing the optimizer {where}", _factory_files(case)):
        opt = case.make(params)
    return opt, source_files_of(opt) + _factory_files(case)


def stepper(opt: torch.optim.Optimizer, files: list[str], label: Callable[[], str]) -> Callable[[Any], Any]:
    def step(closure: Any) -> Any:
        with subject(label(), files):
            return opt.step(closure) if closure is not None else opt.step()

    return step


class CaseFactory:
    """``optimizer_class`` for ZeroRedundancyOptimizer: builds the local optimizer through ``case.make``."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.__name__ = case.name

    def __call__(self, params: Any, **kwargs: Any) -> torch.optim.Optimizer:
        return self.case.make(params, **kwargs)


def _seeded(seed: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a run: it starts from the global seed ``seed`` (the same on every rank), on forked generators."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with rng.isolated(seed):
                return fn(*args, **kwargs)

        return run

    return decorate


def _rank_case(ctx: RankContext, case: Case) -> Case:
    return Case(case.info, case.config, case.impl, case.dtype, ctx.device)


_MESHES: dict[tuple[str, int], Any] = {}


def _mesh(ctx: RankContext) -> Any:
    from torch.distributed.device_mesh import init_device_mesh

    key = (ctx.device.split(":")[0], ctx.world_size)
    if key not in _MESHES:
        _MESHES[key] = init_device_mesh(key[0], (ctx.world_size,))
    return _MESHES[key]


def _fsdp_model(ctx: RankContext, case: Case, seed: int) -> nn.Module:
    from torch.distributed.fsdp import fully_shard

    model = build_model(case, seed, ctx.device)
    mesh = _mesh(ctx)
    for layer in model:
        if any(True for _ in layer.parameters()):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _train(ctx: RankContext, case: Case, model: nn.Module, opt: torch.optim.Optimizer, files: list[str], steps: int,
           first: int, where: str, traj: list[list[torch.Tensor]], save_at: int | None = None,
           path: str | None = None) -> None:
    x, y = batch(case, ctx.rank, ctx.device)
    params = [p for p in model.parameters() if p.requires_grad]
    closure = case.info.closure or needs_closure(opt)
    for k in range(first, first + steps):
        distributed_step(model, opt, x, y, ctx.world_size, stepper(opt, files, lambda k=k: f"step {k} {where}"), closure)
        traj.append(snapshot(params))
        if save_at == k and path is not None:
            save(model, opt, files, path, f"at world size {ctx.world_size} after step {k} {where}", no_dist=False)


# ---- on the ranks ---------------------------------------------------------------------------------


@_seeded(rng.SEED)
def fsdp_run(ctx: RankContext, case: Case, steps: int, save_at: int | None = None,
             path: str | None = None) -> dict[str, Any]:
    """P18 (and P20's world-size-2 run): ``steps`` steps under FSDP2; a DCP checkpoint after step ``save_at``."""
    case = _rank_case(ctx, case)
    model = _fsdp_model(ctx, case, SEED)
    params = [p for p in model.parameters() if p.requires_grad]
    opt, files = make_optimizer(case, params, "over DTensor parameters " + FSDP_WHERE)
    traj = [snapshot(params)]
    _train(ctx, case, model, opt, files, steps, 1, FSDP_WHERE, traj, save_at, path)
    return {"names": param_names(model), "traj": traj}


@_seeded(rng.SEED)
def ddp_run(ctx: RankContext, case: Case, steps: int, zero: bool) -> dict[str, Any]:
    """P19: ``steps`` steps under DDP (gradients as bucket views), optionally with ZeroRedundancyOptimizer."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    case = _rank_case(ctx, case)
    model = build_model(case, SEED, ctx.device)
    ids = [ctx.rank] if ctx.device.startswith("cuda") else None
    ddp = DDP(model, device_ids=ids, gradient_as_bucket_view=True)
    params = [p for p in ddp.parameters() if p.requires_grad]
    if zero:
        from torch.distributed.optim import ZeroRedundancyOptimizer

        where = "under DDP with ZeroRedundancyOptimizer (each rank steps its partition of the parameters)"
        with subject(f"ZeroRedundancyOptimizer(optimizer_class={case.name}) construction", _factory_files(case)):
            opt = ZeroRedundancyOptimizer(params, optimizer_class=CaseFactory(case))
        files = source_files_of(opt.optim) + _factory_files(case)
    else:
        where = "under DDP (gradient_as_bucket_view=True)"
        opt, files = make_optimizer(case, params, where)
    traj = [snapshot(params)]
    _train(ctx, case, ddp, opt, files, steps, 1, where, traj)
    return {"names": param_names(model), "traj": traj}


@_seeded(rng.OTHER_SEED)
def fsdp_resume(ctx: RankContext, case: Case, steps: int, first: int, load_path: str,
                resave_path: str | None = None) -> dict[str, Any]:
    """P20 at world size 2: a fresh FSDP2 model and optimizer (another seed) load a checkpoint, optionally save
    it again at once, then take ``steps`` steps numbered from ``first``."""
    case = _rank_case(ctx, case)
    model = _fsdp_model(ctx, case, OTHER_SEED)
    params = [p for p in model.parameters() if p.requires_grad]
    opt, files = make_optimizer(case, params, "over DTensor parameters " + FSDP_WHERE)
    where = f"at world size {ctx.world_size} {FSDP_WHERE}"
    load(model, opt, files, load_path, where, no_dist=False)
    traj = [snapshot(params)]
    if resave_path is not None:
        save(model, opt, files, resave_path, f"{where}, right after the load", no_dist=False)
    _train(ctx, case, model, opt, files, steps, first, FSDP_WHERE, traj)
    return {"names": param_names(model), "traj": traj}


def fsdp_resumes(ctx: RankContext, case: Case, steps: int, first: int,
                 jobs: list[tuple[str, str | None]]) -> list[dict[str, Any]]:
    """Several :func:`fsdp_resume` in one task: ``jobs`` is a list of (load_path, resave_path)."""
    return [fsdp_resume(ctx, case, steps, first, load_path, resave) for load_path, resave in jobs]


# ---- torch.distributed.checkpoint -----------------------------------------------------------------


def save(model: nn.Module, opt: torch.optim.Optimizer, files: list[str], path: str, where: str, no_dist: bool) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    with subject(f"get_state_dict(model, optimizer) {where}", files):
        msd, osd = get_state_dict(model, opt)
    with subject(f"dcp.save of the model and optimizer state {where}", files), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "assuming the intent is to save in a single process"
        dcp.save({"model": msd, "optim": osd}, checkpoint_id=path, no_dist=no_dist)
    torch.save(rng.get_state(), os.path.join(path, f"rng_state_{_rank(no_dist)}.pt"))  # as a training checkpoint


def _rank(no_dist: bool) -> int:
    import torch.distributed as dist

    return 0 if no_dist or not dist.is_initialized() else dist.get_rank()


def _restore_rng(path: str, no_dist: bool) -> None:
    """The global RNG state saved with the checkpoint: this rank's, else rank 0's (a checkpoint of another world
    size); none where the checkpoint holds none."""
    for rank in (_rank(no_dist), 0):
        f = os.path.join(path, f"rng_state_{rank}.pt")
        if os.path.exists(f):
            rng.set_state(torch.load(f, weights_only=False))
            return


def load(model: nn.Module, opt: torch.optim.Optimizer, files: list[str], path: str, where: str, no_dist: bool) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    with subject(f"get_state_dict(model, optimizer) of the fresh optimizer {where} (it initialises the state "
                 f"with one lr=0 step on zero gradients)", files):
        msd, osd = get_state_dict(model, opt)
    state = {"model": msd, "optim": osd}
    with subject(f"dcp.load of the model and optimizer state {where}", files), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dcp.load(state, checkpoint_id=path, no_dist=no_dist)
    with subject(f"set_state_dict(model, optimizer, ...) {where}", files):
        set_state_dict(model, opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    _restore_rng(path, no_dist)


# ---- in this process (world size 1) ---------------------------------------------------------------

ONE = "in one process"


@_seeded(rng.SEED)
def single_run(case: Case, steps: int, world_size: int, save_at: int | None = None,
               path: str | None = None) -> dict[str, Any]:
    """The one-process run every distributed run must equal: ``steps`` steps with the data-parallel gradient
    of ``world_size`` micro-batches; a DCP checkpoint (no process group) after step ``save_at``."""
    model = build_model(case, SEED)
    params = [p for p in model.parameters() if p.requires_grad]
    opt, files = make_optimizer(case, params, ONE)
    traj = [snapshot(params)]
    _single_train(case, model, opt, files, steps, 1, world_size, traj, save_at, path)
    return {"names": param_names(model), "traj": traj}


@_seeded(rng.OTHER_SEED)
def single_resume(case: Case, steps: int, first: int, world_size: int, load_path: str,
                  resave_path: str | None = None) -> dict[str, Any]:
    """P20 at world size 1: a fresh model and optimizer (another seed) load a checkpoint, optionally save it
    again at once, then take ``steps`` steps numbered from ``first``."""
    model = build_model(case, OTHER_SEED)
    params = [p for p in model.parameters() if p.requires_grad]
    opt, files = make_optimizer(case, params, ONE)
    load(model, opt, files, load_path, "at world size 1", no_dist=True)
    traj = [snapshot(params)]
    if resave_path is not None:
        save(model, opt, files, resave_path, "at world size 1, right after the load", no_dist=True)
    _single_train(case, model, opt, files, steps, first, world_size, traj)
    return {"names": param_names(model), "traj": traj}


def _single_train(case: Case, model: nn.Module, opt: torch.optim.Optimizer, files: list[str], steps: int, first: int,
                  world_size: int, traj: list[list[torch.Tensor]], save_at: int | None = None,
                  path: str | None = None) -> None:
    batches = [batch(case, r) for r in range(world_size)]
    params = [p for p in model.parameters() if p.requires_grad]
    closure = case.info.closure or needs_closure(opt)
    for k in range(first, first + steps):
        reference_step(model, opt, batches, stepper(opt, files, lambda k=k: f"step {k} {ONE}"), closure)
        traj.append(snapshot(params))
        if save_at == k and path is not None:
            save(model, opt, files, path, f"at world size 1 after step {k}", no_dist=True)
