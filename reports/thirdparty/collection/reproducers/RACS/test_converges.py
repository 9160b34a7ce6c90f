"""optbench reproducer for P1: P1 convergence: RACS (foreach) float64 cpu: on sphere_2d (lr=0.316228, budget 2000 epochs): 2 of 3 starts did not converge; random start 1 x0=[4.70053001806553, 2.0781986439978795] ended at |x - x*| = 0.0889 (tol_x 0.0001) and f - f* = 0.00791 (tol_f 1e-08); expected to reach x* in [[0.0, 0.0]]; last points (0.0628717, -0.0628717) -> (-0.0628717, 0.0628717) -> (0.0628717, -0.0628717) (a period-2 cycle: every other step returns to the same point, the two on either side of x*, 0.18 apart: the step sits at its stability edge instead of shrinking) (best of the lr grid 1e-04..3.2)

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from pytorch_optimizer import RACS
Opt = RACS

DEVICE, DTYPE = 'cpu', torch.float64
KWARGS = dict(foreach=True, lr=0.01, weight_decay=0.0)  # how optbench constructed it


def f(x1, x2):
    return torch.pow(x1, 2) + torch.pow(x2, 2)


x = torch.tensor([4.70053001806553, 2.0781986439978795], dtype=DTYPE, device=DEVICE, requires_grad=True)
opt = Opt([x], **{**KWARGS, 'lr': 0.31622776601683794})
if callable(getattr(opt, 'train', None)) and callable(getattr(opt, 'eval', None)):
    opt.train()  # train()/eval() modes: step in train mode
for epoch in range(2000):
    opt.zero_grad()
    value = f(*x)
    value.backward()
    opt.step()
if callable(getattr(opt, 'train', None)) and callable(getattr(opt, 'eval', None)):
    opt.eval()  # read x as the method returns it
x_star = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
xf = x.detach().double().cpu()
dist = (xf - x_star).norm(dim=1).min().item()
gap = (f(*xf)).item() - 0.0
print(f'after 2000 epochs from [4.70053001806553, 2.0781986439978795]: x = {xf.tolist()}, |x - x*| = {dist:.3g} (tol 0.0001), f - f* = {gap:.3g} (tol 1e-08)')
assert dist <= 0.0001 and gap <= 1e-08, 'P1: did not converge to the exact minimum of sphere_2d'
