"""optbench reproducer for P1: P1 convergence: Lamb (default) float64 cpu: on seed_quadratic (lr=0.1, budget 2000 epochs): 1 of 3 starts did not converge; start 0 x0=[-1.0] ended at |x - x*| = 0.333 (tol_x 0.0001) and f - f* = 0.333 (tol_f 1e-08); expected to reach x* in [[0.333333]]; last points (-3.77167e-92) -> (-3.3945e-92) -> (-3.05505e-92) (stalled near x = 0: the last step moved 3.4e-93 while the gradient there is 2, where a gradient step at lr 0.1 would move 0.2: the step vanished where the gradient did not, as a step scaled by |x| (a trust ratio) does near 0, or a preconditioner or step size that shrinks too fast) (best of the lr grid 1e-04..3.2)

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from pytorch_lamb import Lamb
Opt = Lamb

DEVICE, DTYPE = 'cpu', torch.float64
KWARGS = dict(lr=0.01, weight_decay=0.0)  # how optbench constructed it


def f(x):
    return 3*torch.pow(x, 2) - 2*x + 3


x = torch.tensor([-1.0], dtype=DTYPE, device=DEVICE, requires_grad=True)
opt = Opt([x], **{**KWARGS, 'lr': 0.1})
if callable(getattr(opt, 'train', None)) and callable(getattr(opt, 'eval', None)):
    opt.train()  # train()/eval() modes: step in train mode
for epoch in range(2000):
    opt.zero_grad()
    value = f(*x)
    value.backward()
    opt.step()
if callable(getattr(opt, 'train', None)) and callable(getattr(opt, 'eval', None)):
    opt.eval()  # read x as the method returns it
x_star = torch.tensor([[0.3333333333333333]], dtype=torch.float64)
xf = x.detach().double().cpu()
dist = (xf - x_star).norm(dim=1).min().item()
gap = (f(*xf)).item() - 2.6666666666666665
print(f'after 2000 epochs from [-1.0]: x = {xf.tolist()}, |x - x*| = {dist:.3g} (tol 0.0001), f - f* = {gap:.3g} (tol 1e-08)')
assert dist <= 0.0001 and gap <= 1e-08, 'P1: did not converge to the exact minimum of seed_quadratic'
