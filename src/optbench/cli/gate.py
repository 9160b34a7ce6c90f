"""``optbench gate BASELINE.json CURRENT.json [--metric ...] [--threshold ...]``: exit 0 clean, 1 regression, 2 bad input."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("gate", help="fail when a benchmark regressed against a baseline",
                       description="Compare CURRENT with BASELINE (pytest-benchmark JSON from pytest benches / tox -e bench). "
                                   "Exit 0: nothing regressed; 1: a regression; 2: bad input.")
    p.add_argument("baseline", metavar="BASELINE.json[,...]",
                   help="one result file, or several comma-separated runs of the same side (interleaved with the "
                        "other side's: A1 B1 A2 B2); per benchmark the best run counts")
    p.add_argument("current", metavar="CURRENT.json[,...]")
    p.add_argument("--metric", choices=("auto", "instructions", "time"), default="auto",
                   help="instructions (Callgrind counts, deterministic; pytest benches --instructions), time (wall "
                        "clock), or auto (default): instructions when both files carry counts, else time")
    p.add_argument("--threshold", default=None,
                   help="change that counts as a regression (default 1%% for instructions, 10%% for time)")
    p.add_argument("--optimizer", action="append", default=[], metavar="NAME=module:attr",
                   help="let the candidate module:attr stand under the baseline's optimizer NAME (repeatable)")
    p.add_argument("--drift", choices=("reference", "none"), default="reference",
                   help="time: divide out the machine's drift, fitted on the optimizer-independent phases "
                        "(zero_grad, forward, backward) of each size (default), or none")
    p.add_argument("--stat", choices=("min", "median"), default=None,
                   help="time: statistic compared, min of the rounds (default; robust to preempted rounds) or median")
    p.add_argument("--clock", choices=("auto", "cpu", "wall"), default="auto",
                   help="time: CPU time per round (recorded by the CPU benches; excludes time spent preempted) or wall "
                        "clock; auto (default): CPU time when every compared result has it")
    p.add_argument("--noise-k", type=float, default=None, help="time with --stat median: standard errors a slowdown must exceed (default 3)")
    p.add_argument("--allow-setting-change", action="store_true",
                   help="compare runs measured under different thread/allocator settings (time) or torch/Python/"
                        "valgrind (instructions) anyway; every row is marked")
    return p


def main(args: argparse.Namespace) -> int:
    from ..gate import DEFAULT_STAT, NOISE_K, format_table, gate_files, parse_threshold

    res = gate_files(args.baseline, args.current,
                     threshold=None if args.threshold is None else parse_threshold(args.threshold),
                     optimizer_specs=args.optimizer, metric=args.metric, drift=args.drift,
                     noise_k=NOISE_K if args.noise_k is None else args.noise_k, stat=args.stat or DEFAULT_STAT,
                     clock=args.clock, allow_setting_change=args.allow_setting_change)
    print(format_table(res))
    return res.exit_code
