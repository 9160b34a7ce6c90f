"""P5: pytorch-optimizer 4.1.0 Ranger changes p.grad in place (gradient centralisation, use_gc=True default:
centralize_gradient does grad.add_(-grad.mean(dim=1..))) for every parameter with more than one dimension.
Run: python ranger_p05_grad_in_place.py   (AssertionError: p.grad changed)
"""
import torch
from pytorch_optimizer import Ranger

w = torch.tensor([[1.0, 2.0], [-3.0, 0.5], [0.25, 4.0]], dtype=torch.float64, requires_grad=True)
opt = Ranger([w], lr=0.01)
((w - 0.5) ** 2).sum().backward()
before = w.grad.clone()
opt.step()
print("grad before step:", before.tolist())
print("grad after step: ", w.grad.tolist())
assert torch.equal(w.grad, before), f"P5: step() changed p.grad: max |dgrad| = {(w.grad - before).abs().max():.3g}"
