"""optbench reproducer for P1: P1 convergence: A2GradExp (default) float64 cpu: on schwefel_1_2_3d (lr=0.0001, budget 2000 epochs): 3 of 3 starts did not converge; start 0 x0=[1.0, 1.0, 1.0] ended at |x - x*| = 0.042 (tol_x 0.0001) and f - f* = 0.000551 (tol_f 1e-08); expected to reach x* in [[0.0, 0.0, 0.0]]; last points (0.0115929, -0.0292546, 0.0279381) -> (0.0115964, -0.029248, 0.0279132) -> (0.0116, -0.0292414, 0.0278883) (best of the lr grid 1e-04..3.2)

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from torch_optimizer import A2GradExp
Opt = A2GradExp

DEVICE, DTYPE = 'cpu', torch.float64
KWARGS = dict(lr=0.01)  # how optbench constructed it


def f(x1, x2, x3):
    return torch.pow(x1, 2) + torch.pow(x1 + x2, 2) + torch.pow(x1 + x2 + x3, 2)


x = torch.tensor([1.0, 1.0, 1.0], dtype=DTYPE, device=DEVICE, requires_grad=True)
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
print(f'after 2000 epochs from [1.0, 1.0, 1.0]: x = {xf.tolist()}, |x - x*| = {dist:.3g} (tol 0.0001), f - f* = {gap:.3g} (tol 1e-08)')
assert dist <= 0.0001 and gap <= 1e-08, 'P1: did not converge to the exact minimum of schwefel_1_2_3d'
