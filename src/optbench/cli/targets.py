"""``optbench targets``: the catalogue table (name, d, minimizers, f*, kind, condition number at x*)."""

from __future__ import annotations

import argparse
import math

import sympy


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("targets", help="list the built-in targets with their exact minima")
    p.add_argument("--format", choices=("text", "md"), default="text", help="table format (default: text)")
    p.add_argument("names", nargs="*", help="only these targets (default: all)")
    return p


def _num(x, digits=6) -> str:
    v = float(sympy.N(x, 20)) if not isinstance(x, float) else x
    if v == 0:
        return "0"
    return f"{v:.{digits}g}"


def _minimizers(t) -> str:
    pts = t.minimizers
    first = "(" + ", ".join(_num(c, 4) for c in pts[0]) + ")"
    return first + (f" +{len(pts) - 1} more" if len(pts) > 1 else "")


def rows(targets) -> list[list[str]]:
    out = []
    for t in targets:
        cond = t.condition_number
        out.append(
            [
                t.name,
                str(t.dim) + (f" {'x'.join(map(str, t.shape))}" if t.shape else ""),
                str(len(t.minimizers)),
                _minimizers(t),
                _num(t.f_star, 8),
                t.kind,
                "inf" if math.isinf(cond) else f"{cond:.4g}",
            ]
        )
    return out


HEADER = ["name", "d", "#min", "minimizers", "f*", "kind", "cond(H*)"]


def format_table(targets, fmt: str = "text") -> str:
    body = rows(targets)
    if fmt == "md":
        lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [HEADER] + body) for i in range(len(HEADER))]
    fmt_row = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt_row(HEADER), fmt_row(["-" * w for w in widths])] + [fmt_row(r) for r in body])


def main(args) -> int:
    from ..catalogue import catalogue, get_target

    targets = [get_target(n) for n in args.names] if args.names else list(catalogue().values())
    print(format_table(targets, args.format))
    return 0
