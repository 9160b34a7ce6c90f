"""optbench reproducer for P1: P1 convergence: Lamb (default) float64 cpu: on trid_6d (lr=1, budget 2000 epochs): 3 of 3 starts did not converge; start 0 x0=[0.0, 0.0, 0.0, 0.0, 0.0, 0.0] ended at |x - x*| = 23.7 (tol_x 0.0001) and f - f* = 56 (tol_f 1e-08); expected to reach x* in [[6.0, 10.0, 12.0, 12.0, 10.0, 6.0]]; last points (0, 0, 0, 0, 0, 0) -> (0, 0, 0, 0, 0, 0) -> (0, 0, 0, 0, 0, 0) (stalled at x = 0 exactly: the last step did not move it at all while the gradient there is 4.9, where a gradient step at lr 1 would move 4.9: a step scaled by the parameter's norm (a trust ratio ‖w‖/‖u‖ without the guard that makes it 1 at ‖w‖ = 0, as LAMB's reference has) never moves a parameter that is 0; or the step skips it (a mask or threshold on the parameter) or its step size is 0) (best of the lr grid 1e-04..3.2)

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from pytorch_lamb import Lamb
Opt = Lamb

DEVICE, DTYPE = 'cpu', torch.float64
KWARGS = dict(lr=0.01, weight_decay=0.0)  # how optbench constructed it


def f(x1, x2, x3, x4, x5, x6):
    return -x1*x2 - x2*x3 - x3*x4 - x4*x5 - x5*x6 + torch.pow(x1 - 1, 2) + torch.pow(x2 - 1, 2) + torch.pow(x3 - 1, 2) + torch.pow(x4 - 1, 2) + torch.pow(x5 - 1, 2) + torch.pow(x6 - 1, 2)


x = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0], dtype=DTYPE, device=DEVICE, requires_grad=True)
opt = Opt([x], **{**KWARGS, 'lr': 1.0})
if callable(getattr(opt, 'train', None)) and callable(getattr(opt, 'eval', None)):
    opt.train()  # train()/eval() modes: step in train mode
for epoch in range(2000):
    opt.zero_grad()
    value = f(*x)
    value.backward()
    opt.step()
if callable(getattr(opt, 'train', None)) and callable(getattr(opt, 'eval', None)):
    opt.eval()  # read x as the method returns it
x_star = torch.tensor([[6.0, 10.0, 12.0, 12.0, 10.0, 6.0]], dtype=torch.float64)
xf = x.detach().double().cpu()
dist = (xf - x_star).norm(dim=1).min().item()
gap = (f(*xf)).item() - -50.0
print(f'after 2000 epochs from [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]: x = {xf.tolist()}, |x - x*| = {dist:.3g} (tol 0.0001), f - f* = {gap:.3g} (tol 1e-08)')
assert dist <= 0.0001 and gap <= 1e-08, 'P1: did not converge to the exact minimum of trid_6d'
