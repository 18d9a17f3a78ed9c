"""pytest fixtures for testservers (loaded by pytest through the ``pytest11`` entry point).

Installing the distribution is enough: pytest finds this module through the
``testservers`` entry point of the ``pytest11`` group (or load it by hand
with ``-p protocols.pytest_plugin``).  It is the only module of the package
that imports pytest, and only pytest imports it.

Fixtures (function scope; each server is started, and stopped at teardown):
``http_server`` (strict), ``https_server`` (strict, the localhost
certificate; clients trust ``protocols.CA_FILE``), ``smtp_server``,
``tcp_server``, ``udp_server``, ``unix_stream_server``,
``unix_datagram_server``, ``syslog_server`` (UDP), and ``make_server(cls,
*args, **kwargs)`` for any server class and options.

One reactor thread per pytest process (so per pytest-xdist worker): every
server of a worker shares it.  It starts with a test's first server and is
joined when that test's servers stop, so no thread outlives a test (a test
that checks for dangling threads, or starts and joins the reactor itself,
sees none).

At teardown every server the test used is stopped and checked: handler
errors (with tracebacks), and for HTTP servers in strict mode unexpected
requests (with their near-miss reports) and unused expectations make the
test **error** at teardown with one readable report.  Opt out per test with
``@pytest.mark.testservers(strict=False)`` (HTTP fixtures not strict, no
expectation checks; handler errors still fail) or
``@pytest.mark.testservers(check=False)`` (no teardown checks at all).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from reactor import HandlerErrors

from . import _checks
from ._datagram import UDPServer, UnixDatagramServer
from ._stream import TCPServer, UnixStreamServer
from ._tls import server_context
from .http import HTTPServer
from .smtp import SMTPServer
from .syslog import SyslogUDPServer

__all__ = [
    "http_server",
    "https_server",
    "make_server",
    "smtp_server",
    "syslog_server",
    "tcp_server",
    "udp_server",
    "unix_datagram_server",
    "unix_stream_server",
]

S = TypeVar("S")

MARKER = "testservers"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(strict=True, check=True): testservers fixtures' options for this test: "
        "strict=False makes HTTP fixtures lenient and skips the expectation checks; "
        "check=False skips every teardown check",
    )


def _options(request: pytest.FixtureRequest) -> tuple[bool, bool]:
    strict, check = True, True
    # iter_markers() yields the closest mark first (function, class, module):
    # apply them outermost first so a test's own mark wins.
    for mark in reversed(list(request.node.iter_markers(MARKER))):
        unknown = set(mark.kwargs) - {"strict", "check"}
        if mark.args or unknown:
            raise pytest.UsageError(
                f"@pytest.mark.{MARKER} takes only strict= and check= keywords, "
                f"not {mark.args or sorted(unknown)}"
            )
        strict = bool(mark.kwargs.get("strict", strict))
        check = bool(mark.kwargs.get("check", check))
    return strict, check


class ServerFactory:
    """``make_server(cls, *args, **kwargs)``: construct, start, and stop + check at teardown.

    HTTP servers are strict unless ``strict=`` is passed or the test is
    marked ``@pytest.mark.testservers(strict=False)``.
    """

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.servers: list[Any] = []

    def __call__(self, cls: Callable[..., S], *args: Any, **kwargs: Any) -> S:
        if (
            "strict" not in kwargs
            and isinstance(cls, type)
            and issubclass(cls, HTTPServer)
            and _takes_strict(cls)
        ):
            kwargs["strict"] = self.strict
        server = cls(*args, **kwargs)
        try:
            server.start()  # type: ignore[attr-defined]
        except BaseException:
            server.stop()  # type: ignore[attr-defined]
            raise
        self.servers.append(server)
        return server

    def finish(self, check: bool) -> str | None:
        """Stop every server (newest first); return the report of what failed."""
        reports: list[str] = []
        for server in reversed(self.servers):
            try:
                server.stop()
            except HandlerErrors as exc:  # raise_errors=True: the check lists the same errors
                if not check:
                    reports.append(f"{server!r}: stop() raised HandlerErrors: {exc}")
            except Exception as exc:  # noqa: BLE001 - report, and stop the others
                reports.append(f"{server!r}: stop() raised {type(exc).__name__}: {exc}")
        if check:
            for server in self.servers:
                strict = bool(getattr(server, "strict", False))
                report = _checks.server_report(server, strict=strict)
                if report is not None:
                    reports.append(report)
        self.servers.clear()
        return "\n\n".join(reports) if reports else None


def _takes_strict(cls: type) -> bool:
    import inspect

    try:
        return "strict" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


@pytest.fixture
def make_server(request: pytest.FixtureRequest) -> Iterator[ServerFactory]:
    """A factory: ``make_server(SMTPServer, auth={"u": "p"})`` returns a started server."""
    strict, check = _options(request)
    factory = ServerFactory(strict)
    yield factory
    report = factory.finish(check)
    if report is not None:
        pytest.fail(f"testservers teardown check failed:\n{report}", pytrace=False)


@pytest.fixture
def http_server(make_server: ServerFactory) -> HTTPServer:
    """A started, strict :class:`HTTPServer` on 127.0.0.1 and a free port."""
    return make_server(HTTPServer)


@pytest.fixture
def https_server(make_server: ServerFactory) -> HTTPServer:
    """A started, strict HTTPS server presenting the localhost certificate."""
    return make_server(HTTPServer, ssl_context=server_context())


@pytest.fixture
def smtp_server(make_server: ServerFactory) -> SMTPServer:
    """A started :class:`SMTPServer` recording every message."""
    return make_server(SMTPServer)


@pytest.fixture
def tcp_server(make_server: ServerFactory) -> TCPServer:
    """A started :class:`TCPServer` recording every connection as a ``Stream``."""
    return make_server(TCPServer)


@pytest.fixture
def udp_server(make_server: ServerFactory) -> UDPServer:
    """A started :class:`UDPServer` recording every datagram."""
    return make_server(UDPServer)


@pytest.fixture
def unix_stream_server(make_server: ServerFactory) -> UnixStreamServer:
    """A started :class:`UnixStreamServer` on a fresh private path."""
    return make_server(UnixStreamServer)


@pytest.fixture
def unix_datagram_server(make_server: ServerFactory) -> UnixDatagramServer:
    """A started :class:`UnixDatagramServer` on a fresh private path."""
    return make_server(UnixDatagramServer)


@pytest.fixture
def syslog_server(make_server: ServerFactory) -> SyslogUDPServer:
    """A started :class:`SyslogUDPServer` parsing every message."""
    return make_server(SyslogUDPServer)
