"""Map optbench's check items and verdicts onto pytest: marks at collection, outcomes at run time.

Shared by the suite's own glue (``fixtures/checks.py``) and ``optbench.testing.parametrize_with_checks``.
Declared exemptions and plan-time N/A are skips carrying their reason, declared known upstream bugs are
strict xfails, and a FAIL is reported as its diagnosis followed by the standalone reproducer, without a
traceback (the traceback would be optbench's, not the optimizer's).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from optbench.verdict import BLOCKED, ERROR, FAIL, NA, XFAIL, CheckItem, run_check


class HarnessDefect(Exception):
    """optbench's own code crashed while checking: reported as such, never as the subject's failure."""


def marks_for(item: CheckItem) -> list[Any]:
    marks: list[Any] = [pytest.mark.optbench] + [getattr(pytest.mark, m) for m in item.marks]
    if item.share:  # items sharing one computation run on one xdist worker (with --dist loadgroup), so it runs once
        marks.append(pytest.mark.xdist_group(item.share))
    if item.exempt:
        marks.append(pytest.mark.skip(reason=f"EXEMPT {item.prop} for {item.subject}: {item.exempt}"))
    elif item.na:
        marks.append(pytest.mark.skip(reason=f"N/A {item.prop} for {item.subject}: {item.na}"))
    elif item.known:
        marks.append(pytest.mark.xfail(strict=True, reason=f"known {item.prop} bug of {item.subject}: {item.known}"))
    return marks


def run(item: CheckItem, record_property: Any = None) -> None:
    """Run one check and turn its verdict into the pytest outcome."""
    verdict = run_check(dataclasses.replace(item, known=None))  # a known bug is the xfail mark's business
    if verdict.data is not None and record_property is not None:
        record_property("optbench", verdict.data)
    if verdict.outcome == FAIL:
        text = verdict.message
        if verdict.stanza:
            text += "\n\nBy design? Declare it:\n\n" + verdict.stanza
        if verdict.reproducer:
            text += "\n\nStandalone reproducer (imports only torch and the optimizer):\n\n" + verdict.reproducer
        pytest.fail(text, pytrace=False)
    if verdict.outcome == BLOCKED:  # a failure, told in one line: its root cause is reported on another check
        pytest.fail(f"BLOCKED: {verdict.message}", pytrace=False)
    if verdict.outcome == XFAIL:  # blocked by a root cause that is a declared known bug
        pytest.xfail(verdict.message)
    if verdict.outcome == ERROR:
        raise HarnessDefect(verdict.message)
    if verdict.outcome == NA:
        pytest.skip(f"N/A {item.prop} for {item.subject}: {verdict.message}")
