"""CPython's own test_logging server tests, run on testservers.

This loads the running interpreter's ``test/test_logging.py`` source, cuts
out its "server_helper" section (the socketserver/asyncore/smtpd based
``TestSMTPServer``, ``TestTCPServer``... classes) and puts in their place a
single ``from protocols import ...`` line.  Nothing else in the file is
changed.  The handler test classes are then run unmodified: if our classes
are not drop-in replacements, these fail.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import unittest

import protocols

SECTION_START = "# -- The following section could be moved into a server_helper.py module"
SECTION_END = "# - end of server_helper section"

#: The names the replaced section defined, all imported from protocols.
COMPAT_NAMES = (
    "TestSMTPServer",
    "TestTCPServer",
    "TestUDPServer",
    "TestHTTPServer",
    "TestUnixStreamServer",
    "TestUnixDatagramServer",
)


def load_patched_test_logging() -> types.ModuleType:
    """Return CPython's test_logging with its server helpers replaced by ours."""
    spec = importlib.util.find_spec("test.test_logging")
    if spec is None or spec.origin is None:
        raise unittest.SkipTest("CPython's test package is not installed")
    with open(spec.origin, encoding="utf-8") as f:
        source = f.read()
    start = source.index(SECTION_START)
    end = source.index(SECTION_END)
    replacement = f"from protocols import {', '.join(COMPAT_NAMES)}\n"
    patched = source[:start] + replacement + source[end:]
    module = types.ModuleType("test._testservers_patched_test_logging")
    module.__file__ = spec.origin  # HTTPHandlerTest finds certdata/ beside it
    module.__package__ = "test"  # 3.12+ does `from . import smtpd`
    sys.modules[module.__name__] = module
    exec(compile(patched, spec.origin, "exec"), module.__dict__)
    return module


_tl = load_patched_test_logging()


def setUpModule() -> None:
    _tl.setUpModule()


class PatchedSourceTest(unittest.TestCase):
    def test_section_replaced_by_our_classes(self) -> None:
        for name in COMPAT_NAMES:
            cls = getattr(_tl, name)
            self.assertIs(cls, getattr(protocols, name))
            self.assertTrue(cls.__module__.startswith("protocols"))
            self.assertIs(cls.__test__, False)
        self.assertFalse(hasattr(_tl, "ControlMixin"))


# The unmodified CPython test classes, collected here under their own names.
class SocketHandlerTest(_tl.SocketHandlerTest):
    pass


class UnixSocketHandlerTest(_tl.UnixSocketHandlerTest):
    pass


class DatagramHandlerTest(_tl.DatagramHandlerTest):
    pass


class UnixDatagramHandlerTest(_tl.UnixDatagramHandlerTest):
    pass


class SysLogHandlerTest(_tl.SysLogHandlerTest):
    pass


class UnixSysLogHandlerTest(_tl.UnixSysLogHandlerTest):
    pass


class IPv6SysLogHandlerTest(_tl.IPv6SysLogHandlerTest):
    pass


class HTTPHandlerTest(_tl.HTTPHandlerTest):
    pass


class SMTPHandlerTest(_tl.SMTPHandlerTest):
    pass
