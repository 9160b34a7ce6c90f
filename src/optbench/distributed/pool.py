"""A persistent pool of rank processes that share one ``torch.distributed`` process group.

One :class:`RankPool` per pytest (or pytest-xdist) worker process and backend: ``world_size`` rank
processes (forked from this process's zygote, an interpreter that imported torch.distributed once, see
:mod:`optbench.distributed.zygote`; or ``python -m optbench.distributed._rank`` where there is no zygote;
either way they receive the parent's ``sys.path`` first, so they import the optimizers under test by
reference, and never re-run the parent's ``__main__``) join a process group once and are then fed pickled
tasks over their stdin, answering on their stdout; so a check costs a task, not a spawn, and a restart a fork.

How it stays safe:

* **No port race.** The parent owns the rendezvous: a ``TCPStore`` master bound to port 0 (the OS
  picks a free port atomically). The ranks connect to it as clients; gloo's own pair connections use
  ephemeral ports too. Two pools (pytest-xdist ``-n 2``, or two pytest sessions) never share a port.
  The environment of ``torchrun`` (``MASTER_PORT``, ``RANK``, ...) is ignored: nothing uses ``env://``.
* **Timeouts.** Every collective times out (``init_process_group(timeout=...)``), and the parent
  waits for each task's answer with a deadline; on expiry the pool is killed and the task reports a
  :class:`PoolTimeout` (an optbench harness error, never the subject's fault).
* **Teardown.** A task in which a rank crashed, or in which the ranks raised at different points
  (a peer may wait in a collective), leaves the process group in an unknown state: the pool is
  killed and the next task starts a fresh one. When every rank raised at the same point (SPMD code
  failing the same way), a barrier with a timeout and an all-reduce decide whether it is reused. The
  ranks die with the parent: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux (pytest killed by
  SIGTERM/SIGKILL, or a crashed xdist worker), a watchdog on ``getppid()`` elsewhere, and an
  ``atexit`` handler for a normal exit or Ctrl-C (the ranks ignore SIGINT; the parent tears down).

What a task reports: its return value, or :class:`SubjectRaised` raised inside a
:func:`subject` section (the code under test raised: a finding), or any other exception (a harness
defect), each with the rank and a traceback summary. Nothing here imports pytest.

One job above 500 lines: the two ends of one pipe protocol (the rank's loop and the parent's pool), whose
framing, resync token, timeouts and blame rules must change together; apart, neither side can be read
or tested alone.
"""

from __future__ import annotations

import atexit
import collections
import io
import itertools
import logging
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Iterator, Sequence

import torch

from ..errors import short_path
from .zygote import die_with_parent_signal, rank_env

WORLD_SIZE = 2
# Seconds. Every collective (gloo/NCCL timeout) and every task (parent deadline = collective + margin).
# A task here is a few steps of a tiny model; 120 s is far above any healthy run on a loaded 2-core box.
COLLECTIVE_TIMEOUT_S = float(os.environ.get("OPTBENCH_DIST_TIMEOUT", "120"))
TASK_MARGIN_S = 30.0
# Starting the first ranks imports torch (in the zygote): seconds on an idle machine, more on a loaded one.
START_TIMEOUT_S = float(os.environ.get("OPTBENCH_DIST_START_TIMEOUT", "180"))
# After a rank reports a failure, how long the parent waits for the other ranks' reports before it kills
# the pool (the same error usually shows on every rank at once; a peer stuck in a collective never answers).
GRACE_S = 5.0
RESYNC_TIMEOUT_S = 10.0  # a process group that is still in step answers a barrier at once



class PoolError(RuntimeError):
    """The pool itself failed (a rank died, could not start, or a task crashed in optbench's code)."""


class PoolTimeout(PoolError):
    """No answer from the ranks within the deadline."""


class TaskNotSendable(PoolError):
    """The task cannot be pickled here or unpickled in a rank (e.g. an optimizer defined in ``__main__``)."""


class SubjectRaised(Exception):
    """Raised in a rank when the code under test raised inside a :func:`subject` section.

    Carries only strings, so it pickles across processes: ``what`` is the section ("step 2",
    "dcp.load of the optimizer state"), ``exc_type`` and ``message`` the original exception, ``where``
    the frame of the code under test that raised (``file:line in function: source``).
    """

    def __init__(self, what: str, exc_type: str, message: str, where: str, rank: int | None = None) -> None:
        super().__init__(what, exc_type, message, where, rank)
        self.what, self.exc_type, self.message, self.where, self.rank = what, exc_type, message, where, rank

    def __str__(self) -> str:
        return f"{self.what} raised {self.exc_type}: {self.message} (at {self.where})"


def _frame_text(f: Any) -> str:
    line = f": {f.line.strip()}" if f.line else ""
    return f"{short_path(f.filename)}:{f.lineno} in {f.name}{line}"


def blame_frame(tb: Any, source_files: Sequence[str] = ()) -> str:
    """Where an exception of the code under test happened: the innermost frame in one of ``source_files``
    (the optimizer's own module), and the frame that raised when it is another one (e.g. inside DTensor or
    torch.distributed.checkpoint). ``tb``: a traceback or a StackSummary."""
    frames = tb if isinstance(tb, traceback.StackSummary) else traceback.extract_tb(tb)
    if not frames:
        return "?"
    wanted = {os.path.realpath(f) for f in source_files if f}
    own = next((f for f in reversed(frames) if os.path.realpath(f.filename) in wanted), None)
    raised = frames[-1]
    if own is None:
        return _frame_text(raised)
    if own is raised:
        return _frame_text(own)
    return f"{_frame_text(own)}; raised in {_frame_text(raised)}"


def _unwrap(exc: BaseException) -> tuple[BaseException, Any, str]:
    """The exception to report, its traceback, and a note: torch.distributed.checkpoint wraps each rank's
    exception in a CheckpointException (a BaseException) whose ``failures`` maps rank -> (exception, stack)."""
    failures = getattr(exc, "failures", None)
    if isinstance(failures, dict) and failures:
        rank, pair = sorted(failures.items(), key=lambda kv: kv[0])[0]
        if isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], BaseException):
            return pair[0], pair[1], f" [{type(exc).__name__} of checkpoint rank {rank}]"
    return exc, exc.__traceback__, ""


@contextmanager
def subject(what: str, source_files: Sequence[str] = ()) -> Iterator[None]:
    """Mark a section whose exceptions are findings of the code under test (the optimizer)."""
    try:
        yield
    except (SubjectRaised, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - any exception of the subject is a finding (DCP raises BaseException)
        inner, tb, note = _unwrap(exc)
        msg = " ".join(str(inner).split())
        if len(msg) > 600:
            msg = msg[:600] + " ..."
        raise SubjectRaised(what, type(inner).__name__, msg + note, blame_frame(tb, source_files)) from None


def source_files_of(obj: Any) -> list[str]:
    """Source files of an optimizer's class and its bases outside torch.optim.Optimizer itself."""
    import inspect

    out = []
    for cls in type(obj).__mro__ if not isinstance(obj, type) else obj.__mro__:
        if cls in (object, torch.optim.Optimizer):
            continue
        try:
            out.append(inspect.getsourcefile(cls) or "")
        except TypeError:
            pass
    return out


# --------------------------------------------------------------------------------------------------
# The rank side


@dataclass
class RankContext:
    """What a task function receives: this rank, the world and the device to use."""

    rank: int
    world_size: int
    backend: str
    device: str  # "cpu" or "cuda:<rank>"


def _die_with_parent(parent_pid: int) -> None:
    die_with_parent_signal()

    def watch() -> None:  # everywhere (and as a backstop): exit once reparented
        while True:
            if os.getppid() != parent_pid:
                os._exit(3)
            time.sleep(1.0)

    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(3)
    threading.Thread(target=watch, daemon=True, name="optbench-parent-watch").start()


def _dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _loads(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), weights_only=False)


# Framing on the pipes: an 8-byte big-endian length, then a pickle.
def _send(fh: Any, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(struct.pack(">Q", len(data)) + data)
    fh.flush()


def _recv(fh: Any) -> Any:
    head = fh.read(8)
    if len(head) < 8:
        raise EOFError
    (n,) = struct.unpack(">Q", head)
    data = fh.read(n)
    if len(data) < n:
        raise EOFError
    return pickle.loads(data)


def _resync(token: int) -> tuple[str, Any]:
    """After every rank raised at the same point of a task: check that the process group still works
    (a barrier that times out, then an all-reduce that every rank must agree on)."""
    import torch.distributed as dist

    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=timedelta(seconds=RESYNC_TIMEOUT_S))
        t = torch.tensor([float(token), 1.0])
        dist.all_reduce(t)
        ok = t.tolist() == [float(token) * dist.get_world_size(), float(dist.get_world_size())]
        return ("ok", _dumps(ok))
    except Exception as exc:  # noqa: BLE001
        return ("harness", f"resync failed: {type(exc).__name__}: {exc}")


def rank_main(argv: Sequence[str]) -> int:
    """Entry point of a rank process (``python -m optbench.distributed._rank``); see :class:`RankPool`."""
    rank, world_size, backend, host, port, prefix, timeout_s, parent_pid = argv
    rank, world_size, port, parent_pid, timeout = int(rank), int(world_size), int(port), int(parent_pid), float(timeout_s)
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it tears the pool down
    # The protocol owns the original stdout; anything the code under test prints goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    init = _recv(inp)
    sys.path[:] = init["sys_path"]
    import torch.distributed as dist

    # DeviceMesh.__setstate__ warns ("pickling/unpickling of the DeviceMesh occurred before the PGs were created")
    # when a check copies DTensor state (deepcopy, a checkpoint round trip) in a rank; it concerns torch.compile's
    # PG lookup, not the checks' results, and would print four lines per optimizer in a user's terminal
    logging.getLogger("torch.distributed.device_mesh").setLevel(logging.ERROR)
    torch.set_num_threads(1)  # world_size ranks share the CPU: one intra-op thread each
    device = "cpu"
    try:
        if backend == "nccl":
            torch.cuda.set_device(rank)
            device = f"cuda:{rank}"
        store = dist.TCPStore(host, port, is_master=False, timeout=timedelta(seconds=timeout))
        dist.init_process_group(backend, store=dist.PrefixStore(prefix, store), rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=timeout))
        dist.barrier()
    except Exception as exc:  # noqa: BLE001
        _send(out, ("ready", "harness", f"rank {rank} could not join the {backend} process group: "
                                        f"{type(exc).__name__}: {exc}"))
        return 1
    _send(out, ("ready", "ok", None))
    ctx = RankContext(rank, world_size, backend, device)
    while True:
        try:
            msg = _recv(inp)
        except EOFError:  # the parent closed the pipe (or died)
            break
        if msg is None:
            break
        if msg[0] == "resync":
            _send(out, (msg[1],) + _resync(msg[2]))
            continue
        task_id, blob = msg
        try:
            fn, args = pickle.loads(blob)
        except BaseException as exc:  # noqa: BLE001 - e.g. a class that only the parent's __main__ defines
            _send(out, (task_id, "unsendable", f"{type(exc).__name__}: {exc}"))
            continue
        try:
            payload: tuple[str, Any] = ("ok", _dumps(fn(ctx, *args)))
        except SubjectRaised as exc:
            payload = ("subject", SubjectRaised(exc.what, exc.exc_type, exc.message, exc.where, rank))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent as a harness defect
            payload = ("harness", f"rank {rank}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        _send(out, (task_id,) + payload)
    try:
        dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - exiting anyway
        pass
    return 0


# --------------------------------------------------------------------------------------------------
# The parent side


@dataclass
class TaskResult:
    """Every rank's answer to one task: ``values[rank]`` for ranks that returned."""

    values: dict[int, Any] = field(default_factory=dict)
    subject: dict[int, SubjectRaised] = field(default_factory=dict)


class _Rank:
    """One rank process and the threads that read its pipes."""

    def __init__(self, rank: int, argv: list[str], env: dict[str, str], answers: "queue.Queue[Any]") -> None:
        """``argv``: rank_main's arguments but the parent pid, which is the zygote's, or this process's when the
        rank is spawned as its own interpreter (no zygote here)."""
        from . import zygote

        self.rank = rank
        self.proc: Any
        if zygote.available():
            zyg = zygote.zygote_for(env)
            self.proc = zyg.fork(f"{__name__}:rank_main", argv + [str(zyg.pid)], env)
        else:
            self.proc = subprocess.Popen([sys.executable, "-m", "optbench.distributed._rank", *argv, str(os.getpid())],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         env=env, close_fds=True)
        self.stderr: "collections.deque[str]" = collections.deque(maxlen=40)
        threading.Thread(target=self._read_out, args=(answers,), daemon=True, name=f"optbench-rank{rank}-out").start()
        threading.Thread(target=self._read_err, daemon=True, name=f"optbench-rank{rank}-err").start()

    def _read_out(self, answers: "queue.Queue[Any]") -> None:
        fh = self.proc.stdout
        while True:
            try:
                msg = _recv(fh)
            except Exception:  # noqa: BLE001 - EOF or a torn message: the process is gone
                answers.put((self.rank, None))
                return
            answers.put((self.rank, msg))

    def _read_err(self) -> None:
        for line in iter(self.proc.stderr.readline, b""):
            self.stderr.append(line.decode("utf-8", "replace").rstrip())

    def send(self, obj: Any) -> None:
        _send(self.proc.stdin, obj)

    def stderr_tail(self, n: int = 12) -> str:
        lines = list(self.stderr)[-n:]
        note = self.proc.note() if hasattr(self.proc, "note") else ""  # a zygote that never forked this rank
        return (("\n    " + "\n    ".join(lines)) if lines else " (no output)") + note


class RankPool:
    """``world_size`` rank processes in one process group, fed tasks by :meth:`run`."""

    def __init__(self, backend: str = "gloo", world_size: int = WORLD_SIZE, timeout_s: float = COLLECTIVE_TIMEOUT_S,
                 margin_s: float = TASK_MARGIN_S):
        self.backend, self.world_size, self.timeout_s, self.margin_s = backend, world_size, timeout_s, margin_s
        self._ranks: list[_Rank] = []
        self._answers: "queue.Queue[Any]" = queue.Queue()
        self._store: Any = None
        self._ready = False
        self._ids = itertools.count()
        self.starts = 0  # how many times ranks were started (tests read it)
        self.resyncs = 0  # how many failed tasks the process group survived

    # -- lifecycle
    @property
    def alive(self) -> bool:
        return bool(self._ranks) and all(r.proc.poll() is None for r in self._ranks)

    def pids(self) -> list[int]:
        return [pid for pid in (r.proc.pid for r in self._ranks) if pid is not None]

    def start(self) -> None:
        """Spawn the ranks (returns at once; :meth:`run` waits for them to join)."""
        import torch.distributed as dist

        self.close()
        self._store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False,
                                    timeout=timedelta(seconds=self.timeout_s))
        port = self._store.port
        self._answers = queue.Queue()
        env = rank_env()
        prefix = f"optbench/{os.getpid()}/{self.starts}"
        sys_path = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
        self._ranks = []
        for rank in range(self.world_size):
            argv = [str(rank), str(self.world_size), self.backend, "127.0.0.1", str(port), prefix, str(self.timeout_s)]
            r = _Rank(rank, argv, env, self._answers)
            r.send({"sys_path": sys_path})
            self._ranks.append(r)
        self.starts += 1
        self._ready = False

    def _wait_ready(self) -> None:
        if self._ready and self.alive:
            return
        if not self.alive:
            self.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        joined: set[int] = set()
        while len(joined) < self.world_size:
            rank, msg = self._get(deadline, f"{self.world_size} ranks to join the {self.backend} process group")
            if msg[0] != "ready":
                continue
            if msg[1] != "ok":
                self.close()
                raise PoolError(msg[2])
            joined.add(rank)
        self._ready = True

    def _get(self, deadline: float, waiting_for: str) -> Any:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                tails = "".join(f"\n  rank {r.rank} stderr:{r.stderr_tail()}" for r in self._ranks)
                self.close()
                raise PoolTimeout(f"no answer from the {self.backend} ranks within the deadline while waiting for "
                                  f"{waiting_for}; the pool was killed (raise OPTBENCH_DIST_TIMEOUT if the machine "
                                  f"is very loaded){tails}")
            try:
                rank, msg = self._answers.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if msg is None:  # a rank's stdout closed: it died
                r = self._ranks[rank] if rank < len(self._ranks) else None
                code = r.proc.wait(5.0) if r is not None else "?"
                tail = r.stderr_tail() if r is not None else ""
                self.close()
                raise PoolError(f"rank {rank} died (exit code {code}) while waiting for {waiting_for}; its last "
                                f"output:{tail}")
            return rank, msg

    def close(self) -> None:
        """Stop the ranks: ask politely, then kill. Idempotent."""
        ranks, self._ranks = self._ranks, []
        for r in ranks:
            try:
                r.send(None)
                r.proc.stdin.close()
            except Exception:  # noqa: BLE001 - already gone
                pass
        deadline = time.monotonic() + 2.0
        for r in ranks:
            try:
                r.proc.wait(max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait(5.0)
        self._store, self._ready = None, False
        self._answers = queue.Queue()  # answers of the closed ranks are dropped

    def _resync(self, out: TaskResult) -> bool:
        """Whether the pool can be reused after the code under test raised: only when every rank raised at
        the same point (SPMD code that failed the same way has issued the same collectives) and a barrier and
        an all-reduce then pass. NCCL is never reused (a failed NCCL communicator cannot be trusted)."""
        if self.backend != "gloo" or len(out.subject) != self.world_size:
            return False
        first = next(iter(out.subject.values()))
        if any(e.what != first.what or e.exc_type != first.exc_type for e in out.subject.values()):
            return False
        token = next(self._ids)
        try:
            for r in self._ranks:
                r.send(("resync", token, token))
            deadline = time.monotonic() + RESYNC_TIMEOUT_S + self.margin_s
            answers = 0
            while answers < self.world_size:
                rank, msg = self._get(deadline, "the process group to resynchronise after a failed task")
                if msg[0] != token:
                    continue
                if msg[1] != "ok" or not _loads(msg[2]):
                    return False
                answers += 1
        except (PoolError, OSError):
            return False
        self.resyncs += 1
        return True

    # -- tasks
    def run(self, fn: Callable[..., Any], *args: Any, what: str = "task") -> TaskResult:
        """Run ``fn(ctx, *args)`` on every rank and collect the answers.

        Returns a :class:`TaskResult`; ``subject`` is non-empty when the code under test raised (the
        pool is then resynchronised, or killed and restarted at the next task). Raises
        :class:`TaskNotSendable` when the task cannot reach the ranks, :class:`PoolError` /
        :class:`PoolTimeout` for optbench's own failures.
        """
        try:  # fail here, with the reason, before anything is sent
            blob = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001
            raise TaskNotSendable(f"{what}: the task cannot be sent to the rank processes: {type(exc).__name__}: "
                                  f"{exc}") from None
        self._wait_ready()
        task_id = next(self._ids)
        try:
            for r in self._ranks:
                r.send((task_id, blob))
        except OSError as exc:
            self.close()
            raise PoolError(f"{what}: a rank process is gone ({exc})") from None
        out = TaskResult()
        harness: list[str] = []
        unsendable: list[str] = []
        pending = set(range(self.world_size))
        deadline = time.monotonic() + self.timeout_s + self.margin_s
        while pending:
            try:
                rank, msg = self._get(deadline, what)
            except PoolError:
                if out.subject:  # a peer stuck in a collective (or gone) after the subject raised on another rank
                    return out
                raise
            if msg[0] != task_id:
                continue
            pending.discard(rank)
            status, payload = msg[1], msg[2]
            if status == "ok":
                out.values[rank] = _loads(payload)
            elif status == "unsendable":
                unsendable.append(payload)
            elif status == "subject":
                out.subject[rank] = payload
            else:
                harness.append(payload)
            if (out.subject or harness or unsendable) and pending:
                deadline = min(deadline, time.monotonic() + GRACE_S)
        if unsendable and not (harness or out.subject) and len(unsendable) == self.world_size:
            raise TaskNotSendable(f"{what}: the rank processes cannot import the task: {unsendable[0]}")
        if harness or unsendable or (out.subject and not self._resync(out)):
            self.close()  # the process group may be out of step; the next task starts a fresh pool
        if (harness or unsendable) and not out.subject:
            harness += [f"cannot import the task: {u}" for u in unsendable]
            raise PoolError(f"{what}: optbench's distributed harness failed on a rank:\n" + "\n".join(harness))
        return out


_POOLS: dict[str, RankPool] = {}  # noqa: E305


def get_pool(backend: str = "gloo") -> RankPool:
    """The pool of this process for ``backend`` (created on first use, closed at exit)."""
    pool = _POOLS.get(backend)
    if pool is None:
        pool = _POOLS[backend] = RankPool(backend)
    return pool


def shutdown() -> None:
    """Close every pool of this process, then the zygote its ranks were forked from (also registered with
    ``atexit``)."""
    from . import zygote

    for pool in list(_POOLS.values()):
        pool.close()
    _POOLS.clear()
    zygote.shutdown()


atexit.register(shutdown)
