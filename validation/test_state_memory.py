"""What each optimizer configuration keeps in state (bytes per parameter) and the transient peak of its step:
a MEASURED row, never judged here (tests/test_memory.py holds the registry's byte model to it).

Thin glue over the ``memory`` plan (``optbench.optimizers.memory``).
"""

import pytest

from fixtures.checks import run

pytestmark = pytest.mark.optbench_plan("memory")


def test_state_bytes(check, record_property):
    """State bytes per parameter after three steps on one 64 x 64 parameter, and the third step's peak."""
    run(check, record_property)
