"""torch.compile raises on torch_optimizer.RAdam's step where eager runs (torch 2.13.0+cpu, torch-optimizer 0.3.0).

Run: python p21_radam_compile_bug.py        -> step 2 raises RuntimeError in AOTAutograd's mutation epilogue:
     "The size of tensor a (4) must match the size of tensor b (2) at non-singleton dimension 1"
     python p21_radam_compile_bug.py fixed  -> the same step without RAdam's no-op reassignment
     state['exp_avg'] = state['exp_avg'].type_as(p_data_fp32) (radam.py:130-133): every step compiles and runs.
Two parameters of different shapes are needed (one alone compiles). Eager runs either way.
"""

import inspect
import sys
import textwrap

import torch
import torch_optimizer
import torch_optimizer.radam as radam_module


class RAdamWithoutTypeAs(torch_optimizer.RAdam):
    """RAdam's own step, its two `.type_as(p_data_fp32)` reassignments (no-ops for float32 state) left out."""


src = textwrap.dedent(inspect.getsource(torch_optimizer.RAdam.step))
src = src.replace("state['exp_avg'] = state['exp_avg'].type_as(p_data_fp32)", "pass")
src = src.replace("state['exp_avg_sq'] = state['exp_avg_sq'].type_as(\n                    p_data_fp32\n                )", "pass")
namespace: dict = {}
exec(src, vars(radam_module), namespace)
RAdamWithoutTypeAs.step = namespace["step"]

cls = RAdamWithoutTypeAs if sys.argv[1:] == ["fixed"] else torch_optimizer.RAdam
torch.manual_seed(0)
params = [torch.randn(3, 2, requires_grad=True), torch.randn(2, 4, requires_grad=True)]
opt = cls(params, lr=1e-2)
step = torch.compile(lambda: opt.step())
for i in range(1, 5):
    for p in params:
        p.grad = torch.randn_like(p)
    step()
    print(f"{cls.__name__}: compiled step {i} ran")
