"""``optbench.Target``: one declarative object per objective function (see docs/ARCHITECTURE.md).

A Target holds a sympy expression, its ordered variables, its exact stationary points and global
minimizers (derived, or verified when given), and a torch callable (the compiled expression, or the
user's ``impl`` under test). x* and f* stay exact sympy numbers; they are converted to a dtype only
at use (:meth:`Target.x_star`).
"""

from __future__ import annotations

import math
import operator
import random
import re
from typing import Callable, Iterable, Sequence

import sympy
import torch

from . import minima
from .errors import ExpressionError, TargetError
from .expr import check_size, to_expr
from .target_derive import build, parse_point

MAX_VARIABLES = 32  # exact Hessians and solves: a 32-variable quadratic builds in ~1.5 s, 48 in ~4 s


def _natural_key(s: sympy.Symbol):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s.name)]


class Target:
    """An objective with exact minima. See docs/ARCHITECTURE.md for the contract.

    Parameters
    ----------
    name: identifier used in test ids and reports.
    expr: sympy expression or string (parsed safely by :func:`optbench.expr.parse_expression`).
    variables: ordered symbol names (or Symbols). Default: the free symbols in natural order (x2 < x10).
    minimizers: claimed global minimizers (each a sequence of d numbers). Verified: gradient 0 at 60
        digits, Hessian PSD, differentiable there, and (when the stationary set is derived) lowest
        value. ``None``: derived.
    start: canonical start point or a sequence of them. Default: in the basin, away from x*.
    impl: optional torch callable under test (``t(x)`` uses it; ``t.reference(x)`` never does).
    kind: "quadratic" | "polynomial" | "transcendental"; default inferred (it is checked).
    tags: strings, e.g. convex, multimodal, plateau, saddle, ill-conditioned, seed, matrix.
    domain: box ((lo, hi), ...) for sampling and for the global claim of non-polynomials.
    basin: box around the (first) global minimizer for random starts. Default: convex targets use the
        domain; others a box of half-width 0.4 x the distance to the nearest other stationary point.
    shape: parameter shape, e.g. (2, 2) for a 4-variable target used on a 2-D parameter; ``t.fn``
        accepts (..., *shape) as well as (..., d) and flattens row-major.
    stationary_guesses: points from which ``nsolve`` (50 digits) refines stationary points, for
        non-polynomials or polynomials where the Groebner basis is too slow.
    lower_bound: exact proven lower bound of f on the domain (with ``global_argument`` saying why);
        f* must equal it. This is how a non-polynomial global claim is made.
    derive: "auto" | "groebner" | "guesses": how stationary points are found.
    """

    def __init__(
        self,
        name: str,
        expr,
        variables: Sequence | None = None,
        minimizers: Sequence[Sequence] | None = None,
        start=None,
        impl: Callable | None = None,
        kind: str | None = None,
        tags: Iterable[str] = (),
        domain: Sequence[Sequence] | None = None,
        basin: Sequence[Sequence] | None = None,
        *,
        shape: Sequence[int] | None = None,
        stationary_guesses: Sequence[Sequence] | None = None,
        lower_bound=None,
        global_argument: str = "",
        derive: str = "auto",
        description: str = "",
    ) -> None:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", name or ""):
            raise TargetError(f"target name {name!r} must be an identifier-like string (letters, digits, _ . -)")
        self.name = name
        self.description = description
        self.global_argument = global_argument
        try:
            var_names = None
            if variables is not None:
                if isinstance(variables, str):
                    variables = variables.replace(",", " ").split()
                var_names = [v.name if isinstance(v, sympy.Symbol) else v for v in variables]
                bad = [v for v in var_names if not (isinstance(v, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", v))]
                if bad:
                    raise TargetError(f"target {name!r}: variables {bad!r} must be names such as x, y or x1")
            e = to_expr(expr, var_names)
            check_size(e, "the expression")  # also for a sympy expression given directly
        except ExpressionError as exc:
            raise TargetError(f"target {name!r}: {exc}") from None
        # real symbols throughout, so that sqrt(x**2) etc. simplify as they should
        free = sorted(e.free_symbols, key=_natural_key)
        e = e.xreplace({s: sympy.Symbol(s.name, real=True) for s in free if not s.is_real})
        free = sorted(e.free_symbols, key=_natural_key)
        if var_names is None:
            self.variables = tuple(free)
        else:
            if len(set(var_names)) != len(var_names):
                raise TargetError(f"target {name!r}: variables {var_names} repeat a name; give each once")
            self.variables = tuple(sympy.Symbol(v, real=True) for v in var_names)
            missing = sorted({s.name for s in free} - set(var_names))
            if missing:
                raise TargetError(
                    f"target {name!r}: the expression uses {', '.join(missing)} which is not in variables={var_names}; "
                    "add it or fix the expression"
                )
        if not self.variables:
            raise TargetError(f"target {name!r}: the expression {e} has no variables; a target needs at least one")
        self.expr = e
        self.dim = len(self.variables)
        if self.dim > MAX_VARIABLES:
            raise TargetError(
                f"target {name!r} has {self.dim} variables, beyond {MAX_VARIABLES}: its exact validation builds the "
                f"{self.dim} x {self.dim} symbolic Hessian and solves for its stationary points exactly; use fewer variables"
            )
        if shape is not None:
            try:
                shape = tuple(operator.index(s) for s in shape)
            except TypeError:
                raise TargetError(f"target {name!r}: shape {shape!r} must be a tuple of positive ints") from None
            if any(s < 1 for s in shape) or math.prod(shape) != self.dim:
                raise TargetError(
                    f"target {name!r}: shape {shape} must be positive ints with {self.dim} entries in all (d = {self.dim})"
                )
        self.shape = shape
        if isinstance(tags, str):
            tags = (tags,)
        try:
            self.tags = frozenset(tags)
        except TypeError:
            raise TargetError(f"target {name!r}: tags={tags!r} must be strings such as {{'convex'}}") from None
        if not all(isinstance(t, str) for t in self.tags):
            raise TargetError(f"target {name!r}: tags={sorted(map(repr, self.tags))} must be strings such as {{'convex'}}")
        if isinstance(impl, type) and issubclass(impl, torch.autograd.Function):
            impl = impl.apply  # an autograd.Function under test: call it through apply
        if impl is not None and not callable(impl):
            raise TargetError(f"target {name!r}: impl must be a torch callable or autograd.Function, not {type(impl).__name__}")
        self.impl = impl
        self._kind_given = kind
        if derive not in ("auto", "groebner", "guesses"):
            raise TargetError(f"target {name!r}: derive={derive!r}; use auto, groebner or guesses")
        self._phase = "differentiating it"
        try:
            with minima.time_limit(minima.derive_seconds()):
                build(self, kind, domain, basin, start, lower_bound, minimizers, stationary_guesses, derive)
        except minima.OutOfTime as exc:
            raise TargetError(
                f"target {name!r}: {self._phase} did not finish within {exc.seconds:g} s; give stationary_guesses= "
                "(points near the stationary points, refined at 50 digits) or minimizers= with derive='guesses', "
                "simplify the expression, or allow more time with OPTBENCH_DERIVE_SECONDS"
            ) from None
        except (ArithmeticError, RecursionError) as exc:  # OverflowError, ZeroDivisionError from sympy or mpmath
            raise TargetError(
                f"target {name!r}: {self._phase} failed: {type(exc).__name__}: {exc}; the expression's values are "
                "beyond what can be computed there: rescale it or give a smaller domain"
            ) from None

    # ------------------------------------------------------------------ public API

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def __repr__(self) -> str:
        return f"Target({self.name!r}, {self.expr}, d={self.dim}, kind={self.kind!r})"

    @property
    def condition_number(self) -> float:
        ev = self.stationary[0].eigenvalues
        lo, hi = min(ev), max(ev)
        if lo <= 0 or abs(lo) <= float(minima.EIG_TOL) * max(1.0, abs(hi)):
            return math.inf
        return hi / lo

    def quadratic_form(self):
        """Exact ``(A, b, c)`` with ``f = 1/2 x^T A x - b^T x + c``, or None when f is not quadratic."""
        if self.kind != "quadratic":
            return None
        zero = {v: 0 for v in self.variables}
        A = self.hessian.xreplace(zero)
        b = -self.gradient.xreplace(zero)
        c = self.expr.xreplace(zero)
        return A, b, c

    def x_star(self, dtype: torch.dtype = torch.float64, device="cpu") -> torch.Tensor:
        vals = [[float(minima.to_mpf(c)) for c in p] for p in self.minimizers]
        return torch.tensor(vals, dtype=torch.float64).to(dtype=dtype, device=device)

    def _sub(self, point):
        return dict(zip(self.variables, parse_point(self, point, "point")))

    def exact_value(self, point) -> sympy.Expr:
        return self.expr.xreplace(self._sub(point))

    def exact_gradient(self, point) -> sympy.Matrix:
        return self.gradient.xreplace(self._sub(point))

    def exact_hessian(self, point) -> sympy.Matrix:
        return self.hessian.xreplace(self._sub(point))

    def sample_points(self, n: int, seed: int = 0) -> list[tuple[sympy.Rational, ...]]:
        """``n`` exact rational points inside the domain, on a 1/1024 grid of each side (dyadic:
        representable exactly in float32/64)."""
        rng = random.Random(seed)
        return [tuple(lo + (hi - lo) * sympy.Rational(rng.randint(1, 1023), 1024) for lo, hi in self.domain) for _ in range(n)]

    def random_starts(self, k: int, seed: int = 0, dtype: torch.dtype = torch.float64, device="cpu") -> torch.Tensor:
        """``k`` uniform points in :attr:`basin` as a (k, d) tensor."""
        g = torch.Generator().manual_seed(seed)
        lo = torch.tensor([float(a) for a, _ in self.basin], dtype=torch.float64)
        hi = torch.tensor([float(b) for _, b in self.basin], dtype=torch.float64)
        u = torch.rand(k, self.dim, generator=g, dtype=torch.float64)
        return (lo + (hi - lo) * u).to(dtype=dtype, device=device)

    def start_tensor(self, dtype: torch.dtype = torch.float64, device="cpu") -> torch.Tensor:
        """The canonical start points as a (n_starts, d) tensor."""
        vals = [[float(sympy.N(c, 30)) for c in p] for p in self.start]
        return torch.tensor(vals, dtype=torch.float64).to(dtype=dtype, device=device)
