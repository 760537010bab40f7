"""Shared test setup.

The ``--board`` option, the ``board`` and ``golden`` fixtures and the ``hardware`` marker come
from neurochip's pytest plugin (``neurochip.pytest_plugin``), which an installed neurochip
registers through its ``pytest11`` entry point. When the plugin is not registered yet (a
checkout whose install predates the entry point, or plugin autoloading disabled) it is
registered here, once.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    import neurochip.pytest_plugin as plugin

    if not pluginmanager.is_registered(plugin):
        pluginmanager.register(plugin, "neurochip.pytest_plugin")
