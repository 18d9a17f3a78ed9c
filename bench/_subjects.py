"""Servers under test behind one interface, and the clients that talk to them.

A :class:`Subject` is one server implementation of one kind (``tcp``,
``udp``, ``unix``, ``unixdgram``, ``http``, ``smtp``): ours (testservers),
a peer (CPython's test_logging helpers, socketserver / http.server used
directly, aiosmtpd, pytest-httpserver) or the floor (:mod:`bench._floor`).
``subject.create(poll_interval)`` builds one bound instance (what each
library does in its constructor); the returned :class:`Instance` then has
``start()``, ``wait_ready()``, ``stop()``, ``address`` and
``serving_thread()``.

Every subject answers the same client request for its kind (:func:`request`):
a line echoed over TCP, a datagram echoed over UDP, ``GET /`` answered
``200``, one message through ``smtplib.sendmail``.  Each peer is driven the
way its own documentation and CPython's test suite drive it; none is given a
handicap: the peers' ``poll_interval`` is the one being measured, exactly as
ours is.

Only subjects whose library imports are listed by :func:`subjects`;
``import_notes()`` says which were left out and why.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import os
import smtplib
import socket
import socketserver
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench._floor import MinimalServer

__all__ = [
    "KINDS",
    "Instance",
    "Subject",
    "import_notes",
    "request",
    "subjects",
]

KINDS = ("tcp", "udp", "unix", "unixdgram", "http", "smtp")

#: Client socket timeout: a broken server fails the benchmark, never hangs it.
CLIENT_TIMEOUT = 10.0

_notes: dict[str, str] = {}


def import_notes() -> dict[str, str]:
    """Peers or servers that could not be imported, with the reason."""
    _load()
    return dict(_notes)


# -- lazy imports of the optional subjects -------------------------------------

_loaded = False
_tl: Any = None  # test.test_logging
_protocols: Any = None
_aiosmtpd_controller: Any = None
_pytest_httpserver: Any = None


def _load() -> None:
    global _loaded, _tl, _protocols, _aiosmtpd_controller, _pytest_httpserver
    if _loaded:
        return
    _loaded = True
    import protocols

    _protocols = protocols
    for name in ("TestHTTPServer", "TestSMTPServer"):
        if not hasattr(protocols, name):
            _notes[f"testservers {name}"] = "not in protocols yet"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import test.test_logging as tl  # type: ignore[import-not-found]
        _tl = tl
    except Exception as exc:  # the interpreter may ship without its test package
        _notes["test_logging helpers"] = f"cannot import test.test_logging: {exc!r}"
    try:
        from aiosmtpd.controller import Controller

        _aiosmtpd_controller = Controller
    except ImportError as exc:
        _notes["aiosmtpd"] = f"not installed ({exc}); pip install aiosmtpd"
    try:
        import pytest_httpserver

        _pytest_httpserver = pytest_httpserver
    except ImportError as exc:
        _notes["pytest-httpserver"] = f"not installed ({exc}); pip install pytest-httpserver"


# -- handlers: the same work for every implementation --------------------------


def _tcp_handler(request: Any) -> None:
    """socketserver-style stream handler: echo one line (ours and CPython's)."""
    line = request.rfile.readline()
    if line:
        request.wfile.write(line)


def _udp_handler(request: Any) -> None:
    """socketserver-style datagram handler: echo the packet."""
    request.wfile.write(request.packet)


def _http_handler(request: Any) -> None:
    """test_logging-style HTTP handler: ``200 ok``."""
    request.send_response(200)
    request.send_header("Content-Type", "text/plain")
    request.send_header("Content-Length", "2")
    request.end_headers()
    request.wfile.write(b"ok")


def _smtp_handler(peer: Any, mailfrom: Any, rcpttos: Any, data: Any) -> None:
    """test_logging-style SMTP handler: accept and drop."""


class _EchoLine(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        _tcp_handler(self)


class _EchoDatagram(socketserver.DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.packet)


class _OkHTTP(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        _http_handler(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _AiosmtpdSink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def _free_port() -> int:
    """A currently free loopback port (aiosmtpd's Controller cannot use port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _unix_path() -> str:
    return os.path.join(tempfile.mkdtemp(prefix="tsb-"), "s")


def _cleanup_unix(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(path))


# -- instances --------------------------------------------------------------------


class Instance:
    """One bound server.  Subclasses wrap each library's own calls."""

    address: Any = None
    #: Family of :attr:`address` for the client side.
    family: int = socket.AF_INET

    def start(self) -> None:
        raise NotImplementedError

    def wait_ready(self) -> None:
        """Block until the server serves (a no-op when ``start()`` already waited)."""

    def stop(self) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        """Remove what the benchmark itself made (a temporary directory); not timed.

        Removing a directory costs ~0.15 ms on this machine's ext4, which
        would otherwise be charged to the Unix servers' stop().
        """

    def serving_thread(self) -> threading.Thread | None:
        """The thread whose CPU time and wake-ups are the server's idle cost."""
        return None


class _Ours(Instance):
    def __init__(self, server: Any, unix_path: str | None = None) -> None:
        self.server = server
        self.address = server.server_address
        self.family = server.family
        self._unix_path = unix_path

    def start(self) -> None:
        self.server.start()

    def wait_ready(self) -> None:
        self.server.ready.wait(10)

    def stop(self) -> None:
        self.server.stop()

    def cleanup(self) -> None:
        if self._unix_path is not None:
            _cleanup_unix(self._unix_path)

    def serving_thread(self) -> threading.Thread | None:
        import reactor

        r = reactor.current_reactor()
        return r.thread if r is not None else None


class _ControlMixinPeer(Instance):
    """CPython's test_logging helpers: start() spawns the thread, ``ready`` is set in it."""

    def __init__(self, server: Any, unix_path: str | None = None) -> None:
        self.server = server
        # TestSMTPServer (an asyncore dispatcher) has no server_address.
        self.address = getattr(server, "server_address", None) or server.socket.getsockname()
        self.family = getattr(server, "address_family", socket.AF_INET)
        self._unix_path = unix_path

    def start(self) -> None:
        self.server.start()

    def wait_ready(self) -> None:
        ready = getattr(self.server, "ready", None)
        if ready is not None:  # TestSMTPServer has none: it listens from __init__
            ready.wait(10)

    def stop(self) -> None:
        self.server.stop()

    def cleanup(self) -> None:
        if self._unix_path is not None:
            _cleanup_unix(self._unix_path)

    def serving_thread(self) -> threading.Thread | None:
        t: threading.Thread | None = getattr(self.server, "_thread", None)
        return t


class _SocketserverPeer(Instance):
    """socketserver / http.server used directly: serve_forever(poll_interval) on a thread."""

    def __init__(self, server: Any, poll_interval: float) -> None:
        self.server = server
        self.address = server.server_address
        self.poll_interval = poll_interval
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(self.poll_interval,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.server.server_close()

    def serving_thread(self) -> threading.Thread | None:
        return self._thread


class _AiosmtpdPeer(Instance):
    def __init__(self) -> None:
        self.ctl = _aiosmtpd_controller(_AiosmtpdSink(), hostname="127.0.0.1", port=_free_port())
        self.address = ("127.0.0.1", self.ctl.port)

    def start(self) -> None:
        self.ctl.start()  # binds, then waits until it answers a connection

    def stop(self) -> None:
        self.ctl.stop()

    def serving_thread(self) -> threading.Thread | None:
        t: threading.Thread | None = self.ctl._thread
        return t


class _PytestHttpserverPeer(Instance):
    def __init__(self) -> None:
        import logging

        # werkzeug logs every request on stderr; the other servers are silent.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.srv = _pytest_httpserver.HTTPServer(host="127.0.0.1", port=0)
        self.srv.expect_request("/").respond_with_data("ok")
        self.address: Any = None

    def start(self) -> None:
        self.srv.start()  # binds here (port 0 resolved), then starts the thread
        self.address = ("127.0.0.1", self.srv.port)

    def stop(self) -> None:
        self.srv.stop()

    def serving_thread(self) -> threading.Thread | None:
        t: threading.Thread | None = self.srv.server_thread
        return t


class _FloorInstance(Instance):
    def __init__(self, server: MinimalServer) -> None:
        self.server = server
        self.address = server.server_address
        self.family = server.sock.family

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def cleanup(self) -> None:
        self.server.cleanup()

    def serving_thread(self) -> threading.Thread | None:
        return self.server.thread


# -- subjects -----------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """A server implementation of one kind.

    ``create(poll_interval)`` returns a bound :class:`Instance`.
    ``uses_poll`` is False for servers without a poll_interval knob; they
    are measured once and shown in every poll_interval's table row-set as
    ``-``.
    """

    label: str
    kind: str
    group: str  # "ours", "peer" or "floor"
    factory: Callable[[float], Instance]
    uses_poll: bool = True

    def create(self, poll_interval: float) -> Instance:
        return self.factory(poll_interval)


def _ours_factory(kind: str) -> Callable[[float], Instance] | None:
    p = _protocols
    if kind == "tcp":
        return lambda pi: _Ours(p.TestTCPServer(("127.0.0.1", 0), _tcp_handler, pi))
    if kind == "udp":
        return lambda pi: _Ours(p.TestUDPServer(("127.0.0.1", 0), _udp_handler, pi))
    if kind == "unix":

        def unix(pi: float) -> Instance:
            path = _unix_path()
            return _Ours(p.TestUnixStreamServer(path, _tcp_handler, pi), path)

        return unix
    if kind == "unixdgram":

        def unixdgram(pi: float) -> Instance:
            path = _unix_path()
            return _Ours(p.TestUnixDatagramServer(path, _udp_handler, pi), path)

        return unixdgram
    if kind == "http" and hasattr(p, "TestHTTPServer"):
        return lambda pi: _Ours(p.TestHTTPServer(("127.0.0.1", 0), _http_handler, pi))
    if kind == "smtp" and hasattr(p, "TestSMTPServer"):
        return lambda pi: _Ours(p.TestSMTPServer(("127.0.0.1", 0), _smtp_handler, pi, {}))
    return None


def _cpython_factory(kind: str) -> Callable[[float], Instance] | None:
    tl = _tl
    if tl is None:
        return None
    if kind == "tcp":
        return lambda pi: _ControlMixinPeer(tl.TestTCPServer(("127.0.0.1", 0), _tcp_handler, pi))
    if kind == "udp":
        return lambda pi: _ControlMixinPeer(tl.TestUDPServer(("127.0.0.1", 0), _udp_handler, pi))
    if kind == "unix" and hasattr(tl, "TestUnixStreamServer"):

        def unix(pi: float) -> Instance:
            path = _unix_path()
            return _ControlMixinPeer(tl.TestUnixStreamServer(path, _tcp_handler, pi), path)

        return unix
    if kind == "unixdgram" and hasattr(tl, "TestUnixDatagramServer"):

        def unixdgram(pi: float) -> Instance:
            path = _unix_path()
            return _ControlMixinPeer(tl.TestUnixDatagramServer(path, _udp_handler, pi), path)

        return unixdgram
    if kind == "http":
        return lambda pi: _ControlMixinPeer(tl.TestHTTPServer(("127.0.0.1", 0), _http_handler, pi))
    if kind == "smtp":
        return lambda pi: _ControlMixinPeer(
            tl.TestSMTPServer(("127.0.0.1", 0), _smtp_handler, pi, {})
        )
    return None


def _native_factory(kind: str) -> tuple[str, Callable[[float], Instance]] | None:
    """Our native classes, with reactor-side handlers (no thread per connection)."""
    p = _protocols
    if kind == "tcp":
        return "TCPServer (on_line)", lambda pi: _Ours(p.TCPServer(
            on_line=lambda conn, line: conn.write(line), poll_interval=pi))
    if kind == "udp":
        return "UDPServer (reply=)", lambda pi: _Ours(p.UDPServer(
            reply=lambda data, peer: data, poll_interval=pi))
    if kind == "http" and hasattr(p, "HTTPServer"):
        return "HTTPServer (Reply)", lambda pi: _Ours(p.HTTPServer(
            handler=lambda req: p.Reply(status=200, body=b"ok"), poll_interval=pi))
    if kind == "smtp" and hasattr(p, "SMTPServer"):
        return "SMTPServer", lambda pi: _Ours(p.SMTPServer(poll_interval=pi))
    return None


def subjects(kinds: tuple[str, ...] = KINDS, *, direct: bool = True, native: bool = False
             ) -> list[Subject]:
    """Every importable subject of the given kinds, ours first, floor last.

    ``direct`` adds socketserver / http.server used without test_logging's
    wrapper (nearly the same code as CPython's helpers; tables may leave
    them out to stay readable).  ``native`` adds our native classes with
    reactor-side handlers next to our CPython-compatible ones.
    """
    _load()
    out: list[Subject] = []
    for kind in kinds:
        ours = _ours_factory(kind)
        if ours is not None:
            name = {"tcp": "TestTCPServer", "udp": "TestUDPServer",
                    "unix": "TestUnixStreamServer", "unixdgram": "TestUnixDatagramServer",
                    "http": "TestHTTPServer", "smtp": "TestSMTPServer"}[kind]
            out.append(Subject(f"testservers {name}", kind, "ours", ours))
        nat = _native_factory(kind) if native else None
        if nat is not None:
            out.append(Subject(f"testservers {nat[0]}", kind, "ours", nat[1]))
        cp = _cpython_factory(kind)
        if cp is not None:
            name = {"tcp": "TestTCPServer", "udp": "TestUDPServer",
                    "unix": "TestUnixStreamServer", "unixdgram": "TestUnixDatagramServer",
                    "http": "TestHTTPServer", "smtp": "TestSMTPServer"}[kind]
            out.append(Subject(f"test_logging {name}", kind, "peer", cp))
        if direct and kind == "tcp":
            out.append(Subject("socketserver ThreadingTCPServer", kind, "peer",
                               lambda pi: _SocketserverPeer(
                                   socketserver.ThreadingTCPServer(("127.0.0.1", 0), _EchoLine),
                                   pi)))
        if direct and kind == "udp":
            out.append(Subject("socketserver UDPServer", kind, "peer",
                               lambda pi: _SocketserverPeer(
                                   socketserver.UDPServer(("127.0.0.1", 0), _EchoDatagram), pi)))
        if direct and kind == "http":
            out.append(Subject("http.server ThreadingHTTPServer", kind, "peer",
                               lambda pi: _SocketserverPeer(
                                   http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OkHTTP),
                                   pi)))
        if kind == "http" and _pytest_httpserver is not None:
            out.append(Subject("pytest-httpserver HTTPServer", kind, "peer",
                               lambda pi: _PytestHttpserverPeer(), uses_poll=False))
        if kind == "smtp" and _aiosmtpd_controller is not None:
            out.append(Subject("aiosmtpd Controller", kind, "peer",
                               lambda pi: _AiosmtpdPeer(), uses_poll=False))
        if kind in ("tcp", "udp", "http", "smtp"):
            fk = kind
            out.append(Subject(f"minimal loop ({kind})", kind, "floor",
                               lambda pi, fk=fk: _FloorInstance(MinimalServer(fk)),  # type: ignore[misc]
                               uses_poll=False))
        elif kind == "unix":
            out.append(Subject("minimal loop (unix)", kind, "floor",
                               lambda pi: _FloorInstance(MinimalServer("tcp", unix=True)),
                               uses_poll=False))
    return out


# -- clients -------------------------------------------------------------------------


def request(kind: str, inst: Instance) -> None:
    """One real client request against ``inst``; raises if the answer is wrong."""
    addr = inst.address
    if kind in ("tcp", "unix"):
        fam = socket.AF_UNIX if kind == "unix" else socket.AF_INET
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.settimeout(CLIENT_TIMEOUT)
            s.connect(addr)
            s.sendall(b"ping\n")
            got = b""
            while not got.endswith(b"\n"):
                chunk = s.recv(64)
                if not chunk:
                    break
                got += chunk
        if got != b"ping\n":
            raise AssertionError(f"{kind} echo returned {got!r}")
    elif kind == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(CLIENT_TIMEOUT)
            s.sendto(b"ping", addr)
            got, _ = s.recvfrom(64)
        if got != b"ping":
            raise AssertionError(f"udp echo returned {got!r}")
    elif kind == "http":
        conn = http.client.HTTPConnection(addr[0], addr[1], timeout=CLIENT_TIMEOUT)
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200 or body != b"ok":
            raise AssertionError(f"http GET / returned {resp.status} {body!r}")
    elif kind == "smtp":
        with smtplib.SMTP(addr[0], addr[1], timeout=CLIENT_TIMEOUT) as client:
            refused = client.sendmail("a@example.com", ["b@example.com"],
                                      "Subject: bench\r\n\r\nhello\r\n")
        if refused:
            raise AssertionError(f"smtp refused {refused!r}")
    else:
        raise ValueError(f"no client for kind {kind!r}")


def python_tag() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"
