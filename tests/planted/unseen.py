"""torch.optim's own optimizers under another class, changing nothing.

``optbench validate torch.optim:Adam`` is validated with optbench's registry entry for torch.optim.Adam (its declared
P1 lr and budgets, exemptions and known torch bugs: :mod:`optbench.optimizers.registered`). A subclass is not the
registry's class (it may change step()), so these are validated as any optimizer optbench has never seen: what the
tests of the as-it-comes path (probes, lr grid, witness) run on, with torch's well-understood steps.
"""

import torch


class Adam(torch.optim.Adam):
    pass


class NAdam(torch.optim.NAdam):
    pass


class LBFGS(torch.optim.LBFGS):
    pass


class SGD(torch.optim.SGD):
    pass
