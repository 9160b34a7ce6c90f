"""RNG discipline: every pair of runs optbench compares starts from the same random state.

An optimizer may draw random numbers (Hutchinson probes in AdaHessian or SophiaH, PSGD-Kron's
preconditioner updates, GaLore's or APOLLO's random projections). Compared with itself from two
different RNG states it "differs", which says nothing about the property being checked. So every side
of a comparison calls :func:`reseed` before it builds its optimizer, inside :func:`isolated`, which
forks the global generators (``torch.random.fork_rng`` over the CPU and every CUDA device, plus
Python's ``random`` and NumPy's global state where NumPy is loaded, as ``seed_everything`` helpers
do) so the caller's own RNG state is left as it was.

A resumed run restores the RNG state saved with the checkpoint (:func:`get_state`/:func:`set_state`),
as a training checkpoint does: an optimizer drawing from the global RNG then resumes exactly, and one
whose own ``torch.Generator`` is kept outside ``state_dict()`` still does not.
"""

from __future__ import annotations

import contextlib
import functools
import random
import sys
from typing import Any, Callable, Iterator, TypeVar

import torch

SEED = 0  # every compared run starts from this seed
OTHER_SEED = 1  # "another process": a resumed run before its checkpoint's RNG state is restored; the probe's other seed


def _cuda_devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def reseed(seed: int = SEED) -> None:
    """Seed torch (CPU and every CUDA device), Python's ``random`` and, if loaded, NumPy's global RNG."""
    torch.manual_seed(seed)  # seeds every CUDA device too
    random.seed(seed)
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(seed)


@contextlib.contextmanager
def isolated(seed: int | None = SEED) -> Iterator[None]:
    """Run the block on forked global generators (seeded with ``seed`` unless None); restore them after."""
    py_state = random.getstate()
    np = sys.modules.get("numpy")
    np_state = np.random.get_state() if np is not None else None
    try:
        with torch.random.fork_rng(devices=_cuda_devices(), device_type="cuda"):
            if seed is not None:
                reseed(seed)
            yield
    finally:
        random.setstate(py_state)
        if np is not None and np_state is not None:
            np.random.set_state(np_state)


F = TypeVar("F", bound=Callable[..., Any])


def forked(fn: F) -> F:
    """Decorate a check: it runs on forked global generators (the caller's RNG state is left as it was)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with isolated():
            return fn(*args, **kwargs)

    return run  # type: ignore[return-value]


def get_state() -> dict[str, Any]:
    """The global RNG state, as a training checkpoint saves it (torch CPU and CUDA, Python, NumPy)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    np = sys.modules.get("numpy")
    if np is not None:
        state["numpy"] = np.random.get_state()
    return state


def set_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_state` returned."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np = sys.modules.get("numpy")
    if np is not None and "numpy" in state:
        np.random.set_state(state["numpy"])


def which_drawn(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The global generators whose state changed between two :func:`get_state` snapshots."""
    out = []
    if not torch.equal(before["torch"], after["torch"]):
        out.append("torch's CPU generator")
    if "cuda" in before and any(not torch.equal(a, b) for a, b in zip(before["cuda"], after.get("cuda", []))):
        out.append("torch's CUDA generator")
    if before["python"] != after["python"]:
        out.append("Python's random")
    if "numpy" in before and "numpy" in after:
        a, b = before["numpy"], after["numpy"]
        if a[0] != b[0] or a[2:] != b[2:] or (a[1] != b[1]).any():
            out.append("NumPy's global RNG")
    return out


def generators_of(obj: Any, depth: int = 2) -> list[str]:
    """Attribute paths of ``torch.Generator`` objects an optimizer keeps on itself (outside its state_dict)."""
    out: list[str] = []

    def walk(value: Any, path: str, level: int) -> None:
        if isinstance(value, torch.Generator):
            out.append(path)
        elif level < depth and isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}[{k!r}]", level + 1)
        elif level < depth and isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]", level + 1)

    for name, value in vars(obj).items():
        if name not in ("state", "param_groups", "defaults"):
            walk(value, f"self.{name}", 0)
    return out
