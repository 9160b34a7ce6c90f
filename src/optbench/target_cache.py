"""A memo on disk of the built-in targets' derivations, so that a process does not derive them again.

Building the catalogue derives every target's stationary points exactly (Groebner bases, 50-digit Newton; see
:mod:`optbench.target_derive`): ~3 s of sympy in every process that needs it, which is every xdist worker of the
suite and every worker of ``optbench validate``. The result depends only on the code that derives it, so
:func:`cached` keeps it: the target's state as its constructor left it (sympy objects: the exact minimizers,
gradient, Hessian, domain, basin, starts), without the callables compiled from it, which are rebuilt from the
expression on load (:func:`optbench.expr_torch.compile_torch`, :class:`optbench.minima.Numeric`).

An entry is keyed by the source of every module the derivation runs (the catalogue itself included: a changed
target is a new key) and the versions of Python, sympy, mpmath and torch; anything else is a new derivation. The
folder is ``$OPTBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/optbench``, else ``~/.cache/optbench`` (created private
to the user: the entries are pickles, read from nowhere else); ``OPTBENCH_CACHE=0`` turns it off. The cache never
fails a run: an entry that cannot be read is derived again and rewritten, a folder that cannot be written is
not used. Entries are written atomically (a temporary file, then a rename), so concurrent workers are safe.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

# the modules whose code decides what a built-in target is
_SOURCES = ("catalogue", "target", "target_derive", "minima", "exact", "expr", "expr_torch", "errors")
_CALLABLES = ("numeric", "reference", "fn")  # compiled from the expression: rebuilt on load, never pickled


def cache_dir() -> Path | None:
    """The cache folder, or None when the cache is off."""
    if os.environ.get("OPTBENCH_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if os.environ.get("OPTBENCH_CACHE_DIR"):
        return Path(os.environ["OPTBENCH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "optbench"


@functools.lru_cache(maxsize=None)
def key() -> str:
    """What the derivations depend on: the source of the modules that run them, and the library versions."""
    import mpmath
    import sympy
    import torch

    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for mod in _SOURCES:
        h.update(mod.encode() + b"\0" + (here / f"{mod}.py").read_bytes() + b"\0")
    for part in (sys.version.split()[0], sympy.__version__, mpmath.__version__, torch.__version__):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:24]


def _path(name: str) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / "targets" / key() / f"{name}.pickle"


def _load(path: Path) -> Any | None:
    from .expr_torch import compile_torch
    from .minima import Numeric
    from .target import Target

    try:
        with open(path, "rb") as fh:
            state = pickle.load(fh)
        if not isinstance(state, dict) or "expr" not in state:
            return None
        t = Target.__new__(Target)
        t.__dict__.update(state)
        t.numeric = Numeric(t.expr, t.variables, t.gradient, t.hessian)
        t.reference = compile_torch(t.expr, t.variables, t.shape)
        t.fn = t.impl if t.impl is not None else t.reference
        return t
    except Exception:  # noqa: BLE001 - a stale or damaged entry: derive again
        return None


def _store(path: Path, target: Any) -> None:
    if target.impl is not None:  # a kernel under test is code, not a derivation: never memoised
        return
    state = {k: v for k, v in vars(target).items() if k not in _CALLABLES}
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        pass  # a read-only home, a full disk, a state that does not pickle: the run goes on without the memo


def cached(name: str, build: Callable[[], Any]) -> Any:
    """The built-in target ``name``: from the cache where its derivation is there, else ``build()`` (stored)."""
    path = _path(name)
    if path is not None and path.exists():
        target = _load(path)
        if target is not None:
            return target
    target = build()
    if path is not None:
        _store(path, target)
    return target
