"""The README's shell blocks run as written, in an empty folder, as a newcomer would paste them.

Every command of every ```sh block is either run here (with the files the README asks the reader to
write: a ```python block whose first line is ``# NAME.py``) or listed in :data:`NOT_RUN` with the reason;
a command in neither fails the test, so a new README command cannot go unchecked. A command must exit
as :data:`EXIT` says (default 0), and the README's example FAIL must be what its command prints. The
README's relative links must name files that exist.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# Commands not run here, with the reason (each must still be in the README).
NOT_RUN = {
    'python3 -m pip install "tox>=4" && python3 -m tox -e bench':
        "the main job: a tox env, the validation and the benchmarks, about 6-7 min on 2 cores",
    'python3 -m pip install "tox>=4" && python3 -m tox':
        "the whole suite in a tox env (this test runs inside it), about 4-5 min on 2 cores",
    "optbench validate torch.optim:Adam":
        "the whole contract on Adam with P18-P20, 8-13 s on 2 cores; the HalveGrad line runs one property the same way",
}
EXIT = {"optbench validate halvegrad:HalveGrad -k p05 --no-distributed": 1}  # the README's example FAIL


def _blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S)


def _commands(body: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, trailing comments dropped."""
    out = []
    for line in re.sub(r"\\\n\s*", " ", body).splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def _files(text: str) -> dict[str, str]:
    """The files the README asks the reader to write: python blocks that start with ``# NAME.py``."""
    out = {}
    for lang, body in _blocks(text):
        m = re.match(r"# ([\w./-]+\.py)\n", body)
        if lang == "python" and m:
            out[m.group(1)] = body
    return out


TEXT = README.read_text(encoding="utf-8")
COMMANDS = [c for lang, body in _blocks(TEXT) if lang == "sh" for c in _commands(body)]
RUN = [c for c in COMMANDS if c not in NOT_RUN]


def test_every_command_is_run_or_listed_with_a_reason():
    assert COMMANDS, "no ```sh block found in README.md"
    stale = sorted(set(NOT_RUN) - set(COMMANDS)) + sorted(set(EXIT) - set(COMMANDS))
    assert not stale, f"listed here but no longer in README.md: {stale}"
    assert all(NOT_RUN.values())


@pytest.mark.parametrize("command", RUN)
def test_readme_command_runs_as_written(command, tmp_path):
    for name, body in _files(TEXT).items():
        (tmp_path / name).write_text(body)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the reader's folder, not this checkout
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # this env's optbench
    env["MPLBACKEND"] = "Agg"
    proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    want = EXIT.get(command, 0)
    assert proc.returncode == want, (f"`{command}` exited {proc.returncode}, expected {want}\n"
                                     f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    if command in EXIT:  # the README shows what this command prints: its FAIL line must be real
        shown = next(body for lang, body in _blocks(TEXT) if body.startswith("FAIL "))
        for line in shown.splitlines():
            assert line.strip() in proc.stdout, f"README shows {line.strip()!r}; `{command}` printed:\n{proc.stdout}"


def test_readme_links_name_files_that_exist():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", TEXT)
    local = [link for link in links if not re.match(r"\w+://", link)]
    assert local, "no relative link found in README.md"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
