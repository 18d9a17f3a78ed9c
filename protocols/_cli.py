"""``python -m protocols``: debugging sinks on one reactor, printing what arrives.

The successor of ``python -m smtpd -n -c DebuggingServer``: every sink runs
on the same reactor thread; Ctrl-C (or SIGTERM, or ``--duration``) stops
them all cleanly.  This module holds the argument parser (including the SMTP
sink's options) and :func:`main`; ``protocols/__main__.py`` only calls it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from reactor import BaseServer, ReactorDied

from ._datagram import UDPServer
from ._stream import MAX_LINE_LENGTH, StreamConnection, TCPServer
from .http import HTTPRequest, HTTPServer, RemoteProtocolError, Reply
from .smtp import SMTPServer, add_smtp_sink
from .syslog import SyslogMessage, SyslogTCPServer, SyslogTLSServer, SyslogUDPServer

__all__ = [
    "CLIArgumentError",
    "add_smtp_arguments",
    "build_sinks",
    "check_arguments",
    "main",
    "make_parser",
    "smtp_sink_from_args",
]

SinkFactory = Callable[[argparse.Namespace, "Printer"], BaseServer]


#: Longest the main thread waits before it looks at the signals noted
#: (Ctrl-C, SIGTERM; see _StopSignals): the CLI stops within this after one.
SIGNAL_CHECK = 0.2

#: Default of ``--max-body``: octets of a body printed before it is cut.
DEFAULT_MAX_BODY = 4096

# C0 controls except TAB and LF, DEL, and C1 controls: shown as \xNN so that
# a peer cannot drive the terminal (ESC sequences) or hide text (CR).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape(text: str) -> str:
    """``text`` with control characters shown as ``\\xNN`` (TAB and LF kept)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class Printer:
    """Serialises output from the reactor thread; one block per arrival.

    Every title and body is escaped (:func:`escape`) and a body longer than
    ``max_body`` characters is cut, saying how much was left out.  With
    ``json_lines`` each block is one JSON object on one line instead.
    """

    def __init__(
        self, out: TextIO, *, max_body: int = DEFAULT_MAX_BODY, json_lines: bool = False
    ) -> None:
        self._out = out
        self._lock = threading.Lock()
        self.max_body = max_body
        self.json_lines = json_lines
        #: Set once the output can no longer be written (a closed pipe):
        #: the CLI then stops, quietly.
        self.broken = False

    def block(self, title: str, body: str = "", *, head: str = "", **fields: Any) -> None:
        """Print one event: ``title``, then ``head`` (never cut), then ``body``
        (cut past ``max_body`` characters); ``fields`` only go into JSON."""
        now = datetime.datetime.now()
        cut = len(body) - self.max_body if self.max_body >= 0 else 0
        if cut > 0:
            body = body[: self.max_body]
        if self.json_lines:
            event: dict[str, Any] = {"time": now.isoformat(timespec="milliseconds"), "event": title}
            event.update(fields)
            if head:
                event["head"] = head
            if body:
                event["body"] = body
            if cut > 0:
                event["truncated"] = cut
            text = json.dumps(event, default=str) + "\n"
        else:
            text = f"---------- {now.strftime('%H:%M:%S.%f')[:-3]} {escape(title)}\n"
            if head:
                text += escape(head)
            if body:
                body = escape(body)
                text += body if body.endswith("\n") else body + "\n"
            if cut > 0:
                text += f"[... {cut} more characters not shown (--max-body {self.max_body})]\n"
        with self._lock:
            if self.broken:
                return
            try:
                self._out.write(text)
                self._out.flush()
            except (BrokenPipeError, ValueError):  # the reader went away (`| head`)
                self.broken = True


def _show(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


def _tcp_sink(args: argparse.Namespace, p: Printer) -> BaseServer:
    # Lines are cut here (not with on_line) so that an unterminated last line
    # is printed when the connection closes, stop() included.
    buffers: dict[int, bytearray] = {}

    def on_data(conn: StreamConnection, data: bytes) -> None:
        buf = buffers.setdefault(id(conn), bytearray())
        buf += data
        while (nl := buf.find(b"\n")) >= 0:
            line = bytes(buf[: nl + 1])
            del buf[: nl + 1]
            p.block(f"TCP line from {conn.peer}", _show(line), peer=str(conn.peer))
        if len(buf) > MAX_LINE_LENGTH:
            line = bytes(buf)
            buf.clear()
            p.block(f"TCP data from {conn.peer} (no newline)", _show(line), peer=str(conn.peer))

    def on_connect(conn: StreamConnection) -> None:
        p.block(f"TCP connection from {conn.peer}", peer=str(conn.peer))

    def on_close(conn: StreamConnection) -> None:
        rest = buffers.pop(id(conn), bytearray())
        if rest:
            p.block(
                f"TCP line from {conn.peer} (unterminated, at close)",
                _show(bytes(rest)),
                peer=str(conn.peer),
            )
        p.block(
            f"TCP connection from {conn.peer} closed ({conn.stream.received} bytes)",
            peer=str(conn.peer),
            received=conn.stream.received,
        )

    return TCPServer(
        (args.host, args.tcp),
        on_data=on_data,
        on_connect=on_connect,
        on_close=on_close,
        record=False,
        poll_interval=None,
    )


def _syslog_fields(m: SyslogMessage) -> dict[str, Any]:
    return {
        "peer": str(m.peer),
        "format": m.format.value,
        "facility": m.facility.name.lower() if m.facility is not None else None,
        "severity": m.severity.name.lower() if m.severity is not None else None,
        "timestamp": m.timestamp.isoformat() if m.timestamp is not None else None,
        "hostname": m.hostname,
        "app_name": m.app_name,
        "procid": m.procid,
        "msgid": m.msgid,
        "structured_data": {e.id: dict(e.params) for e in m.structured_data},
        "framing": m.framing.value,
        "error": m.error,
    }


def _print_syslog(p: Printer, kind: str, m: SyslogMessage) -> None:
    fields = _syslog_fields(m)
    if m.error is not None:
        p.block(
            f"syslog/{kind} from {m.peer}: NOT PARSED ({m.error})",
            _show(m.raw),
            **fields,
        )
        return
    head = " ".join(
        f"{k}={v}"
        for k, v in fields.items()
        if k not in ("peer", "structured_data", "error") and v is not None
    )
    sd = "".join(
        f"\n  [{e.id}] " + " ".join(f"{k}={v!r}" for k, v in e.params) for e in m.structured_data
    )
    p.block(f"syslog/{kind} from {m.peer}: {head}{sd}", m.message, **fields)


def _syslog_sink(
    server_class: type[SyslogUDPServer] | type[SyslogTCPServer], kind: str
) -> SinkFactory:
    """The factory of the syslog sink over ``kind`` ("udp", "tcp", "tls"; TLS with the
    bundled localhost certificate), listening on ``--syslog-<kind>``.

    The syslog sinks keep nothing (record=False): a sink may run for days.
    """
    option = f"syslog_{kind}"

    def make(args: argparse.Namespace, p: Printer) -> BaseServer:
        return server_class(
            (args.host, getattr(args, option)),
            on_message=lambda m: _print_syslog(p, kind, m),
            record=False,
            poll_interval=None,
        )

    return make


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
            body,
            head=head + ("\n" if body else ""),
            method=request.method,
            target=request.target,
            peer=str(request.client_address),
        )
        return Reply(200, "OK\n")

    def protocol_error(exc: RemoteProtocolError, peer: Any) -> None:
        # The body is what the client sent, escaped (a bounded slice of it:
        # see protocols.http.OFFENDING_BYTES_LIMIT).
        p.block(
            f"HTTP protocol error from {peer}: answered {exc.status_hint} ({exc})",
            _show(exc.offending),
            peer=str(peer),
            status=exc.status_hint,
            error=str(exc),
        )

    return HTTPServer(
        (args.host, args.http),
        handler,
        record=False,
        on_protocol_error=protocol_error,
        poll_interval=None,
    )


#: The envelope lines :func:`protocols.smtp.add_smtp_sink` puts before a
#: message's content: printed whole, only the content is cut by --max-body.
_ENVELOPE_LINES = ("X-Peer:", "X-Helo:", "X-Mail-From:", "X-Rcpt-To:", "X-TLS:", "X-Auth-User:")


def _smtp_block(p: Printer, title: str, body: str) -> None:
    lines = body.splitlines(keepends=True)
    n = 0
    while n < len(lines) and lines[n].startswith(_ENVELOPE_LINES):
        n += 1
    p.block(title, "".join(lines[n:]), head="".join(lines[:n]))


def _smtp_sink(args: argparse.Namespace, p: Printer) -> BaseServer:
    server = smtp_sink_from_args(args, out=lambda title, body: _smtp_block(p, title, body))
    assert server is not None  # only called when --smtp is not off
    return server


#: (option, factory): each sink the CLI knows, in start order.
SINKS: list[tuple[str, SinkFactory]] = [
    ("smtp", _smtp_sink),
    ("http", _http_sink),
    ("tcp", _tcp_sink),
    ("udp", _udp_sink),
    ("syslog_udp", _syslog_sink(SyslogUDPServer, "udp")),
    ("syslog_tcp", _syslog_sink(SyslogTCPServer, "tcp")),
    ("syslog_tls", _syslog_sink(SyslogTLSServer, "tls")),
]

#: Option that sets each sink's port, for error messages.
SINK_OPTIONS = {
    "smtp": "--smtp",
    "http": "--http",
    "tcp": "--tcp",
    "udp": "--udp",
    "syslog_udp": "--syslog-udp",
    "syslog_tcp": "--syslog-tcp",
    "syslog_tls": "--syslog-tls",
}


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
        "--syslog-udp",
        type=cli_port,
        default=None,
        metavar="PORT",
        help="syslog sink over UDP: prints each message's parsed fields; default off",
    )
    ap.add_argument(
        "--syslog-tcp",
        type=cli_port,
        default=None,
        metavar="PORT",
        help="syslog sink over TCP (octet counting or LF framing); default off",
    )
    ap.add_argument(
        "--syslog-tls",
        type=cli_port,
        default=None,
        metavar="PORT",
        help="syslog sink over TLS (RFC 5425), with the bundled localhost test certificate; "
        "default off",
    )
    ap.add_argument(
        "--max-body",
        type=_max_body,
        default=DEFAULT_MAX_BODY,
        metavar="CHARS",
        help=f"cut bodies longer than this (default {DEFAULT_MAX_BODY}; -1: never)",
    )
    ap.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per event on stdout (for jq)",
    )
    ap.add_argument(
        "--duration",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="stop by itself after this many seconds",
    )
    add_smtp_arguments(ap)  # --smtp, --smtp-tls, --smtp-cert, --smtp-key, --smtp-auth
    return ap


class CLIArgumentError(ValueError):
    """An option's value cannot be used; the message starts ``argument --option:``."""


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject combinations argparse cannot see (``parser.error``: exit status 2)."""
    tls = getattr(args, "smtp_tls", "off")
    if getattr(args, "smtp_key", None) and not getattr(args, "smtp_cert", None):
        parser.error("argument --smtp-key: needs --smtp-cert")
    if getattr(args, "smtp_cert", None) and tls == "off":
        parser.error("argument --smtp-cert: needs --smtp-tls starttls or implicit")


class SinkBindError(OSError):
    """A sink could not listen; the message names the sink, its option and port."""


def build_sinks(args: argparse.Namespace, printer: Printer) -> list[BaseServer]:
    """Create (bound, not started) the sinks the arguments ask for.

    :raises SinkBindError: naming the sink and port that could not be bound.
    :raises CLIArgumentError: ``--host`` does not resolve, ``--smtp-cert``
        cannot be loaded.
    """
    servers: list[BaseServer] = []
    try:
        for option, factory in SINKS:
            port = getattr(args, option, None)
            if port is not None:
                try:
                    servers.append(factory(args, printer))
                except socket.gaierror as exc:
                    raise CLIArgumentError(
                        f"argument --host: cannot resolve {args.host!r}: {exc.strerror or exc}"
                    ) from None
                except OSError as exc:
                    name = option.replace("_", "/")
                    raise SinkBindError(
                        exc.errno,
                        f"{name} sink ({SINK_OPTIONS[option]} {port}) cannot listen on "
                        f"{args.host} port {port}: {exc.strerror or exc}",
                    ) from exc
    except BaseException:
        for s in servers:
            s.server_close()
        raise
    return servers


def _describe_sink(server: BaseServer, args: argparse.Namespace) -> str:
    """The startup line: address, and whether the sink uses TLS (which CA) or AUTH."""
    from ._tls import CA_FILE

    text = f"{type(server).__name__} listening on {server.server_address}"
    extras = []
    if isinstance(server, SMTPServer):
        tls = getattr(args, "smtp_tls", "off")
        if tls != "off":
            ca = "your --smtp-cert's CA" if args.smtp_cert else CA_FILE
            extras.append(f"TLS {tls} (clients trust CA file {ca})")
        if getattr(args, "smtp_auth", None):
            extras.append(f"AUTH PLAIN/LOGIN as {args.smtp_auth.partition(':')[0]!r}")
    elif isinstance(server, SyslogTLSServer):
        extras.append(f"TLS (clients trust CA file {CA_FILE})")
    if extras:
        text += " with " + " and ".join(extras)
    return text


class _StopSignals:
    """Ctrl-C and SIGTERM, noted for the main loop; the handler never raises.

    Python runs a signal handler on the main thread between any two
    bytecodes.  One that raises (as Python's own SIGINT handler does, with
    KeyboardInterrupt) can land inside ``threading.Condition.wait`` after it
    released its lock and before it re-acquires it, and the ``with cond:``
    around the wait then ends in "RuntimeError: cannot release un-acquired
    lock"; or inside ``stop()`` while the sinks shut down.  This handler only
    records the signal (it takes no lock and raises nothing), and the main
    loop, whose every wait is bounded by :data:`SIGNAL_CHECK`, sees it there.
    A second Ctrl-C while the sinks stop is noted and changes nothing: the
    stop finishes and the summary prints.
    """

    def __init__(self) -> None:
        #: The signals received, in order (the first one stops the CLI).
        self.received: list[int] = []

    def __call__(self, signum: int, frame: object) -> None:
        self.received.append(signum)


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, *, restore_signals: bool = True
) -> int:
    """Run the sinks until Ctrl-C, SIGTERM or ``--duration``; returns the exit status.

    On the main thread, SIGINT and SIGTERM stop it while it runs (the first
    one; more while the sinks stop change nothing); with ``restore_signals``
    (the default) the previous handlers are put back before it returns,
    without, both signals are left ignored.  ``python -m protocols`` passes
    False: the process is exiting, and a Ctrl-C pressed again meanwhile must
    not end in a KeyboardInterrupt traceback (or kill it with SIGINT).
    """
    parser = make_parser()
    args = parser.parse_args(argv)
    check_arguments(parser, args)  # exits with status 2, as argparse does
    out = out if out is not None else sys.stdout
    printer = Printer(out, max_body=args.max_body, json_lines=args.json)
    try:
        servers = build_sinks(args, printer)
    except CLIArgumentError as exc:
        parser.error(str(exc))
    except SinkBindError as exc:
        print(f"python -m protocols: {exc.strerror}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"python -m protocols: cannot listen: {exc}", file=sys.stderr)
        return 1
    if not servers:
        print("python -m protocols: every sink is off", file=sys.stderr)
        return 2
    refusals: _Refusals | None = None
    status = 0
    stop_signals = _StopSignals()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # SIGINT too: a process started in the background (a shell's '&', a
        # test runner's worker) inherits SIGINT ignored, and Python then
        # never raises KeyboardInterrupt; Ctrl-C must stop the sinks anyway.
        # The handler only takes note (see _StopSignals for why it must not
        # raise); the loop below stops within SIGNAL_CHECK of it.
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, stop_signals)
    try:
        # The reactor thread (started by the first start()) inherits this
        # mask: SIGINT/SIGTERM then always reach the main thread, whose
        # bounded wait they interrupt.  Delivered to the reactor thread, they
        # would only set Python's flag, and the main thread would wait on.
        mask = {signal.SIGINT, signal.SIGTERM}
        masked = previous and hasattr(signal, "pthread_sigmask")
        if masked:
            signal.pthread_sigmask(signal.SIG_BLOCK, mask)
        try:
            for s in servers:
                s.start()
                printer.block(_describe_sink(s, args), address=str(s.server_address))
        finally:
            if masked:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, mask)
        printer.block("ready; Ctrl-C to stop")
        refusals = _Refusals(servers, printer)
        # Short waits, so the main thread sees a signal promptly: the handler
        # cannot wake a wait (it must not touch a lock), and the kernel may
        # have delivered the signal to another thread (seen under a loaded
        # test run: the wait went on forever).
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while not stop_signals.received and not printer.broken:
            left = (
                SIGNAL_CHECK if deadline is None else min(SIGNAL_CHECK, deadline - time.monotonic())
            )
            if left <= 0:
                break
            refusals.wait(left)  # wakes at once when the SMTP sink records one
    except KeyboardInterrupt:  # not from SIGINT/SIGTERM: their handler does not raise
        pass
    except ReactorDied as exc:  # G5: every wait raises; the CLI says so and exits
        print(f"python -m protocols: {exc} (its traceback is above); stopping", file=sys.stderr)
        status = 1
    finally:
        for s in servers:
            s.stop()
        if refusals is not None:
            refusals.drain()
        for signum, handler in previous.items():
            # Not restoring: ignored from here on, also while Python finalizes
            # (which would put back SIG_DFL in place of a handler of ours).
            signal.signal(signum, handler if restore_signals else signal.SIG_IGN)
    printer.block("stopped")
    if printer.broken and out is sys.stdout:
        # Python flushes stdout once more at exit: point it at /dev/null so
        # that a closed pipe does not end in "Exception ignored ... BrokenPipeError".
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return status


#: ``Rejection.reason`` of a message refused after its content (``DATA``).
_MESSAGE_REFUSALS = frozenset({"size", "line-length", "bare-line-ending", "handler"})


class _Refusals:
    """Prints what the sinks refused, from their public records (main thread).

    Every sink's ``tls_errors`` (a failed TLS handshake: plaintext sent to a
    TLS port, an untrusted certificate...); the SMTP sink's ``logins`` (a
    failed AUTH: the username and mechanism, never the password) and
    ``rejected`` (every 4xx/5xx reply to a command, 503 bad sequence and
    500/501 syntax included, with the line the client sent; a message
    refused: too big, an over-long line, a bare CR or LF...).

    :meth:`wait` blocks in the SMTP sink's own ``wait_for`` (else the first
    sink's), which wakes whenever that server records something, so its
    refusals print as they happen; the others' within :data:`SIGNAL_CHECK`.
    The records it prints (and the SMTP messages and HTTP protocol errors,
    printed when they arrive, and the SMTP command log) are taken out of the
    servers' lists: a sink that runs for days holds none of them.
    """

    def __init__(self, servers: Sequence[BaseServer], printer: Printer) -> None:
        self.servers = list(servers)
        self.printer = printer
        smtp = [s for s in self.servers if isinstance(s, SMTPServer)]
        self.smtp = smtp[0] if smtp else None
        self.waiter = self.smtp or self.servers[0]

    @staticmethod
    def _take(server: BaseServer, name: str) -> list[Any]:
        # Take the records out of the server's list, so that a sink running
        # for days keeps nothing: the reactor thread only ever appends, and
        # each of these list operations is atomic.
        records: list[Any] = getattr(server, name)
        taken = records[:]
        del records[: len(taken)]
        return taken

    def _news(self) -> bool | None:
        s = self.waiter
        names = ("tls_errors", "logins", "rejected") if s is self.smtp else ("tls_errors",)
        return True if any(getattr(s, name) for name in names) else None

    def wait(self, timeout: float) -> None:
        try:
            self.waiter.wait_for(self._news, timeout, "refusals")
        except TimeoutError:
            pass
        self.drain()

    def drain(self) -> None:
        p = self.printer
        for server in self.servers:
            if isinstance(server, HTTPServer):
                self._take(server, "protocol_errors")  # printed by on_protocol_error
            for exc in self._take(server, "tls_errors"):
                p.block(
                    f"TLS handshake failed on {type(server).__name__} {server.server_address}",
                    f"{exc}\n",
                    error=str(exc),
                )
        if self.smtp is None:
            return
        self._take(self.smtp, "messages")  # printed by the sink's handler
        for login in self._take(self.smtp, "logins"):
            if not login.succeeded:
                p.block(
                    f"SMTP AUTH {login.mechanism} refused ({login.reply_code}) from {login.peer}",
                    f"username {login.username!r}" + (" (over TLS)" if login.tls else "") + "\n",
                    peer=str(login.peer),
                    code=login.reply_code,
                    mechanism=login.mechanism,
                    username=login.username,
                )
        self._take(self.smtp, "commands")  # not printed; kept nowhere either
        self._take(self.smtp, "session_events")
        for r in self._take(self.smtp, "rejected"):
            if r.reason == "auth":
                continue  # printed from server.logins, with the mechanism and username
            envelope = f"X-Mail-From: {r.mail_from}\nX-Rcpt-To: {', '.join(r.rcpt_tos)}\n"
            if r.command == "DATA" and r.reason in _MESSAGE_REFUSALS:
                title = f"SMTP message refused ({r.code}) from {r.peer}: {r.reason}"
                body = envelope
            else:  # a refused command: what the client sent, then the reply
                what = r.command or "a line"
                title = f"SMTP {what} refused ({r.code}, {r.reason}) from {r.peer}"
                body = f"{_show(r.line)}\n{r.code} {r.text}\n"
                if r.mail_from or r.rcpt_tos:
                    body += envelope
                if r.closed:
                    body += "(the server closed the connection)\n"
            p.block(
                title,
                body,
                peer=str(r.peer),
                command=r.command,
                code=r.code,
                reason=r.reason,
                text=r.text,
            )


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
        type=_credentials,
        metavar="USER:PASSWORD",
        default=None,
        help="offer AUTH PLAIN/LOGIN and accept these credentials (over TLS only unless "
        "--smtp-tls is off, in which case plaintext AUTH is allowed)",
    )


def smtp_sink_from_args(
    args: argparse.Namespace, out: TextIO | Callable[[str, str], object] | None = None
) -> SMTPServer | None:
    """Build (bound, not started) the sink :func:`add_smtp_arguments` describes.

    Returns None when ``--smtp off``.  Raises ``OSError`` if the port is
    taken and :class:`CLIArgumentError` if ``--smtp-cert`` cannot be loaded.
    """
    port = getattr(args, "smtp", None)
    if port is None:
        return None
    ctx: ssl.SSLContext | None = None
    tls = getattr(args, "smtp_tls", "off")
    if tls != "off":
        if args.smtp_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                ctx.load_cert_chain(args.smtp_cert, args.smtp_key)
            except (OSError, ssl.SSLError) as exc:
                files = repr(args.smtp_cert) + (
                    f" with key {args.smtp_key!r}" if args.smtp_key else ""
                )
                raise CLIArgumentError(
                    f"argument --smtp-cert: cannot load {files}: {exc.strerror or exc}"
                ) from None
        else:
            from ._tls import localhost_contexts

            ctx = localhost_contexts()[0]
    kwargs: dict[str, Any] = {}
    if getattr(args, "smtp_auth", None):
        user, _, password = args.smtp_auth.partition(":")

        def check(username: str, given: str) -> bool:
            return bool(username == user and given == password)  # printed from server.logins

        kwargs["auth"] = check
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


def _port(value: str) -> int | None:
    if value.lower() in ("off", "no", "none", "-"):
        return None
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a port: {value!r} (give 0-65535, 0 for any free port, or 'off')"
        ) from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {value} (give 0-65535, or 'off')")
    return port


def _credentials(value: str) -> str:
    user, colon, _ = value.partition(":")
    if not user or not colon:
        raise argparse.ArgumentTypeError("give USER:PASSWORD (a user name, a colon, a password)")
    return value


def _max_body(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = -2
    if n < -1:
        raise argparse.ArgumentTypeError(
            f"not a length: {value!r} (give a number of characters, or -1 for no limit)"
        )
    return n


def _seconds(value: str) -> float:
    try:
        n = float(value)
    except ValueError:
        n = -1.0
    if not 0 < n < float("inf"):
        raise argparse.ArgumentTypeError(f"not a duration: {value!r} (give seconds > 0)")
    return n


#: The ``type=`` of every port option: argparse names a failing type by its
#: ``__name__`` only for ValueError/TypeError; ours raise ArgumentTypeError,
#: whose text is shown as ``argument --tcp: not a port: 'abc' ...``.
cli_port = _port
