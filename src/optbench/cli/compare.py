"""``optbench compare A.json B.json ...``: side-by-side across machines, printed and written as markdown."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("compare", help="compare benchmark results across machines",
                       description="Per optimizer and size: each machine's µs/epoch, speedup vs the first, % of "
                                   "roofline; the size where the GPU overtakes the CPU when both are present.")
    p.add_argument("results", nargs="+", metavar="RESULT.json")
    p.add_argument("--out", default="reports/compare.md", metavar="FILE",
                   help="markdown output (default reports/compare.md; an existing file not written by optbench is refused)")
    return p


def main(args: argparse.Namespace) -> int:
    from ..compare import write_compare

    text = write_compare(args.results, args.out)
    print(text)
    print(f"wrote {args.out}")
    return 0
