"""Run optbench's checks inside your own pytest suite, in the manner of scikit-learn's
``parametrize_with_checks``::

    from optbench.testing import parametrize_with_checks
    from mypkg.optim import MyAdam

    @parametrize_with_checks([MyAdam])   # compile=False leaves out P21 (torch.compile)
    def test_optbench(check):
        check()

Your suite then collects one test per property and case (``test_optbench[p05_grad_untouched-MyAdam-
foreach-float64-cpu]``); a FAIL reads as the diagnosis followed by a standalone reproducer, a declared
exemption or a detected convention is a skip with its reason, a declared known bug a strict xfail.
The checks are the same plan ``optbench validate`` and optbench's own ``pytest validation`` run.
pytest is imported only when this function is called.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .verdict import CheckItem


class Check:
    """One collected check; calling it runs the check and reports through pytest."""

    def __init__(self, item: CheckItem) -> None:
        self.item = item

    def __call__(self) -> None:
        from pytest_optbench.checks import run

        run(self.item)

    def __repr__(self) -> str:
        return f"Check({self.item.nodeid})"


def _spec_text(obj: Any) -> str:
    module, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if module and qual and "<" not in qual:
        return f"{module}:{qual}"
    return repr(obj)


def _infos(optimizers: Sequence[Any], config: str | Mapping[str, Any] | None) -> list[Any]:
    from .optimizers.user import _check_entry, load_config, load_user_optimizers, make_user_info

    texts = [o for o in optimizers if isinstance(o, str)]
    if texts and len(texts) == len(optimizers):
        path = config if isinstance(config, str) else None
        return load_user_optimizers(texts, config_file=path)
    table: Mapping[str, Any] = config if isinstance(config, Mapping) else (
        load_config(config, None)[0] if isinstance(config, str) else {})
    out = []
    for obj in optimizers:
        text = obj if isinstance(obj, str) else _spec_text(obj)
        if isinstance(obj, str):
            out.extend(load_user_optimizers([obj]))
            continue
        name = getattr(obj, "__name__", None) or type(obj).__name__
        entry = dict(table.get(name, {}))
        _check_entry(name, entry, "parametrize_with_checks config")
        out.append(make_user_info(obj, text, name, entry))
    return out


def check_items(optimizers: Sequence[Any], *, config: str | Mapping[str, Any] | None = None,
                devices: Sequence[str] | None = None, distributed: bool = False, compile: bool = True,
                select: str | None = None) -> list[CheckItem]:
    """The check items for ``optimizers`` (classes, factories or ``"[NAME=]module:attr"`` strings)."""
    from .devices import cuda_skip_reason
    from .plan import Selection, checks

    devs = tuple(devices) if devices else (("cpu",) if cuda_skip_reason() else ("cpu", "cuda"))
    plans = ("optimizers",) + (("distributed",) if distributed else ()) + (("compile",) if compile else ()) + ("memory",)
    items = checks(Selection(optimizers=_infos(optimizers, config), devices=devs), plans)
    if select is None:
        return items
    from .optimizers.plan import narrow
    from .validation import selected

    items = [i for i in items if selected(select, i.nodeid)]
    narrow(items)  # P1's shared runs cover only the targets selected
    return items


def parametrize_with_checks(optimizers: Sequence[Any], *, config: str | Mapping[str, Any] | None = None,
                            devices: Sequence[str] | None = None, distributed: bool = False, compile: bool = True,
                            select: str | None = None):
    """A ``pytest.mark.parametrize("check", ...)`` over every optbench check of ``optimizers``.

    ``config``: a TOML path or a mapping ``{name: {lr = ..., exemptions = {...}, ...}}`` (the keys of
    ``[tool.optbench.optimizers.NAME]``); ``devices``: default cpu, plus cuda when visible;
    ``distributed``: add P18-P20 (two gloo processes); ``compile``: P21, the step under torch.compile (on by
    default; Inductor needs a C++ compiler on CPU); ``select``: keep ids containing this text (words joined by
    or/and/not, as ``optbench validate -k``). The state-memory
    row (``test_state_memory``, MEASURED) is always collected.
    """
    import pytest

    from pytest_optbench.checks import marks_for

    params = []
    for item in check_items(optimizers, config=config, devices=devices, distributed=distributed, compile=compile,
                            select=select):
        short = item.test.removeprefix("test_")
        params.append(pytest.param(Check(item), id=f"{short}-{item.id}", marks=marks_for(item)))
    return pytest.mark.parametrize("check", params)
