"""Optimizer validation: the OptimizerInfo registry, user optimizers, and the property contract P1-P17."""

from __future__ import annotations

from .info import IMPLS, PROPERTIES, Budget, OptConfig, OptimizerInfo, builtin_registry

__all__ = ["IMPLS", "PROPERTIES", "Budget", "OptConfig", "OptimizerInfo", "builtin_registry"]
