"""optbench reproducer for P1: P1 convergence: AdaPNM (foreach) float64 cpu: on trid_6d (lr=0.316228, budget 2000 epochs): 9 of 9 starts did not converge; start 0 x0=[0.0, 0.0, 0.0, 0.0, 0.0, 0.0] ended at |x - x*| = 0.518 (tol_x 0.0001) and f - f* = 0.406 (tol_f 1e-08); expected to reach x* in [[6.0, 10.0, 12.0, 12.0, 10.0, 6.0]]; last points (5.7915, 10.2172, 11.7918, 11.7918, 10.2172, 5.7915) -> (6.20855, 9.78276, 12.2083, 12.2083, 9.78276, 6.20855) -> (5.79141, 10.2173, 11.7916, 11.7916, 10.2173, 5.79141) (a period-2 cycle: every other step returns to the same point, the two on either side of x*, 1 apart: the step sits at its stability edge instead of shrinking) (best of the lr grid 1e-04..3.2); with a constant lr it hovered at a distance that grows with lr (|x - x*| 1.5 at lr 0.316), as sign or RMS-normalised steps do, and a rerun under ExponentialLR(gamma=0.995405) did not converge either

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from pytorch_optimizer import AdaPNM
Opt = AdaPNM

DEVICE, DTYPE = 'cpu', torch.float64
KWARGS = dict(foreach=True, lr=0.01, weight_decay=0.0)  # how optbench constructed it


def f(x1, x2, x3, x4, x5, x6):
    return -x1*x2 - x2*x3 - x3*x4 - x4*x5 - x5*x6 + torch.pow(x1 - 1, 2) + torch.pow(x2 - 1, 2) + torch.pow(x3 - 1, 2) + torch.pow(x4 - 1, 2) + torch.pow(x5 - 1, 2) + torch.pow(x6 - 1, 2)


x = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0], dtype=DTYPE, device=DEVICE, requires_grad=True)
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
x_star = torch.tensor([[6.0, 10.0, 12.0, 12.0, 10.0, 6.0]], dtype=torch.float64)
xf = x.detach().double().cpu()
dist = (xf - x_star).norm(dim=1).min().item()
gap = (f(*xf)).item() - -50.0
print(f'after 2000 epochs from [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]: x = {xf.tolist()}, |x - x*| = {dist:.3g} (tol 0.0001), f - f* = {gap:.3g} (tol 1e-08)')
assert dist <= 0.0001 and gap <= 1e-08, 'P1: did not converge to the exact minimum of trid_6d'
