"""Reading benchmark result files (pytest-benchmark's ``--benchmark-json`` format) into records.

Every optbench benchmark stores its coordinates in ``extra_info``: ``kind`` ("loop" or "stream"),
``optimizer``, ``impl``, ``layout``, ``size`` (the nominal --sizes value), ``n`` (actual parameter
count), ``device``, ``dtype``, ``phase``; plus ``bytes``, ``gbps``, ``roofline_pct``. Results of ``kind``
"memory" (``benches/test_memory.py``: ``state_bytes_per_param``, ``step_peak_bytes``) are no timings: they are
kept apart in :attr:`Run.memory` (their extra_info dicts), never among the timed records.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..io import read_json

KEY_FIELDS = ("optimizer", "size", "impl", "device", "dtype", "phase", "layout")


@dataclass
class Record:
    name: str
    optimizer: str
    impl: str
    layout: str
    size: int
    n: int
    device: str
    dtype: str
    phase: str
    median: float  # seconds per call (= per epoch for phase "epoch")
    iqr: float
    rounds: int
    extra: dict[str, Any] = field(default_factory=dict)
    min: float = 0.0
    q1: float = 0.0

    @property
    def key(self) -> tuple:
        return tuple(getattr(self, f) for f in KEY_FIELDS)

    @property
    def label(self) -> str:
        return f"{self.optimizer}-{self.impl}-{self.layout}-n{fmt_size(self.size)}-{self.dtype}-{self.device}-{self.phase}"

    @property
    def ns_per_param(self) -> float:
        return self.median * 1e9 / max(self.n, 1)

    @property
    def gbps(self) -> float | None:
        b = self.extra.get("bytes")
        return b / self.median / 1e9 if b else None


@dataclass
class Run:
    path: str
    machine_info: dict[str, Any]
    commit_info: dict[str, Any]
    datetime: str | None
    records: list[Record]
    stream: dict[str, Record]  # device -> streaming reference benchmark
    raw: dict[str, Any]
    memory: list[dict[str, Any]] = field(default_factory=list)  # extra_info of the kind="memory" results

    @property
    def optbench_info(self) -> dict[str, Any]:
        return self.machine_info.get("optbench", {}) or {}

    def stream_gbps(self, device: str) -> float | None:
        """The session's roofline: the value the benches used for extra_info (machine_info), else the
        ``test_stream`` benchmark's median."""
        v = (self.optbench_info.get("stream_gbps") or {}).get(device)
        if v:
            return float(v)
        rec = self.stream.get(device)
        if rec is not None and rec.extra.get("bytes"):
            return rec.extra["bytes"] / rec.median / 1e9
        return None

    def roofline_pct(self, rec: Record) -> float | None:
        bw = self.stream_gbps(rec.device)
        g = rec.gbps
        return 100.0 * g / bw if (bw and g) else None

    @property
    def machine(self) -> str:
        from .machine import machine_key

        return machine_key(self.machine_info)


def fmt_size(n: int) -> str:
    if n >= 1000 and str(n).rstrip("0") == "1":
        return f"1e{len(str(n)) - 1}"
    return str(n)


def load_run(path: str | os.PathLike, *, what: str = "result file") -> Run:
    """Load one pytest-benchmark JSON; a missing, corrupt or foreign file is a one-line ConfigError."""
    return parse_run(read_json(path, what=what), path, what=what)


def parse_run(data: object, path: str | os.PathLike = "<in memory>", *, what: str = "result file") -> Run:
    """A :class:`Run` from pytest-benchmark JSON data already in memory (``path`` names it in errors)."""
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list) or "machine_info" not in data:
        raise ConfigError(f"{what} {path} is not a pytest-benchmark JSON (no 'benchmarks'/'machine_info'); "
                          f"write it with pytest --benchmark-json")
    records: list[Record] = []
    stream: dict[str, Record] = {}
    memory: list[dict[str, Any]] = []
    for b in data["benchmarks"]:
        try:
            ei = b.get("extra_info") or {}
            st = b["stats"]
            kind = ei.get("kind", "loop")
            if kind == "memory":
                if "state_bytes_per_param" in ei and "step_peak_bytes" in ei:
                    memory.append(dict(ei))
                continue
            if kind not in ("loop", "stream"):
                continue
            rec = Record(
                name=b.get("name", "?"), optimizer=str(ei.get("optimizer", "-")), impl=str(ei.get("impl", "-")),
                layout=str(ei.get("layout", "flat")), size=int(ei.get("size", ei.get("n", 0))), n=int(ei.get("n", 0)),
                device=str(ei.get("device", "cpu")), dtype=str(ei.get("dtype", "float32")),
                phase=str(ei.get("phase", "epoch")), median=float(st["median"]), iqr=float(st.get("iqr", 0.0)),
                rounds=int(st.get("rounds", 0)), extra=dict(ei), min=float(st.get("min", st["median"])),
                q1=float(st.get("q1", st["median"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{what} {path}: benchmark {b.get('name', '?')!r} is malformed ({exc}); regenerate the file") from None
        if kind == "stream":
            stream[rec.device] = rec
        else:
            records.append(rec)
    return Run(str(path), data.get("machine_info") or {}, data.get("commit_info") or {}, data.get("datetime"),
               records, stream, data, memory)
