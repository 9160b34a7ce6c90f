"""Learning-rate schedules for P1, declared as data and built from ``torch.optim.lr_scheduler``.

Some correct methods cannot settle with a fixed lr: a sign-based update (Lion-style) moves every
coordinate by exactly lr, an RMS-normalised one by ~lr, so near x* they oscillate at a level
proportional to lr. Real training runs them under a decaying schedule, and so does P1: declared per
config (``OptConfig.schedule``, or ``schedule = ...`` in the user's TOML), or chosen automatically
(:data:`AUTO`) when the fixed-lr runs hover at a distance that grows with lr.

A spec is a mapping ``{"name": <class in torch.optim.lr_scheduler>, **kwargs}``; for ``ExponentialLR``
``final_factor`` may replace ``gamma``: the lr decays to ``final_factor`` x its start over the budget.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from .errors import ConfigError

# The automatic schedule: exponential decay to 1e-4 of the initial lr over the epoch budget. A sign
# method's total travel is then lr/(1 - gamma) ~ lr * epochs / ln(1e4) (about 100 lr for 1000 epochs),
# enough to cross the catalogue's start distances from the grid's larger lrs, and its final
# oscillation ~1e-4 lr is below P1's float64 tolerance (1e-4) for every grid lr <= 1.
AUTO: Mapping[str, Any] = {"name": "ExponentialLR", "final_factor": 1e-4}


def parse_schedule(value: Any, *, where: str) -> Mapping[str, Any] | None:
    """A user's ``schedule`` setting: ``"auto"``, ``"none"`` or a table ``{name = "...", ...}``."""
    if value is None or value == "none":
        return None
    if value == "auto":
        return dict(AUTO)
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        if not hasattr(torch.optim.lr_scheduler, value["name"]):
            raise ConfigError(f"{where}: schedule name {value['name']!r} is not in torch.optim.lr_scheduler; "
                              f"use e.g. {{ name = \"ExponentialLR\", gamma = 0.99 }} or \"auto\"")
        return dict(value)
    raise ConfigError(f"{where}: schedule = {value!r}; use \"auto\", \"none\" or a table like "
                      f"{{ name = \"ExponentialLR\", gamma = 0.99 }}")


def scheduler_kwargs(spec: Mapping[str, Any], epochs: int) -> dict[str, Any]:
    kw = {k: v for k, v in spec.items() if k not in ("name", "final_factor")}
    if "final_factor" in spec:
        if spec["name"] != "ExponentialLR":
            raise ConfigError(f"schedule {dict(spec)}: final_factor applies to ExponentialLR only")
        kw["gamma"] = float(spec["final_factor"]) ** (1.0 / max(int(epochs), 1))
    return kw


def make_scheduler(spec: Mapping[str, Any] | None, optimizer: torch.optim.Optimizer, epochs: int) -> Any:
    """The ``torch.optim.lr_scheduler`` object for ``spec`` over ``optimizer`` (None: no schedule)."""
    if spec is None:
        return None
    cls = getattr(torch.optim.lr_scheduler, spec["name"])
    return cls(optimizer, **scheduler_kwargs(spec, epochs))


def describe(spec: Mapping[str, Any] | None, epochs: int) -> str | None:
    """``ExponentialLR(gamma=0.9908)``: how the schedule reads in diagnoses, reproducers and profiles."""
    if spec is None:
        return None
    kw = scheduler_kwargs(spec, epochs)
    args = ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in kw.items())
    return f"{spec['name']}({args})"
