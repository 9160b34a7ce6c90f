"""Every P18-P20 failure ends with a standalone reproducer: a script that imports only torch, the stdlib and
the optimizer, starts its own 2 gloo ranks, reruns the property's steps, and fails naming the property
with the check's own numbers (or the exception the optimizer raised); the same script with the optimizer
rebound to a correct one (``torch.optim.Adam``) exits 0; nothing is left running. ``docs/reproducers``
holds the generated command-line versions.

Cost: a script run as ``python script.py`` takes 12-20 s on the shared 2-core box, nearly all of it the
two rank interpreters importing torch and torch._dynamo (which DDP and FSDP2 import on first use). So
one script runs exactly so (a real subprocess, its exit status checked), and the others run in one
driver process, each in a fresh namespace (runpy, as ``python script.py`` runs it), with ``mp.spawn``
pointed at a forkserver that has imported those modules once; the ranks still import the script by its
path and unpickle their job, as under spawn. One driver runs every script (the aborting one included), and the
module is one xdist group: the checks that write the scripts (``scripts``, ~10 s of rank-pool work) and the
driver run once per suite, not once per worker that draws one of its tests.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optbench.distributed import reproducer
from optbench.distributed.plan import TESTS, distributed_checks
from optbench.optimizers.user import load_user_optimizers
from optbench.plan import Selection
from optbench.verdict import FAIL, XFAIL, run_check
from tests.planted.dist_bugs import PLANTED_DIST
from tests.scripts import imported_modules

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.xdist_group("test_distributed_reproducers")
STDLIB = {"datetime", "tempfile", "time"}  # what a generated script may import besides torch and the optimizer
CORRECT = "Opt = torch.optim.Adam"  # the control: an optimizer correct under FSDP2, DDP, ZeRO and DCP
# torch.optim failures declared as strict xfails in the registry (torch 2.13): Muon's P18 is a numeric
# difference of its bfloat16 Newton-Schulz over shards; Rprop's step() raises on the ranks (no planted bug does).
KNOWN = ("test_p18_fsdp2_parity[muon-float32-cpu]", "test_p18_fsdp2_parity[rprop-float64-cpu]")
REAL = "test_p18_fsdp2_parity[localshardnorm-float64-cpu]"  # run as `python script.py`, with the real mp.spawn

_DRIVER = r"""
import contextlib, io, json, multiprocessing, runpy, sys
import torch.multiprocessing as mp

multiprocessing.get_context("forkserver").set_forkserver_preload(
    ["torch", "torch._dynamo", "torch.distributed.fsdp", "torch.distributed.checkpoint.state_dict",
     "torch.nn.parallel", "torch.distributed.optim"])


def forkserver_spawn(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    return mp.start_processes(fn, args, nprocs, join, daemon, start_method="forkserver")


mp.spawn = forkserver_spawn
out = {}
for path in sys.argv[2:]:
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            runpy.run_path(path, run_name="__main__")
        out[path] = ["exit 0", buf.getvalue()]
    except BaseException as exc:  # what `python path` would end with (exit status 1)
        out[path] = [type(exc).__name__ + ": " + str(exc), buf.getvalue()]
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh)
"""


def _session(sid: int) -> list[str]:
    """The processes still in session ``sid`` (Linux /proc), as 'pid (command)'."""
    left = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if entry.name.isdigit() and len(fields) > 3 and int(fields[3]) == sid:
            left.append(f"{entry.name} {stat.split(' ', 1)[1].rsplit(')', 1)[0]})")
    return left


def _start(cmd: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[str, str, list[str]]:
    """stdout, stderr and what ``proc``'s session left running (waited for briefly: a forkserver exits once its
    parent has gone), which is then killed."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    left: list[str] = []
    if sys.platform.startswith("linux"):
        for _ in range(50):  # a bounded wait for exits already under way, not a timing assertion
            left = _session(proc.pid)
            if not left:
                break
            time.sleep(0.2)
        if left:
            os.killpg(proc.pid, signal.SIGKILL)
    return out, err, left


@pytest.fixture(scope="module")
def scripts():
    """{name: (script, the check's message, or None for a script that must exit 0)}: every planted bug's
    failure on its own property, the same script rebound to Adam, and the registry's known failures."""
    infos = load_user_optimizers([f"{n.lower()}=tests.planted.dist_bugs:{n}" for n in PLANTED_DIST],
                                 rootdir=str(ROOT))
    own = {n.lower(): prop for n, (_, prop, _) in PLANTED_DIST.items()}
    bind = {i.name: reproducer.bind_opt(i) for i in infos}
    out: dict[str, tuple[str, str | None]] = {}
    for item in distributed_checks(Selection(optimizers=infos, devices=("cpu",))):
        if own[item.subject] != item.prop:
            continue
        v = run_check(item)
        assert v.outcome == FAIL, f"{item.nodeid}: {v.outcome} {v.message}"
        assert v.reproducer, f"{item.nodeid} failed without a reproducer: {v.message}"
        out[item.nodeid] = (v.reproducer, v.message)
        assert v.reproducer.count(bind[item.subject]) == 1, bind[item.subject]
        out[f"{item.test}[adam, the same script]"] = (v.reproducer.replace(bind[item.subject], CORRECT), None)
    # GradAlias fails both P19 checks (DDP and ZeRO): every check of the plan has a planted failure here
    assert {n.split("[")[0] for n in out} == {t for t, *_ in TESTS} and len(out) == 2 * (len(PLANTED_DIST) + 1)
    for item in distributed_checks(Selection(devices=("cpu",))):
        if item.nodeid in KNOWN:
            v = run_check(item)
            assert v.outcome == XFAIL and v.reproducer, f"{item.nodeid}: {v.outcome} {v.message}"
            out[item.nodeid] = (v.reproducer, v.message.partition(" | observed: ")[2])
    assert set(KNOWN) <= set(out)
    return out


def _check_numbers(message: str) -> str:
    """What the script must end with for the check's failure: the first step, parameter and max |Δ|, or the
    exception type and the start of its message."""
    diff = re.search(r"at step (\d+), parameter ('[^']+' \[[\d, ]*\]): max \|Δ\| = (\S+) at index", message)
    if diff:
        return f"step {diff[1]}, parameter {diff[2]}: max |difference| = {diff[3]}"
    raised = re.search(r"raised (\w+)(?: on ranks? [\d, ]+)?: (.{1,60})", message)
    assert raised, message
    return f"raised {raised[1]}: {raised[2]}"


def _assert_shows(name: str, message: str | None, verdict: str, printed: str) -> None:
    if message is None:
        assert verdict == "exit 0", f"{name}: the correct optimizer's script failed: {verdict}\n{printed}"
        return
    prop = message.split(" ", 1)[0]
    assert verdict.startswith(f"AssertionError: {prop} "), f"{name}: did not fail naming {prop}: {verdict}\n{printed}"
    want = _check_numbers(message)
    assert want in verdict, f"{name}: the script's verdict lacks the check's {want!r}:\n{verdict}\n{printed}"
    if "max |difference|" in want:  # and it printed each step's max |difference| up to the failure
        assert re.search(r"step \d+: max \|difference\| = ", printed), printed


ABORTS = "the REAL script, its rank 1 aborting on the first attempt"  # the name of the injected script
_HOOK = "    torch.set_num_threads(1)  # the two ranks share the CPU, as optbench's ranks do\n"


@pytest.fixture(scope="module")
def ran(scripts, tmp_path_factory):
    """Every script run once: REAL as ``python script.py`` (a real subprocess, the real mp.spawn), beside one
    driver that runs all the others and REAL with rank 1 aborting on its first attempt (one driver: its start
    and its forkserver's imports, ~7 s of CPU, are paid once). Returns (paths, REAL's run, the driver's
    results, the abort marker); the tests read them."""
    tmp = tmp_path_factory.mktemp("reproducers")
    paths: dict[str, str] = {}
    for name, (source, _) in scripts.items():
        path = tmp / f"{re.sub(r'[^a-z0-9]+', '_', name.lower())}.py"
        path.write_text(source)
        paths[name] = str(path)
    marker = tmp / "aborted"
    source = scripts[REAL][0]
    assert _HOOK in source
    inject = (f"    import os, pathlib\n    if rank == 1 and not pathlib.Path({str(marker)!r}).exists():\n"
              f"        pathlib.Path({str(marker)!r}).touch()\n        os.abort()\n")
    aborts = tmp / "aborts_once.py"
    aborts.write_text(source.replace(_HOOK, inject + _HOOK))
    paths[ABORTS] = str(aborts)
    real = _start([sys.executable, paths[REAL]])  # exactly as a maintainer runs it
    result = tmp / "results.json"
    # the others in the driver, their ranks forked from a server that has imported torch: the retry after the
    # abort is the script's own code either way; `python script.py` itself is the REAL run
    driver = _start([sys.executable, "-c", _DRIVER, str(result), *(p for n, p in paths.items() if n != REAL)])
    out, err, left = _finish(real, timeout=300)
    _, derr, dleft = _finish(driver, timeout=600)
    assert not left + dleft, f"the reproducers left processes running: {left + dleft}"
    assert driver.returncode == 0 and result.exists(), derr[-3000:]
    return paths, (real.returncode, out, err), json.loads(result.read_text()), marker


def test_every_distributed_failure_reproduces_standalone_with_the_checks_numbers(scripts, ran):
    for name, (source, message) in scripts.items():
        opt_module = {m for m in imported_modules(source) if m not in STDLIB | {"torch"}}
        assert opt_module <= {"tests"}, f"{name}: imports {opt_module} besides torch, {STDLIB} and the optimizer's"
        assert message is None or message in source.split('"""')[1], f"{name}: the docstring lacks the finding"
    paths, (code, out, err), results, _ = ran
    assert code == 1, f"`python {paths[REAL]}` exited {code}:\n{err[-3000:]}"
    _assert_shows(REAL, scripts[REAL][1], err.rstrip().splitlines()[-1], out)
    for name, path in paths.items():
        if name not in (REAL, ABORTS):
            _assert_shows(name, scripts[name][1], *results[path])


@pytest.mark.parametrize("key, name", [("P18", "fsdp2_step.py"), ("P20", "dcp_resume.py")])
def test_docs_reproducers_are_the_generated_command_line_scripts(key, name):
    path = ROOT / "docs" / "reproducers" / name
    assert path.read_text() == reproducer.cli_script(key), (
        f"{path} is not what optbench.distributed.reproducer.cli_script({key!r}) writes; regenerate it: "
        f"python -c \"from optbench.distributed.reproducer import cli_script; "
        f"open('{path.relative_to(ROOT)}', 'w').write(cli_script('{key}'))\"")
    assert imported_modules(path.read_text()) <= {"torch", "argparse", "importlib"} | STDLIB


def test_a_rank_killed_outside_python_gets_the_ranks_run_once_more(scripts, ran):
    """A rank that dies by a signal (a native abort; seen once in ~25 loaded runs of the suite) is not the
    optimizer's verdict: the script runs the ranks once more, says so, and still ends with the check's
    numbers. Here rank 1 of REAL's script aborts on the first attempt only."""
    paths, _, results, marker = ran
    verdict, out = results[paths[ABORTS]]
    assert marker.exists() and "rank 1 was killed by SIGABRT outside Python; running the ranks once more" in out, out
    _assert_shows(REAL, scripts[REAL][1], verdict, out)
