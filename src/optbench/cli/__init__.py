"""optbench: validate and benchmark PyTorch optimizers against exact symbolic minima.

Command line: thin glue over the library. Each subcommand lives in its own module with
``add_parser(subparsers)`` and ``main(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import OptbenchError

SUBCOMMANDS = ("run", "validate", "targets", "report", "gate", "compare")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that names the problem and where to look."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of ``only`` one (what ``main`` builds for ``optbench <only> ...``: a
    subcommand's module may import torch and sympy, seconds that another subcommand need not pay)."""
    parser = OneLineParser(prog="optbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS if only is None else (only,):
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:  # a subcommand not built yet
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        p = mod.add_parser(sub)
        p.set_defaults(_main=mod.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv and argv[0] in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    try:
        return int(args._main(args) or 0)
    except OptbenchError as exc:
        print(f"optbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"optbench {args.command}: interrupted", file=sys.stderr)
        return 130
