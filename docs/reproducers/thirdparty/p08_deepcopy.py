"""P8: copy.deepcopy(optimizer).step() raises in 8 third-party optimizers.

torch.optim.Optimizer.__getstate__ keeps only defaults, state and param_groups; settings these optimizers
keep as instance attributes (self.maximize, self.n_sma_threshold, ...) are lost, so the copy's step()
raises AttributeError. Resuming through state_dict() works. Needs pytorch-optimizer==4.1.0 and
lion-pytorch==0.2.5. Run: python p08_deepcopy.py   (exits with AssertionError listing the broken ones)
"""
import copy

import torch
import lion_pytorch
import pytorch_optimizer

CLASSES = [pytorch_optimizer.Lion, pytorch_optimizer.AdaBelief, pytorch_optimizer.Lamb, pytorch_optimizer.Ranger,
           pytorch_optimizer.AdaBound, pytorch_optimizer.MADGRAD, pytorch_optimizer.Prodigy, lion_pytorch.Lion]
broken = []
for cls in CLASSES:
    p = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    opt = cls([p], lr=1e-2)
    ((p - 0.5) ** 2).sum().backward()
    opt.step()
    try:
        copy.deepcopy(opt).step()
        print(f"{cls.__module__}.{cls.__name__}: ok")
    except AttributeError as exc:
        print(f"{cls.__module__}.{cls.__name__}: deepcopy(opt).step() raised AttributeError: {exc}")
        broken.append(cls.__name__)
assert not broken, f"P8: deepcopy breaks step() for {broken}"
