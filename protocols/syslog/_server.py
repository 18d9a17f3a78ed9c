"""Syslog servers: UDP, Unix datagram, TCP and Unix stream (RFC 6587), TLS (RFC 5425).

Every message that arrives is parsed (:func:`~protocols.syslog.parse_message`)
on the reactor thread and recorded in :attr:`SyslogServer.messages`, parsed
or not (a record that did not parse has ``error`` set and its raw bytes).
Tests wait with :meth:`SyslogServer.wait_for_messages`, which matches on
severity, app-name, msgid, an SD param or a text substring.

Stream servers cut each connection with a :class:`~protocols.syslog.SyslogFramer`
(octet counting or LF framing, detected per connection); a connection whose
framing breaks (a MSG-LEN that is not a number) is recorded and closed.  An
unterminated last line is recorded when the peer closes, and when ``stop()``
closes the connection: ``stop()`` loses nothing that arrived.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import Any, ClassVar

from reactor import (
    DEFAULT_WAIT_TIMEOUT,
    BaseServer,
    DatagramServerBase,
    StreamServerBase,
    StreamTransport,
    UsageError,
)

from .. import _match
from ._parser import (
    MAX_MESSAGE_SIZE,
    MAX_OCTET_COUNT,
    Severity,
    SyslogFramer,
    SyslogMessage,
    invalid_message,
    parse_message,
)

__all__ = [
    "SyslogServer",
    "SyslogUDPServer",
    "SyslogUnixDatagramServer",
    "SyslogTCPServer",
    "SyslogUnixStreamServer",
    "SyslogTLSServer",
    "describe_message",
    "match_message",
    "syslog_criteria",
]



def _sd_test(record: SyslogMessage, sd: Any) -> str | None:
    if callable(sd) and not isinstance(sd, (str, tuple)):
        return _match.check(sd, record.structured_data)
    if isinstance(sd, str):
        ok = any(e.id == sd for e in record.structured_data)
    elif len(sd) == 2:
        ok = any(e.id == sd[0] and e.get(sd[1]) is not None for e in record.structured_data)
    else:
        ok = any(
            e.id == sd[0] and e.get(sd[1]) is not None and _match.check(sd[2], e.get(sd[1])) is None
            for e in record.structured_data
        )
    if ok:
        return None
    have = [(e.id, *e.params) for e in record.structured_data]
    return f"no such SD-ELEMENT/param in {_match.short(have)}"


def syslog_criteria(
    severity: Any = None,
    app: Any = None,
    msgid: Any = None,
    sd: Any = None,
    text: Any = None,
    predicate: Callable[[SyslogMessage], object] | None = None,
) -> _match.Criteria:
    """The checks of :meth:`SyslogServer.wait_for_messages` (the ``protocols`` matcher rules).

    :raises InvalidArgumentError: an unknown severity name or a number not 0-7.
    """
    if isinstance(severity, (str, int)):
        severity = Severity.from_name(severity)
    return _match.Criteria(
        [
            _match.field("severity", lambda m: m.severity, severity),
            _match.field("app", lambda m: m.app_name, app),
            _match.field("msgid", lambda m: m.msgid, msgid),
            ("sd", sd, _sd_test),
            _match.field("text", lambda m: m.message, text, default="contains"),
            _match.predicate_field(predicate),
        ]
    )


def match_message(
    record: SyslogMessage,
    *,
    severity: Any = None,
    app: Any = None,
    msgid: Any = None,
    sd: Any = None,
    text: Any = None,
    predicate: Callable[[SyslogMessage], object] | None = None,
) -> bool:
    """True when ``record`` matches every matcher given (see ``wait_for_messages``)."""
    criteria = syslog_criteria(severity, app, msgid, sd, text, predicate)
    return criteria.matches(record)


def describe_message(record: SyslogMessage) -> str:
    """One line per message, for timeout reports."""
    sev = record.severity.name.lower() if record.severity is not None else "-"
    head = f"{record.format.value} {sev} app={record.app_name!r} msgid={record.msgid!r}"
    if record.structured_data:
        head += f" sd={[(e.id, *e.params) for e in record.structured_data]!r}"
    if record.error:
        head += f" ERROR {record.error!r}"
    return f"{head} {record.message[:120]!r}"


class SyslogServer(BaseServer):
    """What every syslog server shares: recording and waiting.

    :param on_message: ``on_message(record)`` for each message, on the
        reactor thread (it must not block); exceptions go to ``errors``.
    :param record: keep every message in :attr:`messages` (default True);
        False for a long-running sink that only uses ``on_message``
        (``wait_for_messages`` then raises :class:`reactor.UsageError`).
    :param max_size: longest message (default :data:`MAX_MESSAGE_SIZE`).
    :param year: year given to RFC 3164 timestamps (default: the current one).
    """

    def _init_syslog(
        self,
        on_message: Callable[[SyslogMessage], object] | None,
        max_size: int,
        year: int | None,
        record: bool,
    ) -> None:
        self.on_message = on_message
        self.record = record
        self.max_size = max_size
        self.year = year
        #: Every message received, parsed or not, in arrival order.
        self.messages: list[SyslogMessage] = []

    def _accept_record(self, record: SyslogMessage) -> None:
        if self.record:
            self._record(self.messages, record)
        if self.on_message is not None:
            try:
                self.on_message(record)
            except Exception as exc:
                self.handle_error(exc, f"on_message for {record.raw[:80]!r}")

    @property
    def parse_errors(self) -> list[SyslogMessage]:
        """The messages that did not parse (a snapshot)."""
        return [m for m in self.messages if m.error is not None]

    def wait_for_messages(
        self,
        count: int = 1,
        *,
        severity: Any = None,
        app: Any = None,
        msgid: Any = None,
        sd: Any = None,
        text: Any = None,
        predicate: Callable[[SyslogMessage], object] | None = None,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    ) -> list[SyslogMessage]:
        """Wait until ``count`` recorded messages match; return the first ``count`` of them.

        Matchers (all that are given must hold), each also taking a compiled
        regex, a callable or a :mod:`protocols` matcher (``Prefix``...):
        ``severity`` a name (``"err"``, ``"warning"``, ``"error"``...) or
        number 0-7; ``app`` the app-name (RFC 3164 TAG); ``msgid``; ``sd``
        an SD-ID, ``(sd_id, param)`` or ``(sd_id, param, value)``; ``text``
        a substring of the message (or a regex...); ``predicate(record)``.

        :raises WaitTimeout: (a ``TimeoutError``) listing what did arrive and
            the nearest miss.
        :raises InvalidArgumentError: an unknown severity name (a ``ValueError``).
        :raises UsageError: the server was made with ``record=False``.
        :raises ReactorDied: the reactor thread died meanwhile.
        """
        if not self.record:
            raise UsageError("this server was created with record=False")
        criteria = syslog_criteria(severity, app, msgid, sd, text, predicate)  # bad names: now
        return _match.wait_matching(
            self,
            lambda: self.messages,
            count,
            timeout,
            "syslog message(s)",
            criteria,
            describe_message,
        )

    def find_messages(self, **matchers: Any) -> list[SyslogMessage]:
        """Recorded messages matching the ``wait_for_messages`` keywords (a snapshot)."""
        return syslog_criteria(**matchers).select(self.messages)


class _DatagramSyslog(DatagramServerBase, SyslogServer):
    def __init__(
        self,
        addr: Any = None,
        *,
        on_message: Callable[[SyslogMessage], object] | None = None,
        max_size: int = MAX_MESSAGE_SIZE,
        year: int | None = None,
        record: bool = True,
        **kwargs: Any,
    ) -> None:
        self._init_syslog(on_message, max_size, year, record)
        super().__init__(addr, **kwargs)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        record = parse_message(data, year=self.year, max_size=self.max_size)
        self._accept_record(_with_peer(record, addr))


def _with_peer(record: SyslogMessage, peer: Any) -> SyslogMessage:
    object.__setattr__(record, "peer", peer)  # fresh record, not yet shared
    return record


class SyslogUDPServer(_DatagramSyslog):
    """Syslog over UDP (RFC 5426): one message per datagram.

    Keywords: those of :class:`SyslogServer` and :class:`reactor.BaseServer`.
    """


class SyslogUnixDatagramServer(_DatagramSyslog):
    """Syslog over a Unix datagram socket (``/dev/log`` style; ``addr`` is a path)."""

    address_family: ClassVar[int] = socket.AF_UNIX


class _SyslogConnection:
    """One stream connection: framer in, records out (reactor thread)."""

    def __init__(self, server: _StreamSyslog, peer: Any) -> None:
        self.server = server
        self.peer = peer
        self.framer = SyslogFramer(max_size=server.max_size, max_octet_count=server.max_octet_count)
        self.transport: StreamTransport | None = None
        self._finished = False

    def connection_made(self, transport: StreamTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.framer.receive_data(data)
        self._deliver()
        if self.framer.broken and self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool | None:
        self._finish()
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self._finish()  # stop() or a reset: the unterminated last line still counts

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self.framer.receive_data(b"")
            self._deliver()

    def _deliver(self) -> None:
        server = self.server
        for frame in self.framer.frames():
            if frame.error is not None:
                record = invalid_message(frame.data, frame.error, framing=frame.framing)
            else:
                record = parse_message(
                    frame.data, year=server.year, max_size=server.max_size, framing=frame.framing
                )
            server._accept_record(_with_peer(record, self.peer))


class _StreamSyslog(StreamServerBase, SyslogServer):
    def __init__(
        self,
        addr: Any = None,
        *,
        on_message: Callable[[SyslogMessage], object] | None = None,
        max_size: int = MAX_MESSAGE_SIZE,
        max_octet_count: int = MAX_OCTET_COUNT,
        year: int | None = None,
        record: bool = True,
        **kwargs: Any,
    ) -> None:
        self._init_syslog(on_message, max_size, year, record)
        self.max_octet_count = max_octet_count
        super().__init__(addr, **kwargs)

    def make_protocol(self, addr: Any) -> _SyslogConnection:
        if self.family == socket.AF_UNIX and not addr:
            addr = self.server_address
        return _SyslogConnection(self, addr)


class SyslogTCPServer(_StreamSyslog):
    """Syslog over TCP (RFC 6587): octet counting or LF framing, per connection.

    :param ssl_context: serve TLS (RFC 5425) on every connection.
    :param max_octet_count: largest MSG-LEN (default :data:`MAX_OCTET_COUNT`).

    Other keywords: those of :class:`SyslogServer` and :class:`reactor.BaseServer`.
    """


class SyslogUnixStreamServer(_StreamSyslog):
    """Syslog over a Unix stream socket (``addr`` is a path)."""

    address_family: ClassVar[int] = socket.AF_UNIX


class SyslogTLSServer(SyslogTCPServer):
    """Syslog over TLS (RFC 5425, octet counting by the RFC; LF framing also accepted).

    :param ssl_context: the server context; default the bundled localhost
        test certificate (:func:`protocols.localhost_contexts`): clients
        trust it with :func:`protocols.client_context` or with the CA file
        :data:`protocols.CA_FILE` (rsyslog, syslog-ng).
    """

    def __init__(
        self, addr: Any = None, *, ssl_context: ssl.SSLContext | None = None, **kwargs: Any
    ) -> None:
        if ssl_context is None:
            from .._tls import localhost_contexts

            ssl_context = localhost_contexts()[0]
        super().__init__(addr, ssl_context=ssl_context, **kwargs)
