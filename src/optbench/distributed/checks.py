"""The distributed properties P18-P20 of the optimizer contract.

P18  FSDP2 parity: ``fully_shard`` on the suite's MLP over 2 ranks (parameters become DTensors,
     ``Shard(0)``) takes the same steps as one process.
P19  data-parallel parity: DDP (``gradient_as_bucket_view=True``), and DDP with
     ``ZeroRedundancyOptimizer(optimizer_class=...)``, each take the same steps as one process.
P20  distributed checkpoint resume: model and optimizer state saved with ``torch.distributed.checkpoint``
     (``get_state_dict``/``set_state_dict``) at world size 2 and loaded at world size 1, and the
     reverse, continue bit for bit like the run that was not interrupted.

"The same steps as one process" is exact: the one-process run averages the micro-batch gradients the
way the data-parallel reduction does (see :mod:`optbench.distributed.model`), so on CPU every
parameter after every step is compared bit for bit. The exception is FSDP2 for an optimizer that does
not declare an elementwise update (``OptimizerInfo.elementwise``): a norm or sum over a sharded tensor
is computed per shard and then reduced, a different order of additions, so it is compared to the
contract's relative tolerance (float64 1e-9, float32 1e-4). On CUDA (NCCL) every comparison uses that
tolerance.

Each check raises :class:`~optbench.optimizers.contract.PropertyFailure` with the first step and
parameter that differ (max |Δ|, the index, and which rank's shard holds it), or the operation of the
optimizer that raised and where; a crash of optbench's own harness propagates as an ordinary
exception. The plan (:func:`optbench.distributed.plan.with_reproducer`) attaches to every such failure
the standalone script of :mod:`optbench.distributed.reproducer`. Nothing here imports pytest.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..loop import OptimizerRaised
from ..optimizers.contract import Case, PropertyFailure, rel_tol
from ..verdict import NotApplicable
from . import runs
from .pool import WORLD_SIZE, RankPool, SubjectRaised, TaskNotSendable, TaskResult, get_pool

STEPS = 3  # P18/P19: every planted and upstream bug known here shows within 2 steps
K_STEPS, N_STEPS = 2, 2  # P20: steps before the checkpoint, steps after it


def backend(case: Case) -> str:
    return "nccl" if case.device.startswith("cuda") else "gloo"


def pool_for(case: Case) -> RankPool:
    return get_pool(backend(case))


# ---- comparison -----------------------------------------------------------------------------------


@dataclass
class Rule:
    """How two runs are compared: bit for bit, or to a relative tolerance with its reason."""

    exact: bool
    rel: float = 0.0
    reason: str = ""

    @property
    def words(self) -> str:
        return "bit for bit" if self.exact else f"to rel. {self.rel:.0e} ({self.reason})"


def exact_rule() -> Rule:
    return Rule(True)


# DDP/ZeRO for an update not declared elementwise (rule_for): a product's rounding at another memory alignment is
# a few ulps per step (Shampoo, planted GramSGD: 1e-16 on values ~0.1 after 3 steps); a statistic that differs
# between the ranks' partitions shows 1e3x more by step 3 (DAdaptSGD under ZeRO: 1.1e-10), which this keeps a FAIL.
# Relative to 1 + max |x|. float64: ~450 ulps; float32: ~80 ulps.
ROUNDING_TOL = {torch.float64: 1e-13, torch.float32: 1e-5}


def rule_for(case: Case, sharded: bool) -> Rule:
    """Bit for bit on CPU for an update declared elementwise; else a tolerance: the contract's rel_tol under FSDP2
    and on other devices, ROUNDING_TOL under DDP and ZeRO.

    Not elementwise under FSDP2: a norm or sum over a sharded parameter is reduced per shard, then across ranks.
    Not elementwise under DDP and ZeRO: a matrix product of the gradient (Shampoo's g gᵀ) rounds differently
    for an input at another memory alignment (CPU BLAS: MKL's kernels at an odd float64 offset), and DDP's
    gradients are views at offsets into its buckets (planted GramSGD: 1.4e-17 at step 3, none with aligned
    copies of the gradients). A gradient kept without a copy (planted GradAlias) still differs by far more."""
    tol = rel_tol(case.dtype)
    if not case.device.startswith("cpu"):
        return Rule(False, tol, f"{case.device}: NCCL and CUDA kernels are not promised bitwise equal to one process")
    if case.info.elementwise is not True:
        if sharded:
            return Rule(False, tol, f"{case.name} does not declare an elementwise update, so a norm or sum over a "
                                    f"sharded parameter is reduced per shard and then across ranks: a different "
                                    f"order of additions")
        return Rule(False, ROUNDING_TOL.get(case.dtype, tol),
                    f"{case.name} does not declare an elementwise update, so a product of the gradient may round "
                    f"differently by a few ulps: CPU BLAS kernels depend on the input's memory alignment, and "
                    f"DDP's gradients are views at offsets into its communication buckets")
    return Rule(True)


@dataclass
class Diff:
    step: int
    name: str
    shape: tuple[int, ...]
    max_abs: float
    index: tuple[int, ...]
    want: float
    got: float

    def rank_of_row(self, world_size: int = WORLD_SIZE) -> int:
        """The rank whose ``Shard(0)`` chunk holds the differing element (torch.chunk's split)."""
        rows = self.shape[0] if self.shape else 1
        chunk = -(-rows // world_size)
        return (self.index[0] // chunk) if self.index else 0

    def text(self, sharded: bool = False) -> str:
        where = f" (in rank {self.rank_of_row()}'s Shard(0) chunk)" if sharded and self.shape else ""
        return (f"step {self.step}, parameter '{self.name}' {list(self.shape)}: max |Δ| = {self.max_abs:.3g} at "
                f"index {list(self.index)}{where}: expected {self.want:.17g}, got {self.got:.17g}")


def first_diff(names: Sequence[str], want: Sequence[Sequence[torch.Tensor]], got: Sequence[Sequence[torch.Tensor]],
               rule: Rule, first_step: int = 0) -> Diff | None:
    """The first snapshot (step ``first_step + k``) and parameter where ``got`` differs from ``want``."""
    for k, (ws, gs) in enumerate(zip(want, got)):
        scale = 1.0 + max((float(w.detach().double().abs().max()) for w in ws if w.numel()), default=0.0)
        for name, w, g in zip(names, ws, gs):
            if w.shape != g.shape:
                return Diff(first_step + k, name, tuple(w.shape), float("inf"), (), float("nan"), float("nan"))
            if rule.exact and torch.equal(w, g):
                continue
            d = (w.double() - g.double()).abs()
            dmax = float(d.max()) if d.numel() else 0.0
            if rule.exact or dmax > rule.rel * scale or dmax != dmax:
                flat = int(torch.nan_to_num(d, nan=float("inf")).argmax())
                idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), w.shape)) if w.dim() else ()
                return Diff(first_step + k, name, tuple(w.shape), dmax, idx, float(w.double()[idx]),
                            float(g.double()[idx]))
    return None


def max_abs(want: Sequence[Sequence[torch.Tensor]], got: Sequence[Sequence[torch.Tensor]]) -> float:
    return max((float((w.double() - g.double()).abs().max()) for ws, gs in zip(want, got) for w, g in zip(ws, gs)
                if w.shape == g.shape and w.numel()), default=0.0)


# ---- exceptions of the code under test --------------------------------------------------------------


def _subject_text(raised: dict[int, SubjectRaised]) -> str:
    ranks = sorted(raised)
    first = raised[ranks[0]]
    same = all(raised[r].what == first.what and raised[r].message == first.message for r in ranks)
    who = f"on rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))}" if same else f"on rank {ranks[0]}"
    return f"{first.what} raised {first.exc_type} {who}: {first.message} (at {first.where})"


_HINTS = {
    "P20": ("torch.distributed.checkpoint reshards DTensor state; a state tensor of a sharded parameter kept as a "
            "plain tensor (e.g. of its local shard) is saved as one replicated tensor, rank 0's"),
}


def _raise_subject(prop: str, case: Case, raised: dict[int, SubjectRaised] | SubjectRaised) -> None:
    if isinstance(raised, SubjectRaised):
        text = f"{raised.what} raised {raised.exc_type}: {raised.message} (at {raised.where})"
    else:
        text = _subject_text(raised)
    first = raised if isinstance(raised, SubjectRaised) else next(iter(raised.values()))
    layout_key = first.message.strip().strip("'\"") in ("state", "param_groups")
    if prop == "P20" and first.exc_type == "KeyError" and "state_dict" in first.what and layout_key:
        # a wrapper's own state_dict() layout (Magma: {'base': AdamW's state_dict, 'magma_state', ...}): DCP reads
        # osd['state'] and osd['param_groups']
        text += (f" (state_dict() does not return torch's layout {{'state': ..., 'param_groups': ...}}, which "
                 f"torch.distributed.checkpoint's get_state_dict reads: a wrapper that nests its base optimizer's "
                 f"state_dict under a key of its own cannot be checkpointed by DCP)")
    elif prop == "P20" and first.exc_type == "KeyError" and "state_dict" in first.what:
        # get_state_dict flattens optimizer.state by parameter: a key of its own (MADGRAD's 'k', EmoFact's 'ema')
        # is not one, whatever the sharding
        text += (f" (optimizer.state holds a key that is not a parameter ({first.message}): "
                 f"torch.distributed.checkpoint's get_state_dict maps state by parameter, at any world size; keep "
                 f"such values in a param group or in the state of a parameter)")
    elif prop == "P20" and "partial placements" in first.message:
        # SGDSaI keeps state['gsnr'] = grad.norm() of a sharded gradient: a pending _NormPartial DTensor
        text += (" (optimizer.state holds a DTensor with a Partial placement: an unreduced norm or sum of a sharded "
                 "gradient, e.g. grad.norm(), stored as state; reduce it before storing it (.full_tensor(), or "
                 ".redistribute(placements=[Replicate()])))")
    elif prop in _HINTS and ("dcp." in first.what or "state_dict" in first.what) and \
            first.where.startswith("torch/distributed/"):
        # DCP or DTensor refused the state; an exception of the optimizer's own code in a step DCP drives (Gravity's
        # ZeroDivisionError at get_state_dict's lr=0 initialising step) has nothing to do with resharding
        text += f" ({_HINTS[prop]})"
    failure = PropertyFailure(prop, case, text)
    failure.cause = (first.exc_type, first.message)  # one root cause, one finding (optimizers.plan.blocked_by_root)
    raise failure from None


def _on_ranks(prop: str, case: Case, fn: Any, *args: Any, what: str) -> list[Any]:
    try:
        result: TaskResult = pool_for(case).run(fn, case, *args, what=f"{prop} {what} for {case.label}")
    except TaskNotSendable as exc:
        raise NotApplicable(f"{case.name} cannot be sent to the rank processes ({exc}); define the optimizer in "
                            f"an importable module (not __main__, not a lambda or a local class)") from None
    if result.subject:
        _raise_subject(prop, case, result.subject)
    return [result.values[r] for r in sorted(result.values)]


def _here(prop: str, case: Case, fn: Any, *args: Any) -> Any:
    try:
        return fn(case, *args)
    except SubjectRaised as exc:
        _raise_subject(prop, case, exc)


def rng_note(case: Case, what: str) -> dict[str, Any]:
    """The trait of an optimizer drawing from the global RNG under data parallelism, as a note (else nothing)."""
    from ..optimizers.contract import rng_use

    use = rng_use(case)
    if use.kind != "global":
        return {}
    return {"note": f"{use.note}; every rank started from the same seed, the common convention: under per-rank seeds "
                    f"its {what} would drift apart (a trait of the method)"}


def _draws_per_shard(case: Case, where: str, d: Diff) -> None:
    """A stochastic optimizer whose sharded run differs from one process: N/A, the draws cannot be the same."""
    from ..optimizers.contract import rng_use

    use = rng_use(case)
    if use.stochastic:
        raise NotApplicable(f"{use.note}; {where}, so it draws its random numbers for other tensors than one process "
                            f"does and the runs cannot be compared (they differ at {d.text()}); data-parallel "
                            f"replicas drawing alike is checked under DDP (P19)")


def _replicas_agree(prop: str, case: Case, results: list[dict[str, Any]], where: str) -> None:
    base = results[0]
    for r, other in enumerate(results[1:], start=1):
        d = first_diff(base["names"], base["traj"], other["traj"], exact_rule())
        if d is not None:
            raise PropertyFailure(prop, case, f"{where}: the replicas on rank 0 and rank {r} diverged at {d.text()} "
                                              f"(every rank applies the same averaged gradient, so the optimizer "
                                              f"must take the same step on each; is there rank-dependent state or "
                                              f"randomness?)")


def _unmoved(prop: str, case: Case, ref: dict[str, Any], steps: int) -> None:
    """N/A where the one-process run never moved in the steps compared (a warm-up that does not update, as
    pytorch-optimizer's RAdam for 5 steps): equal runs would then check nothing. Asked only once the runs agree,
    so a distributed run that moves where one process does not is still a FAIL."""
    traj = ref["traj"]
    if all(torch.equal(w, g) for later in traj[1:] for w, g in zip(traj[0], later)):
        raise NotApplicable(f"{case.name} did not move the parameters in steps 1-{steps} of the one-process run (a "
                            f"warm-up that does not update?), so {prop}'s runs agree without checking anything; "
                            f"{prop} needs an optimizer that moves within {steps} steps")


# ---- P18 ------------------------------------------------------------------------------------------------


def check_p18(case: Case) -> dict[str, Any]:
    """FSDP2 (fully_shard, 2 ranks) takes the same steps as one process."""
    ref = _here("P18", case, runs.single_run, STEPS, WORLD_SIZE)
    got = _on_ranks("P18", case, runs.fsdp_run, STEPS, what="FSDP2 run")[0]
    rule = rule_for(case, sharded=True)
    d = first_diff(ref["names"], ref["traj"], got["traj"], rule)
    if d is not None:
        _draws_per_shard(case, "under FSDP2 each rank steps its own Shard(0) chunk of every parameter", d)
        raise PropertyFailure("P18", case, f"under FSDP2 (fully_shard over 2 ranks; parameters are DTensors, "
                                           f"Shard(0)) the run differs from one process at {d.text(sharded=True)}; "
                                           f"expected equal {rule.words} (is a norm, a sum or a statistic computed "
                                           f"on the local shard, e.g. via .to_local()?)")
    _unmoved("P18", case, ref, STEPS)
    return {"max_abs_diff": max_abs(ref["traj"], got["traj"]), "bitwise": rule.exact, "steps": STEPS,
            **rng_note(case, "shards' random draws")}


# ---- P19 ------------------------------------------------------------------------------------------------


def _check_p19(case: Case, zero: bool) -> dict[str, Any]:
    what = ("DDP (gradient_as_bucket_view=True) with ZeroRedundancyOptimizer(optimizer_class=...)" if zero
            else "DDP (gradient_as_bucket_view=True)")
    ref = _here("P19", case, runs.single_run, STEPS, WORLD_SIZE)
    results = _on_ranks("P19", case, runs.ddp_run, STEPS, zero, what=what)
    _replicas_agree("P19", case, results, f"under {what}")
    rule = rule_for(case, sharded=False)
    d = first_diff(ref["names"], ref["traj"], results[0]["traj"], rule)
    if d is not None:
        if zero:
            _draws_per_shard(case, "under ZeroRedundancyOptimizer each rank's optimizer steps its own partition of "
                                   "the parameters", d)
        hint = ("DDP's gradients are views into its communication buckets, which the next backward overwrites: is "
                "p.grad kept in the state without a copy, or changed in place?")
        if zero:
            _coupled_partition(case, f"under {what} the run differs from one process at {d.text()}; expected equal "
                                     f"{rule.words}")
            hint = (f"each rank steps only its partition of the parameters with its own optimizer instance: does the "
                    f"update depend on other parameters? Or, as under DDP: {hint}")
        raise PropertyFailure("P19", case, f"under {what} the run differs from one process at {d.text()}; expected "
                                   f"equal {rule.words} ({hint})")
    _unmoved("P19", case, ref, STEPS)
    return {"max_abs_diff": max_abs(ref["traj"], results[0]["traj"]), "bitwise": rule.exact, "steps": STEPS,
            **rng_note(case, "replicas")}


def _coupled_partition(case: Case, base: str) -> None:
    """A ZeRO run that differs, where P7 fails on the same case: ZeroRedundancyOptimizer gives each rank's optimizer
    only its partition of the parameters, so an optimizer whose parameters are coupled (a global gradient norm, a
    statistic over every parameter: LAMB's clip, D-Adaptation's d) steps differently, whatever ZeRO does. The FAIL
    names P7's diagnosis and, for a trait, offers P7's stanza (declaring P7 makes this check N/A); else nothing."""
    from ..optimizers.coupling import check_p7

    try:
        check_p7(case)
    except PropertyFailure as p7:
        kind = ("a trait of the method, not a ZeRO fault" if p7.trait else "P7's bug, seen through ZeRO")
        failure = PropertyFailure(
            "P19", case, f"{base}: ZeroRedundancyOptimizer gives each rank's optimizer only its partition of the "
                         f"parameters, and P7 (parameter independence) fails on this case: {p7.reason} ({kind})"
                         + (". A trait: declare P7 with the exemption below, which makes this check N/A (exit code 0 "
                            "once declared)" if p7.trait and p7.stanza else ""),
            offer=False, trait=p7.trait)
        failure.stanza = p7.stanza if p7.trait else None
        raise failure from None
    except (NotApplicable, OptimizerRaised):  # P7 holds order-independently, or cannot tell: no cause to name
        return


def check_p19_ddp(case: Case) -> dict[str, Any]:
    """DDP over 2 ranks takes the same steps as one process."""
    return _check_p19(case, zero=False)


def check_p19_zero(case: Case) -> dict[str, Any]:
    """ZeroRedundancyOptimizer over DDP takes the same steps as one process."""
    return _check_p19(case, zero=True)


# ---- P20 ------------------------------------------------------------------------------------------------


def _resume_failure(case: Case, how: str, resumed: dict[str, Any], want_traj: Sequence[Sequence[torch.Tensor]],
                    rule: Rule, saved_where: str) -> None:
    """Compare a resumed run (``traj[0]``: right after the load) with the uninterrupted one from step K."""
    names = resumed["names"]
    at_load = first_diff(names, want_traj[:1], resumed["traj"][:1], rule, first_step=K_STEPS)
    if at_load is not None:
        raise PropertyFailure("P20", case, f"{how}: the model parameters right after the load differ from those "
                                           f"{saved_where} ({at_load.text()}): the checkpoint did not restore the "
                                           f"model")
    d = first_diff(names, want_traj, resumed["traj"], rule, first_step=K_STEPS)
    if d is not None:
        raise PropertyFailure("P20", case, f"{how}: the resumed run differs from the uninterrupted one at {d.text()}; "
                                           f"expected equal {rule.words}. The parameters were restored exactly, so "
                                           f"the optimizer state was not (is state kept outside state_dict(), or as "
                                           f"plain tensors of the local shard, which a checkpoint cannot reshard?)")


def check_p20(case: Case) -> dict[str, Any]:
    """DCP checkpoints move between world sizes 2 and 1 (both ways) without changing the run.

    Four resumed runs, each checked against an uninterrupted run: saved at world size 2 and loaded at 1
    then saved again and loaded at 2 (``2->1->2``), and ``1->2->1``, each continue bit for bit like the
    uninterrupted run in the same setting; ``2->1`` and ``1->2`` continue like the one-process run (to
    P18's rule) when the FSDP2 run itself equals one process (else P18 reports that, and the direct
    comparison is not made: it could not separate the two).
    """
    tmp = tempfile.mkdtemp(prefix="optbench-p20-")
    try:
        a, b, c, d = (f"{tmp}/{n}" for n in ("ws2", "ws2_ws1", "ws1", "ws1_ws2"))
        total = K_STEPS + N_STEPS
        one = _here("P20", case, runs.single_run, total, WORLD_SIZE, K_STEPS, c)  # uninterrupted, ckpt C at K
        two = _on_ranks("P20", case, runs.fsdp_run, total, K_STEPS, a, what="FSDP2 run with a checkpoint")[0]
        r21 = _here("P20", case, runs.single_resume, N_STEPS, K_STEPS + 1, WORLD_SIZE, a, b)  # load A, save B
        r212, r12 = _on_ranks("P20", case, runs.fsdp_resumes, N_STEPS, K_STEPS + 1, [(b, None), (c, d)],
                              what="FSDP2 resumes from checkpoints")[0]
        r121 = _here("P20", case, runs.single_resume, N_STEPS, K_STEPS + 1, WORLD_SIZE, d)
        exact = exact_rule()
        _resume_failure(case, "saved at world size 2 (FSDP2), loaded at 1, saved again and loaded at 2 (2->1->2)",
                        r212, two["traj"][K_STEPS:], exact, "saved at world size 2")
        _resume_failure(case, "saved at world size 1, loaded at 2 (FSDP2), saved again and loaded at 1 (1->2->1)",
                        r121, one["traj"][K_STEPS:], exact, "saved at world size 1")
        rule = rule_for(case, sharded=True)
        parity = first_diff(one["names"], one["traj"], two["traj"], rule)
        direct = "compared" if parity is None else ("not compared: the FSDP2 run differs from one process (P18)")
        if parity is None:
            _resume_failure(case, "saved at world size 2 (FSDP2), loaded at world size 1 (2->1)", r21,
                            one["traj"][K_STEPS:], rule, "of the uninterrupted run")
            _resume_failure(case, "saved at world size 1, loaded at world size 2 (FSDP2) (1->2)", r12,
                            one["traj"][K_STEPS:], rule, "of the uninterrupted run")
        after = one["traj"][K_STEPS:]
        if all(torch.equal(w, g) for later in after[1:] for w, g in zip(after[0], later)):
            # Nothing moved after the load (a warmup that does not update): a lost state could not show.
            raise NotApplicable(f"{case.name} did not move the parameters in steps {K_STEPS + 1}-{K_STEPS + N_STEPS} "
                                "of the uninterrupted run (a warmup that does not update?), so a state lost through "
                                "the checkpoint cannot show; P20 needs an optimizer that moves within "
                                f"{K_STEPS + N_STEPS} steps")
        return {"round_trips": "bitwise", "direct": direct, "steps": f"{K_STEPS}+{N_STEPS}"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


CHECKS = {
    "test_p18_fsdp2_parity": ("P18", check_p18),
    "test_p19_ddp_parity": ("P19", check_p19_ddp),
    "test_p19_zero_parity": ("P19", check_p19_zero),
    "test_p20_dcp_resume": ("P20", check_p20),
}

__all__ = ["CHECKS", "check_p18", "check_p19_ddp", "check_p19_zero", "check_p20"]
