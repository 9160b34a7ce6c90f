"""optbench reproducer for P1: P1 convergence: DAdaptLion (foreach) float64 cpu: on sphere_2d (lr=0.0316228, budget 2000 epochs): 3 of 3 starts did not converge; start 0 x0=[1.0, 1.0] ended at |x - x*| = 0.0207 (tol_x 0.0001) and f - f* = 0.00043 (tol_f 1e-08); expected to reach x* in [[0.0, 0.0]]; last points (0.0146633, 0.0146633) -> (-0.00103731, -0.00103731) -> (0.0146633, 0.0146633) (a period-2 cycle: every other step returns to the same point, the two on either side of x*, 0.022 apart: the step sits at its stability edge instead of shrinking) (best of the lr grid 1e-04..3.2); with a constant lr it hovered at a distance that grows with lr (|x - x*| 0.082 at lr 0.0316), as sign or RMS-normalised steps do, and a rerun under ExponentialLR(gamma=0.995405) did not converge either; run apart, one optimizer per start: on sum_squares_3d at lr 3.16, start 0 ended at [-1.5762293700809664, -1.5762293700809664, -1.5762293700809664] after 2000 epochs in the shared run but at [1.0405489597672681, 1.0405489597672681, 1.0405489597672681] at epoch 2000 run alone: the optimizer couples what its probes found independent (a statistic over every parameter, such as D-Adaptation's d)

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from pytorch_optimizer import DAdaptLion
Opt = DAdaptLion

DEVICE, DTYPE = 'cpu', torch.float64
KWARGS = dict(foreach=True, lr=0.01, weight_decay=0.0)  # how optbench constructed it


def f(x1, x2):
    return torch.pow(x1, 2) + torch.pow(x2, 2)


x = torch.tensor([1.0, 1.0], dtype=DTYPE, device=DEVICE, requires_grad=True)
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
x_star = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
xf = x.detach().double().cpu()
dist = (xf - x_star).norm(dim=1).min().item()
gap = (f(*xf)).item() - 0.0
print(f'after 2000 epochs from [1.0, 1.0]: x = {xf.tolist()}, |x - x*| = {dist:.3g} (tol 0.0001), f - f* = {gap:.3g} (tol 1e-08)')
assert dist <= 0.0001 and gap <= 1e-08, 'P1: did not converge to the exact minimum of sphere_2d'
