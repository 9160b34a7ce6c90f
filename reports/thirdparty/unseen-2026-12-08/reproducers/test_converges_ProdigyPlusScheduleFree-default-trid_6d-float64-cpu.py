"""optbench reproducer for P1: P1 convergence: ProdigyPlusScheduleFree (default) float64 cpu: on trid_6d (lr=1, budget 2000 epochs): 2 of 3 starts did not converge; random start 1 x0=[33.843816130071815, 14.963030236784732, -2.92442809482354, 30.29383325678114, 10.441736648839061, 20.962648236981863] ended at |x - x*| = 0.00269 (tol_x 0.0001) and f - f* = 1.32e-05 (tol_f 1e-08); expected to reach x* in [[6.0, 10.0, 12.0, 12.0, 10.0, 6.0]]; last points (6.0011, 9.9989, 12.0011, 11.9989, 10.0011, 5.9989) -> (5.9989, 10.0011, 11.9989, 12.0011, 9.99889, 6.0011) -> (6.0011, 9.9989, 12.0011, 11.9989, 10.0011, 5.9989) (a period-2 cycle: every other step returns to the same point, the two on either side of x*, 0.0054 apart: the step sits at its stability edge instead of shrinking) (best of the lr grid 1e-04..3.2); run apart, one optimizer per start: on seed_quadratic at lr 3.16, start 0 ended at [0.3335143327713012] after 2000 epochs in the shared run but at [0.33325791731476784] at epoch 2000 run alone: the optimizer couples what its probes found independent (a statistic over every parameter, such as D-Adaptation's d)

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from prodigyplus import ProdigyPlusScheduleFree
Opt = ProdigyPlusScheduleFree

DEVICE, DTYPE = 'cpu', torch.float64
KWARGS = dict(lr=0.01, weight_decay=0.0)  # how optbench constructed it


def f(x1, x2, x3, x4, x5, x6):
    return -x1*x2 - x2*x3 - x3*x4 - x4*x5 - x5*x6 + torch.pow(x1 - 1, 2) + torch.pow(x2 - 1, 2) + torch.pow(x3 - 1, 2) + torch.pow(x4 - 1, 2) + torch.pow(x5 - 1, 2) + torch.pow(x6 - 1, 2)


x = torch.tensor([33.843816130071815, 14.963030236784732, -2.92442809482354, 30.29383325678114, 10.441736648839061, 20.962648236981863], dtype=DTYPE, device=DEVICE, requires_grad=True)
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
print(f'after 2000 epochs from [33.843816130071815, 14.963030236784732, -2.92442809482354, 30.29383325678114, 10.441736648839061, 20.962648236981863]: x = {xf.tolist()}, |x - x*| = {dist:.3g} (tol 0.0001), f - f* = {gap:.3g} (tol 1e-08)')
assert dist <= 0.0001 and gap <= 1e-08, 'P1: did not converge to the exact minimum of trid_6d'
