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
)

from ._parser import (
    MAX_MESSAGE_SIZE,
    MAX_OCTET_COUNT,
    InvalidArgumentError,
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
    "match_message",
]

#: Messages listed in a ``wait_for_messages`` timeout error (the newest ones).
_SHOWN_ON_TIMEOUT = 20

SDMatcher = str | tuple[str, str] | tuple[str, str, str]


def match_message(
    record: SyslogMessage,
    *,
    severity: str | int | None = None,
    app: str | None = None,
    msgid: str | None = None,
    sd: SDMatcher | None = None,
    text: str | None = None,
) -> bool:
    """True when ``record`` matches every matcher given (see ``wait_for_messages``)."""
    if severity is not None and record.severity != Severity.from_name(severity):
        return False
    if app is not None and record.app_name != app:
        return False
    if msgid is not None and record.msgid != msgid:
        return False
    if sd is not None:
        if isinstance(sd, str):
            if not any(e.id == sd for e in record.structured_data):
                return False
        elif len(sd) == 2:
            if not any(e.id == sd[0] and e.get(sd[1]) is not None for e in record.structured_data):
                return False
        elif not any(e.id == sd[0] and (sd[1], sd[2]) in e.params for e in record.structured_data):
            return False
    return text is None or text in record.message


def _describe(record: SyslogMessage) -> str:
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
        (``wait_for_messages`` then raises :class:`InvalidArgumentError`).
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
        severity: str | int | None = None,
        app: str | None = None,
        msgid: str | None = None,
        sd: SDMatcher | None = None,
        text: str | None = None,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    ) -> list[SyslogMessage]:
        """Wait until ``count`` recorded messages match; return the first ``count`` of them.

        Matchers (all that are given must hold): ``severity`` a name
        (``"err"``, ``"warning"``...) or number; ``app`` the app-name (RFC
        3164 TAG); ``msgid``; ``sd`` an SD-ID, ``(sd_id, param)`` or
        ``(sd_id, param, value)``; ``text`` a substring of the message.

        :raises TimeoutError: listing what did arrive.
        :raises InvalidArgumentError: an unknown severity name (a ``ValueError``).
        :raises ReactorDied: the reactor thread died meanwhile.
        """
        if not self.record:
            raise InvalidArgumentError("made with record=False: no messages to wait for")
        if severity is not None:
            Severity.from_name(severity)  # a bad name fails now, not after the timeout

        def matching() -> list[SyslogMessage] | None:
            got = [
                m
                for m in list(self.messages)
                if match_message(m, severity=severity, app=app, msgid=msgid, sd=sd, text=text)
            ]
            return got[:count] if len(got) >= count else None

        wanted = {
            k: v
            for k, v in dict(severity=severity, app=app, msgid=msgid, sd=sd, text=text).items()
            if v is not None
        }
        try:
            return self.wait_for(matching, timeout, f"{count} syslog message(s) matching {wanted}")
        except TimeoutError as exc:
            arrived = list(self.messages)
            lines = "".join(f"\n  {_describe(m)}" for m in arrived[-_SHOWN_ON_TIMEOUT:])
            more = (
                f" (the last {_SHOWN_ON_TIMEOUT} shown)" if len(arrived) > _SHOWN_ON_TIMEOUT else ""
            )
            raise TimeoutError(f"{exc}; {len(arrived)} arrived{more}:{lines or ' none'}") from None


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
        trust it with the client context that function returns, or with the
        bundled CA file ``protocols/certs/ca.pem`` (rsyslog, syslog-ng).
    """

    def __init__(
        self, addr: Any = None, *, ssl_context: ssl.SSLContext | None = None, **kwargs: Any
    ) -> None:
        if ssl_context is None:
            from .._tls import localhost_contexts

            ssl_context = localhost_contexts()[0]
        super().__init__(addr, ssl_context=ssl_context, **kwargs)
