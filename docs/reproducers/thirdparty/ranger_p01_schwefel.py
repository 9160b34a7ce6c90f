"""P1: pytorch-optimizer 4.1.0 Ranger does not reach the minimum of schwefel_1_2_3d in 2000 epochs at any lr of
optbench's grid from its far start: small lrs crawl, and from lr ~0.03 up the ascent steps of the RAdam warmup
(ranger_p02_ascent.py) throw the start further out. The same Ranger with the warmup skipped (RAdam's own
behaviour: no update while n_sma < 5) converges at lr 0.316. Run: python ranger_p01_schwefel.py (~20 s)
"""
import torch
import pytorch_optimizer
from pytorch_optimizer.base.optimizer import BaseOptimizer


class RangerWarmupSkipped(pytorch_optimizer.Ranger):
    @staticmethod
    def get_rectify_step_size(is_rectify, step, lr, beta2, n_sma_threshold, degenerated_to_sgd):
        size, n_sma = BaseOptimizer.get_rectify_step_size(is_rectify, step, lr, beta2, n_sma_threshold,
                                                          degenerated_to_sgd)
        return max(size, 0.0), n_sma


def f(x):  # schwefel_1_2_3d: sum_i (x_1 + ... + x_i)^2, minimum 0 at x* = 0
    return sum(x[: i + 1].sum() ** 2 for i in range(3))


def run(cls, lr, start=(8.414953682439204, 2.900482402455296, 5.822957843606073), epochs=2000):
    x = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = cls([x], lr=lr)
    peak = 0.0
    for _ in range(epochs):
        opt.zero_grad()
        f(x).backward()
        opt.step()
        peak = max(peak, x.detach().norm().item())
    return x.detach().norm().item(), peak


best = float("inf")
for lr in (0.01, 0.0316, 0.1, 0.316):
    d, peak = run(pytorch_optimizer.Ranger, lr)
    best = min(best, d)
    print(f"Ranger lr {lr}: |x - x*| = {d:.3g} after 2000 epochs (largest |x| on the way {peak:.3g}; start 10.6)")
d, peak = run(RangerWarmupSkipped, 0.316)
print(f"Ranger with the warmup skipped, lr 0.316: |x - x*| = {d:.3g} (largest |x| {peak:.3g})")
assert best <= 1e-4, f"P1: Ranger did not reach x* of schwefel_1_2_3d (closest {best:.3g}, tol 1e-4)"
