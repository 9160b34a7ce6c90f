"""optbench reproducer for P1: P1 convergence: Adafactor (default) float64 cpu: on trid_4d (lr=0.0001, budget 2000 epochs): 2 of 3 starts did not converge; random start 1 x0=[15.041696057809698, 6.650235660793214, -1.2997458199215721, 13.46392589190273] ended at |x - x*| = 0.0487 (tol_x 0.0001) and f - f* = 0.00427 (tol_f 1e-08); expected to reach x* in [[4.0, 6.0, 6.0, 4.0]]; last points (3.98061, 6.02994, 5.97415, 4.02086) -> (4.01941, 5.97006, 6.02587, 3.9791) -> (3.98059, 6.0299, 5.97414, 4.02091) (a period-2 cycle: every other step returns to the same point, the two on either side of x*, 0.098 apart: the step sits at its stability edge instead of shrinking) (best of the lr grid 1e-04..3.2)

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from torch_optimizer import Adafactor
Opt = Adafactor

DEVICE, DTYPE = 'cpu', torch.float64
KWARGS = dict(lr=0.01, weight_decay=0.0)  # how optbench constructed it


def f(x1, x2, x3, x4):
    return -x1*x2 - x2*x3 - x3*x4 + torch.pow(x1 - 1, 2) + torch.pow(x2 - 1, 2) + torch.pow(x3 - 1, 2) + torch.pow(x4 - 1, 2)


x = torch.tensor([15.041696057809698, 6.650235660793214, -1.2997458199215721, 13.46392589190273], dtype=DTYPE, device=DEVICE, requires_grad=True)
opt = Opt([x], **{**KWARGS, 'lr': 0.0001})
if callable(getattr(opt, 'train', None)) and callable(getattr(opt, 'eval', None)):
    opt.train()  # train()/eval() modes: step in train mode
for epoch in range(2000):
    opt.zero_grad()
    value = f(*x)
    value.backward()
    opt.step()
if callable(getattr(opt, 'train', None)) and callable(getattr(opt, 'eval', None)):
    opt.eval()  # read x as the method returns it
x_star = torch.tensor([[4.0, 6.0, 6.0, 4.0]], dtype=torch.float64)
xf = x.detach().double().cpu()
dist = (xf - x_star).norm(dim=1).min().item()
gap = (f(*xf)).item() - -16.0
print(f'after 2000 epochs from [15.041696057809698, 6.650235660793214, -1.2997458199215721, 13.46392589190273]: x = {xf.tolist()}, |x - x*| = {dist:.3g} (tol 0.0001), f - f* = {gap:.3g} (tol 1e-08)')
assert dist <= 0.0001 and gap <= 1e-08, 'P1: did not converge to the exact minimum of trid_4d'
