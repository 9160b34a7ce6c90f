"""Devices and dtypes under test."""

from __future__ import annotations

import torch

from .errors import OptbenchError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "all")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cuda_available() -> bool:
    return torch.cuda.is_available()


def cuda_skip_reason() -> str | None:
    """None when CUDA can be used, else the reason a CUDA test is skipped."""
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
    try:
        return DTYPES[name]
    except KeyError:
        raise OptbenchError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}") from None


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def parse_device(text: str) -> str:
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
