"""P18-P20: every optimizer under torch.distributed (FSDP2, DDP, ZeRO, torch.distributed.checkpoint).

Thin glue over the ``distributed`` plan (``optbench.distributed.plan``); ``-m distributed`` selects these
tests, ``-m "not distributed"`` leaves them out. The suite starts its own 2-rank process group (gloo on
CPU, NCCL on CUDA with 2 GPUs) once per pytest worker and reuses it for every case.
"""

import pytest

from fixtures.checks import run

pytestmark = pytest.mark.optbench_plan("distributed")


def test_p18_fsdp2_parity(check, record_property):
    run(check, record_property)


def test_p19_ddp_parity(check, record_property):
    run(check, record_property)


def test_p19_zero_parity(check, record_property):
    run(check, record_property)


def test_p20_dcp_resume(check, record_property):
    run(check, record_property)
