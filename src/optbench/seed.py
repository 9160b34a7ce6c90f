"""The seed experiment, and the exact closed form that checks it.

The original study trains f(x) = 3x^2 - 2x + 3 with the five-step loop (SGD, lr 0.01, 80 epochs from
x = -1) and reaches x ~ 0.32 against the analytic minimizer x* = 1/3. On a quadratic
f(x) = 1/2 x^T A x - b^T x + c, plain gradient descent is a linear recursion with an exact solution:

    x_k - x* = (I - lr*A)^k (x0 - x*)          (1-D, f = a x^2 + ...: factor 1 - 2a*lr)

so every epoch of torch's SGD can be compared with an exact rational number. :func:`gd_closed_form`
gives that number; :func:`run_seed` runs any target/optimizer through :func:`optbench.loop.run_loop`
and returns a :class:`SeedResult` that the ``optbench run`` command prints and saves.

Numbers typed by a user (``lr``, start points) are taken exactly as written: ``0.01`` is 1/100 and
``1/3`` is one third, so the closed form is the mathematical one; torch necessarily runs with the
nearest float, and the printed gap |x_final - closed form| is that rounding, accumulated.
"""

from __future__ import annotations

import datetime as _dt
import functools
import inspect
import math
import platform
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Sequence

import sympy
import torch

from .devices import DTYPES, cuda_skip_reason, dtype_name, parse_dtype
from .errors import OptbenchError, SpecError
from .loop import Trajectory, run_loop

# The seed study, as published.
SEED_TARGET = "seed_quadratic"
SEED_OPTIMIZER = "sgd"
SEED_LR = "0.01"
SEED_EPOCHS = 80
# torch.tensor(-1.0, requires_grad=True) in the study: torch's default dtype.
SEED_DTYPE = "float32"

JSON_NAME = "trajectory.json"
PNG_NAME = "trajectory.png"
RESULT_FILES = (JSON_NAME, PNG_NAME)


# --------------------------------------------------------------------------------------------------
# exact numbers


def exact_number(value: Any, *, what: str = "value") -> sympy.Rational:
    """An exact rational for ``value``: ints, Fractions and sympy rationals as they are; strings and
    floats through their decimal text (``0.01`` -> 1/100, ``"1/3"`` -> 1/3). Anything else, or a
    non-finite number, is a one-line error."""
    if isinstance(value, bool):
        raise OptbenchError(f"{what} {value!r} is not a number; give a decimal like 0.01 or a fraction like 1/3")
    if isinstance(value, sympy.Basic):
        v = sympy.nsimplify(value) if isinstance(value, sympy.Float) else value
        if v.is_Rational:
            return sympy.Rational(v)
        raise OptbenchError(f"{what} {value} is not a rational number; give a decimal or a fraction")
    if isinstance(value, (int, Fraction)):
        return sympy.Rational(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise OptbenchError(f"{what} {value!r} is not finite; give a finite number")
        return sympy.Rational(repr(value))
    text = str(value).strip().replace("\u2212", "-")  # accept the typographic minus sign
    try:
        r = sympy.Rational(text)
    except (TypeError, ValueError, ZeroDivisionError):
        raise OptbenchError(
            f"{what} {value!r} is not a number; give a decimal like 0.01 or a fraction like 1/3"
        ) from None
    return r


def round_to_dtype(q: sympy.Rational | Fraction | int, dtype: torch.dtype) -> float:
    """``q`` correctly rounded (to nearest, ties to even) to ``dtype``, returned as a Python float.

    Rounding a rational to float64 and then to float32 can round twice; this rounds once.
    """
    q = Fraction(int(sympy.Rational(q).p), int(sympy.Rational(q).q))
    if dtype == torch.float64:
        return float(q)
    import mpmath

    bits = {torch.float32: 24, torch.float16: 11, torch.bfloat16: 8}.get(dtype)
    if bits is None:
        raise OptbenchError(f"cannot round to {dtype}; use float16, bfloat16, float32 or float64")
    v = float(mpmath.mpf(mpmath.libmp.from_rational(q.numerator, q.denominator, bits, "n")))
    # the value now has the dtype's precision; the conversion only checks the exponent range
    return float(torch.tensor(v, dtype=dtype).item())


def _float(x: sympy.Expr | Fraction | float) -> float:
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


# --------------------------------------------------------------------------------------------------
# the closed form


class ClosedFormNotApplicable(OptbenchError):
    """The exact gradient-descent closed form does not model this run; ``str`` says why."""


@dataclass(frozen=True)
class GDClosedForm:
    """Plain gradient descent on a quadratic: ``x_k = x* + M^k (x0 - x*)`` with ``M = I - lr*A``."""

    A: sympy.Matrix
    b: sympy.Matrix
    lr: sympy.Rational
    x0: sympy.Matrix
    x_star: sympy.Matrix
    M: sympy.Matrix

    @property
    def dim(self) -> int:
        return self.A.shape[0]

    @property
    def factor(self) -> sympy.Expr | None:
        """1-D: the contraction factor ``1 - lr*A`` (= 1 - 2a*lr for f = a x^2 + ...); None for d > 1."""
        return self.M[0, 0] if self.dim == 1 else None

    @property
    def spectral_radius(self) -> float:
        """max |1 - lr*lambda| over the eigenvalues of A: < 1 converges, = 1 is the edge, > 1 diverges."""
        if self.dim == 1:
            return abs(float(self.M[0, 0]))
        return max(abs(complex(sympy.N(ev, 30))) for ev in self.M.eigenvals())

    @property
    def stability_limit(self) -> sympy.Expr:
        """GD on this quadratic converges iff 0 < lr < 2/lambda_max(A)."""
        lam = max(self.A.eigenvals(), key=lambda e: float(sympy.N(e, 30)))
        return sympy.nsimplify(2 / lam)

    def exact(self, k: int) -> tuple[sympy.Expr, ...]:
        """x_k, exactly."""
        if k < 0:
            raise OptbenchError(f"epoch {k} is negative; the closed form starts at k = 0")
        xk = self.x_star + (self.M**k) * (self.x0 - self.x_star)
        return tuple(sympy.expand(v) for v in xk)

    def exact_trajectory(self, epochs: int) -> list[tuple[sympy.Expr, ...]]:
        """x_0 .. x_epochs, exactly (one matrix-vector product per epoch)."""
        e = self.x0 - self.x_star
        out = []
        for _ in range(epochs + 1):
            out.append(tuple(sympy.expand(v) for v in (self.x_star + e)))
            e = self.M * e
        return out

    def float_trajectory(self, epochs: int, dps: int = 50) -> list[list[float]]:
        """x_0 .. x_epochs as floats, through ``dps``-digit arithmetic (fast for long runs)."""
        import mpmath

        with mpmath.workdps(dps):
            M = [[mpmath.mpf(sympy.N(self.M[i, j], dps)) for j in range(self.dim)] for i in range(self.dim)]
            xs = [mpmath.mpf(sympy.N(v, dps)) for v in self.x_star]
            e = [mpmath.mpf(sympy.N(v, dps)) for v in (self.x0 - self.x_star)]
            out = []
            for _ in range(epochs + 1):
                out.append([_float(xs[i] + e[i]) for i in range(self.dim)])
                e = [mpmath.fsum(M[i][j] * e[j] for j in range(self.dim)) for i in range(self.dim)]
        return out

    def formula(self) -> str:
        """The closed form as a line of text, with the numbers of this run."""
        if self.dim == 1:
            xs, e0, m = self.x_star[0], (self.x0 - self.x_star)[0], self.M[0, 0]
            sign = "-" if e0 < 0 else "+"
            return f"x_k = x* + (x0 - x*)*(1 - {sympy.sstr(self.A[0, 0])}*lr)**k = {xs} {sign} {sympy.sstr(abs(e0))}*({m})**k"
        return (
            f"x_k = x* + (I - lr*A)**k (x0 - x*), A = {sympy.sstr(self.A.tolist())}, "
            f"x* = {sympy.sstr(list(self.x_star))}"
        )


def _quadratic_form(target: Any) -> tuple[sympy.Matrix, sympy.Matrix, sympy.Expr] | None:
    qf = getattr(target, "quadratic_form", None)
    form = qf() if callable(qf) else None
    if form is None:
        return None
    A, b, c = form
    A, b = sympy.Matrix(A), sympy.Matrix(b)
    if b.shape != (A.shape[0], 1):
        b = b.reshape(A.shape[0], 1)
    return A, b, sympy.sympify(c)


def gd_closed_form_model(target: Any, lr: Any, x0: Any) -> GDClosedForm:
    """The exact closed form of plain gradient descent (SGD without momentum) on ``target``.

    Raises :class:`ClosedFormNotApplicable` when the target is not a quadratic with an invertible A.
    """
    form = _quadratic_form(target)
    name = getattr(target, "name", "this target")
    if form is None:
        kind = getattr(target, "kind", None)
        raise ClosedFormNotApplicable(
            f"{name} is not a quadratic" + (f" (kind {kind})" if kind else "") + ", so GD has no closed form here"
        )
    A, b, _ = form
    if A.det() == 0:
        raise ClosedFormNotApplicable(f"{name} has a singular Hessian, so x* is not unique")
    lr_q = exact_number(lr, what="lr")
    x0_seq = list(x0) if isinstance(x0, (list, tuple, sympy.Matrix)) else [x0]
    if len(x0_seq) != A.shape[0]:
        raise OptbenchError(f"start has {len(x0_seq)} coordinates but {name} has {A.shape[0]}; give {A.shape[0]}")
    x0_m = sympy.Matrix([_exact_coord(v) for v in x0_seq])
    x_star = A.LUsolve(b)
    M = sympy.eye(A.shape[0]) - lr_q * A
    return GDClosedForm(A=A, b=b, lr=lr_q, x0=x0_m, x_star=x_star, M=M)


def _exact_coord(v: Any) -> sympy.Expr:
    if isinstance(v, sympy.Basic) and not isinstance(v, sympy.Float):
        return v
    return exact_number(v, what="start coordinate")


def gd_closed_form(target: Any, lr: Any, x0: Any, k: int) -> tuple[sympy.Expr, ...]:
    """x_k of plain gradient descent on the quadratic ``target``, exactly:
    ``x_k - x* = (I - lr*A)^k (x0 - x*)``. ``lr`` and ``x0`` are taken exactly (see :func:`exact_number`)."""
    return gd_closed_form_model(target, lr, x0).exact(k)


# --------------------------------------------------------------------------------------------------
# resolving names


def resolve_target(text: str) -> Any:
    """A catalogue name, or ``module:attr`` naming one Target."""
    text = str(text).strip()
    if ":" in text:
        from .target_spec import load_targets

        targets = load_targets(text)
        if len(targets) != 1:
            names = ", ".join(t.name for t in targets)
            raise SpecError(f"--target {text!r} names {len(targets)} targets ({names}); `optbench run` trains one")
        return targets[0]
    # `from .catalogue import ...` (not `from . import catalogue`): the package's lazy __getattr__
    # serves the name `catalogue` as a function, and recurses when the submodule is not loaded yet
    from .catalogue import get_target

    try:
        return get_target(text)
    except OptbenchError:
        raise
    except (KeyError, LookupError, ValueError):
        raise OptbenchError(f"unknown target {text!r}; list them with `optbench targets`") from None


def _torch_optimizers() -> dict[str, type]:
    out = {}
    for attr in dir(torch.optim):
        obj = getattr(torch.optim, attr)
        if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer) and obj is not torch.optim.Optimizer:
            out[attr.lower()] = obj
    return out


def _registry_lookup(name: str) -> tuple[str, Callable[..., torch.optim.Optimizer]] | None:
    """The optimizer registry of ``optbench.optimizers`` (``get_optimizer(name)`` or the list from
    ``builtin_registry()``), when it is installed and knows ``name`` (case-insensitive)."""
    try:
        from . import optimizers as registry
    except ImportError:  # the registry is optional here: torch.optim names always work
        return None
    info = None
    get = getattr(registry, "get_optimizer", None)
    if callable(get):
        try:
            info = get(name)
        except (KeyError, LookupError, OptbenchError):
            info = None
    if info is None:
        table = getattr(registry, "builtin_registry", None)
        if callable(table):
            info = next((i for i in table() if str(getattr(i, "name", "")).lower() == name.lower()), None)
    factory = getattr(info, "factory", None)
    if info is None or not callable(factory):
        return None
    extra = dict(getattr(info, "extra_kwargs", {}) or {})
    if extra:
        factory = functools.partial(factory, **extra)
    return str(info.name), factory


def resolve_optimizer(text: str) -> tuple[str, Callable[..., torch.optim.Optimizer]]:
    """``sgd``/``Adam`` (case-insensitive torch.optim names, or the registry's), or ``[NAME=]module:attr``
    naming an Optimizer subclass or a factory ``(params, **kw)``. Returns (display name, factory)."""
    text = str(text).strip()
    if ":" in text:
        from .spec import load_spec, parse_spec

        spec = parse_spec(text, option="--optimizer")
        obj = load_spec(spec, option="--optimizer")
        if not callable(obj):
            raise SpecError(
                f"--optimizer {text!r}: {spec.attr} is a {type(obj).__name__}, not an Optimizer subclass or a factory"
            )
        return spec.name or spec.attr.rsplit(".", 1)[-1], obj
    found = _registry_lookup(text)
    if found is not None:
        return found
    table = _torch_optimizers()
    cls = table.get(text.lower())
    if cls is None:
        raise OptbenchError(
            f"unknown optimizer {text!r}; use a torch.optim name ({', '.join(sorted(table))}) or module:attr"
        )
    return cls.__name__, cls


# --------------------------------------------------------------------------------------------------
# the run


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


def parse_start(text: str | Sequence[Any] | None, target: Any) -> tuple[sympy.Expr, ...]:
    """``--start``: one number, or comma-separated numbers for d > 1; default the target's first start."""
    dim = getattr(target, "dim", None) or len(getattr(target, "variables", ())) or 1
    if text is None:
        starts = getattr(target, "start", None)
        if not starts:
            raise OptbenchError(f"{target.name} has no canonical start point; pass --start")
        start = starts[0]
        start = tuple(start) if isinstance(start, (tuple, list, sympy.Matrix)) else (start,)
        return tuple(sympy.sympify(v) for v in start)
    parts = [p for p in str(text).split(",")] if isinstance(text, str) else list(text)
    if isinstance(text, str) and any(not p.strip() for p in parts):
        raise OptbenchError(f"--start {text!r} has an empty coordinate; give numbers like -1 or 1,2")
    vals = tuple(exact_number(p, what="--start coordinate") for p in parts)
    if len(vals) != dim:
        raise OptbenchError(f"--start has {len(vals)} coordinate(s) but {target.name} is {dim}-dimensional; give {dim}")
    return vals


def parse_device(text: str) -> str:
    try:
        dev = torch.device(str(text))
    except (RuntimeError, ValueError):
        raise OptbenchError(f"unknown device {text!r}; use cpu or cuda (cuda:N)") from None
    if dev.type == "cuda":
        reason = cuda_skip_reason()
        if reason:
            raise OptbenchError(f"--device {text}: {reason}; use --device cpu")
    elif dev.type != "cpu":
        raise OptbenchError(f"unsupported device {text!r}; use cpu or cuda (cuda:N)")
    return str(dev)


def _make_optimizer(factory: Callable[..., Any], params: list[torch.Tensor], lr: float,
                    momentum: float | None, name: str) -> torch.optim.Optimizer:
    kwargs: dict[str, Any] = {"lr": lr}
    if momentum is not None:
        try:
            sig = inspect.signature(factory)
            accepts = "momentum" in sig.parameters or any(
                p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()
            )
        except (TypeError, ValueError):
            accepts = True
        if not accepts:
            raise OptbenchError(f"{name} has no momentum argument; drop --momentum or use sgd/rmsprop")
        kwargs["momentum"] = momentum
    try:
        opt = factory(params, **kwargs)
    except (TypeError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OptbenchError(f"cannot build optimizer {name} with {kwargs}: {msg}") from None
    if not isinstance(opt, torch.optim.Optimizer):
        raise SpecError(f"--optimizer {name}: the factory returned a {type(opt).__name__}, not a torch.optim.Optimizer")
    return opt


def _plain_gd_reason(opt: torch.optim.Optimizer, name: str) -> str | None:
    """None when ``opt`` is exactly plain gradient descent; else why the closed form does not model it."""
    if type(opt) is not torch.optim.SGD:
        return f"it models plain gradient descent (SGD), not {name}"
    for g in opt.param_groups:
        if g.get("momentum", 0):
            return "it models plain gradient descent, not SGD with momentum"
        if g.get("weight_decay", 0):
            return "it models plain gradient descent, not SGD with weight decay"
        if g.get("maximize", False):
            return "it models descent, not SGD with maximize=True"
    return None


def nearest_minimizer(target: Any, x: Sequence[float]) -> tuple[sympy.Expr, ...]:
    mins = [tuple(m) if isinstance(m, (tuple, list)) else (m,) for m in target.minimizers]
    if not mins:
        raise OptbenchError(f"{target.name} has no known minimizer; it cannot be used with `optbench run`")
    if not all(math.isfinite(v) for v in x):
        return mins[0]
    return min(mins, key=lambda m: sum((float(a) - b) ** 2 for a, b in zip(m, x)))


def exact_value(target: Any, x: Sequence[float]) -> sympy.Expr:
    """f at the float point ``x``, exactly (each float is an exact binary rational)."""
    subs = {v: sympy.Rational(float(c)) for v, c in zip(target.variables, x)}
    return target.expr.subs(subs)


def run_seed(
    target: Any = SEED_TARGET,
    optimizer: str | Callable[..., torch.optim.Optimizer] = SEED_OPTIMIZER,
    lr: Any = SEED_LR,
    epochs: int = SEED_EPOCHS,
    start: Any = None,
    dtype: str | torch.dtype = SEED_DTYPE,
    device: str = "cpu",
    momentum: float | None = None,
) -> SeedResult:
    """Run ``target`` with ``optimizer`` through :func:`optbench.loop.run_loop` and put the analytic
    minimizer and (for plain GD on a quadratic) the exact closed form next to the trajectory.

    With no arguments this is the seed study: SGD, lr 0.01, 80 epochs from x = -1 on 3x^2 - 2x + 3.
    Bad inputs raise :class:`OptbenchError` with a one-line message.
    """
    import time

    tgt = resolve_target(target) if isinstance(target, str) else target
    if isinstance(optimizer, str):
        opt_name, factory = resolve_optimizer(optimizer)
    else:
        opt_name, factory = getattr(optimizer, "__name__", type(optimizer).__name__), optimizer
    lr_text = str(lr).strip()
    lr_q = exact_number(lr, what="lr")
    if lr_q <= 0:
        raise OptbenchError(f"lr {lr_text} must be positive; give a number like 0.01")
    lr_f = float(lr_q)
    if isinstance(epochs, bool) or not isinstance(epochs, int):
        try:
            epochs = int(str(epochs).strip())
        except ValueError:
            raise OptbenchError(f"epochs {epochs!r} is not a whole number; give one like 80") from None
    if epochs < 1:
        raise OptbenchError(f"epochs {epochs} must be at least 1")
    if momentum is not None:
        momentum = float(exact_number(momentum, what="momentum"))
        if not 0 <= momentum < 1:
            raise OptbenchError(f"momentum {momentum:g} must be in [0, 1)")
    dt = dtype if isinstance(dtype, torch.dtype) else parse_dtype(str(dtype).strip().removeprefix("torch."))
    dev = parse_device(device)
    x0 = parse_start(start, tgt)

    x = torch.tensor([float(v) for v in x0], dtype=dt, device=dev, requires_grad=True)
    opt = _make_optimizer(factory, [x], lr_f, momentum, opt_name)
    t0 = time.perf_counter()
    traj = run_loop(lambda: tgt.fn(x), [x], opt, epochs)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        last_loss = float(tgt.fn(x.detach()))
    xs = [[float(v) for v in snap[0].detach().cpu().double()] for snap in traj.xs]
    losses = list(traj.losses) + [last_loss]

    reason = _plain_gd_reason(opt, opt_name)
    cf = None
    cf_xs = None
    if reason is None:
        try:
            cf = gd_closed_form_model(tgt, lr_q, x0)
        except ClosedFormNotApplicable as exc:
            reason = str(exc)
    if cf is not None:
        cf_xs = cf.float_trajectory(epochs)

    x_star = nearest_minimizer(tgt, xs[-1])
    f_star = sympy.sympify(tgt.f_star)
    if all(math.isfinite(v) for v in xs[-1]):
        f_gap = float(sympy.N(exact_value(tgt, xs[-1]) - f_star, 30))
    else:
        f_gap = math.nan
    return SeedResult(
        target=tgt,
        optimizer_name=opt_name,
        optimizer_type=f"{type(opt).__module__}.{type(opt).__qualname__}",
        lr_text=lr_text,
        lr=lr_f,
        momentum=momentum,
        epochs=epochs,
        dtype=dt,
        device=dev,
        start=x0,
        trajectory=traj,
        xs=xs,
        losses=losses,
        x_star=x_star,
        f_star=f_star,
        closed_form=cf,
        closed_form_reason=reason,
        closed_form_xs=cf_xs,
        f_gap=f_gap,
        seconds=seconds,
    )


__all__ = [
    "ClosedFormNotApplicable",
    "GDClosedForm",
    "SeedResult",
    "exact_number",
    "gd_closed_form",
    "gd_closed_form_model",
    "resolve_optimizer",
    "resolve_target",
    "round_to_dtype",
    "run_seed",
]
