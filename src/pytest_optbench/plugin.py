"""The optbench pytest plugin: command-line options, markers, and the loaded user specs.

It is thin glue: every check lives in the ``optbench`` library. Bad option values are pytest usage
errors (one line, exit code 4), raised at configure time before any collection happens.

Loading it does not import torch: it is loaded (pytest11 entry point) by every pytest run where optbench is
installed, and a run that uses nothing of optbench's, or an xdist controller, which runs no test, should not
pay torch's import (~2-3 s). The devices are resolved when first asked for (collection, the header's line).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pytest

from optbench.devices import DEVICE_CHOICES, cuda_skip_reason, selected_devices, torch_version
from optbench.errors import OptbenchError


@dataclass
class OptbenchOptions:
    """What the command line selected, resolved once per session (``config.stash[OPTIONS]``)."""

    device_choice: str = "auto"  # --device; the devices it names: ``devices``
    user_targets: list[Any] = field(default_factory=list)  # optbench.Target
    user_optimizers: list[Any] = field(default_factory=list)  # optbench.optimizers.OptimizerInfo
    optimizer_config: str | None = None
    sizes: list[int] | None = None
    l2_flush: bool = False

    @cached_property
    def devices(self) -> list[str]:
        """The devices under test (resolved on first use: ``auto`` asks whether CUDA can be used)."""
        return selected_devices(self.device_choice)

    @property
    def cuda_skip_reason(self) -> str | None:
        return cuda_skip_reason()


OPTIONS = pytest.StashKey[OptbenchOptions]()
LOADGROUP_DEFAULT = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("optbench", "optbench: optimizer and autograd validation")
    group.addoption(
        "--target",
        action="append",
        default=[],
        metavar="module:attr",
        help="validate only these targets: a Target, a list of Targets, or a callable returning them (repeatable)",
    )
    group.addoption(
        "--optimizer",
        action="append",
        default=[],
        metavar="[NAME=]module:attr",
        help="validate/benchmark only these optimizers: an Optimizer subclass or a factory (params, **kw) (repeatable)",
    )
    group.addoption(
        "--optimizer-config",
        default=None,
        metavar="FILE",
        help="TOML with hyperparameters and exemptions for --optimizer (default: [tool.optbench] in ./pyproject.toml)",
    )
    group.addoption(
        "--device",
        default="auto",
        choices=DEVICE_CHOICES,
        help="devices under test; 'auto' = cpu, plus cuda where a GPU is visible (default); 'all' = cpu plus cuda, "
             "skipped with its reason when absent",
    )
    group.addoption(
        "--sizes",
        default=None,
        metavar="N[,N...]",
        help="benchmark parameter counts, e.g. 1,1e3,1e6 (default: 1,1e3,1e5,1e6,1e7 on CPU, up to 1e8 on CUDA)",
    )
    group.addoption("--l2-flush", action="store_true", default=False, help="flush the cache before each timed round")
    group.addoption(
        "--p1-limit",
        default=None,
        metavar="MINUTES",
        help="P1 runs projected to take longer are N/A with the figures, not run (default 15, or $OPTBENCH_P1_LIMIT; "
             "0: no limit)",
    )


def _parse_sizes(text: str | None) -> list[int] | None:
    if text is None:
        return None
    sizes = []
    for tok in text.split(","):
        tok = tok.strip()
        try:
            value = float(tok)
        except ValueError:
            raise pytest.UsageError(f"--sizes: {tok!r} is not a number; give counts like 1,1e3,1e6") from None
        if value < 1 or value != int(value):
            raise pytest.UsageError(f"--sizes: {tok!r} is not a positive whole count; give counts like 1,1e3,1e6")
        sizes.append(int(value))
    return sizes


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "cuda: needs a CUDA device (skipped with a reason when none is present)",
        "slow: long-running; deselect with -m 'not slow'",
        "bench: a benchmark in benches/",
        "optbench: an optbench check or benchmark (what --optimizer and --target select)",
        "distributed: runs under torch.distributed (P18-P20: FSDP2, DDP, ZeRO, distributed checkpoints)",
        "compile: runs the step under torch.compile (P21: parity, crashes, recompilations, graph breaks)",
        # pytest-xdist's own marker, declared here too so that --strict-markers accepts it without xdist (-p no:xdist)
        "xdist_group(name): items that share one computation run on one xdist worker (with --dist loadgroup)",
    ):
        config.addinivalue_line("markers", line)
    from .groups import default_to_loadgroup

    config.stash[LOADGROUP_DEFAULT] = default_to_loadgroup(config)
    if (getattr(config, "workerinput", None) or {}).get("optbench_loadgroup"):  # a worker of that default: it
        config.option.loadgroup = True  # re-parsed the command line (no --dist), so it would not mark the groups
    try:
        opts = OptbenchOptions(device_choice=config.getoption("device"))
        opts.sizes = _parse_sizes(config.getoption("sizes"))
        opts.l2_flush = bool(config.getoption("l2_flush"))
        opts.optimizer_config = config.getoption("optimizer_config")
        from optbench.p1_limit import ENV, limit_s, parse_minutes

        if config.getoption("p1_limit") is not None:  # read where P1 runs: this process, its xdist workers
            parse_minutes(config.getoption("p1_limit"), "--p1-limit")
            os.environ[ENV] = config.getoption("p1_limit")
        limit_s()  # a bad $OPTBENCH_P1_LIMIT: a usage error now, not an error in every P1 check
        if config.getoption("target"):
            from optbench.target_spec import load_targets

            for text in config.getoption("target"):
                opts.user_targets.extend(load_targets(text))
        if config.getoption("optimizer"):
            from optbench.optimizers.user import load_user_optimizers

            opts.user_optimizers = load_user_optimizers(
                config.getoption("optimizer"), config_file=opts.optimizer_config, rootdir=str(config.rootpath)
            )
    except OptbenchError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[OPTIONS] = opts


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: tell each worker the controller runs loadgroup
def pytest_configure_node(node: Any) -> None:
    if node.config.stash.get(LOADGROUP_DEFAULT, False):
        node.workerinput["optbench_loadgroup"] = True


@pytest.hookimpl(trylast=True)  # after xdist's own hook, whose suffix pytest 9 ignores
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from .groups import apply_groups

    apply_groups(config, items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """``--optimizer``/``--target`` on a run that collected nothing of optbench's is a usage error, never a
    silent pass: the user's own tests ran and nothing was validated."""
    opts = session.config.stash.get(OPTIONS, None)
    if opts is None or not (opts.user_optimizers or opts.user_targets):
        return
    if any(item.get_closest_marker("optbench") or item.get_closest_marker("bench") for item in session.items):
        return
    given = " ".join(f"--optimizer {t}" for t in session.config.getoption("optimizer"))
    given = " ".join(filter(None, [given, " ".join(f"--target {t}" for t in session.config.getoption("target"))]))
    names = " ".join(session.config.getoption("optimizer")) or ""
    targets = " ".join(f"--target {t}" for t in session.config.getoption("target"))
    raise pytest.UsageError(
        f"{given} was given, but this run collected no optbench validation (only {len(session.items)} test(s) of "
        f"your own), so nothing would be validated; run `optbench validate {' '.join(filter(None, [names, targets]))}` "
        f"instead, or collect the checks in your tests with optbench.testing.parametrize_with_checks")


def options(config: pytest.Config) -> OptbenchOptions:
    """The session's resolved options (for fixtures/ and benches/)."""
    return config.stash[OPTIONS]


def device_params(config: pytest.Config) -> list[Any]:
    """``pytest.param`` per selected device; CUDA carries a skip mark with the reason when absent."""
    reason = cuda_skip_reason()
    out = []
    for dev in options(config).devices:
        marks = [pytest.mark.cuda] if dev == "cuda" else []
        if dev == "cuda" and reason:
            marks.append(pytest.mark.skip(reason=reason))
        out.append(pytest.param(dev, id=dev, marks=marks))
    return out


def pytest_report_header(config: pytest.Config) -> list[str]:
    opts = config.stash.get(OPTIONS, None)
    lines = [f"optbench: torch {torch_version()}, devices {opts.devices if opts else '?'}"]
    reason = cuda_skip_reason()
    if reason and opts and "cuda" not in opts.devices:
        lines.append(f"optbench: CUDA cases not collected ({reason}); --device all collects them as skips")
    elif reason:
        lines.append(f"optbench: {reason}")
    if config.stash.get(LOADGROUP_DEFAULT, False):
        lines.append("optbench: -n without --dist runs as --dist loadgroup (the checks that share one computation "
                     "run on one worker); give --dist to choose")
    if opts and opts.user_targets:
        lines.append("optbench: user targets " + ", ".join(t.name for t in opts.user_targets))
    if opts and opts.user_optimizers:
        lines.append("optbench: user optimizers " + ", ".join(o.name for o in opts.user_optimizers))
    return lines
