"""``optbench run``: train one target with one optimizer through the five-step loop, print the result
next to the analytic minimizer and the exact gradient-descent closed form, and save the trajectory.

With no arguments it reproduces the seed study: SGD, lr 0.01, 80 epochs from x = -1 on
f(x) = 3x^2 - 2x + 3 (x* = 1/3).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import re
import sys
from pathlib import Path

from ..errors import OptbenchError
from ..seed import SEED_DTYPE, SEED_EPOCHS, SEED_LR, SEED_OPTIMIZER, SEED_TARGET
from ..seed_result import PNG_NAME, RESULT_FILES

RUNS_DIR = Path("reports") / "runs"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "run",
        help="train one target with one optimizer and compare with the analytic and closed-form answers",
        description="Train one target with one optimizer through the five-step loop; print the final x next to "
        "the analytic minimizer and the exact gradient-descent closed form; save the trajectory (JSON, PNG).",
        epilog="With no arguments it reproduces the seed study: SGD, lr 0.01, 80 epochs from x = -1 on "
        "f(x) = 3x^2 - 2x + 3 (x* = 1/3, f* = 8/3).",
    )
    # Values are taken as text and checked in main(), so that a bad one is a one-line OptbenchError.
    p.add_argument("--target", default=SEED_TARGET, metavar="NAME|module:attr",
                   help=f"catalogue name or module:attr naming a Target (default: {SEED_TARGET})")
    p.add_argument("--optimizer", default=SEED_OPTIMIZER, metavar="NAME|module:attr",
                   help="torch.optim name, case-insensitive (sgd, adam, ...), or [NAME=]module:attr "
                        f"(default: {SEED_OPTIMIZER})")
    p.add_argument("--lr", default=SEED_LR, help=f"learning rate, a decimal or a fraction like 1/3 (default: {SEED_LR})")
    p.add_argument("--epochs", default=str(SEED_EPOCHS), help=f"number of optimizer steps (default: {SEED_EPOCHS})")
    p.add_argument("--start", default=None, metavar="X[,X...]",
                   help="start point: one number, comma-separated for d > 1 (default: the target's start)")
    p.add_argument("--momentum", default=None, help="momentum, for optimizers that take one (default: none)")
    p.add_argument("--dtype", default=SEED_DTYPE,
                   help=f"float32, float64, bfloat16 or float16 (default: {SEED_DTYPE}, torch's default as in the seed)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help=f"folder for trajectory.json and trajectory.png (default: a new folder under {RUNS_DIR}/)")
    p.add_argument("--force", action="store_true", help="overwrite the results already in --out")
    p.add_argument("--no-plot", dest="plot", action="store_false", help="write the JSON only, no PNG (faster)")

    def _one_line_error(message: str) -> None:  # argparse's own errors: one line too, exit 2
        print(f"optbench run: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    def _no_unknown(args=None, namespace=None):  # unknown flags: this parser's one-line error, not the top one's
        ns, extras = argparse.ArgumentParser.parse_known_args(p, args, namespace)
        if extras:
            p.error(f"unrecognized arguments: {' '.join(extras)}; see optbench run --help")
        return ns, extras

    p.error = _one_line_error  # type: ignore[method-assign]
    p.parse_known_args = _no_unknown  # type: ignore[method-assign]
    return p


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:40] or "run"


def new_run_dir(base: Path, target: str, optimizer: str) -> Path:
    """A folder that did not exist before: ``<base>/<UTC timestamp>-<target>-<optimizer>[-N]``."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    stem = f"{stamp}-{_slug(target)}-{_slug(optimizer)}"
    base.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        path = base / (stem if n == 0 else f"{stem}-{n}")
        try:
            path.mkdir()  # atomic: two runs in the same second get different folders
        except FileExistsError:
            continue
        return path
    raise OptbenchError(f"cannot create a new run folder under {base}; pass --out")


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse, before training, a --out that would lose results (unless --force)."""
    if out.exists() and not out.is_dir():
        raise OptbenchError(f"--out {out} is a file, not a folder; pass a folder path")
    if out.is_dir() and not force:
        held = [name for name in RESULT_FILES if (out / name).exists()]
        if held:
            raise OptbenchError(
                f"--out {out} already holds results ({', '.join(held)}); pass a new folder or --force to overwrite"
            )


def main(args: argparse.Namespace) -> int:
    from ..seed import run_seed

    out = Path(args.out) if args.out else None
    if out is not None:
        check_out_dir(out, args.force)
    result = run_seed(
        target=args.target,
        optimizer=args.optimizer,
        lr=args.lr,
        epochs=args.epochs,
        start=args.start,
        dtype=args.dtype,
        device=args.device,
        momentum=args.momentum,
    )
    if out is None:
        out = new_run_dir(RUNS_DIR, result.target.name, result.optimizer_name)
    if args.force and not args.plot:
        (out / PNG_NAME).unlink(missing_ok=True)  # no stale plot next to a new trajectory
    paths = result.save(out, overwrite=args.force or args.out is None, plot=args.plot)
    files = ", ".join(str(p) for p in paths)
    if result.diverged:
        # one line, with the epoch; the trajectory up to it is saved for inspection
        print(f"optbench run: {result.divergence_line()}; trajectory written to {files}", file=sys.stderr)
        return 1
    for line in result.summary_lines():
        print(line)
    print(f"wrote:                   {files}")
    return 0
