"""``--target module:attr``: load a Target, a list of Targets, or a callable returning them."""

from __future__ import annotations

from .errors import SpecError
from .spec import load_spec, parse_spec


def load_targets(text: str) -> list:
    from .target import Target

    spec = parse_spec(text, option="--target", allow_name=False)
    obj = load_spec(spec, option="--target")
    if callable(obj) and not isinstance(obj, Target):
        try:
            obj = obj()
        except Exception as exc:
            raise SpecError(f"--target {text!r}: calling {spec.attr}() raised {type(exc).__name__}: {exc}") from None
    items = [obj] if isinstance(obj, Target) else obj
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(t, Target) for t in items):
        raise SpecError(
            f"--target {text!r}: {spec.attr} is a {type(obj).__name__}, not an optbench.Target, a list of Targets, "
            f"or a callable returning them"
        )
    return list(items)
