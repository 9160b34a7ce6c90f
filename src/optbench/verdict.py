"""Checks and their verdicts: the one vocabulary shared by `optbench validate`, the pytest suite and
``optbench.testing.parametrize_with_checks``.

A check is a plain callable that raises :class:`CheckFailure` when its property is violated (the
message is the diagnosis, optionally followed by a standalone reproducer), raises
:class:`NotApplicable` when a detected convention makes the property meaningless for the subject, and
otherwise returns (optionally a dict of measured data). :func:`run_check` turns one
:class:`CheckItem` into one :class:`Verdict`:

========  ====================================================================================
PASS      the property holds
FAIL      the property is violated: a bug of the subject (optimizer or target kernel)
N/A       does not apply, with the reason detected at plan or run time
EXEMPT    does not apply, with the reason the registry or the user's config declares
XFAIL     a known upstream bug, declared with its reason, still present
XPASS     a declared known bug no longer shows: the declaration is stale (counts as a failure)
MEASURED  a performance figure was recorded (convergence profiles); never a failure
BLOCKED   not judged: the check met a failure of the same case whose root cause is reported once, on
          another check (e.g. step() raising for a whole dtype); counts as a failure
ERROR     optbench's own code crashed: a harness defect, never the subject's fault
========  ====================================================================================

A check that passes may return ``{"note": ...}``: what it detected on the way (a state-initialising first
step, random draws from the global RNG); the note becomes the verdict's message.

Nothing here imports pytest.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

PASS, FAIL, NA, EXEMPT, XFAIL, XPASS, MEASURED, ERROR = (
    "PASS", "FAIL", "N/A", "EXEMPT", "XFAIL", "XPASS", "MEASURED", "ERROR")
BLOCKED = "BLOCKED"
OUTCOMES = (PASS, FAIL, NA, EXEMPT, XFAIL, XPASS, MEASURED, BLOCKED, ERROR)
BAD = frozenset({FAIL, XPASS, BLOCKED})  # outcomes that make `optbench validate` exit 1


class CheckFailure(AssertionError):
    """A violated property. ``str()`` is the diagnosis; ``reproducer`` an optional standalone script; ``stanza``
    the lines that declare the property exempt, where some methods break it on purpose."""

    stanza: str | None = None
    data: dict | None = None  # what the check measured on the way (the verdict's data, as a PASS's return value)

    def __init__(self, prop: str, where: str, message: str, reproducer: str | None = None, *,
                 title: str | None = None) -> None:
        self.prop = prop
        self.where = where
        self.diagnosis = message
        self.reproducer = reproducer
        head = title or prop
        super().__init__(f"{head}: {where}: {message}" if where else f"{head}: {message}")

    @property
    def one_line(self) -> str:
        return " ".join(str(self).split())


class NotApplicable(Exception):
    """The check does not apply to this subject; ``str()`` is the detected reason."""

    data: dict | None = None  # what the check measured before it could tell (the verdict's data)


class SubjectRaised(CheckFailure):
    """The optimizer (or target kernel) itself raised: a finding of the subject, reported with its message."""


class Blocked(Exception):
    """The check met the root cause of a finding reported once on another check (``root``, a node id); ``str()``
    names the cause and where it is reported."""

    def __init__(self, root: str, cause: str, known: str | None = None) -> None:
        self.root = root
        self.known = known  # the root's declared known bug: the blocked check is then an XFAIL of it too
        super().__init__(f"blocked by {cause}, reported once at {root} with its reproducer")


@dataclass(frozen=True)
class CheckItem:
    """One check on one case. ``run`` does the work; the other fields are data read by every front end."""

    test: str  # the check's name, e.g. "test_p05_grad_untouched" (pytest test function of the suite)
    id: str  # the case, e.g. "adam-foreach-float64-cpu" (pytest parameter id)
    prop: str  # the property, e.g. "P5", "P1", "P1.l2", "G.grad"
    subject: str  # what is judged: an optimizer config id or a target name
    run: Callable[[], Any] = field(compare=False, repr=False)
    exempt: str | None = None  # declared reason it does not apply (EXEMPT)
    known: str | None = None  # declared known upstream bug (XFAIL, strict)
    na: str | None = None  # reason it does not apply, detected when planning (N/A)
    device: str = "cpu"
    marks: tuple[str, ...] = ()  # pytest marker names the glue adds, e.g. ("distributed",)
    measure: bool = False  # a performance measurement: a pass is MEASURED, never a FAIL
    target: str | None = None  # the target function the check runs on, where there is one
    # items with the same `share` key reuse one computation (P1's targets of one case share their runs): front
    # ends that run items in several processes keep them in one, in plan order, so it is done once
    share: str | None = None

    @property
    def nodeid(self) -> str:
        return f"{self.test}[{self.id}]"

    @property
    def column(self) -> str:
        """The case without the subject and target, for the property x case table (``foreach-float64-cpu``)."""
        prefix = self.subject + "-"
        col = self.id[len(prefix):] if self.id.startswith(prefix) else self.id
        if self.target and self.target != self.subject:
            col = col.replace(f"-{self.target}-", "-", 1)
        return col


@dataclass
class Verdict:
    """The outcome of one :class:`CheckItem`. ``message`` is one line; ``reproducer`` a script or None."""

    test: str
    id: str
    prop: str
    subject: str
    device: str
    outcome: str
    message: str = ""
    reproducer: str | None = None
    data: dict[str, Any] | None = None
    seconds: float = 0.0
    stanza: str | None = None  # a FAIL of a property some methods break on purpose: the exemption to paste

    @property
    def nodeid(self) -> str:
        return f"{self.test}[{self.id}]"

    def as_dict(self) -> dict[str, Any]:
        return {"test": self.test, "id": self.id, "prop": self.prop, "subject": self.subject, "device": self.device,
                "outcome": self.outcome, "message": self.message, "reproducer": self.reproducer, "data": self.data,
                "seconds": round(self.seconds, 4), "stanza": self.stanza}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def harness_message(exc: BaseException) -> str:
    """One line for an exception raised by optbench's own code, with where it happened."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {tb[-1].filename.rsplit('/', 2)[-1]}:{tb[-1].lineno}" if tb else ""
    return (f"optbench internal error (not the subject's fault): {type(exc).__name__}: {_one_line(str(exc))}{where}; "
            f"please report it with this line")


# data key: a check whose computation is shared with other checks (P1: a case's targets share one session, run
# by the first of them) reports its own part of it here; its verdict's ``seconds`` is that part, not the wall
# time of its call (the whole computation for the first check, nothing for the others)
SHARE = "share_seconds"


def run_check(item: CheckItem) -> Verdict:
    """Run one check and classify what happened. Never raises (except KeyboardInterrupt/SystemExit)."""
    base = dict(test=item.test, id=item.id, prop=item.prop, subject=item.subject, device=item.device)
    if item.exempt:
        return Verdict(**base, outcome=EXEMPT, message=_one_line(item.exempt))
    if item.na:
        return Verdict(**base, outcome=NA, message=_one_line(item.na))
    t0 = time.perf_counter()  # recorded in the verdict only; nothing is decided on it
    data = None
    stanza = None
    try:
        data = item.run()
        outcome, message, repro = (MEASURED if item.measure else PASS), "", None
        if isinstance(data, dict) and data.get("note"):
            message = _one_line(data["note"])
    except CheckFailure as exc:
        outcome, message, repro, stanza, data = FAIL, exc.one_line, exc.reproducer, exc.stanza, exc.data
    except Blocked as exc:
        outcome, message, repro = BLOCKED, _one_line(str(exc)), None
        if exc.known:
            outcome, message = XFAIL, f"known: {_one_line(exc.known)} | observed: {message}"
    except NotApplicable as exc:
        outcome, message, repro, data = NA, _one_line(str(exc)), None, exc.data
    except Exception as exc:  # noqa: BLE001 - anything else is optbench's own defect
        outcome, message, repro = ERROR, harness_message(exc), None
    secs = time.perf_counter() - t0
    if isinstance(data, dict) and SHARE in data:  # a computation shared with other checks: this check's part of it
        secs = data[SHARE]
    if item.known and outcome in (FAIL, BLOCKED):
        outcome, message = XFAIL, f"known: {_one_line(item.known)} | observed: {message}"
    elif item.known and outcome in (PASS, MEASURED):
        outcome, message = XPASS, (f"declared known bug no longer shows ({_one_line(item.known)}); remove the "
                                   f"declaration")
    if isinstance(data, dict):
        data = dict(data)
    else:
        data = None
    return Verdict(**base, outcome=outcome, message=message, reproducer=repro, data=data, seconds=secs,
                   stanza=stanza if outcome == FAIL else None)
