"""One interpreter that imports torch.distributed once and forks the rank pool's ranks from it.

A rank spawned as ``python -m optbench.distributed._rank`` pays an interpreter that imports torch,
torch.distributed, FSDP2, DCP and Dynamo: ~4.5 s of CPU on a 2-core machine, once per rank and again at
every restart of the pool after a failed task. The zygote pays it once per pool owner: it imports them in a
process where no task has ever run (no thread of ours, no process group, no CUDA context), then forks one child
per rank on request. A child puts the three pipes it was sent on its fds 0, 1 and 2 and runs the entry point
named in the request (the pool's ``rank_main``, the same loop as a spawned rank), so the pool's protocol,
timeouts and blame rules are unchanged; this module knows nothing of them. This is the fork-server pattern
(``multiprocessing``'s ``forkserver``), written out because a multiprocessing child would re-import the owner's
``__main__`` and could not keep the pipes.

Who reaps whom: a child is the zygote's, not the owner's, so the zygote reaps it and reports its exit status
(:class:`Child` answers ``poll``/``wait``/``kill`` as a ``subprocess.Popen`` would). A child dies with the zygote
(``PR_SET_PDEATHSIG`` and the watchdog of ``rank_main``), the zygote with its owner (``PR_SET_PDEATHSIG``, and
the end of its control socket); so a SIGKILLed owner still leaves nothing behind.

``OPTBENCH_RANK_ZYGOTE=0`` spawns every rank as its own interpreter instead (as does a platform without
``fork`` or ``socket.send_fds``).
"""

from __future__ import annotations

import collections
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
from typing import Any, Sequence

# Launcher variables a rank must not act on (the pool makes its own rendezvous).
_LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                 "ROLE_RANK", "ROLE_WORLD_SIZE", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT",
                 "TORCHELASTIC_MAX_RESTARTS", "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_ERROR_FILE")

# What every rank imports before its first task; a module that fails to import here is imported (and fails)
# in the rank as before, where the pool reports it.
PRELOAD = ("torch", "torch._dynamo", "torch.distributed", "torch.distributed.fsdp", "torch.distributed.checkpoint",
           "optbench.distributed.pool", "optbench.distributed.runs")
_MSG = 1 << 16  # one control message (SOCK_SEQPACKET keeps each one whole)


def rank_env() -> dict[str, str]:
    """The environment of a rank: this process's, without a launcher's variables, with the folder holding optbench
    first on PYTHONPATH and one OpenMP thread unless the user chose otherwise."""
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_ENV}
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the dir holding optbench
    env["PYTHONPATH"] = os.pathsep.join([here] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def die_with_parent_signal() -> None:
    """Ask Linux to SIGKILL this process when its parent (the thread that forked it) ends (PR_SET_PDEATHSIG);
    elsewhere nothing: callers also watch ``os.getppid()``."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def available() -> bool:
    """Whether ranks are forked from a zygote here (Linux/Unix with fd passing, not switched off)."""
    return (os.environ.get("OPTBENCH_RANK_ZYGOTE", "1") != "0" and hasattr(os, "fork")
            and hasattr(socket, "send_fds") and hasattr(socket, "SOCK_SEQPACKET"))


# --------------------------------------------------------------------------------------------------
# The owner's side


class Child:
    """A child (a rank) forked by the zygote, with the part of ``subprocess.Popen``'s interface the pool uses."""

    def __init__(self, zygote: "Zygote", stdin: Any, stdout: Any, stderr: Any) -> None:
        self._zygote = zygote
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self._pid: int | None = None
        self.returncode: int | None = None
        self._forked = threading.Event()
        self._exited = threading.Event()

    @property
    def pid(self) -> int | None:
        """The rank's pid once the zygote forked it; None if it never did (the zygote died first)."""
        self._forked.wait(60.0)
        return self._pid

    def _set_pid(self, pid: int) -> None:
        self._pid = pid
        self._forked.set()

    def _set_exit(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
        self._forked.set()
        self._exited.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(f"rank {self._pid} of zygote {self._zygote.pid}", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        """SIGKILL the rank while its zygote lives (until the zygote reaps it, its pid is its own). Once the zygote
        is gone the rank died with it (PR_SET_PDEATHSIG), was reaped by init, and its pid may already belong to
        another process (pid_max is 32768 here): signalling it then could kill a stranger, e.g. a rank of a new
        pool."""
        if self.returncode is None and self._pid is not None and self._zygote.alive:
            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def note(self) -> str:
        """The zygote's last words when this rank was never forked (e.g. the zygote could not start)."""
        return "" if self._pid is not None else self._zygote.stderr_tail()


class Zygote:
    """This owner's zygote: asked to fork ranks, closed at exit. Started here (:meth:`start`), or started by another
    process beforehand and adopted here (:meth:`adopt`: see :class:`Prestarted`)."""

    def __init__(self, sock: socket.socket, pid: int, proc: "subprocess.Popen[bytes] | None") -> None:
        self._sock, self.pid, self.proc = sock, pid, proc
        self._lock = threading.Lock()
        self._pending: "collections.deque[Child]" = collections.deque()  # fork requests not yet answered
        self._children: dict[int, Child] = {}
        self._stderr: "collections.deque[str]" = collections.deque(maxlen=20)
        self._dead = False
        threading.Thread(target=self._read, daemon=True, name="optbench-zygote-out").start()
        if proc is not None and proc.stderr is not None:
            threading.Thread(target=self._read_err, daemon=True, name="optbench-zygote-err").start()

    @classmethod
    def start(cls, env: dict[str, str]) -> "Zygote":
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "optbench.distributed.zygote", str(os.getpid()), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, close_fds=True)
        finally:
            theirs.close()
        return cls(ours, proc.pid, proc)

    @classmethod
    def adopt(cls, address: str, pid: int, timeout: float) -> "Zygote | None":
        """The zygote listening at ``address``, once it has imported everything and accepted this process as its
        only owner; None when another process adopted it first, or it is gone."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            data = sock.recv(_MSG)  # empty: another process adopted it, and it closed our pending connection
            if not data or pickle.loads(data) != ("adopted",):
                raise OSError("not adopted")
            sock.settimeout(None)
        except (OSError, pickle.UnpicklingError):
            sock.close()
            return None
        return cls(sock, pid, None)

    @property
    def alive(self) -> bool:
        return not self._dead and (self.proc is None or self.proc.poll() is None)

    def fork(self, entry: str, argv: Sequence[str], env: dict[str, str]) -> Child:
        """Ask for one child running ``entry`` (``"module:function"``, called with ``argv``; its return value is the
        exit code) in environment ``env`` (modules imported from then on read it; those the zygote preloaded read
        the zygote's own); returns at once (the pid arrives when it is forked)."""
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        child = Child(self, os.fdopen(in_w, "wb"), os.fdopen(out_r, "rb"), os.fdopen(err_r, "rb"))
        try:
            with self._lock:
                self._pending.append(child)
                request = pickle.dumps(("fork", entry, list(argv), dict(env)))
                socket.send_fds(self._sock, [request], [in_r, out_w, err_w])
        except OSError:  # the zygote is gone: the rank's pipes close at once, and the pool reports it died
            with self._lock:
                if child in self._pending:
                    self._pending.remove(child)
            code = self.proc.poll() if self.proc is not None else None
            child._set_exit(code if code is not None else -signal.SIGKILL)
        finally:
            for fd in (in_r, out_w, err_w):  # the zygote has its own copies now; ours would hide an EOF
                os.close(fd)
        return child

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(_MSG)
            except OSError:
                data = b""
            if not data:
                break
            kind, *rest = pickle.loads(data)
            with self._lock:
                if kind == "forked":
                    child = self._pending.popleft()
                    self._children[rest[0]] = child
                    child._set_pid(rest[0])
                elif kind == "exit":
                    child = self._children.pop(rest[0], None)
                    if child is not None:
                        child._set_exit(rest[1])
        self._dead = True
        code = self.proc.wait() if self.proc is not None else -signal.SIGKILL
        with self._lock:  # the zygote is gone, and its children with it (PR_SET_PDEATHSIG)
            for child in list(self._pending) + list(self._children.values()):
                child._set_exit(code if code else -signal.SIGKILL)
            self._pending.clear()
            self._children.clear()

    def _read_err(self) -> None:
        for line in iter(self.proc.stderr.readline, b""):
            self._stderr.append(line.decode("utf-8", "replace").rstrip())

    def stderr_tail(self) -> str:
        return ("\n    zygote: " + "\n    zygote: ".join(self._stderr)) if self._stderr else ""

    def close(self) -> None:
        """End the zygote (its remaining children die with it). Idempotent."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if self.proc is None:  # adopted: it ends at the end of the socket, and its starter reaps it
            return
        try:
            self.proc.wait(5.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5.0)


class Prestarted:
    """A zygote started ahead of need by a process that will not own it (``optbench validate``'s parent, which
    imports no torch), so that its imports run beside the workers' start instead of after it; the first worker
    that needs ranks adopts it (:func:`offer`, :meth:`Zygote.adopt`), any other starts its own. It listens on a
    socket in a private folder, dies with its starter, and ends with its adopter's socket."""

    def __init__(self, env: dict[str, str]) -> None:
        import tempfile

        self._dir = tempfile.mkdtemp(prefix="optbench-zygote-")
        self.address = os.path.join(self._dir, "zygote.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # bound here: an adopter can connect at once
        try:
            listener.bind(self.address)
            listener.listen(8)
            self.proc = subprocess.Popen([sys.executable, "-m", "optbench.distributed.zygote", str(os.getpid()),
                                          "--listen", str(listener.fileno()), self.address],
                                         pass_fds=(listener.fileno(),), env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
        finally:
            listener.close()
        self.pid = self.proc.pid

    def close(self) -> None:
        """Reap it: at once if no one adopted it (or its adopter is gone), else when its adopter's socket ends."""
        import shutil

        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5.0)
        shutil.rmtree(self._dir, ignore_errors=True)


_ZYGOTE: list[Zygote] = []
_OFFERED: list[tuple[str, int]] = []


def offer(address: str, pid: int) -> None:
    """A :class:`Prestarted` zygote this process may adopt the first time it needs one."""
    _OFFERED[:] = [(address, pid)]


def zygote_for(env: dict[str, str], timeout: float = 180.0) -> Zygote:
    """This process's zygote: the one offered to it if it can still adopt it, else one started here in environment
    ``env`` (again when the last one died)."""
    if _ZYGOTE and not _ZYGOTE[0].alive:
        _ZYGOTE.pop().close()
    if not _ZYGOTE and _OFFERED:
        address, pid = _OFFERED.pop()
        adopted = Zygote.adopt(address, pid, timeout)
        if adopted is not None:
            _ZYGOTE.append(adopted)
    if not _ZYGOTE:
        _ZYGOTE.append(Zygote.start(env))
    return _ZYGOTE[0]


def shutdown() -> None:
    while _ZYGOTE:
        _ZYGOTE.pop().close()


# --------------------------------------------------------------------------------------------------
# The zygote's side


def _send(sock: socket.socket, obj: Any) -> None:
    sock.send(pickle.dumps(obj))


def _run_child(entry: str, argv: list[str], env: dict[str, str], fds: list[int], close: Sequence[int]) -> None:
    """In the forked child: the environment and the pipes on fds 0-2, then ``entry(argv)``; never returns."""
    code = 1
    try:
        os.environ.clear()
        os.environ.update(env)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in close:
            os.close(fd)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        import importlib

        module, _, function = entry.partition(":")
        code = getattr(importlib.import_module(module), function)(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported on the rank's stderr, which the pool shows
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def main(argv: Sequence[str]) -> int:
    """``OWNER_PID FD``: serve the socket FD; ``OWNER_PID --listen FD PATH``: accept on the listening socket FD,
    bound at PATH (a :class:`Prestarted` zygote), and serve the first process that connects once the imports are
    done."""
    owner = int(argv[0])
    listener: socket.socket | None = None
    if argv[1] == "--listen":
        listener = socket.socket(fileno=int(argv[2]))
    else:
        sock = socket.socket(fileno=int(argv[1]))
    die_with_parent_signal()
    if os.getppid() != owner:  # the owner died before prctl took effect
        return 3
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the owner's to handle
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - the rank imports it again and reports the failure
            pass
    if listener is not None:  # wait for the adopter (or the starter's end), then stop listening
        while not select.select([listener], [], [], 1.0)[0]:
            if os.getppid() != owner:
                return 3
        sock, _ = listener.accept()
        listener.close()
        os.unlink(argv[3])  # later comers get no answer and start their own
        _send(sock, ("adopted",))
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the select below through wake_w
    while True:
        ready, _, _ = select.select([sock, wake_r], [], [], 1.0)
        if wake_r in ready:
            os.read(wake_r, 4096)
        while True:  # reap and report every child that ended
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            try:
                _send(sock, ("exit", pid, os.waitstatus_to_exitcode(status)))
            except OSError:
                return 0
        if os.getppid() != owner:
            return 3
        if sock not in ready:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(sock, _MSG, 3)
        except OSError:
            return 0
        if not data:  # the owner closed the socket (or died): end, and the children with us
            return 0
        _, entry, child_argv, child_env = pickle.loads(data)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _run_child(entry, child_argv, child_env, fds, (sock.fileno(), wake_r, wake_w))
        for fd in fds:
            os.close(fd)
        try:
            _send(sock, ("forked", pid))
        except OSError:
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
