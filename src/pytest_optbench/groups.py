"""pytest-xdist's ``--dist loadgroup`` on pytest 9: ``xdist_group`` marks group again.

A worker tells xdist's controller a test's group by appending ``@<group>`` to the test's node id
(``item._nodeid = ...`` in xdist 3.8's ``remote.py``). pytest 9 keeps a node id in a structured
``_id`` and no longer reads ``_nodeid``, so the suffix is silently lost and ``--dist loadgroup``
distributes grouped tests one by one (pytest-dev/pytest-xdist#1386, fix proposed in #1388). Every
share of optbench's checks (a case's P1 targets, which share their runs; the distributed tier's rank
pool; the three P21 checks of one compiled run) and every module fixture of a grouped test module was
then computed on each worker that got one of its tests. Measured (2-core VM, 2026-12-07, ``pytest -n 2
--dist loadgroup tests validation -p no:randomly``): 263 s wall and 479 s of summed test durations before,
221 s and 398 s after (validation/test_optimizers.py alone: 108 s -> 57 s).

Where xdist's suffix did not take, this writes it where pytest 9 reads it (the same node id xdist
writes on pytest 8). A pytest whose node ids are neither is left alone: grouping then costs time, never
a result.

And ``-n N`` alone means ``--dist load`` to xdist, which deals a share's items to both workers, each then
computing it: :func:`default_to_loadgroup` makes ``loadgroup`` the default where the user chose no ``--dist``
(loadgroup is load for every item without an ``xdist_group`` mark)."""

from __future__ import annotations

import os
import shlex
from typing import Any, Sequence

import pytest


def group_suffix(item: pytest.Item) -> str | None:
    """``@<names>`` as xdist builds it from the item's ``xdist_group`` marks (sorted, joined by ``_``)."""
    names = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
    return "@" + "_".join(sorted(names)) if names else None


def without_group(nodeid: str) -> str:
    """``nodeid`` without the ``@<group>`` suffix (xdist's rule: an ``@`` after the last ``]``), for display."""
    at = nodeid.rfind("@")
    return nodeid[:at] if at > nodeid.rfind("]") else nodeid


def apply_groups(config: pytest.Config, items: list[Any]) -> int:
    """Give each grouped item its ``@<group>`` node id suffix where xdist's own did not take; returns how many
    were fixed. Only on an xdist worker of ``--dist loadgroup`` (xdist sets ``config.option.loadgroup`` there)."""
    if not getattr(config.option, "loadgroup", False):
        return 0
    try:
        from _pytest.nodeid import NodeId  # pytest >= 9: the structured node id
    except ImportError:
        return 0
    fixed = 0
    for item in items:
        suffix = group_suffix(item)
        if suffix is None or item.nodeid.endswith(suffix) or not isinstance(getattr(item, "_id", None), NodeId):
            continue
        item._id = NodeId.parse(item.nodeid + suffix)  # parse keeps the whole string as the node id
        fixed += 1
    return fixed


def _chose_dist(args: Sequence[str]) -> bool:
    return any(a == "-d" or a.startswith("--dist") or a == "--distload" for a in args)


def default_to_loadgroup(config: pytest.Config) -> bool:
    """Turn xdist's default ``--dist load`` (what ``-n N`` implies) into ``loadgroup`` unless ``--dist`` (or
    ``-d``, ``--distload``) was given on the command line, in PYTEST_ADDOPTS or in the ini's addopts. Returns
    whether it did. Called in the controller's pytest_configure: xdist reads the mode when the session starts,
    and hands it to its workers."""
    if getattr(config.option, "dist", "no") != "load":
        return False
    given = (list(config.invocation_params.args) + shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
             + list(config.getini("addopts")))
    if _chose_dist([str(a) for a in given]):
        return False
    config.option.dist = "loadgroup"
    return True
