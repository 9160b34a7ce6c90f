"""P21, the compiled step: parity, crashes, recompilations and graph breaks under ``torch.compile``
(checks in :mod:`optbench.compiled.checks`, the plan in :mod:`optbench.compiled.plan`, Dynamo's records read
by :mod:`optbench.compiled.watch`, standalone scripts by :mod:`optbench.compiled.reproducer`)."""
