"""``--dist loadgroup`` groups on the pytest installed here (pytest_optbench.groups): the items of one
``xdist_group`` run on one worker, so a share of optbench's checks is computed once. On pytest 9 with
pytest-xdist 3.8 the groups were silently dropped (pytest-dev/pytest-xdist#1386) and the suite computed
P1's shared runs, the rank pool and every grouped module fixture on both workers."""

from __future__ import annotations

import re

import pytest

from pytest_optbench.groups import apply_groups, group_suffix, without_group

pytest.importorskip("xdist")

MODULE = """
import os, pytest

@pytest.mark.xdist_group("left")
@pytest.mark.parametrize("i", range(6))
def test_left(i):
    print("WORKER", os.environ["PYTEST_XDIST_WORKER"])

@pytest.mark.xdist_group("right")
@pytest.mark.parametrize("i", range(6))
def test_right(i):
    pass
"""


@pytest.mark.parametrize("dist", [("--dist", "loadgroup"), ()], ids=["loadgroup", "no-dist-given"])
def test_each_group_runs_on_one_worker(pytester, dist):
    """Also with ``-n 2`` alone, which xdist runs as ``--dist load``: optbench makes loadgroup the default."""
    pytester.makepyfile(test_groups=MODULE)
    # optbench's plugin comes in through its pytest11 entry point, as in a user's suite
    result = pytester.runpytest_subprocess("-n", "2", *dist, "-v", "-p", "no:randomly")
    result.assert_outcomes(passed=12)
    assert ("runs as --dist loadgroup" in result.stdout.str()) == (not dist)
    lines = [ln for ln in result.outlines if "PASSED" in ln]
    workers: dict[str, set[str]] = {}
    for ln in lines:
        m = re.search(r"\[(gw\d)\].*::test_(left|right)\[\d\]@(\w+)", ln)
        assert m, f"no @group suffix: the groups were dropped: {ln}"
        assert m[2] == m[3]
        workers.setdefault(m[2], set()).add(m[1])
    assert workers.keys() == {"left", "right"} and all(len(w) == 1 for w in workers.values()), workers


def test_the_suffix_is_xdists_and_only_on_a_loadgroup_worker(pytester):
    items = pytester.getitems(MODULE)
    assert group_suffix(items[0]) == "@left" and all(group_suffix(i) for i in items)
    config = items[0].config
    assert apply_groups(config, items) == 0 and "@" not in items[0].nodeid, "not a loadgroup worker: untouched"
    config.option.loadgroup = True
    try:
        fixed = apply_groups(config, items)
        assert all(i.nodeid.endswith(group_suffix(i)) for i in items)
        assert apply_groups(config, items) == 0, "a suffix already there is not added twice"
        assert fixed in (0, len(items))  # 0 on a pytest whose node ids xdist's own suffix reaches
    finally:
        config.option.loadgroup = False


def test_the_suffix_is_taken_off_for_display_and_an_at_inside_the_params_stays():
    assert without_group("t.py::test_a[x-1]@P1:adam-foreach-float64-cpu") == "t.py::test_a[x-1]"
    assert without_group("t.py::test_a[user@host]") == "t.py::test_a[user@host]"
    assert without_group("t.py::test_b") == "t.py::test_b"


def test_a_dist_the_user_chose_is_left_alone(pytester):
    pytester.makepyfile(test_groups=MODULE)
    result = pytester.runpytest_subprocess("-n", "2", "--dist=load", "-v", "-p", "no:randomly")
    result.assert_outcomes(passed=12)
    passed = [ln for ln in result.outlines if "PASSED" in ln]
    assert passed and not any("]@" in ln for ln in passed), passed  # load: no group suffix
    assert "runs as --dist loadgroup" not in result.stdout.str()
