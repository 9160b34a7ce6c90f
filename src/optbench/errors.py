"""Errors that reach a user as one line: what is wrong, and how to fix it."""

from __future__ import annotations


def short_path(path: str) -> str:
    """Where an error happened, as a user reads it: ``.../site-packages/torch/optim/adam.py`` ->
    ``torch/optim/adam.py``; other paths keep their last 3 parts."""
    parts = path.replace("\\", "/").split("/")
    for anchor in ("site-packages", "dist-packages"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) + 1:])
    return "/".join(parts[-3:])


class OptbenchError(Exception):
    """Base class. ``str(err)`` is a single line that names the problem and the fix."""

    def __init__(self, message: str) -> None:
        # One line by construction: a user reads this in a terminal or a CI log.
        super().__init__(" ".join(str(message).split()))


class ExpressionError(OptbenchError, ValueError):
    """An expression string that is not in the allowed grammar."""


class TargetError(OptbenchError, ValueError):
    """A target definition that is inconsistent (bad variables, a claimed minimum that is not one)."""


class SpecError(OptbenchError, ValueError):
    """A ``module:attr`` spec (``--target``, ``--optimizer``) that cannot be loaded or is of the wrong type."""


class ConfigError(OptbenchError, ValueError):
    """A configuration file (TOML, baseline JSON) that is missing, corrupt or inconsistent."""


class DivergenceError(OptbenchError, ArithmeticError):
    """A run whose loss or parameters became NaN or infinite."""
