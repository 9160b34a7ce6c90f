"""optbench reproducer for P1: P1 convergence: A2GradInc (default) float64 cpu: on sum_squares_3d (lr=0.0001, budget 2000 epochs): 2 of 3 starts did not converge; random start 1 x0=[9.40106003613106, 4.156397287995759, -0.8123411374509821] ended at |x - x*| = 0.0509 (tol_x 0.0001) and f - f* = 0.00259 (tol_f 1e-08); expected to reach x* in [[0.0, 0.0, 0.0]]; last points (0.0508549, -0.00104659, 0.000141235) -> (0.0508614, -0.00102974, 0.000142553) -> (0.0508674, -0.0010129, 0.000143865) (best of the lr grid 1e-04..3.2)

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from torch_optimizer import A2GradInc
Opt = A2GradInc

DEVICE, DTYPE = 'cpu', torch.float64
KWARGS = dict(lr=0.01)  # how optbench constructed it


def f(x1, x2, x3):
    return torch.pow(x1, 2) + 2*torch.pow(x2, 2) + 3*torch.pow(x3, 2)


x = torch.tensor([9.40106003613106, 4.156397287995759, -0.8123411374509821], dtype=DTYPE, device=DEVICE, requires_grad=True)
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
x_star = torch.tensor([[0.0, 0.0, 0.0]], dtype=torch.float64)
xf = x.detach().double().cpu()
dist = (xf - x_star).norm(dim=1).min().item()
gap = (f(*xf)).item() - 0.0
print(f'after 2000 epochs from [9.40106003613106, 4.156397287995759, -0.8123411374509821]: x = {xf.tolist()}, |x - x*| = {dist:.3g} (tol 0.0001), f - f* = {gap:.3g} (tol 1e-08)')
assert dist <= 0.0001 and gap <= 1e-08, 'P1: did not converge to the exact minimum of sum_squares_3d'
