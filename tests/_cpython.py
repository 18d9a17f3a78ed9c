"""Load one of the running interpreter's own test modules with its server
machinery swapped for adapters on testservers' public API.

:func:`load` reads ``test/<name>.py`` from the interpreter, applies exact
text replacements (each must match: a CPython change that moves the
machinery fails loudly instead of silently testing the original), and
executes the result as a fresh module.  Only the replaced lines differ
from CPython's file; every test method runs unedited.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
import unittest
from typing import Any


def load(name: str, replacements: list[tuple[str, str]], **names: Any) -> types.ModuleType:
    """Return ``test.<name>`` with ``replacements`` applied and ``names`` predefined."""
    spec = importlib.util.find_spec(f"test.{name}")
    if spec is None or spec.origin is None:
        raise unittest.SkipTest("CPython's test package is not installed")
    with open(spec.origin, encoding="utf-8") as f:
        source = f.read()
    for old, new in replacements:
        if old not in source:
            raise AssertionError(f"{name}: {old!r} not found; the adapter needs updating")
        source = source.replace(old, new)
    module = types.ModuleType(f"test._testservers_{name}")
    module.__file__ = spec.origin  # certdata/ and friends are found beside it
    module.__package__ = "test"
    module.__dict__.update(names)
    sys.modules[module.__name__] = module
    exec(compile(source, spec.origin, "exec"), module.__dict__)
    return module


class ServeForever:
    """socketserver's serving loop on a testservers server (a mixin).

    ``serve_forever()`` starts the server and blocks until ``shutdown()``
    has stopped it; a ``shutdown()`` that comes first makes it return at
    once (socketserver would hang there).
    """

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        with self._serving:  # type: ignore[attr-defined]
            if self._shut_down.is_set():  # type: ignore[attr-defined]
                return
            self.start()  # type: ignore[attr-defined]
        self._shut_down.wait()  # type: ignore[attr-defined]

    def shutdown(self) -> None:
        with self._serving:  # type: ignore[attr-defined]
            self._shut_down.set()  # type: ignore[attr-defined]
        self.stop()  # type: ignore[attr-defined]

    def _init_serving(self) -> None:
        self._serving = threading.Lock()
        self._shut_down = threading.Event()


def module_thread_check(also: Any = None) -> tuple[Any, Any]:
    """``(setUpModule, tearDownModule)`` that fail the module if a thread is left behind.

    CPython's own check (``threading_helper.threading_setup`` /
    ``threading_cleanup``); where regrtest would only mark the environment
    altered, the teardown raises.  ``also`` is the loaded module's own
    ``setUpModule``, run first (its module cleanups run too).
    """
    from test import support
    from test.support import threading_helper

    info: list[Any] = []

    def setUpModule() -> None:
        if also is not None:
            also()
        info[:] = threading_helper.threading_setup()

    def tearDownModule() -> None:
        unittest.case.doModuleCleanups()
        support.environment_altered = False
        threading_helper.threading_cleanup(*info)
        if support.environment_altered:
            raise AssertionError("threading_helper: a thread was left behind")

    return setUpModule, tearDownModule
