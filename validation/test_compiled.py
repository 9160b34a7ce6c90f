"""P21: every optimizer's step under torch.compile (parity with eager, crashes, recompilations, graph breaks).

Thin glue over the ``compile`` plan (``optbench.compiled.plan``); ``-m compile`` selects these tests,
``-m "not compile"`` leaves them out. The three checks of one optimizer config share one compiled run per
pytest worker (Inductor's C++ compile dominates on CPU: about 1 s a config with Inductor's on-disk cache warm).
Inductor on CPU needs a C++ compiler; without one the checks are N/A with that reason.
"""

import pytest

from fixtures.checks import run

pytestmark = pytest.mark.optbench_plan("compile")


def test_p21_compiled_parity(check, record_property):
    """Compiled steps equal eager steps to the contract's relative tolerance; a crash under compile is a FAIL."""
    run(check, record_property)


def test_p21_recompiles(check, record_property):
    """Graphs compiled after warm-up, at a constant lr and under LinearLR (MEASURED; every step: FAIL)."""
    run(check, record_property)


def test_p21_graph_breaks(check, record_property):
    """Graph breaks with their reasons and places (MEASURED; FAIL with fullgraph = true)."""
    run(check, record_property)
