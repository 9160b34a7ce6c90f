"""User optimizers: ``--optimizer [NAME=]module:attr`` plus hyperparameters and exemptions from TOML.

The object named is an ``torch.optim.Optimizer`` subclass or a factory ``(params, **kwargs) ->
Optimizer``. Configuration comes from ``--optimizer-config FILE`` (tables ``[optimizers.NAME]``) or,
without it, from ``[tool.optbench.optimizers.NAME]`` in ``<rootdir>/pyproject.toml``::

    [tool.optbench.optimizers.myadam]
    lr = 1e-2                 # P1 lr; omit it and P1 searches the lr grid (LR_GRID) and reports the band
    epochs = 1500             # P1 epoch budget per target (default 2000)
    schedule = "auto"         # P1 lr schedule: "auto", "none", or { name = "ExponentialLR", gamma = 0.99 }
                              # (default: constant lr, and "auto" when constant-lr runs hover ~lr from x*)
    contract_lr = 1e-2        # the small lr of the contract checks (P2-P17)
    kwargs = { betas = [0.9, 0.99] }   # passed on every construction
    weight_decay = "coupled"  # "coupled" | "decoupled" | "none": enables the coupled-L2 P1 check
    elementwise = true        # starts may be batched as rows of one tensor (default: probed)
    closure = false           # step() needs a closure (LBFGS-like)          } default: detected by
    matrix_only = false       # 2-D parameters only (Muon-like)             } probing one step
    sparse_grad = false       # sparse gradients only (SparseAdam-like)     }
    targets = ["booth", "rosenbrock_2d"]   # judged P1 targets (default: the correctness targets, the seed and
                                           # the well-conditioned convex ones, plus any with a budget); "all"
    profile_targets = ["rosenbrock_2d"]    # hard targets run and recorded, never judged (default: Rosenbrock,
                                           # Beale, Himmelblau)
    fullgraph = true          # P21: the step compiles to one graph; any graph break in it is a FAIL (default false)
    compile_backend = "aot_eager"  # P21's torch.compile backend: "inductor" (default), "aot_eager", "eager"
    [tool.optbench.optimizers.myadam.exemptions]
    P13 = "scales the step by the parameter norm (LAMB trust ratio)"   # a reason is required
    [tool.optbench.optimizers.myadam.known]   # known bugs: strict xfails (XFAIL; a fix turns them into XPASS)
    "P8.deepcopy" = "settings kept as instance attributes are lost by deepcopy"   # also "P5@foreach", "P2@float32"
    [tool.optbench.optimizers.myadam.budgets.rosenbrock_2d]
    lr = 1e-3
    epochs = 5000

A class of optbench's registry (torch.optim's own) named with no config, or with only kwargs, exemptions, known
bugs, fullgraph or compile_backend, is validated with the registry's entry for it
(:mod:`optbench.optimizers.registered`); with other kwargs, as it comes, with the known bugs of its class.

Every error is one line (:class:`ConfigError` / :class:`SpecError`); the plugin turns it into a pytest
usage error (exit code 4).
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from typing import Any, Mapping, Sequence

import torch

from ..errors import ConfigError, SpecError
from ..schedules import parse_schedule
from ..spec import Spec, load_module, load_spec, parse_spec
from .capabilities import STEPS_RAISE, Capabilities, detect
from .info import COMPILE_BACKENDS, PROPERTIES, Budget, OptConfig, OptimizerInfo
from .p1 import PROFILE_TARGETS, correctness_targets
from .registered import class_known, registry_info

# P1 epoch budget per target when the config declares none: GD at the best lr of the sqrt(10)-spaced grid
# contracts the slowest mode of a kappa <= 100 quadratic by at least 1 - 0.63/kappa per epoch, which
# reaches 1e-4 from unit distance well within 2000 epochs.
DEFAULT_EPOCHS = 2000

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

_KEYS = {"lr", "epochs", "contract_lr", "kwargs", "weight_decay", "elementwise", "closure", "matrix_only",
         "targets", "exemptions", "known", "budgets", "sparse_grad", "impls", "schedule", "profile_targets",
         "fullgraph", "compile_backend"}
_EXEMPT_RE = re.compile(r"^P(\d+)(?:\.[a-z_0-9]+)?(?::[A-Za-z_][\w.\-]*)?$")
# as the registry's: P5, P8.deepcopy, P5@foreach, P2@float32, P1:<target>
_KNOWN_RE = re.compile(r"^P(\d+)(?:\.[a-z_0-9]+)?(?::[A-Za-z_][\w.\-]*)?(?:@[a-z_0-9]+)?$")


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"--optimizer-config {path!r} does not exist; give the path of a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}); check the path and permissions") from None


def load_config(config_file: str | None, rootdir: str | None) -> tuple[dict[str, Any], str]:
    """The ``optimizers`` table and where it came from (file, or rootdir's pyproject, or nothing)."""
    if config_file:
        data = _read_toml(config_file)
        table = data.get("optimizers", data.get("tool", {}).get("optbench", {}).get("optimizers", {}))
        return dict(table), config_file
    if rootdir:
        path = os.path.join(rootdir, "pyproject.toml")
        if os.path.exists(path):
            data = _read_toml(path)
            return dict(data.get("tool", {}).get("optbench", {}).get("optimizers", {})), path
    return {}, ""


def _check_entry(name: str, entry: Mapping[str, Any], where: str) -> None:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: optimizers.{name} must be a table of settings")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: optimizers.{name} has unknown key(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(_KEYS))}")
    for key, reason in dict(entry.get("exemptions", {})).items():
        if not _EXEMPT_RE.match(key) or key.split(":")[0].split(".")[0] not in PROPERTIES:
            raise ConfigError(f"{where}: optimizers.{name}.exemptions: {key!r} is not a property; use P1..P{len(PROPERTIES)} "
                              f"(optionally P1:<target>)")
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"{where}: optimizers.{name}.exemptions.{key} has no reason; an exemption must say "
                              f"why, e.g. {key} = \"scales steps by the parameter norm\"")
    for key, reason in dict(entry.get("known", {})).items():
        if not _KNOWN_RE.match(key) or key.split("@")[0].split(":")[0].split(".")[0] not in PROPERTIES:
            raise ConfigError(f"{where}: optimizers.{name}.known: {key!r} is not a property; use P1..P{len(PROPERTIES)}, "
                              f"optionally with a check or target and an impl or dtype (e.g. P8.deepcopy, P5@foreach, P1:booth)")
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"{where}: optimizers.{name}.known.{key} has no reason; a known bug must say what is "
                              f"wrong, e.g. {key} = \"modifies p.grad in place\"")
    if not isinstance(entry.get("fullgraph", False), bool):
        raise ConfigError(f"{where}: optimizers.{name}.fullgraph = {entry['fullgraph']!r}; use true or false")
    backend = entry.get("compile_backend", "inductor")
    if backend not in COMPILE_BACKENDS:
        raise ConfigError(f"{where}: optimizers.{name}.compile_backend = {backend!r}; use "
                          f"{', '.join(repr(b) for b in COMPILE_BACKENDS)} (the default is 'inductor')")
    wd = entry.get("weight_decay", None)
    if wd not in (None, "coupled", "decoupled", "none"):
        raise ConfigError(f"{where}: optimizers.{name}.weight_decay = {wd!r}; use \"coupled\", \"decoupled\" or \"none\"")


def make_user_info(obj: Any, spec_text: str, name: str, entry: Mapping[str, Any], *,
                   lenient: bool = False, base_of: Sequence[str] = ()) -> OptimizerInfo:
    if isinstance(obj, type):
        if not issubclass(obj, torch.optim.Optimizer):
            raise SpecError(f"--optimizer {spec_text!r}: {obj.__name__} is a class but not a torch.optim.Optimizer "
                            f"subclass; give an Optimizer subclass or a factory (params, **kwargs) -> Optimizer")
    elif not callable(obj):
        raise SpecError(f"--optimizer {spec_text!r}: {type(obj).__name__} object is not an optimizer; give an "
                        f"Optimizer subclass or a factory (params, **kwargs) -> Optimizer")
    known = registry_info(obj, spec_text, name, entry)
    if known is not None:
        return known
    kwargs = dict(entry.get("kwargs", {}))
    contract_lr = float(entry.get("contract_lr", 1e-2))
    try:
        caps = detect(obj, spec_text, kwargs, contract_lr, entry)
    except SpecError as exc:
        if not lenient:
            raise
        # one of a module's optimizers (module:*) that cannot be driven as it comes: its checks are N/A with the
        # reason and the fix, and the others still run
        reason = "not driven as it comes: " + str(exc).split(": ", 1)[-1]
        if base_of:  # prodigy-plus-schedule-free's CoreOptimiser: an abstract base its module exports
            reason += (f"; it is the base class of {', '.join(base_of)}, which the module exports too (validated on "
                       f"its own)")
        caps = Capabilities(unsupported=reason, notes=[reason])
    if base_of and caps.steps_raise:  # an abstract base (prodigy-plus-schedule-free's CoreOptimiser: KeyError 'd0')
        reason = (f"not driven as it comes: every attempt's step() raised ({caps.steps_raise}); it is the base class "
                  f"of {', '.join(base_of)}, which the module exports too (validated on its own)")
        caps = Capabilities(unsupported=reason, notes=[reason])
    defaults = set(caps.defaults)
    if "lr" not in kwargs and "lr" not in defaults and not caps.unsupported:
        caps.notes.append(f"has no lr hyperparameter (its defaults: {', '.join(sorted(defaults))}): the checks that "
                          f"set lr (P3 lr=0, P6 param-group lrs) do not apply")
    # torch.optim's convention: foreach=False/True select the for-loop and foreach paths, fused=True the fused
    # kernels (offered only where the probe stepped with it); a config's impls = [...] wins
    def detected(fused: bool) -> tuple[str, ...]:
        return (("forloop", "foreach") if "foreach" in defaults else ("default",)) + (("fused",) if fused else ())

    declared_impls = tuple(entry.get("impls", ()))
    impls_by_device = {"cpu": declared_impls or detected(caps.fused), "cuda": declared_impls or detected(caps.fused_cuda)}
    wd = entry.get("weight_decay", None)
    if wd == "none":
        wd = None
    exemptions = {str(k): str(v) for k, v in dict(entry.get("exemptions", {})).items()}
    if wd is None and "P1.l2" not in exemptions:
        exemptions["P1.l2"] = ("coupled weight decay not declared (set weight_decay = \"coupled\" in the optimizer's "
                               "config to check the minimum of f + λ/2·|x|²)")
    epochs = int(entry.get("epochs", DEFAULT_EPOCHS))
    budgets = {str(t): Budget(b.get("lr"), int(b.get("epochs", epochs)))
               for t, b in dict(entry.get("budgets", {})).items()}
    targets = entry.get("targets", None)
    if targets == "all":
        targets_t = None
    elif targets is None:  # judged: the correctness targets, plus every target a budget is declared for
        targets_t = correctness_targets() + tuple(t for t in budgets if t not in correctness_targets())
    else:
        targets_t = tuple(str(t) for t in targets)
    declared_t = set(targets_t) if targets_t is not None else set(budgets) | set(PROFILE_TARGETS)
    profile = entry.get("profile_targets", None)
    profile_t = tuple(str(t) for t in (PROFILE_TARGETS if profile is None else profile) if t not in declared_t)
    lr = entry.get("lr", None)
    return OptimizerInfo(
        name=name,
        factory=obj,
        configs=(OptConfig("", {}, lr=None if lr is None else float(lr), epochs=epochs, budgets=budgets,
                           schedule=parse_schedule(entry.get("schedule"), where=f"optimizers.{name}.schedule")),),
        impls=impls_by_device,
        exemptions=exemptions,
        targets=targets_t,
        profile_targets=profile_t,
        elementwise=entry.get("elementwise", None),
        closure=caps.closure,
        sparse_grad=caps.sparse_grad,
        matrix_only=caps.matrix_only,
        detected=tuple(caps.notes),
        unsupported=caps.unsupported,
        maximize="maximize" in defaults,
        weight_decay=wd,
        contract_lr=contract_lr,
        user=True,
        source=spec_text,
        extra_kwargs=kwargs,
        known={**class_known(obj), **{str(k): str(v) for k, v in dict(entry.get("known", {})).items()}},
        fullgraph=bool(entry.get("fullgraph", False)),
        compile_backend=str(entry.get("compile_backend", "inductor")),
    )


def module_optimizers(spec: Spec) -> list[tuple[str, type, str]]:
    """``module:*``: every torch.optim.Optimizer subclass the module exports (its ``__all__``, else its public
    names), once per class, as (name, class, spec): the name is the exported attribute's."""
    module = load_module(spec, option="--optimizer")
    names = getattr(module, "__all__", None) or sorted(n for n in vars(module) if not n.startswith("_"))
    out: list[tuple[str, type, str]] = []
    seen: set[type] = set()
    for attr in names:
        obj = getattr(module, attr, None)
        if (isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer) and obj is not torch.optim.Optimizer
                and not inspect.isabstract(obj) and obj not in seen):
            seen.add(obj)
            out.append((attr, obj, f"{spec.module}:{attr}"))
    if not out:
        raise SpecError(f"--optimizer {spec.text!r}: {spec.module!r} exports no torch.optim.Optimizer subclass; name "
                        f"one as module:Class")
    return out


def load_user_optimizers(specs: Sequence[str], *, config_file: str | None = None,
                         rootdir: str | None = None) -> list[OptimizerInfo]:
    """Resolve every ``--optimizer`` spec into an :class:`OptimizerInfo` (in command-line order). ``module:*``
    stands for every optimizer the module exports; one of those that cannot be driven as it comes gets every
    check N/A with the reason, where a named one is a one-line error."""
    if rootdir and rootdir not in sys.path:
        sys.path.append(rootdir)  # specs name modules relative to the project root, like pytest's rootdir
    table, where = load_config(config_file, rootdir)
    out: list[OptimizerInfo] = []
    seen: set[str] = set()
    for text in specs:
        spec = parse_spec(text, option="--optimizer", allow_wildcard=True)
        wildcard = spec.attr == "*"
        members = (module_optimizers(spec) if wildcard else
                   [(spec.name or spec.attr.split(".")[-1], load_spec(spec, option="--optimizer"), text)])
        for name, _, _ in members:
            if name in seen:
                raise SpecError(f"--optimizer {text!r}: the name {name!r} is given twice; use NAME=module:attr to "
                                f"tell them apart")
            seen.add(name)
        # subclasses first: a base class whose every step raises is an abstract base (N/A) where a subclass the
        # module exports beside it steps, and an optimizer with that bug where they all raise (bitsandbytes'
        # AdEMAMix32bit and its PagedAdEMAMix32bit)
        depth = {name: len(obj.__mro__) if isinstance(obj, type) else 0 for name, obj, _ in members}
        infos: dict[str, OptimizerInfo] = {}
        for name, obj, source in sorted(members, key=lambda m: -depth[m[0]]):
            base_of = [n for n, o, _ in members if wildcard and o is not obj and isinstance(o, type)
                       and isinstance(obj, type) and issubclass(o, obj) and infos[n].unsupported is None
                       and not any(d.startswith(STEPS_RAISE) for d in infos[n].detected)]
            entry = table.get(name, {})
            _check_entry(name, entry, where or "config")
            infos[name] = make_user_info(obj, source, name, entry, lenient=wildcard, base_of=base_of)
        out.extend(infos[name] for name, _, _ in members)
    return out
