"""P4: schedulefree 1.4.1 AdamWScheduleFreeClosure moves a parameter whose .grad is None.
step() interpolates every parameter toward z before calling the closure (y = x.lerp(z, 1-beta1)) but moves
back only the parameters that got a gradient (active_p), so a frozen or unused parameter drifts. The same
code is in SGDScheduleFreeClosure and RAdamScheduleFreeClosure; the train()/eval() classes are not affected.
Run: python sf_closure_p04_frozen.py   (AssertionError: the frozen parameter moved)
"""
import torch
import schedulefree

a = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
b = torch.tensor([3.0, 0.5], dtype=torch.float64, requires_grad=True)
opt = schedulefree.AdamWScheduleFreeClosure([a, b], lr=0.1)


def closure(params):
    def c():
        opt.zero_grad(set_to_none=True)
        loss = sum((p ** 2).sum() for p in params)
        loss.backward()
        return loss
    return c


for _ in range(10):
    opt.step(closure([a, b]))  # both train
frozen = b.detach().clone()
for _ in range(3):
    opt.step(closure([a]))  # b is frozen: b.grad stays None
print("b.grad:", b.grad, " max |d b| over 3 steps:", (b.detach() - frozen).abs().max().item())
assert torch.equal(b.detach(), frozen), "P4: a parameter with grad None moved"
