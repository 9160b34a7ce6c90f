"""optbench reproducer for P1: P1 convergence: SophiaG (default) float64 cpu: on trid_6d (lr=0.0316228, budget 2000 epochs): 9 of 9 starts did not converge; start 0 x0=[0.0, 0.0, 0.0, 0.0, 0.0, 0.0] ended at |x - x*| = 0.131 (tol_x 0.0001) and f - f* = 0.00692 (tol_f 1e-08); expected to reach x* in [[6.0, 10.0, 12.0, 12.0, 10.0, 6.0]]; last points (6.00833, 9.9928, 12.0167, 12.0167, 9.9928, 6.00833) -> (6.03995, 10.0244, 11.985, 11.985, 10.0244, 6.03995) -> (6.07157, 10.056, 12.0167, 12.0167, 10.056, 6.07157) (best of the lr grid 1e-04..3.2); with a constant lr it hovered at a distance that grows with lr (|x - x*| 0.2 at lr 0.0316), as sign or RMS-normalised steps do, and a rerun under ExponentialLR(gamma=0.995405) did not converge either

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from sophia_opt import SophiaG
Opt = SophiaG

DEVICE, DTYPE = 'cpu', torch.float64
KWARGS = dict(lr=0.01, weight_decay=0.0)  # how optbench constructed it


def f(x1, x2, x3, x4, x5, x6):
    return -x1*x2 - x2*x3 - x3*x4 - x4*x5 - x5*x6 + torch.pow(x1 - 1, 2) + torch.pow(x2 - 1, 2) + torch.pow(x3 - 1, 2) + torch.pow(x4 - 1, 2) + torch.pow(x5 - 1, 2) + torch.pow(x6 - 1, 2)


x = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0], dtype=DTYPE, device=DEVICE, requires_grad=True)
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
x_star = torch.tensor([[6.0, 10.0, 12.0, 12.0, 10.0, 6.0]], dtype=torch.float64)
xf = x.detach().double().cpu()
dist = (xf - x_star).norm(dim=1).min().item()
gap = (f(*xf)).item() - -50.0
print(f'after 2000 epochs from [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]: x = {xf.tolist()}, |x - x*| = {dist:.3g} (tol 0.0001), f - f* = {gap:.3g} (tol 1e-08)')
assert dist <= 0.0001 and gap <= 1e-08, 'P1: did not converge to the exact minimum of trid_6d'
