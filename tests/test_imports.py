"""No import circle among the modules of src/optbench.

The graph is read from the source with :mod:`ast`, not by importing: every ``import`` and ``from ...
import`` statement, at module level and inside functions (a deferred import still ties the two modules
together; it only hides the circle until the function runs). ``from pkg import name`` is an edge to
``pkg.name`` when that is a module of the package, else to ``pkg``, the most specific module that
exists (as import-linter's grimp does); importing ``a.b`` is not counted as importing ``a`` (every
module would otherwise form a circle with its package's ``__init__``). Imports of other packages
(torch, sympy) are not edges. Dynamic imports (``importlib.import_module("...")``, the CLI's
subcommands and the plans' ``"module:function"`` strings) are not statements and are not seen.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "optbench"


def package_modules(root: Path, package: str) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``) for every .py file under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _imported(node: ast.AST, here: str, is_pkg: bool) -> list[str]:
    """The dotted names an import statement in module ``here`` may refer to, most specific first."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:  # relative: from the package of ``here`` (its own name when it is a package)
        base = (here if is_pkg else here.rpartition(".")[0]).split(".")
        base = base[: len(base) - (node.level - 1)]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    return [f"{mod}.{a.name}" for a in node.names] + [mod]


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (module-level and function-level)."""
    mods = package_modules(root, package)
    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in mods.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = _imported(node, name, is_pkg)
            if isinstance(node, ast.ImportFrom):
                # `from pkg import a, b`: a and b where they are modules, else pkg itself
                found = [n for n in names[:-1] if n in mods]
                names = found + ([names[-1]] if len(found) < len(names) - 1 else [])
            for target in names:
                while target not in mods and "." in target:  # `import a.b.c` where c is an attribute
                    target = target.rpartition(".")[0]
                if target in mods and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_optbench_has_no_import_cycle():
    graph = import_graph(SRC, "optbench")
    assert len(graph) > 40 and "optbench.gate.decide" in graph["optbench.gate"]  # the graph was read
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))


@pytest.mark.parametrize("files, cycle", [
    # the circle optbench had: gate's command-line entry imported the self-test, which imports gate
    ({"__init__.py": "", "gate.py": "def _main():\n    from .bench.selftest import main\n",
      "bench/__init__.py": "", "bench/selftest.py": "from ..gate import gate_files\n"},
     ["pkg.bench.selftest", "pkg.gate", "pkg.bench.selftest"]),
    # module level, absolute, through a package's __init__ and a `from pkg import module`
    ({"__init__.py": "", "a.py": "import pkg.b\n", "b.py": "from pkg import c\n",
      "c/__init__.py": "from .d import x\n", "c/d.py": "from pkg.a import y\n"},
     ["pkg.a", "pkg.b", "pkg.c", "pkg.c.d", "pkg.a"]),
])
def test_a_cycle_is_found_and_named(tmp_path, files, cycle):
    _write(tmp_path / "pkg", files)
    assert find_cycle(import_graph(tmp_path / "pkg", "pkg")) == cycle


def test_no_false_cycle_from_packages_attributes_or_other_libraries(tmp_path):
    _write(tmp_path / "pkg", {
        "__init__.py": "from .a import run\nimport torch\n",  # the package imports its submodule: no edge back
        "a.py": "from . import b\nfrom .b import helper\nimport os.path\n\ndef run():\n    return b.helper()\n",
        "b.py": "from .c import CONST  # an attribute of c\n\ndef helper():\n    import pkg.c\n    return CONST\n",
        "c.py": "CONST = 1\n",
    })
    graph = import_graph(tmp_path / "pkg", "pkg")
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": set()}
    assert find_cycle(graph) is None


def test_the_architecture_page_lists_every_module_once():
    """docs/ARCHITECTURE.md has one line per module: a module added, moved or removed shows up here."""
    import re

    page = (SRC.parents[1] / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| `((?:optbench|pytest_optbench)/[\w/]+\.py)` \|", page, flags=re.M)
    on_disk = sorted(str(p.relative_to(SRC.parent)) for pkg in ("optbench", "pytest_optbench")
                     for p in (SRC.parent / pkg).rglob("*.py"))
    assert sorted(set(listed)) == sorted(listed), "listed twice: " + ", ".join(sorted({m for m in listed if listed.count(m) > 1}))
    missing, stale = sorted(set(on_disk) - set(listed)), sorted(set(listed) - set(on_disk))
    assert not missing and not stale, f"docs/ARCHITECTURE.md lacks {missing}; lists modules that are gone: {stale}"


def test_test_files_outside_packages_have_unique_basenames():
    """validation/ and benches/ are not packages, so pytest imports their test files by basename: two with one
    name (validation/test_memory.py and benches/test_memory.py did) stop `pytest validation benches`, the first
    command of `tox -e bench`, at collection ("import file mismatch")."""
    from collections import Counter

    root = Path(__file__).resolve().parents[1]
    names = Counter(p.name for d in ("validation", "benches") for p in (root / d).glob("test_*.py"))
    assert not [n for n, c in names.items() if c > 1], names
