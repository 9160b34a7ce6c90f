"""What torch.compile does while a compiled step runs: graphs compiled, graph breaks, recompilations.

:class:`Watch` is a context manager around the runs of one P21 check. On entry it resets Dynamo
(``torch._dynamo.reset()``: torch.optim's code objects are shared by every optimizer instance, so a
cache left by an earlier check would make this one "recompile" on guards of another instance), sets
``torch._inductor.config.compile_threads = 1`` (no pool of compile worker processes on a shared 2-core
machine; the generated code is the same) and listens to Dynamo's ``graph_breaks`` log. Inside,
:meth:`Watch.step` counts what each call of the compiled function compiled. Everything read here is
what Dynamo itself records:

* graphs compiled: ``torch._dynamo.utils.counters["stats"]["unique_graphs"]`` (every graph handed to
  the backend, a partial graph before a break included);
* recompilations and the guard that failed: ``torch._dynamo.utils.guard_failures`` (the reasons
  ``TORCH_LOGS=recompiles`` prints), and the recompile-limit warning (``config.recompile_limit``);
* graph breaks with their reason and place: Dynamo's ``graph_breaks`` artifact log ("Graph break in user
  code at FILE:LINE" / "Graph Break Reason: ..."), read by a handler added for the duration only (it does
  not propagate, so nothing is printed); ``counters["graph_break"]`` is the fallback when the log format
  changes (reasons without places). One break is counted once: Dynamo reports a break in a nested call at
  each level of the call (the compiled lambda, then the optimizer's frame), so breaks are deduplicated by
  (place, kind).

Nothing here imports pytest; torch._dynamo is imported on first use only.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..errors import short_path
from ..loop import no_address

QUIET = ("torch._subclasses.fake_tensor", "torch._dynamo.variables.tensor", "torch._dynamo.variables.ctx_manager")
_LOC = re.compile(r"in user code at (?P<file>.+?):(?P<line>\d+)\s*$", re.M)
_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)')


@dataclass(frozen=True)
class GraphBreak:
    """One graph break: its kind (Dynamo's one-line reason), an explanation, and where it happened."""

    kind: str
    explanation: str = ""
    file: str = ""
    line: int = 0
    func: str = ""
    owner: str = "optimizer"  # or "closure": the closure optbench passes to a closure optimizer

    @property
    def where(self) -> str:
        if not self.file:  # a place of optbench's own (``attribute``) is named, not its file:line
            return self.func or "(place not reported by this torch)"
        name = f" in {self.func}" if self.func else ""
        return f"{short_path(self.file)}:{self.line}{name}"

    def text(self) -> str:
        why = f" ({self.explanation})" if self.explanation else ""
        return f"{self.where}: {self.kind}{why}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "explanation": self.explanation, "file": self.file, "line": self.line,
                "func": self.func, "owner": self.owner}


@dataclass
class StepRecord:
    """What one call of the compiled function compiled."""

    graphs: int = 0  # graphs handed to the backend during the call
    guards: list[str] = field(default_factory=list)  # the guard that failed, per recompilation


@dataclass
class Watch:
    """Count graphs, graph breaks and recompilations of the compiled calls made inside ``with``."""

    steps: list[StepRecord] = field(default_factory=list)
    breaks: list[GraphBreak] = field(default_factory=list)
    limit_hit: str | None = None  # Dynamo's "hit config.recompile_limit" warning, when it fired
    _messages: list[str] = field(default_factory=list, repr=False)
    _fallback: dict[str, int] = field(default_factory=dict, repr=False)

    def __enter__(self) -> "Watch":
        import torch._dynamo
        import torch._inductor.config as inductor_config
        from torch._dynamo.utils import counters

        torch._dynamo.reset()
        self._inductor = inductor_config.patch(compile_threads=1)
        self._inductor.__enter__()
        self._graph_breaks0 = dict(counters["graph_break"])
        self._handler = _Collect(self._messages)
        self._loggers = []
        for name in ("torch._dynamo.symbolic_convert.__graph_breaks",):
            lg = logging.getLogger(name)
            self._loggers.append((lg, lg.level, lg.propagate))
            lg.addHandler(self._handler)
            lg.setLevel(logging.DEBUG)
            lg.propagate = False
        # torch's own console noise about what this Watch reports (a fake-tensor error with its traceback, the
        # .item() break's advice, a profiler note): quiet while the checks run, restored afterwards
        self._quiet = []
        for name in QUIET:
            lg = logging.getLogger(name)
            self._quiet.append((lg, lg.level))
            lg.setLevel(logging.CRITICAL)
        self._limit_handler = _Collect(self._messages, prefix="LIMIT:", contains="recompile_limit")
        self._convert = logging.getLogger("torch._dynamo.convert_frame")
        self._convert.addHandler(self._limit_handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        import torch._dynamo
        from torch._dynamo.utils import counters

        for lg, level, propagate in self._loggers:
            lg.removeHandler(self._handler)
            lg.setLevel(level)
            lg.propagate = propagate
        self._convert.removeHandler(self._limit_handler)
        for lg, level in self._quiet:
            lg.setLevel(level)

        self._inductor.__exit__(*exc)
        now = counters["graph_break"]
        self._fallback = {k: v - self._graph_breaks0.get(k, 0) for k, v in now.items()
                          if v > self._graph_breaks0.get(k, 0)}
        self.breaks = _parse_breaks([m for m in self._messages if not m.startswith("LIMIT:")], self._fallback)
        limits = [m[len("LIMIT:"):] for m in self._messages if m.startswith("LIMIT:")]
        self.limit_hit = " ".join(limits[0].split()) if limits else None
        torch._dynamo.reset()  # drop the compiled frames: they hold this check's parameters and optimizer

    def step(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` (the compiled function) once and record what it compiled."""
        from torch._dynamo.utils import counters, guard_failures

        g0 = counters["stats"]["unique_graphs"]
        f0 = {code: len(reasons) for code, reasons in guard_failures.items()}
        try:
            return fn()
        finally:
            rec = StepRecord(graphs=counters["stats"]["unique_graphs"] - g0)
            for code, reasons in guard_failures.items():
                new = reasons[f0.get(code, 0):]
                if new:
                    # one reason per cache entry, the newest entry's first: the guard that failed last time's graph,
                    # e.g. "self.param_groups[0]['lr'] == 0.0033"
                    rec.guards.append(f"{_frame_name(code)}: {guard_text(new[0])}")
            self.steps.append(rec)

    def graphs_after(self, warmup: int) -> int:
        return sum(s.graphs for s in self.steps[warmup:])

    def recompiling_steps(self, warmup: int) -> list[int]:
        """The steps (1-based) after ``warmup`` that compiled at least one graph."""
        return [k + 1 for k, s in enumerate(self.steps) if k >= warmup and s.graphs]


class _Collect(logging.Handler):
    def __init__(self, out: list[str], prefix: str = "", contains: str = "") -> None:
        super().__init__(logging.DEBUG)
        self.out, self.prefix, self.contains = out, prefix, contains

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to raise
            return
        if not self.contains or self.contains in msg:
            self.out.append(self.prefix + msg)


_OWN = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the optbench package


def _frame_name(code: Any) -> str:
    """Where a guard was installed: the function and its file:line, or, for optbench's own compiled function (the
    wrapper around ``opt.step()``, whose lines move with every edit and which no user can act on), just that."""
    if os.path.abspath(code.co_filename).startswith(_OWN + os.sep):
        return "the compiled function around opt.step()"
    return f"{code.co_name} ({short_path(code.co_filename)}:{code.co_firstlineno})"


def guard_text(reason: str) -> str:
    """The failed guard of one Dynamo recompile reason, on one line, without its "2/0: " prefix; optbench's own
    names for the optimizer and its scheduler (``run.opt``, ``run.sched``) read as ``opt`` and ``scheduler``, and a
    source comment that points into Dynamo itself (where the guard was made, not what it guards) is dropped."""
    first = str(reason).strip().splitlines()[0] if str(reason).strip() else ""
    first = re.sub(r"^\d+/\d+:\s*", "", first)
    first = re.sub(r"\brun\.opt\b", "opt", first)
    first = re.sub(r"\brun\.sched\b", "scheduler", first)
    first = re.sub(r"\s*#\s*\((?:torch/)?_dynamo/[^)]*\)", "", first)
    return " ".join(first.split())


def _reason_lines(text: str) -> tuple[str, str]:
    """(kind, explanation) from a "Graph Break Reason: ..." block or a counters key."""
    kind, explanation = "", ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("Encountered graph break when attempting to trace"):
            continue
        if line.startswith("Graph Break Reason:"):
            rest = line[len("Graph Break Reason:"):].strip()
            if rest and not rest.startswith("Encountered graph break"):
                kind = kind or rest
            continue
        if line.startswith("Explanation:"):
            explanation = line[len("Explanation:"):].strip()
            break
        if not kind and not line.startswith(("Graph break", "Hint:", "Developer debug context")):
            kind = line
    return no_address(kind), no_address(explanation)


def _parse_breaks(messages: Sequence[str], fallback: dict[str, int]) -> list[GraphBreak]:
    out: dict[tuple[str, int, str], GraphBreak] = {}
    for msg in messages:
        m = _LOC.search(msg.splitlines()[0] if msg else "")
        if not m:
            continue
        file, line = m.group("file"), int(m.group("line"))
        reason = msg.split("Graph Break Reason:", 1)[1] if "Graph Break Reason:" in msg else msg
        kind, explanation = _reason_lines("Graph Break Reason:" + reason.split("User code traceback:")[0])
        func = ""
        for fm in _FRAME.finditer(msg):
            if fm.group("file") == file and int(fm.group("line")) == line:
                func = fm.group("func")
        key = (file, line, kind)
        if key not in out or (func and not out[key].func):
            out[key] = GraphBreak(kind or "graph break", explanation, file, line, func)
    # a break Dynamo cannot resume from (inside a loop) is reported twice at its place: the break, then "Failed to
    # handle graph break gracefully. Skipping the function and falling back to eager": one break, with that note
    skipped = {(f, ln) for (f, ln, kind) in out if kind.startswith("Failed to handle graph break")}
    for (f, ln) in skipped:
        others = [k for k in out if k[:2] == (f, ln) and not k[2].startswith("Failed to handle graph break")]
        if others:
            out.pop(next(k for k in out if k[:2] == (f, ln) and k[2].startswith("Failed to handle graph break")))
            for k in others:
                b = out[k]
                out[k] = GraphBreak(b.kind, (b.explanation + " " if b.explanation else "") +
                                    "[Dynamo then skipped the whole function and ran it eagerly]", b.file, b.line, b.func)
    if not out and fallback:  # the log said nothing we could read: reasons without places
        for text in fallback:
            kind, explanation = _reason_lines(text)
            out[("", 0, kind)] = GraphBreak(kind or " ".join(text.split())[:120], explanation)
    return list(out.values())


# ---- where an exception raised under torch.compile happened -----------------------------------------

_TORCH_INTERNAL = ("/torch/_dynamo/", "/torch/_inductor/", "/torch/_functorch/", "/torch/fx/", "/torch/_subclasses/",
                   "/torch/_prims", "/torch/_refs/", "/torch/_decomp/", "/torch/utils/_contextlib.py",
                   "/torch/_compile.py", "/torch/_ops.py")


def _generated(path: str) -> bool:
    """Whether ``path`` is code Inductor generated (its output code, kept in Inductor's cache folder)."""
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir

        root = os.path.realpath(cache_dir())
    except Exception:  # noqa: BLE001 - no Inductor here: nothing it generated
        return False
    return os.path.realpath(path).startswith(root + os.sep)


def _torch_own(path: str) -> bool:
    """torch.compile's own machinery, or the code Inductor generated for this step."""
    path = path.replace("\\", "/")
    return any(t in path for t in _TORCH_INTERNAL) or _generated(path)


def _frames_of(exc: BaseException) -> list[traceback.FrameSummary]:
    """The user frames Dynamo attached (``real_stack``), else the Python traceback, of ``exc`` and its causes."""
    seen: list[traceback.FrameSummary] = []
    e: BaseException | None = exc
    chain = 0
    while e is not None and chain < 8:
        stack = getattr(e, "real_stack", None)
        if stack:
            seen.extend(stack)
        e = e.__cause__ or e.__context__
        chain += 1
    if seen:
        return seen
    e, chain = exc, 0
    while e is not None and chain < 8:
        seen.extend(traceback.extract_tb(e.__traceback__))
        e = e.__cause__ or e.__context__
        chain += 1
    return seen


def crash_frame(exc: BaseException, optimizer_files: Sequence[str]) -> str | None:
    """``file:line in func`` of the frame of the optimizer where ``exc`` (raised under compile) happened:
    the innermost frame in one of ``optimizer_files`` (its class's module), else the innermost frame that is
    not torch.compile's own machinery, else None."""
    frames = _frames_of(exc)
    files = {f for f in optimizer_files if f}
    mine = [f for f in frames if f.filename in files]
    if mine:
        f = mine[-1]
        return f"{short_path(f.filename)}:{f.lineno} in {f.name}"
    outside = [f for f in frames if not _torch_own(f.filename) and "/optbench/" not in f.filename.replace("\\", "/")]
    if outside:
        f = outside[-1]
        return f"{short_path(f.filename)}:{f.lineno} in {f.name}"
    return None


def raised_in_torch(exc: BaseException, optimizer_files: Sequence[str]) -> str | None:
    """``file:line in func`` of torch.compile's own frame that raised ``exc``, where no frame of the optimizer's
    files is on the way (neither Dynamo's traced stack nor the traceback): the compiled code failed at run time
    (AOTAutograd's mutation epilogue, an Inductor kernel), not the optimizer's Python. None otherwise."""
    import torch.optim.optimizer as base  # its step() wrapper is on every optimizer's way: not the optimizer's code

    files = {f for f in optimizer_files if f and f != base.__file__}
    if getattr(exc, "real_stack", None) or any(f.filename in files for f in _frames_of(exc)):
        return None
    tb = traceback.extract_tb(exc.__traceback__)
    if not tb:
        return None
    last = tb[-1]
    if _generated(last.filename):
        name = os.path.basename(last.filename)
        return f"Inductor's generated code for the step ({name}:{last.lineno} in {last.name})"
    if _torch_own(last.filename) or last.filename.startswith("<"):
        return f"{short_path(last.filename)}:{last.lineno} in {last.name}"
    return None


def one_line(exc: BaseException, limit: int = 400) -> str:
    """``Type: message`` on one line, without Dynamo's long "from user code" and hint sections."""
    text = str(exc).split("\n\nfrom user code:")[0].split("\n\nSet TORCHDYNAMO_VERBOSE")[0]
    text = re.split(r"\n\s*Hint:", text)[0]
    text = no_address(" ".join(text.split()))
    if len(text) > limit:
        text = text[:limit] + " ..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
