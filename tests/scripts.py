"""Helpers for the tests that read generated reproducer scripts."""

from __future__ import annotations

import ast


def imported_modules(source: str) -> set[str]:
    """The top-level modules a script imports (``import a.b`` and ``from a.b import c`` both give ``a``)."""
    mods = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mods.add((node.module or "").split(".")[0])
    return mods
