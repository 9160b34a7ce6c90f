"""P4 and P5: muon-optimizer 0.1.0 (Keller Jordan) SingleDeviceMuon.
P4: a parameter whose .grad is None (a frozen or unused layer) is not skipped: muon_update(p.grad, ...) calls
momentum.lerp_(None, ...) -> TypeError. P5: the Nesterov update overwrites p.grad in place
(grad.lerp_(momentum, beta)). Run: python muon_kj_p04_p05.py   (AssertionError listing both)
"""
import torch
from muon import SingleDeviceMuon

torch.manual_seed(0)
problems = []
a, b = torch.randn(3, 2, requires_grad=True), torch.randn(3, 2, requires_grad=True)
opt = SingleDeviceMuon([a, b], lr=0.02)
(a ** 2).sum().backward()  # b gets no gradient
try:
    opt.step()
except TypeError as exc:
    print("P4: step() with b.grad None raised TypeError:", str(exc).splitlines()[0])
    problems.append("P4")
c = torch.randn(3, 2, requires_grad=True)
opt = SingleDeviceMuon([c], lr=0.02)
for step in range(2):
    opt.zero_grad()
    ((c - 0.5) ** 2).sum().backward()
    g = c.grad.clone()
    opt.step()
    d = (c.grad - g).abs().max().item()
    print(f"P5: step {step + 1}: max |d grad| = {d:.3g}")
if d > 0:
    problems.append("P5")
assert not problems, f"violated: {problems}"
