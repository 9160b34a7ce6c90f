"""optbench reproducer for P1: P1 convergence: Shampoo (default) float64 cpu: on trid_4d (lr=0.1, budget 2000 epochs): 3 of 3 starts did not converge; start 0 x0=[0.0, 0.0, 0.0, 0.0] ended at |x - x*| = 11 (tol_x 0.0001) and f - f* = 69.1 (tol_f 1e-08); expected to reach x* in [[4.0, 6.0, 6.0, 4.0]]; last points (-3.20814, 4.45328, -0.930036, -0.24376) -> (-3.20814, 4.45328, -0.930034, -0.243759) -> (-3.20814, 4.45328, -0.930032, -0.243759) (best of the lr grid 1e-04..3.2)

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from torch_optimizer import Shampoo
Opt = Shampoo

DEVICE, DTYPE = 'cpu', torch.float64
KWARGS = dict(lr=0.01, weight_decay=0.0)  # how optbench constructed it


def f(x1, x2, x3, x4):
    return -x1*x2 - x2*x3 - x3*x4 + torch.pow(x1 - 1, 2) + torch.pow(x2 - 1, 2) + torch.pow(x3 - 1, 2) + torch.pow(x4 - 1, 2)


x = torch.tensor([0.0, 0.0, 0.0, 0.0], dtype=DTYPE, device=DEVICE, requires_grad=True)
opt = Opt([x], **{**KWARGS, 'lr': 0.1})
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
print(f'after 2000 epochs from [0.0, 0.0, 0.0, 0.0]: x = {xf.tolist()}, |x - x*| = {dist:.3g} (tol 0.0001), f - f* = {gap:.3g} (tol 1e-08)')
assert dist <= 0.0001 and gap <= 1e-08, 'P1: did not converge to the exact minimum of trid_4d'
