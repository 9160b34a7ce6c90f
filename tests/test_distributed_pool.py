"""The rank pool of optbench.distributed: failures are classified, nothing hangs, nothing is orphaned.

Each test says which failure path it drives: every rank raising the same way in the code under test
(the pool survives: a resync), one rank raising while its peer waits in a collective (the pool is
killed after a grace period and restarted), a crash in optbench's own task (a PoolError, never the
subject's fault), a task that never answers (a PoolTimeout), and the parent killed by SIGKILL (the
ranks die with it, PR_SET_PDEATHSIG) while a launcher's environment (torchrun's) is set.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from optbench.distributed import zygote
from optbench.distributed.pool import PoolError, PoolTimeout, RankPool, get_pool, subject

ROOT = Path(__file__).resolve().parents[1]


# ---- tasks (module level: the ranks import them by reference) --------------------------------------


def whoami(ctx):
    return (ctx.rank, ctx.world_size, os.getpid())


def all_raise(ctx):
    with subject("step 1 of the planted task"):
        raise RuntimeError(f"boom on rank {ctx.rank}")


def rank0_raises_rank1_waits(ctx):
    import torch.distributed as dist

    if ctx.rank == 0:
        with subject("step 1 of the planted task"):
            raise ValueError("only rank 0 raises")
    dist.barrier()  # never matched: rank 0 left; the parent must not wait for the collective's timeout


def harness_crash(ctx):
    return {}["not a subject section"]


def never_answers(ctx):
    time.sleep(3600)


def parent_and_env(ctx, name):
    return os.getppid(), os.environ.get(name)


def _gone(pid: int, within: float = 10.0) -> bool:
    """The process has exited (a zombie whose reaper has not run yet counts as exited)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            pass
        try:  # a zombie of ours still answers kill(0): reap it
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.1)
    return False


# ---- tests -----------------------------------------------------------------------------------------


def test_every_rank_raising_the_same_way_is_a_finding_and_the_pool_survives():
    pool = get_pool("gloo")
    before = pool.run(whoami)
    starts, resyncs = pool.starts, pool.resyncs
    res = pool.run(all_raise)
    assert sorted(res.subject) == [0, 1] and not res.values
    e = res.subject[1]
    assert (e.what, e.exc_type, e.message, e.rank) == ("step 1 of the planted task", "RuntimeError", "boom on rank 1", 1)
    assert "test_distributed_pool.py" in e.where and "raise RuntimeError" in e.where
    after = pool.run(whoami)
    assert (pool.starts, pool.resyncs) == (starts, resyncs + 1)  # no respawn: resynchronised
    assert {r: v[2] for r, v in after.values.items()} == {r: v[2] for r, v in before.values.items()}


def test_one_rank_raising_while_the_other_waits_kills_the_pool_without_waiting_for_the_timeout():
    pool = RankPool("gloo", 2, timeout_s=600)  # a hung collective would take 600 s: the grace period must act
    try:
        pids = [v[2] for v in pool.run(whoami).values.values()]
        t0 = time.monotonic()
        res = pool.run(rank0_raises_rank1_waits)
        assert list(res.subject) == [0] and res.subject[0].message == "only rank 0 raises"
        assert time.monotonic() - t0 < 60  # the grace period is 5 s; a generous bound for a loaded machine
        assert not pool.alive and all(_gone(p) for p in pids), "the out-of-step pool was not killed"
    finally:
        pool.close()


def test_a_crash_in_optbench_code_is_a_pool_error_and_a_silent_task_a_timeout_and_the_pool_restarts():
    pool = RankPool("gloo", 1, timeout_s=3, margin_s=1)
    try:
        pid = pool.run(whoami).values[0][2]
        with pytest.raises(PoolError, match=r"harness failed on a rank:\nrank 0: KeyError"):
            pool.run(harness_crash, what="planted harness crash")
        assert _gone(pid)
        with pytest.raises(PoolTimeout, match="no answer from the gloo ranks within the deadline"):
            pool.run(never_answers, what="planted hang")  # runs on a fresh pool
        assert pool.starts == 2 and not pool.alive
    finally:
        pool.close()


def test_unpicklable_task_is_refused_before_anything_is_sent():
    pool = RankPool("gloo", 1)
    with pytest.raises(PoolError, match="cannot be sent to the rank processes"):
        pool.run(lambda ctx: None)
    assert pool.starts == 0  # nothing was spawned


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_ranks_die_with_a_sigkilled_parent_and_ignore_a_launchers_environment():
    child = textwrap.dedent("""
        import sys, time
        from optbench.distributed.pool import RankPool
        from tests.test_distributed_pool import whoami
        pool = RankPool("gloo", 1)
        res = pool.run(whoami)
        print(" ".join(f"{r}:{ws}:{pid}" for r, ws, pid in res.values.values()), flush=True)
        time.sleep(600)
    """)
    # torchrun's variables, pointing at a port nobody serves: the pool must make its own rendezvous
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "9", "RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1",
           "TORCHELASTIC_RUN_ID": "planted"}
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        ranks = [tuple(int(x) for x in tok.split(":")) for tok in line.split()]
        assert [(r, ws) for r, ws, _ in ranks] == [(0, 1)], line or proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    for _, _, pid in ranks:
        assert _gone(pid), f"rank process {pid} outlived its SIGKILLed parent"


def test_a_task_the_ranks_cannot_import_is_not_sendable_and_leaves_the_pool_alive(monkeypatch):
    import types

    from optbench.distributed.pool import TaskNotSendable

    here_only = types.ModuleType("optbench_module_only_the_parent_has")  # like a class defined in __main__
    here_only.Thing = type("Thing", (), {"__module__": here_only.__name__})
    monkeypatch.setitem(sys.modules, here_only.__name__, here_only)
    pool = get_pool("gloo")
    pool.run(whoami)
    starts = pool.starts
    with pytest.raises(TaskNotSendable, match="cannot import the task: ModuleNotFoundError"):
        pool.run(whoami, here_only.Thing())
    assert pool.run(whoami).values and pool.starts == starts


@pytest.mark.skipif(not zygote.available(), reason="no fork or fd passing here: every rank is its own interpreter")
def test_ranks_are_forked_from_one_zygote_that_outlives_a_restart_and_dies_with_them(monkeypatch):
    """The zygote imports torch.distributed once; a restart forks new ranks from it (no new interpreter), each in
    the environment of its start; the zygote's end takes its ranks with it, and the next task restarts the pool on a new one."""
    pool = RankPool("gloo", 2)
    try:
        first = pool.run(parent_and_env, "OPTBENCH_PLANTED_ENV").values
        zyg = zygote.zygote_for({})
        assert {ppid for ppid, _ in first.values()} == {zyg.pid} and zyg.pid != os.getpid()
        pids = pool.pids()
        pool.close()
        assert all(_gone(p) for p in pids) and zyg.alive
        monkeypatch.setenv("OPTBENCH_PLANTED_ENV", "seen")
        again = pool.run(parent_and_env, "OPTBENCH_PLANTED_ENV").values
        assert again == {0: (zyg.pid, "seen"), 1: (zyg.pid, "seen")} and pool.starts == 2
        pids = pool.pids()
        os.kill(zyg.pid, signal.SIGKILL)
        assert all(_gone(p) for p in [zyg.pid] + pids), "a rank outlived its zygote"
        third = pool.run(parent_and_env, "OPTBENCH_PLANTED_ENV").values
        assert {ppid for ppid, _ in third.values()} == {zygote.zygote_for({}).pid} != {zyg.pid}
    finally:
        pool.close()


def test_without_a_zygote_each_rank_is_its_own_interpreter(monkeypatch):
    monkeypatch.setenv("OPTBENCH_RANK_ZYGOTE", "0")
    pool = RankPool("gloo", 1)
    try:
        assert pool.run(parent_and_env, "OPTBENCH_RANK_ZYGOTE").values == {0: (os.getpid(), "0")}
    finally:
        pool.close()


@pytest.mark.skipif(not zygote.available(), reason="no fork or fd passing here: every rank is its own interpreter")
def test_a_prestarted_zygote_is_adopted_by_the_first_process_that_needs_ranks_and_only_by_it():
    """optbench validate's parent starts the zygote beside its workers' start; the first worker that needs ranks
    adopts it, a later comer gets None (and starts its own); the zygote ends with its adopter's socket."""
    child = textwrap.dedent("""
        import os, time
        from optbench.distributed import zygote
        from optbench.distributed.pool import RankPool, shutdown
        from tests.test_distributed_pool import parent_and_env
        pre = zygote.Prestarted(zygote.rank_env())
        zygote.offer(pre.address, pre.pid)
        pool = RankPool("gloo", 2)
        ppids = sorted({ppid for ppid, _ in pool.run(parent_and_env, "PATH").values.values()})
        late = zygote.Zygote.adopt(pre.address, pre.pid, 5.0)
        shutdown()
        pool.close()
        t0 = time.monotonic()
        code = pre.proc.wait(10)
        pre.close()
        print(ppids == [pre.pid], late is None, os.path.exists(pre.address), code, time.monotonic() - t0 < 5,
              os.path.exists(os.path.dirname(pre.address)))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", child], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.stdout.split() == ["True", "True", "False", "0", "True", "False"], proc.stdout + proc.stderr


def test_a_rank_of_a_dead_zygote_is_never_signalled_its_pid_may_be_a_strangers_now():
    """Once its zygote is gone, a rank died with it and was reaped by init; with pid_max 32768 its pid can belong to
    another process within seconds (a rank of the next pool, once, killed mid-task with exit code -9). kill() then
    sends nothing; while the zygote lives it kills as before."""

    class _Zyg:
        pid, alive = 0, False

    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        child = zygote.Child(_Zyg(), None, None, None)
        child._set_pid(stranger.pid)  # the stale pid, now another process's
        child.kill()
        with pytest.raises(subprocess.TimeoutExpired):  # still running a second later: not signalled
            stranger.wait(1.0)
        _Zyg.alive = True
        child.kill()
        assert stranger.wait(10) == -signal.SIGKILL
    finally:
        stranger.kill()
        stranger.wait(10)
