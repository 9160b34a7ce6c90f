"""P18-P20: optimizers under torch.distributed (FSDP2, DDP, ZeroRedundancyOptimizer, torch.distributed.checkpoint).

Modules: ``pool`` (a persistent 2-rank process group per process, fed tasks), ``model`` (the MLP, the
micro-batches and the one-process reference step), ``runs`` (the runs on the ranks and in this process),
``checks`` (``check_p18``, ``check_p19_ddp``, ``check_p19_zero``, ``check_p20``), ``reproducer`` (the
standalone script of each failure) and ``plan`` (``distributed_checks(selection)``, the ``distributed``
plan of :mod:`optbench.plan`, which attaches the reproducer to every failure). Nothing here
imports pytest; importing this package starts no process (the pool starts on the first check).
"""
