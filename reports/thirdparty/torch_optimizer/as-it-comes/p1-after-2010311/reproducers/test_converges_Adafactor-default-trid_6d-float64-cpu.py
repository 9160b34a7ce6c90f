"""optbench reproducer for P1: P1 convergence: Adafactor (default) float64 cpu: on trid_6d (lr=0.01, budget 2000 epochs): 2 of 3 starts did not converge; random start 1 x0=[33.843816130071815, 14.963030236784732, -2.92442809482354, 30.29383325678114, 10.441736648839061, 20.962648236981863] ended at |x - x*| = 0.106 (tol_x 0.0001) and f - f* = 0.0208 (tol_f 1e-08); expected to reach x* in [[6.0, 10.0, 12.0, 12.0, 10.0, 6.0]]; last points (5.98158, 10.0522, 11.9601, 12.0469, 9.95216, 6.04492) -> (6.01853, 9.94752, 12.0401, 11.9529, 10.048, 5.95488) -> (5.9814, 10.0526, 11.9598, 12.0473, 9.95183, 6.04524) (a period-2 cycle: every other step returns to the same point, the two on either side of x*, 0.21 apart: the step sits at its stability edge instead of shrinking); its steps do not depend on lr: on the contract problem, 12 steps at lr 0.0001 and at lr 3.16228 are the same bit for bit, so one run stands for the whole lr grid

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from torch_optimizer import Adafactor
Opt = Adafactor

DEVICE, DTYPE = 'cpu', torch.float64
KWARGS = dict(lr=0.01, weight_decay=0.0)  # how optbench constructed it


def f(x1, x2, x3, x4, x5, x6):
    return -x1*x2 - x2*x3 - x3*x4 - x4*x5 - x5*x6 + torch.pow(x1 - 1, 2) + torch.pow(x2 - 1, 2) + torch.pow(x3 - 1, 2) + torch.pow(x4 - 1, 2) + torch.pow(x5 - 1, 2) + torch.pow(x6 - 1, 2)


x = torch.tensor([33.843816130071815, 14.963030236784732, -2.92442809482354, 30.29383325678114, 10.441736648839061, 20.962648236981863], dtype=DTYPE, device=DEVICE, requires_grad=True)
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
x_star = torch.tensor([[6.0, 10.0, 12.0, 12.0, 10.0, 6.0]], dtype=torch.float64)
xf = x.detach().double().cpu()
dist = (xf - x_star).norm(dim=1).min().item()
gap = (f(*xf)).item() - -50.0
print(f'after 2000 epochs from [33.843816130071815, 14.963030236784732, -2.92442809482354, 30.29383325678114, 10.441736648839061, 20.962648236981863]: x = {xf.tolist()}, |x - x*| = {dist:.3g} (tol 0.0001), f - f* = {gap:.3g} (tol 1e-08)')
assert dist <= 0.0001 and gap <= 1e-08, 'P1: did not converge to the exact minimum of trid_6d'
