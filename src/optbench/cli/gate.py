"""``optbench gate BASELINE.json CURRENT.json [--threshold 10%]``: exit 0 clean, 1 regression, 2 bad input."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("gate", help="fail when a benchmark regressed against a baseline",
                       description="Compare CURRENT with BASELINE (pytest-benchmark JSON from tox -e bench). "
                                   "Exit 0: nothing regressed; 1: a regression; 2: bad input.")
    p.add_argument("baseline", metavar="BASELINE.json")
    p.add_argument("current", metavar="CURRENT.json")
    p.add_argument("--threshold", default="10%", help="slowdown that counts as a regression (default 10%%)")
    p.add_argument("--optimizer", action="append", default=[], metavar="NAME=module:attr",
                   help="let the candidate module:attr stand under the baseline's optimizer NAME (repeatable)")
    p.add_argument("--normalize", choices=("none", "stream"), default="none",
                   help="none (default; measured to be the least noisy on a shared host) or stream: divide by "
                        "each run's streaming reference")
    p.add_argument("--stat", choices=("min", "median"), default=None,
                   help="statistic compared: min of the rounds (default; robust to preempted rounds) or median")
    p.add_argument("--noise-k", type=float, default=None, help="standard errors a slowdown must exceed (default 3)")
    return p


def main(args: argparse.Namespace) -> int:
    from ..gate import DEFAULT_STAT, NOISE_K, format_table, gate_files, parse_threshold

    res = gate_files(args.baseline, args.current, threshold=parse_threshold(args.threshold),
                     optimizer_specs=args.optimizer, normalize=args.normalize == "stream",
                     noise_k=NOISE_K if args.noise_k is None else args.noise_k, stat=args.stat or DEFAULT_STAT)
    print(format_table(res))
    return res.exit_code
