"""``optbench report RESULT.json... --out DIR``: markdown + self-contained HTML + PNG plots."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help="write DIR/<machine>/index.md and index.html from benchmark JSON",
                       description="Build a report from pytest-benchmark JSON written by the benches (tox -e bench).")
    p.add_argument("results", nargs="+", metavar="RESULT.json")
    p.add_argument("--out", default="reports", metavar="DIR", help="output folder (default: reports/)")
    p.add_argument("--no-trajectories", action="store_true", help="skip the validation trajectories and contour plots")
    p.add_argument("--bench-wall-s", type=float, default=None, help="wall time of the bench run, recorded in the report")
    return p


def main(args: argparse.Namespace) -> int:
    from ..report import build_report

    for path in build_report(args.results, args.out, trajectories=not args.no_trajectories,
                             bench_wall_s=args.bench_wall_s):
        print(f"wrote {path} and {path.with_suffix('.html')}")
    return 0
