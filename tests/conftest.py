"""Load the testservers pytest plugin when its entry point is not installed.

Installing the distribution registers ``protocols.pytest_plugin`` through the
``pytest11`` entry point (name ``testservers``); an install made before the
entry point existed, or ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``, lacks it.
Registering it a second time would fail, hence the check.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    pm = config.pluginmanager
    if not pm.has_plugin("testservers") and not pm.has_plugin("protocols.pytest_plugin"):
        pm.import_plugin("protocols.pytest_plugin")
