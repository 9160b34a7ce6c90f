"""P2: pytorch-optimizer 4.1.0 Ranger's first steps go uphill.

While RAdam's n_sma < n_sma_threshold (the first ~5 steps at beta2 = 0.999), get_rectify_step_size returns
step_size = -lr (degenerated_to_sgd=False, the default) and Ranger applies p.add_(exp_avg, alpha=-step_size):
p += lr/(1-beta1^t) * exp_avg, a gradient ascent step. RAdam's reference code skips the update there.
Run: python ranger_p02_ascent.py   (AssertionError: the loss grows)
"""
import torch
from pytorch_optimizer import Ranger

x = torch.tensor([3.0, -2.0], dtype=torch.float64, requires_grad=True)  # 1-D: no gradient centralisation
opt = Ranger([x], lr=0.01)
losses = []
for step in range(6):
    opt.zero_grad()
    loss = (x ** 2).sum()
    losses.append(loss.item())
    loss.backward()
    opt.step()
    print(f"step {step + 1}: loss before {losses[-1]:.6f}, x after {x.detach().tolist()}")
assert losses[1] < losses[0], f"P2: the first step went uphill: loss {losses[0]:.6f} -> {losses[1]:.6f}"
