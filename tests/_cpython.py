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

Replacement = tuple["str | tuple[str, str]", str]


def load(name: str, replacements: list[Replacement], **names: Any) -> types.ModuleType:
    """Return ``test.<name>`` with ``replacements`` applied and ``names`` predefined.

    Each replacement is ``(old, new)``: every occurrence of the text
    ``old``, or, for ``old = (start, end)``, the section from the line
    ``start`` up to (not including) the line ``end``.
    """
    spec = importlib.util.find_spec(f"test.{name}")
    if spec is None or spec.origin is None:
        raise unittest.SkipTest("CPython's test package is not installed")
    with open(spec.origin, encoding="utf-8") as f:
        source = f.read()
    for old, new in replacements:
        if isinstance(old, tuple):
            start, end = source.find(old[0]), source.find(old[1])
            if not 0 <= start < end:
                raise AssertionError(f"{name}: section {old!r} not found; update the adapter")
            source = source[:start] + new + source[end:]
        elif old in source:
            source = source.replace(old, new)
        else:
            raise AssertionError(f"{name}: {old!r} not found; the adapter needs updating")
    module = types.ModuleType(f"test._testservers_{name}")
    module.__file__ = spec.origin  # certdata/ and friends are found beside it
    module.__package__ = "test"
    module.__dict__.update(names)
    sys.modules[module.__name__] = module
    exec(compile(source, spec.origin, "exec"), module.__dict__)
    return module


class ServeForever:
    """socketserver's serving loop on a testservers server (a mixin).

    The adapter starts the server in its constructor (the reactor thread
    then exists before a test's ``threading_helper`` snapshot, as the
    original's serving thread does); ``serve_forever()`` blocks until
    ``shutdown()`` has stopped it (even when ``shutdown()`` came first,
    where socketserver would hang).
    """

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._shut_down.wait()  # type: ignore[attr-defined]

    def shutdown(self) -> None:
        self.stop()  # type: ignore[attr-defined]
        self._shut_down.set()  # type: ignore[attr-defined]

    def _serve(self) -> None:
        self._shut_down = threading.Event()
        self.start()  # type: ignore[attr-defined]


def module_thread_check(also: Any = None) -> tuple[Any, Any]:
    """``(setUpModule, tearDownModule)`` that fail the module if a thread is left behind.

    CPython's own check (``threading_helper.threading_setup`` /
    ``threading_cleanup`` around the module, and the tests' own
    ``reap_threads``); where regrtest would only mark the environment
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
        support.environment_altered = False  # a test's own reap_threads sets it too

    def tearDownModule() -> None:
        unittest.case.doModuleCleanups()
        threading_helper.threading_cleanup(*info)
        if support.environment_altered:
            raise AssertionError("threading_helper: a thread was left behind")

    return setUpModule, tearDownModule


def make_https_server(
    case: unittest.TestCase,
    *,
    context: Any = None,
    certfile: str | None = None,
    host: str = "127.0.0.1",
    handler_class: Any = None,
) -> Any:
    """``test.ssl_servers.make_https_server`` on testservers' ``TestHTTPServer``.

    The default handler serves the test directory like CPython's
    ``RootedHTTPRequestHandler``; the server stops at the test's cleanup,
    raising the handler errors it recorded.
    """
    import os
    import ssl
    from http.server import SimpleHTTPRequestHandler

    import test

    from protocols import TestHTTPServer

    here = os.path.dirname(test.__file__)
    if certfile is None:  # ssl_servers.CERTFILE: certdata/ from 3.11 on
        certfile = os.path.join(here, "certdata", "keycert.pem")
        if not os.path.exists(certfile):
            certfile = os.path.join(here, "keycert.pem")

    class Rooted(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=here, **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    if context is None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile)
    server = TestHTTPServer(
        (host, 0), handler_class=handler_class or Rooted, sslctx=context, raise_errors=True
    )
    server.start()
    case.addCleanup(server.stop)
    return server
