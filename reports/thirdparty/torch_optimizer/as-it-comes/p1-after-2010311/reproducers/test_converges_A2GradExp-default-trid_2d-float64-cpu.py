"""optbench reproducer for P1: P1 convergence: A2GradExp (default) float64 cpu: on trid_2d (lr=0.01, budget 2000 epochs): 2 of 3 starts did not converge; random start 1 x0=[3.7604240144524246, 1.6625589151983036] ended at |x - x*| = 0.00231 (tol_x 0.0001) and f - f* = 3.59e-06 (tol_f 1e-08); expected to reach x* in [[2.0, 2.0]]; last points (2.00216, 2.0008) -> (2.00216, 2.00081) -> (2.00217, 2.00082); its steps do not depend on lr: on the contract problem, 12 steps at lr 0.0001 and at lr 3.16228 are the same bit for bit, so one run stands for the whole lr grid

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from torch_optimizer import A2GradExp
Opt = A2GradExp

DEVICE, DTYPE = 'cpu', torch.float64
KWARGS = dict(lr=0.01)  # how optbench constructed it


def f(x1, x2):
    return -x1*x2 + torch.pow(x1 - 1, 2) + torch.pow(x2 - 1, 2)


x = torch.tensor([3.7604240144524246, 1.6625589151983036], dtype=DTYPE, device=DEVICE, requires_grad=True)
opt = Opt([x], **{**KWARGS, 'lr': 0.01})
if callable(getattr(opt, 'train', None)) and callable(getattr(opt, 'eval', None)):
    opt.train()  # train()/eval() modes: step in train mode
for epoch in range(2000):
    opt.zero_grad()
    value = f(*x)
    value.backward()
    opt.step()
if callable(getattr(opt, 'train', None)) and callable(getattr(opt, 'eval', None)):
    opt.eval()  # read x as the method returns it
x_star = torch.tensor([[2.0, 2.0]], dtype=torch.float64)
xf = x.detach().double().cpu()
dist = (xf - x_star).norm(dim=1).min().item()
gap = (f(*xf)).item() - -2.0
print(f'after 2000 epochs from [3.7604240144524246, 1.6625589151983036]: x = {xf.tolist()}, |x - x*| = {dist:.3g} (tol 0.0001), f - f* = {gap:.3g} (tol 1e-08)')
assert dist <= 0.0001 and gap <= 1e-08, 'P1: did not converge to the exact minimum of trid_2d'
