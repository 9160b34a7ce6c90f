"""Root conftest: the optbench pytest plugin (pytest11 entry point ``optbench``) supplies the
options; the parametrized fixtures come from ``fixtures/``. Parametrizers run in reverse of this
list, so ids read optimizer-impl-target-dtype-device."""

import pytest

pytest_plugins = ["pytester", "fixtures.devices", "fixtures.optimizers", "fixtures.checks", "fixtures.threads"]


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("optbench"):
        raise pytest.UsageError(
            "the optbench pytest plugin is not loaded; install the project first: pip install -e . (or run tox)"
        )
