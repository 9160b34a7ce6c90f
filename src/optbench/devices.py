"""Devices and dtypes under test.

Importing this module does not import torch (the pytest plugin imports it in every pytest process, also
where nothing of optbench's runs, and an xdist controller never runs a check): each function imports torch
when called. On a CPU-only build of torch, ``cuda_skip_reason`` answers from the installed distribution's
version (``+cpu``) without importing it."""

from __future__ import annotations

import sys
from importlib import metadata
from typing import TYPE_CHECKING

from .errors import OptbenchError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "all")
DTYPE_NAMES = ("float32", "float64", "bfloat16", "float16")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def torch_version() -> str:
    """The installed torch's version: from its distribution's metadata while torch is not imported (a torch
    already imported is asked itself: its metadata may be another's, as a source checkout's may be)."""
    if "torch" not in sys.modules:
        try:
            return metadata.version("torch")
        except metadata.PackageNotFoundError:
            pass
    import torch

    return torch.__version__


def cuda_skip_reason() -> str | None:
    """None when CUDA can be used, else the reason a CUDA test is skipped."""
    if "torch" not in sys.modules:
        version = torch_version()
        if version.endswith("+cpu"):  # PyTorch's CPU wheels are named so: no import needed to tell
            return f"CUDA not present: this torch ({version}) is a CPU-only build"
    import torch

    if not torch.backends.cuda.is_built():
        return f"CUDA not present: this torch ({torch.__version__}) is a CPU-only build"
    if not torch.cuda.is_available():
        return "CUDA not present: torch has CUDA support but no device is visible"
    return None


def selected_devices(choice: str) -> list[str]:
    """Devices named by ``--device auto|cpu|cuda|all``: ``auto`` is cpu plus cuda where CUDA can be used (a CPU
    machine does not collect CUDA cases only to skip them); ``all`` always includes cuda (skipped if absent)."""
    if choice not in DEVICE_CHOICES:
        raise OptbenchError(f"unknown device {choice!r}; use one of {', '.join(DEVICE_CHOICES)}")
    if choice == "auto":
        return ["cpu"] if cuda_skip_reason() else ["cpu", "cuda"]
    return ["cpu", "cuda"] if choice == "all" else [choice]


def parse_dtype(name: str) -> torch.dtype:
    if name not in DTYPE_NAMES:
        raise OptbenchError(f"unknown dtype {name!r}; use one of {', '.join(DTYPE_NAMES)}")
    import torch

    return getattr(torch, name)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def parse_device(text: str) -> str:
    import torch

    try:
        dev = torch.device(str(text))
    except (RuntimeError, ValueError):
        raise OptbenchError(f"unknown device {text!r}; use cpu or cuda (cuda:N)") from None
    if dev.type == "cuda":
        reason = cuda_skip_reason()
        if reason:
            raise OptbenchError(f"--device {text}: {reason}; use --device cpu")
    elif dev.type != "cpu":
        raise OptbenchError(f"unsupported device {text!r}; use cpu or cuda (cuda:N)")
    return str(dev)
