"""Load user objects named as ``[NAME=]module:attr`` (``--target``, ``--optimizer``)."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from .errors import SpecError

_SPEC_RE = re.compile(r"^(?:(?P<name>[A-Za-z_][\w.-]*)=)?(?P<module>[A-Za-z_][\w.]*):(?P<attr>[A-Za-z_][\w.]*|\*)$")


@dataclass(frozen=True)
class Spec:
    text: str
    name: str | None
    module: str
    attr: str


def parse_spec(text: str, *, option: str, allow_name: bool = True, allow_wildcard: bool = False) -> Spec:
    """Split ``[NAME=]module:attr`` (and ``module:*`` where ``allow_wildcard``: every optimizer a module exports);
    a malformed spec is a one-line error naming the expected form."""
    m = _SPEC_RE.match(text.strip())
    wildcard = bool(m) and m.group("attr") == "*"
    if not m or (m.group("name") and not allow_name) or (wildcard and not allow_wildcard):
        form = "[NAME=]module:attr" if allow_name else "module:attr"
        raise SpecError(f"{option} {text!r} is not of the form {form} (for example mypkg.optim:MyAdam)")
    if wildcard and m.group("name"):
        raise SpecError(f"{option} {text!r}: a NAME= cannot name a whole module's optimizers; give {m.group('module')}:* "
                        f"(each optimizer is named after its class) or NAME=module:Class for one")
    return Spec(text, m.group("name"), m.group("module"), m.group("attr"))


def load_module(spec: Spec, *, option: str) -> Any:
    """Import ``spec.module``; errors are one line and name the fix."""
    try:
        return importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        raise SpecError(
            f"{option} {spec.text!r}: module {exc.name!r} not found; check the name and that it is importable "
            f"(installed, or on PYTHONPATH)"
        ) from None
    except Exception as exc:  # the user's module raised while importing
        raise SpecError(
            f"{option} {spec.text!r}: importing {spec.module!r} raised {type(exc).__name__}: {exc}"
        ) from None


def load_spec(spec: Spec, *, option: str) -> Any:
    """Import ``spec.module`` and walk ``spec.attr``; errors are one line and name the fix."""
    obj = load_module(spec, option=option)
    for part in spec.attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SpecError(f"{option} {spec.text!r}: {spec.module!r} has no attribute {spec.attr!r}") from None
    return obj
