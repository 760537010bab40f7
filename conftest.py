"""Repository-wide test setup (at the root, so it is loaded whatever paths pytest is given).

The ``--board`` option, the ``board`` and ``golden`` fixtures and the ``hardware`` marker come
from neurochip's pytest plugin (``neurochip.pytest_plugin``), which an installed neurochip
registers through its ``pytest11`` entry point. When the plugin is not registered yet (a
checkout whose install predates the entry point, or plugin autoloading disabled) it is
registered here, once. Being at the root, it also makes ``pytest --board emulator`` (with
a space) work from the repository root: this file is loaded before the arguments are read
for good, so ``emulator`` is taken as the option's value rather than as the folder.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    import neurochip.pytest_plugin as plugin

    if not pluginmanager.is_registered(plugin):
        pluginmanager.register(plugin, "neurochip.pytest_plugin")
