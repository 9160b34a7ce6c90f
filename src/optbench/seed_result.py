"""The result of one ``optbench run``: the trajectory next to the analytic minimizer and the exact
closed form, what the command prints (:meth:`SeedResult.summary_lines`), and the files it writes
(``trajectory.json``, format ``optbench.run/1``, and ``trajectory.png``). The run itself is
:func:`optbench.seed.run_seed`.
"""

from __future__ import annotations

import datetime as _dt
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import sympy
import torch

from .closed_form import GDClosedForm
from .devices import dtype_name
from .loop import Trajectory

JSON_NAME = "trajectory.json"
PNG_NAME = "trajectory.png"
RESULT_FILES = (JSON_NAME, PNG_NAME)


@dataclass
class SeedResult:
    """One run of the five-step loop, with the analytic and closed-form references next to it."""

    target: Any
    optimizer_name: str
    optimizer_type: str
    lr_text: str
    lr: float
    momentum: float | None
    epochs: int
    dtype: torch.dtype
    device: str
    start: tuple[sympy.Expr, ...]
    trajectory: Trajectory
    xs: list[list[float]]  # x_0 .. x_{epochs_run}, float values of what torch held
    losses: list[float]  # f(x_k) for the same k (the last one evaluated after the final step)
    x_star: tuple[sympy.Expr, ...]  # the exact minimizer nearest the final x
    f_star: sympy.Expr
    closed_form: GDClosedForm | None
    closed_form_reason: str | None  # why the closed form does not apply (None when it does)
    closed_form_xs: list[list[float]] | None
    f_gap: float  # f(x_final) - f*, evaluated exactly at the float x_final
    seconds: float
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    # ---------------------------------------------------------------- derived numbers
    @property
    def diverged(self) -> bool:
        return self.trajectory.diverged

    @property
    def epochs_run(self) -> int:
        return self.trajectory.epochs_run

    @property
    def x_final(self) -> list[float]:
        return self.xs[-1]

    @property
    def x_star_float(self) -> list[float]:
        return [float(v) for v in self.x_star]

    @property
    def gap_x_star(self) -> float:
        """max_i |x_final_i - x*_i|"""
        return max(abs(a - b) for a, b in zip(self.x_final, self.x_star_float))

    @property
    def gap_closed_form(self) -> float | None:
        if self.closed_form_xs is None:
            return None
        return max(abs(a - b) for a, b in zip(self.x_final, self.closed_form_xs[-1]))

    # ---------------------------------------------------------------- presentation
    def _fmt_vec(self, v: Sequence[float]) -> str:
        return ", ".join(repr(float(x)) for x in v) if len(v) > 1 else repr(float(v[0]))

    def _fmt_exact(self, v: Sequence[sympy.Expr]) -> str:
        txt = ", ".join(sympy.sstr(x) for x in v)
        num = ", ".join(f"{float(x):.15g}" for x in v)
        if len(v) > 1:
            txt, num = f"({txt})", f"({num})"
        return txt if txt == num else f"{txt} = {num}"

    def describe(self) -> str:
        t = self.target
        mom = f", momentum {self.momentum:g}" if self.momentum is not None else ""
        start = ", ".join(sympy.sstr(v) for v in self.start)
        start = f"({start})" if len(self.start) > 1 else start
        return (
            f"{t.name}: f = {sympy.sstr(t.expr)}; {self.optimizer_name} lr {self.lr_text}{mom}, "
            f"{self.epochs} epochs from x0 = {start}, {dtype_name(self.dtype)} on {self.device}"
        )

    def summary_lines(self) -> list[str]:
        """What ``optbench run`` prints: one fact a line, ``name: value``."""
        lines = [self.describe()]
        if self.diverged:
            return lines + [self.divergence_line()]
        lines.append(f"final x:                 {self._fmt_vec(self.x_final)}")
        lines.append(f"analytic x*:             {self._fmt_exact(self.x_star)}")
        if self.closed_form is not None:
            cf = self.closed_form
            lines.append(f"closed form:             {cf.formula()}")
            if cf.factor is not None:
                a2 = cf.A[0, 0]
                lines.append(f"factor 1 - {sympy.sstr(a2)}*lr:".ljust(25) + self._fmt_exact([cf.factor]))
            lines.append(
                f"closed form x_{self.epochs_run}:".ljust(25) + f"{self._fmt_vec(self.closed_form_xs[-1])}"
            )
        else:
            lines.append(f"closed form:             does not apply: {self.closed_form_reason}")
        lines.append(f"|x_final - x*|:          {self.gap_x_star:.3e}")
        if self.gap_closed_form is not None:
            lines.append(f"|x_final - closed form|: {self.gap_closed_form:.3e}")
        lines.append(f"f(x_final) - f*:         {self.f_gap:.3e}  (f* = {self._fmt_exact([self.f_star])})")
        return lines

    def divergence_line(self) -> str:
        ep = self.trajectory.nonfinite_epoch
        why = ""
        if self.closed_form is not None:
            why = (
                f"; GD on this quadratic is stable only for lr < {sympy.sstr(self.closed_form.stability_limit)}"
                f" (|1 - lr*A| = {self.closed_form.spectral_radius:.6g})"
            )
        return f"diverged: loss or x became non-finite at epoch {ep} of {self.epochs}{why}"

    # ---------------------------------------------------------------- files
    def to_json(self) -> dict[str, Any]:
        t = self.target
        cf = self.closed_form
        n = len(self.xs)
        return {
            "format": "optbench.run/1",
            "metadata": {
                "target": t.name,
                "expr": sympy.sstr(t.expr),
                "optimizer": self.optimizer_name,
                "optimizer_type": self.optimizer_type,
                "lr": self.lr,
                "lr_text": self.lr_text,
                "momentum": self.momentum,
                "epochs": self.epochs,
                "epochs_run": self.epochs_run,
                "start": [sympy.sstr(v) for v in self.start],
                "dtype": dtype_name(self.dtype),
                "device": self.device,
                "torch": torch.__version__,
                "python": platform.python_version(),
                "optbench": _optbench_version(),
                "created": self.created,
                "seconds": self.seconds,
            },
            "analytic": {
                "x_star": [sympy.sstr(v) for v in self.x_star],
                "x_star_float": self.x_star_float,
                "f_star": sympy.sstr(self.f_star),
                "f_star_float": float(self.f_star),
            },
            "closed_form": (
                {"applies": True, "formula": cf.formula(), "lr_exact": sympy.sstr(cf.lr),
                 "factor": sympy.sstr(cf.factor) if cf.factor is not None else None,
                 "spectral_radius": cf.spectral_radius,
                 "stability_limit": sympy.sstr(cf.stability_limit)}
                if cf is not None
                else {"applies": False, "reason": self.closed_form_reason}
            ),
            "result": {
                "stopped": self.trajectory.stopped,
                "nonfinite_epoch": self.trajectory.nonfinite_epoch,
                "x_final": _json_floats(self.x_final),
                "gap_x_star": _json_float(self.gap_x_star) if not self.diverged else None,
                "gap_closed_form": _json_float(self.gap_closed_form) if not self.diverged else None,
                "f_gap": _json_float(self.f_gap) if not self.diverged else None,
            },
            # state after k steps; non-finite numbers are written as null (JSON has no NaN/inf)
            "trajectory": {
                "epoch": list(range(n)),
                "x": [_json_floats(x) for x in self.xs],
                "loss": [_json_float(v) for v in self.losses],
                "closed_form_x": [_json_floats(x) for x in self.closed_form_xs[:n]] if self.closed_form_xs else None,
            },
        }

    def figure(self):
        """A two-row figure: the loss trajectory and x_k against x* and the closed form."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        fig = Figure(figsize=(11, 4.2), layout="constrained")
        ax_loss, ax_x, ax_gap = fig.subplots(1, 3)
        k = list(range(len(self.xs)))
        fin = lambda v: v if math.isfinite(v) else math.nan  # noqa: E731
        ax_loss.plot(k, [fin(v) for v in self.losses], "o-", ms=2.5, lw=1, label="loss f(x_k)")
        ax_loss.axhline(float(self.f_star), color="k", ls="--", lw=1, label=f"f* = {sympy.sstr(self.f_star)}")
        ax_loss.set(xlabel="epoch k", ylabel="loss", title="loss trajectory")
        ax_loss.legend(fontsize=8)
        d = len(self.x_star)
        for i in range(d):
            sub = f"_{i + 1}" if d > 1 else ""
            ax_x.plot(k, [fin(x[i]) for x in self.xs], "o", ms=2.5, color=f"C{i}", label=f"torch x{sub}_k")
            if self.closed_form_xs:
                ax_x.plot(k, [fin(x[i]) for x in self.closed_form_xs[: len(k)]], "-", lw=1, color="0.2",
                          zorder=3, label="closed form x_k" if i == 0 else None)
            ax_x.axhline(float(self.x_star[i]), color=f"C{i}", ls="--", lw=1,
                         label=f"x*{sub} = {sympy.sstr(self.x_star[i])}")
        ax_x.set(xlabel="epoch k", ylabel="x", title="x_k against x*")
        ax_x.legend(fontsize=8)
        gaps = [max(abs(fin(a) - float(b)) for a, b in zip(x, self.x_star)) for x in self.xs]
        ax_gap.semilogy(k, [g if g > 0 else math.nan for g in gaps], "o", ms=2.5, label="torch |x_k - x*|")
        if self.closed_form_xs:
            cg = [max(abs(a - float(b)) for a, b in zip(x, self.x_star)) for x in self.closed_form_xs[: len(k)]]
            ax_gap.semilogy(k, [g if g > 0 else math.nan for g in cg], "-", lw=1, alpha=0.7,
                            label=f"closed form (rate {self.closed_form.spectral_radius:.4g})")
        ax_gap.set(xlabel="epoch k", ylabel="|x_k - x*| (log)", title="distance to the minimizer")
        ax_gap.legend(fontsize=8)
        title = self.describe()
        if self.diverged:
            # the values span many decades: a symmetric log axis keeps the early epochs visible
            ep = self.trajectory.nonfinite_epoch
            finite = [v for v in self.losses if math.isfinite(v)]
            ax_loss.set_yscale("log" if finite and min(finite) > 0 else "symlog")
            ax_x.set_yscale("symlog", linthresh=1.0)
            for ax in (ax_loss, ax_x, ax_gap):
                ax.axvline(ep + 1, color="r", lw=1, ls=":", label=f"non-finite at epoch {ep}")
            ax_loss.legend(fontsize=8)
            title += f" -- DIVERGED at epoch {ep}"
        fig.suptitle(title, fontsize=9)
        return fig

    def save(self, out: str | Path, *, overwrite: bool = False, plot: bool = True) -> list[Path]:
        """Write ``trajectory.json`` (and ``trajectory.png`` unless ``plot=False``) into ``out`` atomically."""
        from .io import atomic_write_json, save_figure

        out = Path(out)
        paths = [atomic_write_json(out / JSON_NAME, self.to_json(), overwrite=overwrite)]
        if plot:
            paths.append(save_figure(self.figure(), out / PNG_NAME, overwrite=overwrite))
        return paths


def _json_float(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _json_floats(v: Sequence[float]) -> list[float | None]:
    return [_json_float(float(x)) for x in v]


def _optbench_version() -> str:
    from . import __version__

    return __version__
