"""What an optimizer costs in memory: its state, and the transient peak of its step.

* **state bytes per parameter**: the bytes of the tensors held in ``optimizer.state`` (each storage counted
  once, nested containers followed) divided by the number of parameter elements, read after the state
  exists (after a first step). Adam keeps two fp32 tensors per parameter: 8 B/param; SGD with momentum 4;
  plain SGD none; per-tensor scalars (Adam's ``step``) add a few bytes per parameter *tensor*, invisible
  per element at 1e6. Adafactor's factored second moment is sub-linear: a row and a column vector per
  matrix.
* **step peak bytes**: the largest amount of memory allocated *during* one ``step()`` above what was
  allocated when it began (parameters, gradients, state and anything else alive): the transient buffers of
  a foreach implementation (``torch._foreach_sqrt`` of every second moment), Inductor's temporaries, a
  copy an optimizer keeps for the length of its step. Measured on a warm step (the state already exists).

  - CPU: the allocator's own records. ``torch.profiler`` with ``profile_memory=True`` reports every
    allocation and free of c10's CPU allocator (Kineto ``[memory]`` events with signed byte counts, in time
    order); the peak is the largest prefix sum. Every allocation of the step is seen, those inside ATen
    kernels and Inductor's generated code included; no sampling.
  - CUDA: ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``, minus
    ``memory_allocated()`` at the start (the caching allocator's exact counters).

The profiler slows the step it watches, so these measurements are made in their own pass (the bench
``benches/test_memory.py`` and the ``memory`` check plan), never inside a timed round. Nothing here
imports pytest or the rest of optbench.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch.utils._python_dispatch import is_traceable_wrapper_subclass


def _tensors(obj: Any, depth: int = 0) -> Iterable[torch.Tensor]:
    if torch.is_tensor(obj):
        yield obj
    elif depth < 6 and isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v, depth + 1)
    elif depth < 6 and isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v, depth + 1)


def state_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Every tensor held in ``optimizer.state`` (per-parameter dicts and anything nested in them)."""
    return [t for st in optimizer.state.values() for t in _tensors(st)]


def _leaves(t: torch.Tensor) -> Iterable[torch.Tensor]:
    """``t``, or where it is a wrapper tensor subclass (torchao's 4-bit and 8-bit optimizer states, DTensor), the
    plain tensors it holds (``__tensor_flatten__``): its bytes are theirs (a wrapper's own storage is invalid)."""
    if is_traceable_wrapper_subclass(t):
        names, _ = t.__tensor_flatten__()
        for name in names:
            yield from _leaves(getattr(t, name))
    else:
        yield t


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the storages behind ``tensors``, each storage counted once (views share theirs); a wrapper
    subclass counts the tensors it holds (a 4-bit state: its codes and scales, not 4 bytes an element)."""
    seen: dict[tuple[str, int], int] = {}
    for t in (leaf for t in tensors for leaf in _leaves(t)):
        if t.is_sparse:
            for part in (t._indices(), t._values()):
                seen[(str(part.device), part.untyped_storage().data_ptr())] = part.untyped_storage().nbytes()
            continue
        try:
            storage = t.untyped_storage()
            seen[(str(t.device), storage.data_ptr())] = storage.nbytes()
        except (RuntimeError, NotImplementedError):  # another tensor subclass without storage: its elements
            seen[(str(t.device), id(t))] = t.numel() * t.element_size()
    return sum(seen.values())


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    return tensor_bytes(state_tensors(optimizer))


def numel(params: Sequence[torch.Tensor]) -> int:
    return sum(p.numel() for p in params)


@dataclass(frozen=True)
class Peak:
    """The transient memory of one call: ``peak`` above the start, ``net`` still held at the end (bytes)."""

    peak: int
    net: int
    source: str  # how it was measured


MARK = "optbench::measured_call"


def _kineto(prof: Any) -> tuple[list[tuple[int, int]], tuple[int, int] | None]:
    """(time ns, signed bytes) of every CPU allocator event of a finished profile, in time order, and the
    (start, end) of the measured call's ``record_function`` range."""
    mem, window = [], None
    for e in prof.profiler.kineto_results.events():
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU:
            mem.append((int(e.start_ns()), int(e.nbytes())))
        elif e.name() == MARK:
            window = (int(e.start_ns()), int(e.end_ns()))
    mem.sort(key=lambda x: x[0])
    return mem, window


@contextlib.contextmanager
def _native_stderr_to_null() -> Iterator[None]:
    """Silence what C++ writes to fd 2 while the profiler runs: kineto's "USDT ... profiler_start/stop" lines and
    c10's "Memory block of unknown size" warning (see peak_of) would otherwise land in a user's terminal for
    every optimizer. Python exceptions still propagate: they are raised, not printed."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_of(fn: Callable[[], Any], device: str = "cpu", before: Callable[[], Any] | None = None) -> Peak:
    """The memory allocated during ``fn()`` above what was allocated when it began (see the module doc).

    ``before`` (e.g. the previous step) runs first, inside the same profile but outside the measured range:
    the CPU profiler cannot see a free of a block allocated before profiling began (c10 warns "Memory block of
    unknown size"), so the blocks ``fn`` frees, such as state tensors a step replaces, must be allocated under
    the profile to be subtracted."""
    if device.startswith("cuda"):
        if before is not None:
            before()
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return Peak(torch.cuda.max_memory_allocated(device) - start, torch.cuda.memory_allocated(device) - start,
                    "torch.cuda.max_memory_allocated")
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile

    with _native_stderr_to_null(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        if before is not None:
            before()
        with record_function(MARK):
            fn()
    events, window = _kineto(prof)
    if window is None:  # no range recorded (a profiler without record_function events): the whole profile
        window = (events[0][0] if events else 0, events[-1][0] if events else 0)
    lo, hi = window
    base = sum(b for t, b in events if t < lo)
    cur = peak = base
    for t, b in events:
        if lo <= t <= hi:
            cur += b
            peak = max(peak, cur)
    return Peak(peak - base, cur - base, "torch.profiler allocator events (profile_memory=True)")


@dataclass(frozen=True)
class StepMemory:
    """One optimizer's memory on one set of parameters (bytes; ``per_param`` figures per parameter element)."""

    n: int
    state_bytes: int
    step_peak_bytes: int
    step_net_bytes: int
    source: str

    @property
    def state_bytes_per_param(self) -> float:
        return self.state_bytes / max(self.n, 1)

    @property
    def step_peak_bytes_per_param(self) -> float:
        return self.step_peak_bytes / max(self.n, 1)

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "state_bytes": self.state_bytes, "state_bytes_per_param": self.state_bytes_per_param,
                "step_peak_bytes": self.step_peak_bytes, "step_peak_bytes_per_param": self.step_peak_bytes_per_param,
                "step_net_bytes": self.step_net_bytes, "memory_source": self.source}


def measure_step(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor], step: Callable[[], Any],
                 device: str = "cpu", before: Callable[[], Any] | None = None) -> StepMemory:
    """The transient peak of one ``step()`` after ``before()`` (the previous step and the gradients: see
    :func:`peak_of`), and the state bytes after it."""
    peak = peak_of(step, device, before)
    return StepMemory(numel(params), state_bytes(optimizer), peak.peak, peak.net, peak.source)


# The byte model of ``OptConfig.step_bytes_fp32`` counts, per parameter per step in fp32, the parameter read and
# written (8 B), the gradient read (4 B) and each state tensor read and written once (8 B per fp32 state tensor
# of the parameter's size): the state it implies is (model - 12) / 2 bytes per parameter.
COMPULSORY_FP32 = 12


def model_state_bytes_fp32(step_bytes_fp32: float | None) -> float | None:
    """The state bytes per parameter (fp32) implied by a byte model of ``step_bytes_fp32`` (None: no model)."""
    if step_bytes_fp32 is None:
        return None
    return (float(step_bytes_fp32) - COMPULSORY_FP32) / 2
