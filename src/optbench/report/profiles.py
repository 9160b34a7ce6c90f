"""Convergence profiles of the hard targets: epochs to tolerance across optimizers, shown as
performance profiles (Dolan & Moré 2002), data profiles (Moré & Wild 2009) and a table.

Input: one or more ``optbench-profiles/1`` JSON files (see :func:`load_profiles`); each record is
one run of one optimizer config on one (target, start) at one lr (and optional lr schedule), with
``epochs_to_tol`` the epochs it needed to reach |x - x*| <= tol_x and f - f* <= tol_f, or null.

Definitions used here (stated once, relied on by the tests and the report text):

* A *problem* p is a (target, start) pair; its dimension n_p is the target's ``dim``. Records of
  several dtypes or devices are never merged: when a record set mixes them, dtype and device become
  part of the problem (``rosenbrock_2d/0/float32/cpu``).
* A *solver* s is an optimizer (``per="best_lr"``) or an optimizer at one lr and schedule
  (``per="lr"``, named ``adam@lr=0.01`` or ``lion@lr=0.001+ExponentialLR(gamma=0.99)``).
* The cost t_ps is epochs to tolerance; inf where the tolerance was not reached within the budget
  or the run diverged. With ``per="best_lr"`` it is the fewest epochs over the solver's lr grid on
  that problem (its best lr *per problem*): the profile then compares optimizers each tuned as well
  as its grid allows, which is what a user picking an lr per task gets. It favours optimizers with
  larger grids and says nothing about one lr that works everywhere; ``per="lr"`` shows that instead.
* Performance profile (Dolan & Moré 2002): r_ps = t_ps / min_s t_ps and
  rho_s(tau) = |{p : r_ps <= tau}| / |P|. As in the paper, an unsolved problem gets r_ps = inf (their
  r_M, above every ratio), and a problem no solver solved stays in P with r_ps = inf for every
  solver, so it lowers every curve alike and no curve reaches 1. A cost of 0 epochs (start already
  inside the tolerance) is counted as 1 epoch in ratios, so r_ps = max(t_ps, 1) / max(min_s t_ps, 1).
* Data profile (Moré & Wild 2009): d_s(alpha) = |{p : t_ps / (n_p + 1) <= alpha}| / |P|, with the
  cost counted in epochs (one gradient evaluation each) where the paper counts function evaluations,
  and the convergence test the exact tolerance above where the paper measures against the best value
  any solver found.

Duplicate runs (same optimizer, target, start, lr, schedule, dtype, device) across files: the later
file wins, as ``optbench report`` does for benchmark records.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from ..errors import ConfigError
from ..io import read_json, save_figure

SCHEMA = "optbench-profiles/1"

# field -> accepted types; the fields profiles need. Other fields of the record format (source,
# start_kind, tol_x, tol_f, final_dist, final_gap) are kept as they are and checked when present.
_REQUIRED: dict[str, tuple[type, ...]] = {
    "optimizer": (str,), "target": (str,), "dim": (int,), "start": (int, str), "lr": (int, float),
    "epochs_to_tol": (int, type(None)), "budget": (int,), "diverged": (bool,),
}
_OPTIONAL: dict[str, tuple[type, ...]] = {
    "schedule": (str, type(None)), "dtype": (str,), "device": (str,), "source": (str,), "start_kind": (str,),
    "tol_x": (int, float), "tol_f": (int, float), "final_dist": (int, float, type(None)),
    "final_gap": (int, float, type(None)),
}

TAUS_TABLE = (1.0, 4.0)  # the performance-profile values shown per solver under the table
PERFORMANCE_PNG = "profile_performance.png"
DATA_PNG = "profile_data.png"


class Problem(NamedTuple):
    target: str
    start: int | str
    dim: int
    dtype: str = ""
    device: str = ""

    @property
    def label(self) -> str:
        return "/".join(str(x) for x in (self.target, self.start, self.dtype, self.device) if x != "")


# ---------------------------------------------------------------------------------------- loading


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:  # JSON true is not a number or a count
        return False
    return isinstance(value, types)


def _check_record(rec: Any, where: str) -> None:
    fix = "regenerate the file with the optbench run that records epochs to tolerance"
    if not isinstance(rec, dict):
        raise ConfigError(f"{where} is not an object; {fix}")
    for key in _REQUIRED:
        if key not in rec:
            raise ConfigError(f"{where} lacks the field {key!r}; {fix}")
    for key, types in {**_REQUIRED, **_OPTIONAL}.items():
        if key in rec and not _type_ok(rec[key], types):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ConfigError(f"{where} has {key} = {rec[key]!r}, expected {want}; {fix}")
    lr, ept, budget = rec["lr"], rec["epochs_to_tol"], rec["budget"]
    if not (math.isfinite(lr) and lr >= 0):
        raise ConfigError(f"{where} has lr = {lr!r}, expected a finite number >= 0; {fix}")
    if rec["dim"] < 1 or budget < 0:
        raise ConfigError(f"{where} has dim = {rec['dim']} and budget = {budget}, expected dim >= 1 and budget >= 0; {fix}")
    if ept is not None and not 0 <= ept <= budget:
        raise ConfigError(f"{where} has epochs_to_tol = {ept} outside [0, budget = {budget}]; {fix}")
    if ept is not None and rec["diverged"]:
        raise ConfigError(f"{where} has diverged = true and epochs_to_tol = {ept}; a diverged run has "
                          f"epochs_to_tol null; {fix}")


def load_profiles(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[dict]:
    """Read one or more profiles files into one list of records (validated; each gets the file's
    ``torch`` version under ``"torch"`` unless it has its own). Any missing, corrupt, wrong-schema or
    incomplete file raises :class:`ConfigError` with one line naming the file and the fix."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigError("no profiles file given; pass at least one optbench-profiles/1 JSON file")
    out: list[dict] = []
    for path in paths:
        data = read_json(path, what="profiles file")
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            got = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise ConfigError(f"profiles file {path} has schema {got!r}, expected {SCHEMA!r}; regenerate it "
                              f"with this optbench version")
        records = data.get("records")
        if not isinstance(records, list):
            raise ConfigError(f"profiles file {path} has no 'records' list; regenerate it")
        torch_version = data.get("torch")
        for i, rec in enumerate(records):
            _check_record(rec, f"profiles file {path}, record {i}")
            rec = dict(rec)
            if torch_version is not None:
                rec.setdefault("torch", torch_version)
            out.append(rec)
    if not out:
        names = ", ".join(str(p) for p in paths)
        raise ConfigError(f"profiles file(s) {names} hold no records; run the hard targets first or drop the file")
    return out


# ------------------------------------------------------------------------------------------ costs


def _schedule(rec: Mapping) -> str:
    return rec.get("schedule") or ""


def _lr_solver(rec: Mapping) -> str:
    # repr(float) is the shortest round-trip form: distinct lrs never share a name
    name = f"{rec['optimizer']}@lr={float(rec['lr'])!r}"
    return f"{name}+{_schedule(rec)}" if _schedule(rec) else name


def _cost(rec: Mapping) -> float:
    return math.inf if rec["epochs_to_tol"] is None else float(rec["epochs_to_tol"])


def _problems_of(records: Sequence[Mapping]) -> dict[tuple, Problem]:
    """run key (target, start, dtype, device) -> Problem; dtype/device only named when they vary."""
    envs = {(r.get("dtype", ""), r.get("device", "")) for r in records}
    mixed = len(envs) > 1
    dims: dict[str, int] = {}
    out: dict[tuple, Problem] = {}
    for r in records:
        dim = dims.setdefault(r["target"], r["dim"])
        if dim != r["dim"]:
            raise ConfigError(f"target {r['target']} is recorded with dim {dim} and dim {r['dim']}; "
                              f"regenerate the profiles with one definition of the target")
        key = (r["target"], r["start"], r.get("dtype", ""), r.get("device", ""))
        out.setdefault(key, Problem(r["target"], r["start"], r["dim"], *(key[2:] if mixed else ("", ""))))
    return out


def _sort_key(p: Problem) -> tuple:
    return (p.target, (0, p.start, "") if isinstance(p.start, int) else (1, 0, p.start), p.dtype, p.device)


def _grid(records: Sequence[Mapping], per: str) -> tuple[list[str], list[Problem], dict[tuple[str, Problem], list[Mapping]]]:
    """solvers, problems, and (solver, problem) -> the runs behind that cell (later duplicates win)."""
    if per not in ("best_lr", "lr"):
        raise ConfigError(f"per={per!r} is not a profile mode; use per='best_lr' or per='lr'")
    if not records:
        raise ConfigError("no profile records; load a profiles file holding at least one record")
    probs = _problems_of(records)
    unique: dict[tuple, Mapping] = {}
    for r in records:
        unique[(r["optimizer"], r["target"], r["start"], float(r["lr"]), _schedule(r),
                r.get("dtype", ""), r.get("device", ""))] = r
    cells: dict[tuple[str, Problem], list[Mapping]] = {}
    for r in unique.values():
        solver = r["optimizer"] if per == "best_lr" else _lr_solver(r)
        prob = probs[(r["target"], r["start"], r.get("dtype", ""), r.get("device", ""))]
        cells.setdefault((solver, prob), []).append(r)
    solvers = sorted({s for s, _ in cells})
    problems = sorted(set(probs.values()), key=_sort_key)
    return solvers, problems, cells


def _best(runs: Sequence[Mapping]) -> Mapping:
    """The run with the fewest epochs; ties go to the smaller lr (then schedule name), so the choice
    does not depend on file order."""
    return min(runs, key=lambda r: (_cost(r), float(r["lr"]), _schedule(r)))


def problem_costs(records: Sequence[Mapping], *, per: str = "best_lr") -> tuple[list[str], list[Problem], dict[str, list[float]]]:
    """``(solvers, problems, costs)`` with ``costs[solver][i]`` the epochs to tolerance of the solver
    on ``problems[i]`` (inf: unsolved, diverged, or never run there).

    ``per="best_lr"``: a solver is an optimizer, its cost the fewest epochs over its lr grid on that
    problem (best lr per problem; see the module docstring for why and what it hides).
    ``per="lr"``: each (optimizer, lr, schedule) is its own solver, named ``adam@lr=0.01``.
    ``problems[i].dim`` is n_p for :func:`data_profile`.
    """
    solvers, problems, cells = _grid(records, per)
    costs = {s: [_cost(_best(cells[(s, p)])) if (s, p) in cells else math.inf for p in problems] for s in solvers}
    return solvers, problems, costs


# --------------------------------------------------------------------------------------- profiles


def _check_costs(costs: Mapping[str, Sequence[float]], n: int | None = None) -> int:
    if not costs:
        raise ConfigError("no solvers in the cost table; pass costs from problem_costs()")
    lengths = {len(v) for v in costs.values()}
    if len(lengths) != 1 or (n is not None and lengths != {n}):
        raise ConfigError(f"cost lists have lengths {sorted(lengths)}"
                          + (f" for {n} problem dimensions" if n is not None else "")
                          + "; give every solver one cost per problem")
    for s, v in costs.items():
        for c in v:
            if math.isnan(c) or c < 0:
                raise ConfigError(f"solver {s} has cost {c!r}; costs are epochs >= 0, or inf when unsolved")
    return lengths.pop()


def performance_ratios(costs: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """r_ps = max(t_ps, 1) / max(min_s t_ps, 1); inf where s did not solve p, or nobody did."""
    n = _check_costs(costs)
    best = [min(v[i] for v in costs.values()) for i in range(n)]
    return {s: [max(c, 1.0) / max(b, 1.0) if math.isfinite(c) else math.inf for c, b in zip(v, best)]
            for s, v in costs.items()}


def performance_profile(costs: Mapping[str, Sequence[float]], taus: Sequence[float]) -> dict[str, list[float]]:
    """Dolan & Moré (2002): ``rho_s(tau)`` = fraction of all problems with r_ps <= tau, per tau.

    Problems no solver solved stay in the denominator and count as unsolved for every solver."""
    ratios = performance_ratios(costs)
    return {s: [sum(r <= tau for r in rs) / len(rs) if rs else 0.0 for tau in taus] for s, rs in ratios.items()}


def data_profile(costs: Mapping[str, Sequence[float]], dims: Sequence[int], alphas: Sequence[float]) -> dict[str, list[float]]:
    """Moré & Wild (2009): ``d_s(alpha)`` = fraction of problems with t_ps / (n_p + 1) <= alpha."""
    dims = list(dims)
    n = _check_costs(costs, len(dims))
    if any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in dims):
        raise ConfigError(f"problem dimensions {dims} must be integers >= 1; pass [p.dim for p in problems]")
    return {s: [sum(c / (d + 1) <= a for c, d in zip(v, dims)) / n if n else 0.0 for a in alphas]
            for s, v in costs.items()}


# ----------------------------------------------------------------------------------------- tables


def _fmt_lr(rec: Mapping) -> str:
    text = f"lr={float(rec['lr']):g}"
    return f"{text}, {_schedule(rec)}" if _schedule(rec) else text


def _cell(runs: Sequence[Mapping] | None) -> str:
    if not runs:
        return "not run"
    best = _best(runs)
    if best["epochs_to_tol"] is not None:
        return f"{best['epochs_to_tol']} ({_fmt_lr(best)})"
    return "diverged" if all(r["diverged"] for r in runs) else "—"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    from .tables import md_table

    def esc(c: str) -> str:
        return c.replace("|", "\\|")

    return md_table([esc(c) for c in header], [[esc(c) for c in r] for r in rows])


def profiles_table_md(records: Sequence[Mapping]) -> str:
    """Markdown table: one row per problem (target/start), one column per optimizer; a cell is the
    epochs at the optimizer's best lr with that lr, ``—`` when no lr reached the tolerance within the
    budget, ``diverged`` when every lr diverged. Three summary rows follow: problems solved, and the
    performance profile at tau = 1 (fastest) and tau = 4 (within 4x of the fastest)."""
    solvers, problems, cells = _grid(records, "best_lr")
    _, _, costs = problem_costs(records)
    budgets = {p: sorted({r["budget"] for (s, q), runs in cells.items() if q == p for r in runs}) for p in problems}
    rows = []
    for p in problems:
        b = budgets[p]
        label = f"{p.label} (n={p.dim}, budget {b[0] if len(b) == 1 else f'{b[0]}–{b[-1]}'})"
        rows.append([label] + [_cell(cells.get((s, p))) for s in solvers])
    rho = performance_profile(costs, TAUS_TABLE)
    n = len(problems)
    rows.append(["**solved**"] + [f"{sum(math.isfinite(c) for c in costs[s])}/{n}" for s in solvers])
    for j, tau in enumerate(TAUS_TABLE):
        rows.append([f"**ρ({tau:g})**"] + [f"{rho[s][j]:.2f}" for s in solvers])
    return _md_table(["problem (target/start)"] + solvers, rows)


# ----------------------------------------------------------------------------------------- plots


def _styles(k: int) -> list[tuple[Any, str]]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if k <= 10 else "tab20"]
    dashes = ["-", "--", "-.", ":"]
    return [(cmap(i % cmap.N), dashes[(i // cmap.N) % len(dashes)]) for i in range(k)]


def _legend(ax: Any, k: int) -> None:
    # outside the axes, right: a legend never hides a curve (save_figure's bbox_inches="tight" widens the PNG)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, ncol=1 + k // 20)


def _steps(values: Sequence[float], lo: float, hi: float, n: int) -> tuple[list[float], list[float]]:
    """Exact step function x -> |{v <= x}| / n on [lo, hi], as breakpoints for step(where='post')."""
    xs = [lo] + sorted(v for v in values if lo < v <= hi) + [hi]
    return xs, [sum(v <= x for v in values) / n for x in xs]


def plot_profiles(records: Sequence[Mapping], out_dir: str | os.PathLike, *, per: str = "best_lr") -> list[Path]:
    """Write the performance profile (log2 tau axis) and the data profile as PNGs into ``out_dir``
    (the caller owns it; files of the same name are replaced, atomically). Returns the two paths."""
    # Figure objects, not pyplot: no global backend switch, no figure registry to leak into
    from matplotlib.figure import Figure

    solvers, problems, costs = problem_costs(records, per=per)
    ratios = performance_ratios(costs)
    n = len(problems)
    styles = _styles(len(solvers))
    out_dir = Path(out_dir)
    paths = []

    finite_r = [r for rs in ratios.values() for r in rs if math.isfinite(r)]
    tau_max = max(2.0, 2.0 * max(finite_r, default=1.0))
    fig = Figure(figsize=(7.0, 4.2))
    ax = fig.add_subplot()
    for s, (color, ls) in zip(solvers, styles):
        xs, ys = _steps(ratios[s], 1.0, tau_max, n)
        ax.step(xs, ys, where="post", color=color, linestyle=ls, label=s, lw=1.6)
    ax.set_xscale("log", base=2)
    ax.set_xlim(1.0, tau_max)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("τ (epochs relative to the fastest optimizer on the problem, log2)")
    ax.set_ylabel("ρ(τ): fraction of problems")
    ax.set_title(f"Performance profile (Dolan & Moré 2002), {n} problems")
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax, len(solvers))
    paths.append(save_figure(fig, out_dir / PERFORMANCE_PNG))

    scaled = {s: [c / (p.dim + 1) for c, p in zip(costs[s], problems)] for s in solvers}
    finite_a = [a for v in scaled.values() for a in v if math.isfinite(a)]
    a_lo = min([a for a in finite_a if a > 0], default=1.0) / 2
    a_max = 2.0 * max(finite_a, default=1.0)
    a_max = max(a_max, 2 * a_lo)
    fig = Figure(figsize=(7.0, 4.2))
    ax = fig.add_subplot()
    for s, (color, ls) in zip(solvers, styles):
        xs, ys = _steps(scaled[s], a_lo, a_max, n)
        ax.step(xs, ys, where="post", color=color, linestyle=ls, label=s, lw=1.6)
    ax.set_xscale("log")
    ax.set_xlim(a_lo, a_max)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("α (epochs / (n_p + 1), log scale)")
    ax.set_ylabel("d(α): fraction of problems solved")
    ax.set_title(f"Data profile (Moré & Wild 2009), {n} problems")
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax, len(solvers))
    paths.append(save_figure(fig, out_dir / DATA_PNG))
    return paths


# ---------------------------------------------------------------------------------------- section


def render_section(profiles_paths: str | os.PathLike | Iterable[str | os.PathLike], out_dir: str | os.PathLike,
                   *, level: int = 2) -> str:
    """The markdown section for ``optbench report`` and ``optbench validate``: heading, how to read
    the profiles, the table, and links to the two PNGs written into ``out_dir`` (links are relative
    to ``out_dir``: write the markdown there)."""
    records = load_profiles(profiles_paths)
    paths = plot_profiles(records, out_dir)
    _, problems, _ = problem_costs(records)
    versions = sorted({str(r["torch"]) for r in records if r.get("torch")})
    tols = sorted({(r["tol_x"], r["tol_f"]) for r in records if "tol_x" in r and "tol_f" in r})
    tol = "; ".join(f"tol_x {a:g}, tol_f {b:g}" for a, b in tols) or "tol_x, tol_f as recorded"
    torch_note = f" (torch {', '.join(versions)})" if versions else ""
    text = (
        f"Epochs each optimizer needs to reach |x − x*| ≤ tol_x and f − f* ≤ tol_f ({tol}) on the hard targets"
        f"{torch_note}: {len(problems)} problems, one per target and start, each optimizer at the best lr of its "
        "grid for that problem. These are speed measurements, not verdicts: a hard target fails only where a "
        "config declares a budget for it. *Performance profile* (Dolan & Moré 2002): ρ(τ) is the fraction of "
        "problems an optimizer solves within τ times the epochs of the fastest optimizer on that problem; ρ(1) is "
        "how often it is the fastest, and the height at the right end is the fraction it solves at all. "
        "*Data profile* (Moré & Wild 2009): d(α) is the fraction of problems solved within α·(n_p + 1) epochs, "
        "n_p the problem's dimension: the share solved for a given budget. Higher and further left is better. "
        "Problems no optimizer solved count against every optimizer. In the table, — means the tolerance was "
        "not reached within the budget at any lr, diverged that every lr diverged."
    )
    h = "#" * level
    out = [f"{h} Convergence profiles (hard targets)\n", text + "\n", profiles_table_md(records) + "\n"]
    alts = ("Performance profile (Dolan & Moré 2002)", "Data profile (Moré & Wild 2009)")
    out += [f"![{alt}]({p.name})\n" for alt, p in zip(alts, paths)]
    return "\n".join(out)
