"""``python -m protocols``: debugging sinks on one reactor, printing what arrives.

The successor of ``python -m smtpd -n -c DebuggingServer``: every sink runs
on the same reactor thread; Ctrl-C (or SIGTERM, or ``--duration``) stops
them all cleanly.  This module holds the argument parser (including the SMTP
sink's options) and :func:`main`; ``protocols/__main__.py`` only calls it.
"""

from __future__ import annotations

import argparse
import datetime
import signal
import ssl
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from reactor import BaseServer

from ._datagram import UDPServer
from ._stream import StreamConnection, TCPServer
from .http import HTTPRequest, HTTPServer, Reply
from .smtp import SMTPServer, add_smtp_sink

__all__ = ["main", "build_sinks", "make_parser", "add_smtp_arguments", "smtp_sink_from_args"]

SinkFactory = Callable[[argparse.Namespace, "Printer"], BaseServer]


class Printer:
    """Serialises output from the reactor thread; one block per arrival."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def block(self, title: str, body: str = "") -> None:
        stamp = datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3]
        text = f"---------- {stamp} {title}\n"
        if body:
            text += body if body.endswith("\n") else body + "\n"
        with self._lock:
            self._out.write(text)
            self._out.flush()


def _show(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


def _tcp_sink(args: argparse.Namespace, p: Printer) -> BaseServer:
    def on_line(conn: StreamConnection, line: bytes) -> None:
        p.block(f"TCP line from {conn.peer}", _show(line))

    def on_connect(conn: StreamConnection) -> None:
        p.block(f"TCP connection from {conn.peer}")

    def on_close(conn: StreamConnection) -> None:
        p.block(f"TCP connection from {conn.peer} closed ({conn.stream.received} bytes)")

    return TCPServer(
        (args.host, args.tcp),
        on_line=on_line,
        on_connect=on_connect,
        on_close=on_close,
        record=False,
        poll_interval=None,
    )


def _udp_sink(args: argparse.Namespace, p: Printer) -> BaseServer:
    def reply(data: bytes, peer: Any) -> None:
        p.block(f"UDP datagram from {peer} ({len(data)} bytes)", _show(data))

    return UDPServer((args.host, args.udp), reply=reply, record=False, poll_interval=None)


def _http_sink(args: argparse.Namespace, p: Printer) -> BaseServer:
    def handler(request: HTTPRequest) -> Reply:
        head = "".join(f"{name}: {value}\n" for name, value in request.headers)
        body = _show(request.body)
        p.block(
            f"HTTP {request.method} {request.target} HTTP/{request.http_version} "
            f"from {request.client_address}",
            head + ("\n" + body if body else ""),
        )
        return Reply(200, "OK\n")

    return HTTPServer((args.host, args.http), handler, record=False, poll_interval=None)


def _smtp_sink(args: argparse.Namespace, p: Printer) -> BaseServer:
    server = smtp_sink_from_args(args, out=p.block)
    assert server is not None  # only called when --smtp is not off
    return server


#: (option, factory): each sink the CLI knows, in start order.
SINKS: list[tuple[str, SinkFactory]] = [
    ("smtp", _smtp_sink),
    ("http", _http_sink),
    ("tcp", _tcp_sink),
    ("udp", _udp_sink),
]


def make_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m protocols",
        description="Debugging sinks on one reactor thread: print every message, request, "
        "line and datagram that arrives. Give a port of 0 for any free port, 'off' to disable.",
    )
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    ap.add_argument(
        "--http",
        type=cli_port,
        default=8080,
        metavar="PORT",
        help="HTTP sink: prints each request, answers 200 OK; default 8080",
    )
    ap.add_argument(
        "--tcp",
        type=cli_port,
        default=5140,
        metavar="PORT",
        help="TCP line sink (e.g. syslog over TCP); default 5140",
    )
    ap.add_argument(
        "--udp",
        type=cli_port,
        default=5514,
        metavar="PORT",
        help="UDP datagram sink (e.g. syslog); default 5514",
    )
    ap.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop by itself after this many seconds",
    )
    add_smtp_arguments(ap)  # --smtp, --smtp-tls, --smtp-cert, --smtp-key, --smtp-auth
    return ap


def build_sinks(args: argparse.Namespace, printer: Printer) -> list[BaseServer]:
    """Create (bound, not started) the sinks the arguments ask for."""
    servers: list[BaseServer] = []
    try:
        for option, factory in SINKS:
            if getattr(args, option, None) is not None:
                servers.append(factory(args, printer))
    except BaseException:
        for s in servers:
            s.server_close()
        raise
    return servers


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = make_parser().parse_args(argv)
    out = out if out is not None else sys.stdout
    printer = Printer(out)
    try:
        servers = build_sinks(args, printer)
    except OSError as exc:
        print(f"python -m protocols: cannot listen: {exc}", file=sys.stderr)
        return 1
    if not servers:
        print("python -m protocols: every sink is off", file=sys.stderr)
        return 2
    done = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *a: done.set())
    try:
        for s in servers:
            s.start()
            printer.block(f"{type(s).__name__} listening on {s.server_address}")
        printer.block("ready; Ctrl-C to stop")
        done.wait(args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        for s in servers:
            s.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    printer.block("stopped")
    return 0


def add_smtp_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the SMTP sink's options to the ``python -m protocols`` parser."""
    group = parser.add_argument_group("SMTP sink")
    group.add_argument(
        "--smtp",
        type=cli_port,
        default=8025,
        metavar="PORT",
        help="SMTP sink (like python -m smtpd -n -c DebuggingServer); default 8025",
    )
    group.add_argument(
        "--smtp-tls",
        choices=("off", "starttls", "implicit"),
        default="off",
        help="offer STARTTLS, or serve implicit TLS (SMTPS); default off",
    )
    group.add_argument(
        "--smtp-cert",
        metavar="PEM",
        default=None,
        help="certificate chain for --smtp-tls (default: the bundled localhost test certificate)",
    )
    group.add_argument(
        "--smtp-key", metavar="PEM", default=None, help="private key for --smtp-cert"
    )
    group.add_argument(
        "--smtp-auth",
        metavar="USER:PASSWORD",
        default=None,
        help="offer AUTH PLAIN/LOGIN and accept these credentials (over TLS only unless "
        "--smtp-tls is off, in which case plaintext AUTH is allowed)",
    )


def smtp_sink_from_args(
    args: argparse.Namespace, out: TextIO | Callable[[str, str], object] | None = None
) -> SMTPServer | None:
    """Build (bound, not started) the sink :func:`add_smtp_arguments` describes.

    Returns None when ``--smtp off``.  Raises ``OSError`` if the port is taken.
    """
    port = getattr(args, "smtp", None)
    if port is None:
        return None
    ctx: ssl.SSLContext | None = None
    tls = getattr(args, "smtp_tls", "off")
    if tls != "off":
        if args.smtp_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.smtp_cert, args.smtp_key)
        else:
            from ._tls import localhost_contexts

            ctx = localhost_contexts()[0]
    kwargs: dict[str, Any] = {}
    if getattr(args, "smtp_auth", None):
        user, _, password = args.smtp_auth.partition(":")
        kwargs["auth"] = {user: password}
        kwargs["auth_over_plaintext"] = tls == "off"
    return add_smtp_sink(
        args.host,
        port,
        ssl_context=ctx if tls == "implicit" else None,
        starttls_context=ctx if tls == "starttls" else None,
        out=out,
        start=False,
        **kwargs,
    )


def cli_port(value: str) -> int | None:
    if value.lower() in ("off", "no", "none", "-"):
        return None
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {value}")
    return port
