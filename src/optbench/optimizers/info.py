"""The optimizer registry: every built-in torch optimizer declared as data.

Modelled on PyTorch's ``OptimizerInfo`` (torch/testing/_internal/common_optimizers.py): each entry
declares its configurations, its implementations per device, its P1 hyperparameters and epoch
budgets per target, what it accepts (maximize, weight decay, closure, sparse gradients, 2-D only),
and every exemption from the property contract with its reason. Tests read this table; they never
branch on an optimizer's name.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import torch

# The property contract. P1 is convergence; P2-P17 hold for every optimizer unless exempted.
PROPERTIES: dict[str, str] = {
    "P1": "convergence",
    "P2": "first step descends",
    "P3": "lr=0 is a no-op",
    "P4": "frozen param (grad None) untouched",
    "P5": "step() leaves .grad alone",
    "P6": "param-group independence",
    "P7": "parameter independence",
    "P8": "resume from state_dict / deepcopy",
    "P9": "state dtype and device",
    "P10": "step(closure) returns the loss",
    "P11": "maximize",
    "P12": "weight decay shrinks",
    "P13": "translation equivariance",
    "P14": "non-contiguous params",
    "P15": "implementation parity",
    "P16": "zero_grad",
    "P17": "determinism",
}

IMPLS = ("forloop", "foreach", "fused")

# The P1 targets of the minimal catalogue; every built-in is declared on each of them (or exempted).
P1_TARGETS = ("seed_quadratic", "sphere_2d", "booth", "rosenbrock_2d", "himmelblau")


def impl_kwargs(impl: str) -> dict[str, Any]:
    """Constructor kwargs selecting an implementation; ``default`` lets the optimizer choose."""
    return {"forloop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}.get(impl, {})


@dataclass(frozen=True)
class Budget:
    """P1 hyperparameters on one target: learning rate and epoch budget."""

    lr: float | None
    epochs: int


@dataclass(frozen=True)
class OptConfig:
    """One configuration of an optimizer: a name (``''`` is the plain one) and constructor kwargs."""

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    lr: float | None = None  # P1 lr when a target has no Budget of its own (None: search the lr grid)
    epochs: int = 400  # P1 epoch budget when a target has no Budget of its own
    budgets: Mapping[str, Budget] = field(default_factory=dict)
    exemptions: Mapping[str, str] = field(default_factory=dict)  # extra to the optimizer's own
    lr_decay: float | None = None  # multiply lr by this every epoch in P1 (applied in run_loop's hook)
    known: Mapping[str, str] = field(default_factory=dict)  # known upstream bugs of this config (see OptimizerInfo)
    exact: str | None = None  # "gd" | "heavy_ball" | "nesterov": a linear recurrence on quadratics (exact trajectory)


@dataclass
class OptimizerInfo:
    """What the suite knows about one optimizer. ``.name`` is the id used in test ids."""

    name: str
    factory: Callable[..., torch.optim.Optimizer]
    configs: tuple[OptConfig, ...] = (OptConfig(""),)
    impls: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {"cpu": ("default",), "cuda": ("default",)})
    # Exemptions: property id ("P7"), or "P1:<target>" for one target, or "P1.<check>" -> reason.
    exemptions: Mapping[str, str] = field(default_factory=dict)
    targets: tuple[str, ...] | None = P1_TARGETS  # None: every catalogue target that applies
    elementwise: bool | None = True  # update of x_i depends only on x_i's history (batched starts exact); None: probe
    closure: bool = False  # step() needs a closure (LBFGS)
    sparse_grad: bool = False  # gradients must be sparse (SparseAdam)
    matrix_only: bool = False  # 2-D parameters only (Muon)
    maximize: bool = True  # accepts maximize=
    weight_decay: str | None = "coupled"  # "coupled" (L2 in the gradient), "decoupled" (AdamW-style) or None
    contract_lr: float = 1e-2  # small lr for the contract checks
    tol: Mapping[str, tuple[float, float, str]] = field(default_factory=dict)  # dtype -> (tol_x, tol_f, reason)
    user: bool = False
    source: str = ""  # spec text for user optimizers, "torch.optim.X" for built-ins
    extra_kwargs: Mapping[str, Any] = field(default_factory=dict)  # passed on every construction
    # Known upstream bugs that the suite finds: "P5" or "P5@foreach" (one impl) -> what is wrong.
    # They run as strict xfails: the report shows them, and a fix upstream turns them into failures.
    known: Mapping[str, str] = field(default_factory=dict)
    contract_dtypes: tuple[str, ...] = ("float64", "float32")  # dtypes of the contract tests
    random_starts: int | None = None  # P1 random starts (None: K_BATCHED when batched, K_SEPARATE otherwise)

    def exemption(self, key: str, config: OptConfig | None = None) -> str | None:
        """The reason ``key`` (e.g. "P7" or "P1:rosenbrock_2d") does not apply, or None."""
        if config is not None and key in config.exemptions:
            return config.exemptions[key]
        return self.exemptions.get(key)

    def config_id(self, config: OptConfig) -> str:
        return self.name if not config.name else f"{self.name}_{config.name}"

    def budget(self, config: OptConfig, target: str) -> Budget:
        return config.budgets.get(target, Budget(config.lr, config.epochs))

    def make(
        self,
        params: Any,
        config: OptConfig | None = None,
        impl: str = "default",
        **overrides: Any,
    ) -> torch.optim.Optimizer:
        """Construct the optimizer: registry kwargs < config kwargs < impl kwargs < overrides."""
        config = config if config is not None else self.configs[0]
        kwargs = {**self.extra_kwargs, **dict(config.kwargs), **impl_kwargs(impl), **overrides}
        opt = self.factory(params, **kwargs)
        if self.closure:
            opt._optbench_needs_closure = True  # read by optbench.loop.needs_closure
        return opt


def _all_impls(cpu: tuple[str, ...], cuda: tuple[str, ...] | None = None) -> dict[str, tuple[str, ...]]:
    return {"cpu": cpu, "cuda": cuda if cuda is not None else cpu}


_FLF = ("forloop", "foreach", "fused")
_FL = ("forloop", "foreach")
_D = ("default",)

# Reasons reused by several entries.
_NO_WD = "has no weight_decay argument"
_NO_MAX = "has no maximize argument"
_SCALE = "scales its step by the parameter's RMS (relative step size), so it is not translation equivariant by design"


_ROSEN = ("Rosenbrock's curved valley needs more epochs than this entry's P1 budget allows at a stable lr "
          "(measured: not within |x - x*| <= 1e-4 in 2000 epochs); the valley is covered by LBFGS and SGD "
          "momentum")
_RMS_HOVER = ("with a constant lr RMSprop's step tends to lr·g/|g| near x*, so it hovers at ~lr from the "
              "minimiser; measured: not within 1e-4 in 2000 epochs from these starts, and an lr decay that fixes "
              "it there is too slow from the far starts")
_RMS_EXEMPT = {"P1:rosenbrock_2d": _ROSEN, "P1:booth": _RMS_HOVER, "P1:himmelblau": _RMS_HOVER}
_MUON_P1 = ("with momentum 0.95 the orthogonalised (unit spectral norm) steps overshoot unless lr decays for "
            "hundreds of epochs, and Newton-Schulz runs in bfloat16 at ~40 ms a step on CPU: P1 runs on the "
            "'nomomentum' config with lr 1 decayed by 0.85 per epoch (80 epochs)")
_L2_DECOUPLED = "decoupled weight decay does not minimise f + λ/2·|x|²"
_LINESEARCH_DT = ("a line search takes discrete accept/reject decisions, so float32 rounding changes the accepted "
                  "step: float32 and float64 trajectories need not stay close")


def builtin_registry() -> list[OptimizerInfo]:
    """Every optimizer the installed torch provides, in a fixed order (deterministic test ids)."""
    O = torch.optim
    adam_budgets = {"booth": Budget(0.2, 2000), "himmelblau": Budget(0.01, 2000)}
    reg: list[OptimizerInfo] = [
        OptimizerInfo(
            "sgd",
            O.SGD,
            configs=(
                OptConfig("", {}, lr=0.05, epochs=600, exact="gd",
                          budgets={"himmelblau": Budget(0.01, 600)}, exemptions={"P1:rosenbrock_2d": _ROSEN}),
                OptConfig("momentum", {"momentum": 0.9}, lr=0.02, epochs=600, exact="heavy_ball",
                          budgets={"himmelblau": Budget(0.005, 600), "rosenbrock_2d": Budget(1e-3, 4000)}),
                OptConfig("nesterov", {"momentum": 0.9, "nesterov": True}, lr=0.02, epochs=600, exact="nesterov",
                          budgets={"himmelblau": Budget(0.005, 600)}, exemptions={"P1:rosenbrock_2d": _ROSEN},
                          known={"P5@foreach": "with nesterov=True the foreach path adds momentum*buf into the grads in place "
                                 "(torch._foreach_add_(grads, bufs)), so p.grad is modified by step()"}),
            ),
            impls=_all_impls(_FLF),
            source="torch.optim.SGD",
        ),
        OptimizerInfo(
            "adam",
            O.Adam,
            configs=(
                OptConfig("", {}, lr=0.05, epochs=2000, budgets=adam_budgets, exemptions={"P1:rosenbrock_2d": _ROSEN}),
                OptConfig("amsgrad", {"amsgrad": True}, lr=0.05, epochs=2000, budgets=adam_budgets,
                          exemptions={"P1:rosenbrock_2d": _ROSEN}),
            ),
            impls=_all_impls(_FLF),
            source="torch.optim.Adam",
        ),
        OptimizerInfo(
            "adamw",
            O.AdamW,
            configs=(OptConfig("", {"weight_decay": 0.0}, lr=0.05, epochs=2000, budgets=adam_budgets,
                               exemptions={"P1:rosenbrock_2d": _ROSEN}),
                     OptConfig("amsgrad", {"weight_decay": 0.0, "amsgrad": True}, lr=0.05, epochs=2000,
                               budgets=adam_budgets, exemptions={"P1:rosenbrock_2d": _ROSEN})),
            impls=_all_impls(_FLF),
            weight_decay="decoupled",
            source="torch.optim.AdamW",
        ),
        OptimizerInfo("adamax", O.Adamax, configs=(OptConfig("", {}, lr=0.05, epochs=2000, budgets=adam_budgets,
                                                             exemptions={"P1:rosenbrock_2d": _ROSEN}),),
                      impls=_all_impls(_FL), source="torch.optim.Adamax"),
        OptimizerInfo(
            "nadam",
            O.NAdam,
            configs=(OptConfig("", {}, lr=0.05, epochs=2000, budgets=adam_budgets, exemptions={"P1:rosenbrock_2d": _ROSEN}),
                     OptConfig("decoupled", {"decoupled_weight_decay": True}, lr=0.05, epochs=2000, budgets=adam_budgets,
                               exemptions={"P1.l2": _L2_DECOUPLED, "P1:rosenbrock_2d": _ROSEN})),
            impls=_all_impls(_FL),
            known={"P8.state_dict@float64": "state['mu_product'] is created as a float32 scalar whatever the param dtype, and "
                         "load_state_dict casts it to the param's dtype, so a float64 run resumed from a state_dict "
                         "differs from the uninterrupted one (by ~1e-12)"},
            source="torch.optim.NAdam",
        ),
        OptimizerInfo(
            "radam",
            O.RAdam,
            configs=(OptConfig("", {}, lr=0.05, epochs=2000, budgets=adam_budgets, exemptions={"P1:rosenbrock_2d": _ROSEN}),
                     OptConfig("decoupled", {"decoupled_weight_decay": True}, lr=0.05, epochs=2000, budgets=adam_budgets,
                               exemptions={"P1.l2": _L2_DECOUPLED, "P1:rosenbrock_2d": _ROSEN})),
            impls=_all_impls(_FL),
            source="torch.optim.RAdam",
        ),
        OptimizerInfo("adagrad", O.Adagrad, configs=(OptConfig("", {}, lr=0.5, epochs=2000,
                                                               budgets={"booth": Budget(2.0, 2000)},
                                                               exemptions={"P1:rosenbrock_2d": _ROSEN}),),
                      impls={"cpu": _FLF, "cuda": _FL}, source="torch.optim.Adagrad"),
        OptimizerInfo("adadelta", O.Adadelta,
                      configs=(OptConfig("", {}, lr=30.0, epochs=2000, lr_decay=0.997),),
                      impls=_all_impls(_FL),
                      exemptions={**{f"P1:{t}": "Adadelta's step √(E[Δx²]+eps)/√(E[g²]+eps)·g starts at √eps·lr and "
                                                 "adapts slowly; measured: no constant lr in 5..100 reaches 1e-4 within "
                                                 "3000 epochs from these starts (booth and the seed pass with lr 30 "
                                                 "decayed by 0.997 per epoch)"
                                     for t in ("sphere_2d", "rosenbrock_2d", "himmelblau")}},
                      source="torch.optim.Adadelta"),
        OptimizerInfo(
            "rmsprop",
            O.RMSprop,
            configs=(OptConfig("", {}, lr=0.01, epochs=2000, exemptions=_RMS_EXEMPT),
                     OptConfig("centered", {"centered": True}, lr=0.01, epochs=2000, exemptions=_RMS_EXEMPT),
                     OptConfig("momentum", {"momentum": 0.5}, lr=0.005, epochs=2000, exemptions=_RMS_EXEMPT)),
            impls=_all_impls(_FL),
            source="torch.optim.RMSprop",
        ),
        OptimizerInfo(
            "rprop",
            O.Rprop,
            configs=(OptConfig("", {}, lr=0.01, epochs=1000, exemptions={"P1:rosenbrock_2d": _ROSEN}),),
            impls=_all_impls(_FL),
            weight_decay=None,
            exemptions={"P12": f"Rprop {_NO_WD}", "P1.l2": f"Rprop {_NO_WD}",
                        "P3": "Rprop's per-element step sizes are clamped to step_sizes[0] (1e-6) from the second "
                              "step on, so lr=0 still moves by ±1e-6: lr only sets the initial step size"},
            source="torch.optim.Rprop",
        ),
        OptimizerInfo("asgd", O.ASGD,
                      configs=(OptConfig("", {}, lr=0.05, epochs=1500, budgets={"himmelblau": Budget(0.01, 1500)},
                                         exemptions={"P1:rosenbrock_2d": _ROSEN}),),
                      impls=_all_impls(_FL),
                      exemptions={"P13": "ASGD multiplies x by (1 - λ·η) every step (λ = 1e-4 by default): a built-in "
                                         "decay toward 0, so it is not translation equivariant by design"},
                      known={"P15.forloop@float64": "the step size eta is kept as a float32 scalar tensor (_get_scalar_dtype) and the "
                                    "for-loop and foreach paths round it differently, so float64 runs differ by ~1e-8 "
                                    "relative between implementations"},
                      source="torch.optim.ASGD"),
        OptimizerInfo(
            "lbfgs",
            O.LBFGS,
            configs=(OptConfig("", {}, lr=1.0, epochs=50),
                     OptConfig("strong_wolfe", {"line_search_fn": "strong_wolfe"}, lr=1.0, epochs=50,
                               exemptions={"P15.dtype": _LINESEARCH_DT,
                                           "P13": "the strong-Wolfe line search makes discrete decisions on rounded "
                                                  "loss values, which differ at the shifted magnitude"},
                               known={"P3": "with lr=0 the strong-Wolfe line search starts at step 0 and its "
                                            "cubic interpolation divides by zero (ZeroDivisionError)"})),
            impls=_all_impls(_D),
            closure=True,
            elementwise=False,
            maximize=False,
            weight_decay=None,
            exemptions={
                "P4": "LBFGS flattens every parameter's gradient into one vector: a parameter without .grad enters "
                      "it as zeros and the quasi-Newton direction built from the history still moves it (measured: "
                      "0.2 after 3 steps)",
                "P5": "step(closure) re-evaluates the closure, which zeroes and recomputes .grad by design",
                "P6": "LBFGS supports one param group only (it raises on per-parameter options)",
                "P7": "LBFGS couples all parameters by design: one flattened curvature history and one line search",
                "P11": f"LBFGS {_NO_MAX}",
                "P12": f"LBFGS {_NO_WD}",
                "P1.l2": f"LBFGS {_NO_WD}",
            },
            known={
                "P8.deepcopy": "Optimizer.__getstate__ keeps only defaults/state/param_groups, so a deepcopy of LBFGS "
                               "lacks self._params and step() raises AttributeError",
                "P14": "_gather_flat_grad uses p.grad.view(-1), which raises on the non-contiguous grad of a "
                       "transposed parameter",
            },
            source="torch.optim.LBFGS",
        ),
        OptimizerInfo(
            "sparseadam",
            O.SparseAdam,
            configs=(OptConfig("", {}, lr=0.05, epochs=2000, budgets=adam_budgets,
                               exemptions={"P1:rosenbrock_2d": _ROSEN}),),
            impls=_all_impls(_D),
            sparse_grad=True,
            weight_decay=None,
            exemptions={
                "P3": "SparseAdam rejects lr=0 at construction (it requires 0 < lr)",
                "P12": f"SparseAdam {_NO_WD}",
                "P1.l2": f"SparseAdam {_NO_WD}",
            },
            source="torch.optim.SparseAdam",
        ),
    ]
    if hasattr(O, "Adafactor"):
        reg.append(
            OptimizerInfo(
                "adafactor",
                O.Adafactor,
                configs=(OptConfig("", {}, lr=0.05, epochs=1500, budgets={"sphere_2d": Budget(1.0, 1500)}),),
                impls=_all_impls(_FL),
                elementwise=False,
                weight_decay="decoupled",
                exemptions={
                    "P13": f"Adafactor {_SCALE}",
                    "P1:rosenbrock_2d": _ROSEN,
                    "P1:himmelblau": "Adafactor's relative step (RMS of x times lr) hovers at ~1e-2 from Himmelblau's "
                                     "minimiser with a constant lr (measured: 3000 epochs, lr 0.01-0.05)",
                },
                source="torch.optim.Adafactor",
            )
        )
    if hasattr(O, "Muon"):
        reg.append(
            OptimizerInfo(
                "muon",
                O.Muon,
                configs=(
                    OptConfig("", {"weight_decay": 0.0}, lr=0.1, epochs=80, exemptions={"P1": _MUON_P1}),
                    OptConfig("nomomentum", {"weight_decay": 0.0, "momentum": 0.0, "nesterov": False}, lr=1.0,
                              epochs=80, lr_decay=0.85,
                              exemptions={f"P{i}": "the contract is checked on Muon's default config"
                                          for i in range(2, 18)}),
                ),
                random_starts=1,
                # Newton-Schulz in bfloat16 costs ~40 ms a step on CPU: the contract runs in float32 only.
                contract_dtypes=("float32",),
                impls=_all_impls(_D),
                elementwise=False,
                matrix_only=True,
                maximize=False,
                weight_decay="decoupled",
                targets=("sphere_4d",),
                exemptions={"P11": f"Muon {_NO_MAX}"},
                source="torch.optim.Muon",
            )
        )
    return reg
