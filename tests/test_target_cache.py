"""The built-in targets' derivations are kept on disk (optbench.target_cache): a target read back is the one
derived, entry for entry; a damaged entry is derived again; every module a derivation runs is in the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from optbench import target_cache
from optbench.catalogue import _BUILDERS

# a quadratic, a polynomial with a Groebner derivation, a 2-D-shaped parameter, transcendental ones
NAMES = ("seed_quadratic", "rosenbrock_2d", "six_hump_camel", "sphere_4d", "easom", "rastrigin_2d")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("OPTBENCH_CACHE", raising=False)
    return tmp_path


def _counting(name):
    calls = []

    def build():
        calls.append(name)
        return _BUILDERS[name]()

    return build, calls


@pytest.mark.parametrize("name", NAMES)
def test_a_target_read_back_is_the_one_derived(cache, name):
    build, calls = _counting(name)
    derived = target_cache.cached(name, build)
    read = target_cache.cached(name, build)
    assert calls == [name], "the second call derived again instead of reading the entry"
    assert read is not derived
    for attr in ("name", "expr", "variables", "dim", "shape", "kind", "gradient", "hessian", "stationary",
                 "stationary_complete", "minimizers", "f_star", "domain", "basin", "start", "lower_bound", "derivation",
                 "tags"):
        assert getattr(read, attr) == getattr(derived, attr), attr
    assert all(v.is_real for v in read.variables)  # the symbols keep their assumptions
    x = torch.randn(5, derived.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    if derived.shape:
        x = x.reshape(5, *derived.shape)
    assert torch.equal(read(x), derived(x))
    assert torch.equal(read.x_star(torch.float64), derived.x_star(torch.float64))
    p = derived.minimizers[0]
    assert read.numeric.value(p) == derived.numeric.value(p)


def test_a_damaged_entry_is_derived_again_and_rewritten(cache):
    build, calls = _counting("booth")
    target_cache.cached("booth", build)
    (entry,) = cache.rglob("booth.pickle")
    entry.write_bytes(b"not a pickle")
    assert target_cache.cached("booth", build).minimizers == ((1, 3),) and len(calls) == 2
    assert target_cache.cached("booth", build).name == "booth" and len(calls) == 2  # rewritten: read again


def test_off_or_unwritable_the_cache_is_not_used_and_nothing_fails(cache, monkeypatch):
    monkeypatch.setenv("OPTBENCH_CACHE", "0")
    build, calls = _counting("booth")
    target_cache.cached("booth", build)
    target_cache.cached("booth", build)
    assert len(calls) == 2 and not list(cache.rglob("*.pickle"))
    monkeypatch.delenv("OPTBENCH_CACHE")
    blocker = cache / "file"
    blocker.write_text("")
    monkeypatch.setenv("OPTBENCH_CACHE_DIR", str(blocker / "sub"))  # under a file: cannot be created
    assert target_cache.cached("booth", build).name == "booth"


def test_every_module_a_derivation_runs_is_in_the_key(tmp_path):
    """A module the derivations import but the key leaves out could change and leave stale entries behind."""
    code = ("import sys, json\nfrom optbench.catalogue import _BUILDERS\n"
            "for b in _BUILDERS.values(): b()\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('optbench.'))))")
    env = {**os.environ, "OPTBENCH_CACHE": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = {m.removeprefix("optbench.") for m in json.loads(out.stdout.strip().splitlines()[-1])}
    assert loaded - {"target_cache"} <= set(target_cache._SOURCES), loaded - set(target_cache._SOURCES)
