"""optbench reproducer for P1: P1 convergence: ProdigyPlusScheduleFree (default) float32 cpu: on booth (lr=3.16228, budget 2000 epochs): 1 of 3 starts did not converge; random start 1 x0=[9.40106003613106, 4.156397287995759] ended at |x - x*| = 8.48 (tol_x 0.001) and f - f* = 437 (tol_f 1e-05); expected to reach x* in [[1.0, 3.0]]; last points (9.39831, 4.15283) -> (9.39831, 4.15283) -> (9.39831, 4.15282) (stalled: the last step moved 2.4e-06 while the gradient there is 1.2e+02, where a gradient step at lr 3.16228 would move 3.9e+02: the step vanished where the gradient did not, as a step scaled by |x| (a trust ratio) does near 0, or a preconditioner or step size that shrinks too fast) (best of the lr grid 1e-04..3.2)

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from prodigyplus import ProdigyPlusScheduleFree
Opt = ProdigyPlusScheduleFree

DEVICE, DTYPE = 'cpu', torch.float32
KWARGS = dict(lr=0.01, weight_decay=0.0)  # how optbench constructed it


def f(x, y):
    return torch.pow(x + 2*y - 7, 2) + torch.pow(2*x + y - 5, 2)


x = torch.tensor([9.40106003613106, 4.156397287995759], dtype=DTYPE, device=DEVICE, requires_grad=True)
opt = Opt([x], **{**KWARGS, 'lr': 3.1622776601683795})
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
print(f'after 2000 epochs from [9.40106003613106, 4.156397287995759]: x = {xf.tolist()}, |x - x*| = {dist:.3g} (tol 0.001), f - f* = {gap:.3g} (tol 1e-05)')
assert dist <= 0.001 and gap <= 1e-05, 'P1: did not converge to the exact minimum of booth'
