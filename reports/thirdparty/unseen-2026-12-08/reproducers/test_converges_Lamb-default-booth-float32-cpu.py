"""optbench reproducer for P1: P1 convergence: Lamb (default) float32 cpu: on booth (lr=0.0316228, budget 2000 epochs): 1 of 3 starts did not converge; start 0 x0=[0.0, 0.0] ended at |x - x*| = 3.16 (tol_x 0.001) and f - f* = 74 (tol_f 1e-05); expected to reach x* in [[1.0, 3.0]]; last points (0, 0) -> (0, 0) -> (0, 0) (stalled at x = 0 exactly: the last step did not move it at all while the gradient there is 51, where a gradient step at lr 0.0316228 would move 1.6: a step scaled by the parameter's norm (a trust ratio ‖w‖/‖u‖ without the guard that makes it 1 at ‖w‖ = 0, as LAMB's reference has) never moves a parameter that is 0; or the step skips it (a mask or threshold on the parameter) or its step size is 0) (best of the lr grid 1e-04..3.2)

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from pytorch_lamb import Lamb
Opt = Lamb

DEVICE, DTYPE = 'cpu', torch.float32
KWARGS = dict(lr=0.01, weight_decay=0.0)  # how optbench constructed it


def f(x, y):
    return torch.pow(x + 2*y - 7, 2) + torch.pow(2*x + y - 5, 2)


x = torch.tensor([0.0, 0.0], dtype=DTYPE, device=DEVICE, requires_grad=True)
opt = Opt([x], **{**KWARGS, 'lr': 0.03162277660168379})
if callable(getattr(opt, 'train', None)) and callable(getattr(opt, 'eval', None)):
    opt.train()  # train()/eval() modes: step in train mode
for epoch in range(2000):
    opt.zero_grad()
    value = f(*x)
    value.backward()
    opt.step()
if callable(getattr(opt, 'train', None)) and callable(getattr(opt, 'eval', None)):
    opt.eval()  # read x as the method returns it
x_star = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
xf = x.detach().double().cpu()
dist = (xf - x_star).norm(dim=1).min().item()
gap = (f(*xf)).item() - 0.0
print(f'after 2000 epochs from [0.0, 0.0]: x = {xf.tolist()}, |x - x*| = {dist:.3g} (tol 0.001), f - f* = {gap:.3g} (tol 1e-05)')
assert dist <= 0.001 and gap <= 1e-05, 'P1: did not converge to the exact minimum of booth'
