"""P14: torch-optimizer 0.3.0 SWATS raises on a non-contiguous parameter (swats.py: p.view(-1); reshape works).
A transposed weight (tied embeddings, x.t() views) is a non-contiguous leaf. Run: python swats_p14_noncontiguous.py
"""
import torch
import torch_optimizer

p = torch.randn(2, 3, dtype=torch.float64).t().requires_grad_(True)  # non-contiguous leaf
assert not p.is_contiguous()
opt = torch_optimizer.SWATS([p], lr=1e-2)
((p - 0.5) ** 2).sum().backward()
opt.step()  # RuntimeError: view size is not compatible with input tensor's size and stride ... Use .reshape(...)
