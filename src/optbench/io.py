"""Atomic, non-clobbering writes. Results are either whole on disk or absent."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import OptbenchError


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    With ``overwrite=False`` an existing file is refused instead of replaced, so nothing a user
    saved is lost silently.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise OptbenchError(f"{path} already exists; pass a new --out folder or remove the file first")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600; give the result the permissions a plain open() would have
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, overwrite: bool = True) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", overwrite=overwrite)


def save_figure(fig: Any, path: str | os.PathLike, *, overwrite: bool = True, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically as PNG."""
    import io as _io

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue(), overwrite=overwrite)


def read_json(path: str | os.PathLike, *, what: str = "JSON file") -> Any:
    """Read JSON with a one-line error for a missing or corrupt file."""
    from .errors import ConfigError

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist; check the path") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read ({exc.strerror}); check its permissions") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{what} {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); regenerate it"
        ) from None
