"""``optbench validate``: run the property contract on your optimizers (or targets) from any folder.

    optbench validate [NAME=]module:attr ... [--target module:attr ...] [--config FILE]
                      [--device cpu|cuda|all] [-n N] [--out DIR] [-k TEXT] [--no-distributed] [--no-compile]
                      [--p1-limit MINUTES]

Prints one verdict table per optimizer (property x case: PASS, FAIL, N/A, EXEMPT, XFAIL, MEASURED),
then every finding with its one-line diagnosis and a standalone reproducer, and writes the same as
JSON and markdown under ``--out``. Exit codes: 0 clean, 1 a property violated, 2 bad input, 3 an
internal error of optbench (reported as such, never as the optimizer's failure).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

from ..errors import OptbenchError

DEFAULT_OUT = "optbench-validate"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "validate",
        help="validate optimizers (P1-P17, P18-P20 distributed, P21 compiled) or targets, from any folder",
        description="Run optbench's property contract on the optimizers named as [NAME=]module:attr (an Optimizer "
        "subclass or a factory (params, **kwargs) -> Optimizer), or on --target module:attr targets and kernels. "
        "Prints one verdict table; writes results.json, results.md and reproducers under --out.",
        epilog="exit codes: 0 clean, 1 a property violated, 2 bad input, 3 optbench's own error",
    )
    p.add_argument("optimizers", nargs="*", metavar="[NAME=]module:attr", help="optimizers to validate")
    p.add_argument("--target", action="append", default=[], metavar="module:attr",
                   help="validate these targets/kernels too (a Target, a list, or a callable returning them)")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="TOML with [optimizers.NAME] settings and exemptions (default: [tool.optbench] in "
                        "./pyproject.toml)")
    p.add_argument("--device", default=None, choices=("cpu", "cuda", "all"),
                   help="devices (default: cpu, plus cuda when a GPU is visible)")
    p.add_argument("-n", "--workers", type=int, default=None, metavar="N",
                   help="worker processes (default: one per core, where there is more than one task to share)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help=f"folder for results.json, results.md, reproducers/ (default: ./{DEFAULT_OUT})")
    p.add_argument("-k", dest="select", default=None, metavar="TEXT",
                   help="run only the checks whose id contains TEXT, e.g. -k p05 or -k booth; words may be joined "
                        "as in pytest's -k: -k \"converges or profile\", -k \"booth and not float32\"")
    p.add_argument("--no-distributed", dest="distributed", action="store_false",
                   help="skip the distributed properties P18-P20 (they start two gloo processes)")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="skip P21, the step under torch.compile (Inductor compiles C++ on CPU: a few seconds each)")
    p.add_argument("--p1-limit", default=None, metavar="MINUTES",
                   help="P1 runs projected to take longer than this are N/A with the figures, not run (default 15, "
                        "or $OPTBENCH_P1_LIMIT; 0: no limit)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    return p


def _devices(choice: str | None) -> tuple[str, ...] | None:
    if choice is None:  # resolved where the plan is built (a worker: this process need not import torch)
        return None
    from ..devices import selected_devices  # imports torch (~3 s)

    return tuple(selected_devices(choice))


def _plans(args: argparse.Namespace) -> tuple[str, ...]:
    import importlib.util

    plans: list[str] = []
    if args.optimizers:
        plans.append("optimizers")
        if args.distributed and importlib.util.find_spec("optbench.distributed") is not None:
            plans.append("distributed")
        if args.compile:
            plans.append("compile")
        plans.append("memory")
    if args.target:
        plans.append("targets")
    return tuple(plans)


def _import_plotting() -> None:
    try:
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401
    except Exception:  # noqa: BLE001 - write_results imports it again and reports what fails
        pass


def main(args: argparse.Namespace) -> int:
    from ..validation import (Request, default_workers, exit_code, prepare_out, render_text, run_plan, summarize_time,
                              time_table, write_results)

    if not args.optimizers and not args.target:
        raise OptbenchError("nothing to validate: name optimizers as module:attr (e.g. optbench validate "
                            "myopt:MyAdam) or targets with --target module:attr")
    from ..p1_limit import ENV, limit_s, parse_minutes

    if args.p1_limit is not None:  # read by P1 in the workers, which inherit this environment
        parse_minutes(args.p1_limit, "--p1-limit")
        os.environ[ENV] = args.p1_limit
    limit_s()  # a bad $OPTBENCH_P1_LIMIT is bad input, said here rather than by every P1 check
    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        raise OptbenchError(f"-n {args.workers}: give a number of workers >= 1")
    request = Request(optimizers=list(args.optimizers), targets=list(args.target), config=args.config,
                      devices=_devices(args.device), plans=_plans(args), rootdir=os.getcwd(), select=args.select,
                      workers=workers)
    folder = prepare_out(args.out)  # refuse a folder optbench does not own before spending any time
    t0 = time.time()
    last = [0.0]
    tty = sys.stderr.isatty()

    def progress(done: int, total: int, verdict) -> None:
        if args.quiet:
            return
        now = time.time()
        if done == total or now - last[0] > 1.0:
            last[0] = now
            if tty:  # one line, rewritten in place
                print(f"\r[{done}/{total}] {now - t0:.0f} s", end="" if done < total else "\n", file=sys.stderr,
                      flush=True)
            else:  # a log (CI, a pipe): one line per step of progress
                print(f"[{done}/{total}] {now - t0:.0f} s", file=sys.stderr, flush=True)

    if workers > 1:  # this process waits on its workers meanwhile: import what writing the plots needs (~1 s)
        threading.Thread(target=_import_plotting, daemon=True, name="optbench-import-matplotlib").start()
    items, verdicts = run_plan(request, workers=workers, progress=progress)
    if not items:
        raise OptbenchError("no check selected (is -k too narrow?); run without -k to see every check")
    title = "optbench validate: " + ", ".join(request.optimizers + request.targets)
    _, repro_paths = write_results(folder, request, items, verdicts, title=title)
    print(render_text(items, verdicts, reproducer_paths=repro_paths), end="")
    print("Where the time went: " + summarize_time(time_table(items, verdicts)))
    code = exit_code(verdicts)
    word = {0: "clean", 1: "property violated", 3: "optbench internal error"}[code]
    print(f"{len(verdicts)} checks in {time.time() - t0:.0f} s: {word} (exit {code}); results in "
          f"{folder / 'results.md'} and {folder / 'results.json'}")
    return code
