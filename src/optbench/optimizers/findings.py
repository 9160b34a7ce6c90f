"""What a failed contract property reports: the diagnosis, the exemption stanza for a property some methods
break on purpose, and the root cause of a finding raised inside the optimizer.

:class:`PropertyFailure` is the contract's :class:`~optbench.verdict.CheckFailure`. Its ``stanza`` is the
ready-to-paste exemption (``[tool.optbench.optimizers.NAME.exemptions]``, the keys of
:mod:`optbench.optimizers.user`) whose reason is the diagnosis; ``cause`` identifies an exception raised by
the optimizer, so that one cause blocking a whole case is reported once. :class:`DrawOrder` is the
not-applicable of a comparison whose two sides draw random numbers in a different order.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ..loop import OptimizerRaised, no_address
from ..verdict import CheckFailure, NotApplicable
from .info import PROPERTIES

from . import rng

if TYPE_CHECKING:
    from .problem import Case

# Properties some methods break on purpose (a projection, a global statistic, low-precision state, a step size
# of the method's own, ...): a FAIL
# of one ends with the exemption stanza that declares it, its reason the diagnosis.
BY_DESIGN = frozenset({"P2", "P3", "P5", "P6", "P7", "P9", "P12", "P13"})


def _base_prop(prop: str) -> str:
    return prop.split(".")[0].split(":")[0].split("@")[0]


class PropertyFailure(CheckFailure):
    """A property that does not hold; ``str()`` is the diagnosis. ``details`` feed the reproducer.

    ``reason`` is the diagnosis in a few words, the reason of the exemption stanza offered when the property is
    one some methods break on purpose (:data:`BY_DESIGN`); ``trait`` marks a diagnosis that names a trait of the
    method rather than a bug (still a FAIL: the property does not hold until the user declares it)."""

    def __init__(self, prop: str, case: "Case | None", message: str, reproducer: str | None = None, *,
                 reason: str | None = None, trait: bool = False, offer: bool = True, **details: Any) -> None:
        self.case = case
        self.details = details
        self.trait = trait
        self.reason = reason or _short_reason(message)  # the diagnosis in a few words (another check may cite it)
        self.cause: tuple[str, str] | None = None  # (exception type, message) when the optimizer raised
        base = _base_prop(prop)
        title = f"{prop} {PROPERTIES.get(base, '')}".strip()
        self.stanza = None
        if offer and case is not None and base in BY_DESIGN:
            self.stanza = exemption_stanza(case, base, self.reason)
            message = (f"{message}. {'A trait' if trait else 'If this is by design'}: declare it with the exemption "
                       f"below (exit code 0 once declared)")
        super().__init__(prop, case.label if case is not None else "", message, reproducer, title=title)


def _short_reason(message: str) -> str:
    """A diagnosis in a few words: the message up to its first parenthesis or semicolon."""
    head = re.split(r" \(|; ", " ".join(message.split()), maxsplit=1)[0]
    return head[:160]


def exemption_stanza(case: "Case", prop: str, reason: str) -> str:
    """The lines that declare ``prop`` exempt for this optimizer, ready to paste (the reason is the diagnosis)."""
    info = case.info
    if not info.user:
        return (f"# {info.source or info.name} is in optbench's registry: add to its OptimizerInfo in "
                f"optbench/optimizers/info.py\nexemptions={{{prop!r}: {reason!r}}}")
    name = info.name
    key = name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)
    return (f"# pyproject.toml (or [optimizers.{key}.exemptions] in a --config file)\n"
            f"[tool.optbench.optimizers.{key}.exemptions]\n{prop} = {json.dumps(reason)}")


def optimizer_finding(prop: str, case: "Case", exc: OptimizerRaised, doing: str = "", **details: Any) -> PropertyFailure:
    """The optimizer's own code raised while ``prop`` was being checked: a finding of the optimizer."""
    where = f" while {doing}" if doing else ""
    failure = PropertyFailure(prop, case, f"{_head(str(exc))}{where} (raised inside the optimizer, not by optbench)",
                              offer=False, raised=type(exc.original).__name__, call=exc.call, **details)
    failure.cause = raised_cause(exc)
    return failure


# where torch._dynamo's exception texts turn from what went wrong to advice and its own stack (thousands of characters)
_TAIL = (" Hint: ", " Developer debug context", " from user code:", " Set TORCHDYNAMO_VERBOSE")


def _head(text: str, keep: int = 600) -> str:
    """An exception's text, cut before torch._dynamo's hints and stack where it is longer than ``keep`` characters
    (Kron's step, compiled, failing on a mangled einsum string: 2000 characters before the cause optbench found)."""
    text = " ".join(text.split())
    if len(text) <= keep:
        return text
    cuts = [i for i in (text.find(t) for t in _TAIL) if i > 0]
    return text[:min(cuts)] + " [...]" if cuts else text


def raised_cause(exc: OptimizerRaised) -> tuple[str, str]:
    """What identifies one root cause among findings: the exception's type and its one-line message."""
    return type(exc.original).__name__, no_address(" ".join(str(exc.original).split()))


class DrawOrder(NotApplicable):
    """Two sides that cannot be compared bit for bit because they draw random numbers in a different order.

    ``note`` says what was compared instead (order-independently) and passed."""

    def __init__(self, message: str, note: str) -> None:
        super().__init__(message)
        self.note = note


# ---------------------------------------------------------------------------------------------
# One root cause, one finding: a case whose plain run raises


_ROOT: dict[tuple[str, str, str, str, str], OptimizerRaised | None] = {}
ROOT_STEPS = 5  # a plain run as long as the longest of the contract's (LONG_STEPS)


def root_cause(case: "Case") -> OptimizerRaised | None:
    """What the optimizer raised constructing itself or in a plain run of ``ROOT_STEPS`` steps on the contract's
    problem, or None (cached per case): every check of the case that meets the same exception is blocked by it."""
    from .problem import case_key, fresh_run

    key = case_key(case)
    if key not in _ROOT:
        with rng.isolated():
            try:
                fresh_run(case, ROOT_STEPS)
                _ROOT[key] = None
            except OptimizerRaised as exc:
                _ROOT[key] = exc
    return _ROOT[key]


def root_finding(prop: str, case: "Case", exc: OptimizerRaised) -> PropertyFailure:
    """The one finding of a root cause, reported on the case's first check (its reproducer runs the plain run)."""
    return optimizer_finding(prop, case, exc, f"a plain run of {ROOT_STEPS} steps on the contract's problem (every "
                                              f"check of this case that meets it is marked BLOCKED, not repeated)",
                             kind="root", steps=ROOT_STEPS)
