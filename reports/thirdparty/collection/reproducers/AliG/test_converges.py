"""optbench reproducer for P1: P1 convergence: AliG (foreach) float64 cpu: on seed_quadratic (at its own step size, no lr hyperparameter; budget 2000 epochs): 2 of 3 starts did not converge; start 0 x0=[-1.0] ended at |x - x*| = 4.55 (tol_x 0.0001) and f - f* = 62 (tol_f 1e-08); expected to reach x* in [[0.333333]]; last points (18.7657) -> (9.52542) -> (4.88103)

Run it with `python this_file.py` from a folder where the optimizer's module imports (e.g. PYTHONPATH=. python this_file.py): it prints what it measures and fails with AssertionError where the property is violated."""

import torch

from pytorch_optimizer import AliG
Opt = AliG

DEVICE, DTYPE = 'cpu', torch.float64
KWARGS = dict(foreach=True, lr=0.01)  # how optbench constructed it


def f(x):
    return 3*torch.pow(x, 2) - 2*x + 3


x = torch.tensor([-1.0], dtype=DTYPE, device=DEVICE, requires_grad=True)
opt = Opt([x], **{**{k: v for k, v in KWARGS.items() if k != 'lr'}})
if callable(getattr(opt, 'train', None)) and callable(getattr(opt, 'eval', None)):
    opt.train()  # train()/eval() modes: step in train mode
for epoch in range(2000):
    opt.zero_grad()
    value = f(*x)
    value.backward()

    def closure():
        with torch.enable_grad():  # step() may call it under no_grad
            opt.zero_grad()
            v = f(*x)
            v.backward()
        return v

    opt.step(closure)
if callable(getattr(opt, 'train', None)) and callable(getattr(opt, 'eval', None)):
    opt.eval()  # read x as the method returns it
x_star = torch.tensor([[0.3333333333333333]], dtype=torch.float64)
xf = x.detach().double().cpu()
dist = (xf - x_star).norm(dim=1).min().item()
gap = (f(*xf)).item() - 2.6666666666666665
print(f'after 2000 epochs from [-1.0]: x = {xf.tolist()}, |x - x*| = {dist:.3g} (tol 0.0001), f - f* = {gap:.3g} (tol 1e-08)')
assert dist <= 0.0001 and gap <= 1e-08, 'P1: did not converge to the exact minimum of seed_quadratic'
