"""SMTP servers on the shared reactor: :class:`SMTPServer` and :class:`TestSMTPServer`.

Each connection runs one :class:`~protocols.smtp._machine.SMTPServerConnection`
machine; this module is the glue between it, the reactor transport and the
user's callbacks.  All callbacks (``handler``, ``on_mail_from``,
``on_rcpt``, ``auth``) run on the reactor thread: they must return quickly
and must not block.  A callback rejects by raising :class:`SMTPReject` with
the reply it wants the client to see; any other exception is recorded in
``server.errors`` (guarantee G5) and answered with ``451 4.3.0``.

The native :class:`SMTPServer` records every accepted message as an
:class:`Envelope` in :attr:`SMTPServer.messages` (every refused one as a
:class:`Rejection`, every AUTH attempt as a :class:`Login`), and tests wait
for them with :meth:`SMTPServer.wait_for_messages` and friends.
"""

from __future__ import annotations

import dataclasses
import email
import email.message
import email.policy
import functools
import hmac
import re
import ssl
import sys
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from reactor import DEFAULT_WAIT_TIMEOUT, StreamServerBase, StreamTransport, TimerHandle

from .. import _match
from ._auth import SASLMechanism
from ._events import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_RECIPIENTS,
    NEED_DATA,
    PAUSED,
    YIELD,
    AuthAttempt,
    CommandLine,
    CommandRefusal,
    ConnectionClosed,
    Event,
    InvalidArgumentError,
    MailFromProposed,
    MessageReceived,
    MessageRefused,
    Quit,
    RecipientProposed,
    Reply,
    Reset,
    SMTPProtocolError,
    StartTLSRequested,
)
from ._faults import DisconnectInData, FaultFired, SMTPFault
from ._machine import SMTPServerConnection, State

# An RFC 3463 enhanced status code at the start of a reply text.
_ENHANCED_RE = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}")

__all__ = [
    "REPLY_HIGH_WATER",
    "REPLY_KERNEL_BUFFER",
    "Envelope",
    "Login",
    "RECORD_BYTES",
    "RECORD_LIMIT",
    "Rejection",
    "SMTPCommand",
    "SMTPReject",
    "SessionEvent",
    "SMTPServer",
    "SMTPSession",
    "add_smtp_sink",
]

#: Reply octets an SMTP connection holds for a client that does not read
#: before it stops reading commands (its transport's high-water mark; reading
#: resumes at a quarter).  SMTP replies are a few dozen octets and even a
#: pipelining client (RFC 2920) reads them after each batch, so 256 KiB (some
#: 30,000 replies) is far beyond an honest client's backlog, while a client
#: that floods commands and never reads is stopped after milliseconds of work
#: (the stream default, 4 MiB of 8-octet replies, took about 1.3 s of CPU).
REPLY_HIGH_WATER = 256 * 1024

#: The kernel's share of that backlog (the socket's send buffer): left to
#: itself it grows to megabytes, each one more flood of commands answered.
REPLY_KERNEL_BUFFER = 64 * 1024

#: Octets a connection keeps, unparsed, of what the client sends while a
#: reply to it is held by a ``DelayReply``.  Reading goes on during a delay
#: so that a hang-up is seen when it happens, not when the timer fires; the
#: bytes wait here and are answered, in order, once the delay is over.  A
#: pipelining client (RFC 2920) sends a few hundred octets per group before
#: it waits for the replies, so 64 KiB is generous; past it reading pauses
#: (back-pressure) until the delay ends.
HELD_INPUT_LIMIT = 64 * 1024

#: Records one server keeps in each of :attr:`SMTPServer.commands`,
#: :attr:`SMTPServer.rejected`, :attr:`SMTPServer.session_events` and
#: :attr:`SMTPServer.faults_fired`; past it, new ones are counted in
#: :attr:`SMTPServer.records_dropped` instead (a client pipelining NOOPs for
#: a minute must not grow memory without bound).  A command record costs
#: some 250 octets besides its line: 20,000 of them are about 5 MB.
RECORD_LIMIT = 20_000

#: Octets of raw command lines one server keeps across those records (AUTH
#: lines may be 12,288 octets, MAIL lines 1,102): past it, records with a
#: line are dropped and counted too.  With :data:`RECORD_LIMIT` this keeps a
#: flooding client's cost in records under about 14 MB (guarantee G6b: 16 MiB).
RECORD_BYTES = 4 * 1024 * 1024


class SMTPReject(SMTPProtocolError):
    """Raise from an SMTP callback to refuse with this reply.

    ``code`` is a 4xx or 5xx reply code; ``text`` may start with an RFC 3463
    enhanced code (``"5.1.1 no such user"``) and may span lines.  A code
    outside 400-599 raises :class:`InvalidArgumentError` (a ``ValueError``).
    ``reply_code`` is ``code``; ``args`` stay ``(code, text)``.
    ``close=True`` closes the connection after the reply; a 421 always does
    (RFC 5321 §3.8).
    """

    def __init__(self, code: int = 550, text: str = "Rejected", *, close: bool = False) -> None:
        if not 400 <= code <= 599:
            raise InvalidArgumentError(f"SMTPReject needs a 4xx or 5xx code, not {code}")
        enhanced = text.split(" ", 1)[0]
        if not _ENHANCED_RE.fullmatch(enhanced):
            enhanced = f"{code // 100}.0.0"
        super().__init__(text, code, enhanced)
        self.args = (code, text)
        self.code = code
        self.close = close or code == 421


@dataclass(frozen=True, kw_only=True)
class Envelope:
    """One message as the server received it.

    ``data`` is the content with dot-stuffing removed and CRLF line endings;
    :attr:`message` parses it with ``email.policy.default`` (lazily, once).
    ``tls`` tells whether the message came over TLS (implicit or STARTTLS),
    ``tls_version`` which one; ``auth_user`` is the AUTH username or None.
    """

    peer: Any
    helo: str | None
    esmtp: bool
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...] = ()
    rcpt_options: tuple[tuple[str, ...], ...] = ()
    tls: bool = False
    tls_version: str | None = None
    auth_user: str | None = None
    #: ``time.monotonic()`` when the message was accepted: the clock of every
    #: record (HTTP requests, datagrams, streams); :attr:`received_wall` is
    #: the wall-clock ``time.time()`` of the same moment.
    received_at: float = field(default_factory=time.monotonic, compare=False)
    received_wall: float = field(default_factory=time.time, compare=False)

    @functools.cached_property
    def message(self) -> email.message.EmailMessage:
        """The content parsed as an :class:`email.message.EmailMessage`.

        CRLFs become ``"\n"`` first (the email package's own line ending), so
        ``get_content()`` returns text as a Python program expects it; the
        exact bytes stay in :attr:`data`.
        """
        data = self.data.replace(b"\r\n", b"\n")
        msg = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        return msg

    @property
    def text(self) -> str:
        """The content as text (UTF-8, undecodable bytes replaced)."""
        return self.data.decode("utf-8", "replace")


@dataclass(frozen=True, kw_only=True, slots=True)
class Rejection:
    """A refusal: a 4xx/5xx reply to a command, or a message not delivered.

    ``command`` is the verb refused (``"MAIL"``, ``"RCPT"``, ``"DATA"``,
    ``"AUTH"``, ``"EHLO"``...; ``""`` for a line with no valid verb) and
    ``line`` the raw command line; ``text`` the reply text.  ``reason`` is

    * for a message refused after its content (``command`` ``"DATA"``,
      ``line`` ``b"DATA"``): ``"size"``, ``"line-length"``,
      ``"bare-line-ending"`` (by the server; ``envelope`` is None, the
      content was not kept) or ``"handler"`` (``envelope`` is the message);
    * for a refused command: ``"syntax"`` (500/501/502/504/555),
      ``"sequence"`` (503), ``"size"`` (552, e.g. ``MAIL ... SIZE=``),
      ``"closing"`` (421 after too many errors), ``"policy"`` (any other
      code the server chose: 452, 530, 538, 553, 554...), ``"callback"``
      (``on_mail_from``/``on_rcpt``... raised :class:`SMTPReject`) or
      ``"auth"`` (credentials refused: see also :attr:`SMTPServer.logins`).

    ``mail_from`` and ``rcpt_tos`` are what the transaction knew (the
    refused sender or recipient included).  ``closed`` is True when the
    reply ended the connection.  ``received_at`` is ``time.monotonic()``
    (the clock of every record).
    """

    peer: Any
    mail_from: str
    rcpt_tos: tuple[str, ...]
    code: int
    reason: str
    envelope: Envelope | None = None
    command: str = "DATA"
    line: bytes = b"DATA"
    text: str = ""
    closed: bool = False
    received_at: float = field(default_factory=time.monotonic, compare=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class SMTPCommand:
    """One command line a client sent, as read (SASL responses and message
    content are not command lines).

    ``line`` is the raw bytes without the CRLF (cut to 512 octets for an
    over-long line, empty when it was too long to keep), ``verb`` the
    upper-cased verb (``""`` when the line has no valid one) and
    ``argument`` the rest.  ``received_at`` is ``time.monotonic()`` when the
    server handled it, ``received_wall`` the same moment as ``time.time()``.
    """

    peer: Any
    line: bytes
    verb: str
    argument: str
    received_at: float = field(default_factory=time.monotonic, compare=False)
    received_wall: float = field(default_factory=time.time, compare=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionEvent:
    """A change in a dialogue: ``kind`` ``"RSET"`` (a transaction reset by
    RSET), ``"QUIT"`` (the client said QUIT; ``reply_code`` 221),
    ``"CLOSE"`` (the server hung up with ``reply_code`` 421: too many
    errors, or a refusal that closes; 0 for ``DisconnectInData``) or
    ``"HANGUP"`` (the client closed or reset the connection while a reply
    to it was held by ``DelayReply``; ``reply_code`` 0: the held replies
    are not sent).  ``received_at`` is ``time.monotonic()``."""

    peer: Any
    kind: str
    reply_code: int = 250
    received_at: float = field(default_factory=time.monotonic, compare=False)


@dataclass(frozen=True, kw_only=True)
class Login:
    """One AUTH exchange that produced credentials, successful or not
    (``reply_code`` 235 means accepted)."""

    peer: Any
    mechanism: str
    username: str
    password: str
    authzid: str = ""
    tls: bool = False
    reply_code: int = 235
    #: The first response came on the AUTH line (RFC 4954 initial response).
    initial_response: bool = False
    received_at: float = field(default_factory=time.monotonic, compare=False)

    @property
    def succeeded(self) -> bool:
        """True when the server accepted the credentials (a 2xx reply)."""
        return self.reply_code // 100 == 2

    @property
    def identity(self) -> str:
        """The identity the client authenticated as (the username)."""
        return self.username

    @property
    def outcome(self) -> str:
        """``"accepted"`` or ``"rejected"``."""
        return "accepted" if self.succeeded else "rejected"


class SMTPSession:
    """One connection as an ``on_command`` hook sees it (reactor thread).

    ``peer``; ``helo`` (the HELO/EHLO name or None), ``esmtp``, ``tls``,
    ``auth_user`` and ``state`` (a :class:`~protocols.smtp.State`) read the
    dialogue as it is now; ``counts`` maps each verb to how many command
    lines with it this connection sent so far (this one included);
    ``messages`` counts the messages accepted on it; ``context`` is a dict
    free for the hook's own use.
    """

    __slots__ = ("peer", "context", "counts", "messages", "_machine", "_server")

    def __init__(
        self, peer: Any, machine: SMTPServerConnection, server: SMTPServer | None = None
    ) -> None:
        self.peer = peer
        self._server = server
        self.context: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.messages = 0
        self._machine = machine

    @property
    def helo(self) -> str | None:
        return self._machine.helo_name

    @property
    def server_messages(self) -> int:
        """Messages the server accepted so far, on every connection."""
        return len(self._server.messages) if self._server is not None else self.messages

    @property
    def esmtp(self) -> bool:
        return self._machine.esmtp

    @property
    def tls(self) -> bool:
        return self._machine.tls_active

    @property
    def auth_user(self) -> str | None:
        return self._machine.authenticated_as

    @property
    def state(self) -> State:
        return self._machine.state

    def __repr__(self) -> str:
        return f"<SMTPSession {self.peer!r} {self.state.name} helo={self.helo!r}>"


#: What an ``on_command`` hook may return: None (carry on), a :class:`Reply`,
#: or ``(code, text)``.
CommandResult = Reply | tuple[int, str] | None
CommandHookFn = Callable[[SMTPSession, str, str], CommandResult]


AuthCheck = Callable[[str, str], bool]


class _SMTPConnection:
    """StreamProtocol for one SMTP connection (reactor thread only)."""

    def __init__(self, server: SMTPServer, peer: Any) -> None:
        self.server = server
        self.peer = peer
        self.transport: StreamTransport | None = None
        self.machine: SMTPServerConnection | None = None
        self.session: SMTPSession | None = None
        # DelayReply: replies held until a timer fires (only this connection waits).
        self._held: bytearray | None = None
        self._held_input = bytearray()  # what the client sent meanwhile (HELD_INPUT_LIMIT)
        self._hold_timer: TimerHandle | None = None
        self._close_after_hold = False
        self._tls_after_hold = False  # STARTTLS accepted while its 220 is held
        # The client sent more after the delayed command: an EOF now is a
        # half-close behind a backlog (answered after the delay), not a hang-up.
        self._input_after_hold = False
        self._eof_after_hold = False
        # DisconnectInData: armed by the nth DATA command; content octets seen.
        self._disconnect_armed: DisconnectInData | None = None
        self._data_octets = 0
        self._resume_scheduled = False  # the machine yielded; _resume is queued or awaited
        self._write_paused = False  # the client does not read: replies wait
        self._resume_on_write = False  # _resume waits for resume_writing()

    # -- StreamProtocol --------------------------------------------------------

    def connection_made(self, transport: StreamTransport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(REPLY_HIGH_WATER, kernel=REPLY_KERNEL_BUFFER)
        if transport.peername is not None:
            self.peer = transport.peername
        server = self.server
        self.machine = SMTPServerConnection(
            hostname=server.hostname,
            greeting=server.greeting,
            max_message_size=server.max_message_size,
            max_recipients=server.max_recipients,
            starttls=server.starttls_context is not None,
            tls_active=server.ssl_context is not None,
            auth_mechanisms=server._offered_mechanisms() if server.auth is not None else (),
            auth_over_plaintext=server.auth_over_plaintext,
            auth_required=server.auth_required,
            tls_required=server.tls_required,
            allow_bare_line_endings=server.allow_bare_line_endings,
            lmtp=server.lmtp,
            enhanced_status_codes=server.enhanced_status_codes,
            replies=server.replies,
            ehlo_keywords=self._keywords if server.ehlo_keywords is not None else None,
            allow_repeated_helo=server.allow_repeated_helo,
            auth_before_ehlo=server.auth_before_ehlo,
            command_hook=self._hook
            if server.on_command is not None or server.command_faults
            else None,
            custom_mechanisms={
                name: self._wrap_mechanism(name, fn) for name, fn in server.sasl_mechanisms.items()
            },
        )
        self.session = SMTPSession(self.peer, self.machine, server)
        self._flush()  # the greeting (held by the transport until a TLS handshake is done)

    # -- scripting callbacks, called by the machine (reactor thread) ------------

    def _hook(self, verb: str, argument: str) -> Reply | None:
        """Run ``on_command``; a failure is recorded and answered 451."""
        session = self.session
        server = self.server
        fn = server.on_command
        assert session is not None
        session.counts[verb] = session.counts.get(verb, 0) + 1
        if self._held is not None:
            self._input_after_hold = True  # pipelined behind a delayed command
        try:
            for fault in server.command_faults:
                if isinstance(fault, DisconnectInData):
                    if verb == "DATA" and session.counts[verb] == fault.nth:
                        self._disconnect_armed, self._data_octets = fault, 0
                    continue
                scripted: Reply | None = fault.command(session, verb, argument)
                if scripted is not None:
                    self._fault_fired(fault, verb, f"reply {scripted.code}")
                    return scripted
                seconds = fault.delay(session, verb, argument)
                if seconds > 0:
                    self._fault_fired(fault, verb, f"delay {seconds}")
                    self._hold(seconds)
            if fn is None:
                return None
            result = fn(session, verb, argument)
            if result is None or isinstance(result, Reply):
                return result
            if isinstance(result, tuple) and len(result) == 2:
                return Reply(*result)
            raise InvalidArgumentError(
                f"on_command returns None, a Reply or (code, text), not {result!r}"
            )
        except SMTPReject:
            raise  # the machine sends it
        except Exception as exc:
            self.server.handle_error(exc, f"SMTP on_command for {self.peer!r}")
            return Reply(451, "4.3.0 Local error in processing")

    def _fault_fired(self, fault: SMTPFault, verb: str, action: str) -> None:
        self.server._record_bounded(
            self.server.faults_fired,
            FaultFired(peer=self.peer, fault=fault.describe(), verb=verb, action=action),
        )

    def _hold(self, seconds: float) -> None:
        """Hold every reply from now on for ``seconds`` (a reactor timer):
        the replies queued before go out now; reading pauses meanwhile."""
        t = self.transport
        if t is None or self._held is not None:
            return
        self._flush()
        self._held = bytearray()
        self._input_after_hold = False
        # Reading goes on (into _held_input) so that a hang-up is seen at once.
        self._hold_timer = t.reactor.call_later(seconds, self._release)

    def _release(self) -> None:
        self._hold_timer = None
        held, self._held = self._held, None
        t = self.transport
        if t is None or held is None or self.machine is None:
            return
        out = bytes(held) + self.machine.data_to_send()
        if out:
            t.write(out)
        if self._close_after_hold:
            t.close()
            return
        if self._tls_after_hold:
            # The 220 went out in plaintext just now; what the client sent
            # after STARTTLS meanwhile is plaintext to drop (RFC 3207 §4.2).
            self._tls_after_hold = False
            self._held_input = bytearray()
            self._begin_tls()
            return
        pending, self._held_input = self._held_input, bytearray()
        eof, self._eof_after_hold = self._eof_after_hold, False
        if not self._resume_scheduled:
            t.resume_reading()  # if HELD_INPUT_LIMIT paused it (a no-op after an EOF)
        if pending:
            self.data_received(bytes(pending))  # answered now, in order
        if eof and not t.is_closing():
            # The half-close behind them: the machine closes once it is reached
            # (after any later delay too), as eof_received() does.
            self.machine.receive_data(b"")
        if not pending or (eof and not self._resume_scheduled):
            self._pump()

    def _hung_up_while_held(self) -> None:
        """The client closed or reset the connection while a reply was held:
        record it now, drop the held replies and what came meanwhile."""
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self._held = None
        self._held_input = bytearray()
        self._close_after_hold = False
        self._tls_after_hold = False
        self._eof_after_hold = False
        self.server._record_session(SessionEvent(peer=self.peer, kind="HANGUP", reply_code=0))

    def _keywords(self, builtin: list[str]) -> Sequence[str]:
        chosen = self.server.ehlo_keywords
        if not callable(chosen):
            return list(chosen or ())
        try:
            return list(chosen(builtin))
        except Exception as exc:
            self.server.handle_error(exc, f"SMTP ehlo_keywords for {self.peer!r}")
            return builtin

    def _wrap_mechanism(self, name: str, fn: SASLMechanism) -> SASLMechanism:
        server, peer = self.server, self.peer

        def run(initial: bytes | None) -> Generator[bytes, bytes, tuple[str, str]]:
            try:
                return (yield from fn(initial))
            except SMTPReject:
                raise
            except Exception as exc:
                server.handle_error(exc, f"SASL mechanism {name} for {peer!r}")
                raise SMTPReject(454, "4.7.0 Temporary authentication failure") from None

        return run

    def data_received(self, data: bytes) -> None:
        assert self.machine is not None
        if self._held is not None:  # a DelayReply holds a reply: answer this after it
            self._held_input += data
            self._input_after_hold = True
            if len(self._held_input) >= HELD_INPUT_LIMIT and self.transport is not None:
                self.transport.pause_reading()
            return
        if self._disconnect_armed is not None and self._disconnect_now(len(data)):
            return
        self.machine.receive_data(data)
        self._pump()

    def _disconnect_now(self, octets: int) -> bool:
        """DisconnectInData: drop the connection in the middle of the content."""
        fault = self._disconnect_armed
        assert fault is not None and self.machine is not None
        if self.machine.state is not State.DATA:
            return False
        if self._data_octets + octets <= fault.after:
            self._data_octets += octets
            return False
        return self._disconnect(fault)

    def _disconnect(self, fault: DisconnectInData) -> bool:
        self._disconnect_armed = None
        self._fault_fired(fault, "DATA", "disconnect")
        self.server._record_session(SessionEvent(peer=self.peer, kind="CLOSE", reply_code=0))
        self._flush()  # the replies owed so far (the 354 included), then the hang-up
        if self.transport is not None:
            self.transport.close()
        return True

    def eof_received(self) -> bool | None:
        assert self.machine is not None
        if self._held is not None:
            if self._input_after_hold and not self._tls_after_hold:
                # A pipelining client's half-close (it still reads): the
                # commands before it are answered after the delay, then close.
                self._eof_after_hold = True
                return True
            self._hung_up_while_held()
            return None  # the transport closes now
        self.machine.receive_data(b"")
        self._pump()
        # Commands still buffered behind a YIELD are answered on later
        # passes; the connection closes when the machine reaches the EOF.
        return True if self._resume_scheduled else None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._held is not None and isinstance(exc, ConnectionError):
            self._hung_up_while_held()  # a reset (ECONNRESET) during a DelayReply
        elif self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self.transport = None
        self.server._notify()  # wakes wait_for(lambda: s.connection_count == 0)

    # -- glue --------------------------------------------------------------

    def shutdown(self) -> None:
        """Say 421 before the server closes the connection (RFC 5321 §3.8)."""
        if self.machine is not None:
            if self._held is not None:  # a DelayReply is cut short by the stop
                held, self._held = self._held, None
                if self.transport is not None:
                    self.transport.write(bytes(held))
                pending, self._held_input = self._held_input, bytearray()
                if pending and not self._tls_after_hold:  # answered before the 421 (G3)
                    self.machine.receive_data(bytes(pending))
            self._pump(finish=True)  # answer what arrived before the stop
            self.machine.shutdown("Server stopping, closing connection")
            self._flush()

    def _flush(self) -> None:
        assert self.machine is not None
        out = self.machine.data_to_send()
        if self._held is not None:
            self._held += out  # DelayReply: sent when the timer fires
        elif out and self.transport is not None:
            self.transport.write(out)

    def _pump(self, finish: bool = False) -> None:
        """Run the machine until it needs bytes; answer its proposals.

        Replies produced by one batch of input go out in one write.  When
        the machine yields (its per-call command budget is spent), reading
        pauses and the rest is answered on a later reactor pass, unless
        ``finish`` (the server is stopping).
        """
        m = self.machine
        assert m is not None
        try:
            while True:
                event = m.next_event()
                self._drain_records()
                if event is YIELD:
                    if finish:
                        continue
                    self._yield()
                    return
                if event is NEED_DATA or event is PAUSED:
                    return
                if isinstance(event, MailFromProposed):
                    self._decide(self.server.on_mail_from, event.address, event.options)
                elif isinstance(event, RecipientProposed):
                    self._decide(self.server.on_rcpt, event.address, event.options)
                elif isinstance(event, MessageReceived):
                    if self._disconnect_armed is not None:
                        # The content came in the same read as DATA
                        # (pipelining): drop it all the same, undelivered.
                        self._disconnect(self._disconnect_armed)
                        return
                    self._deliver(event)
                elif isinstance(event, MessageRefused):
                    self.server._record_rejection(
                        Rejection(
                            peer=self.peer,
                            mail_from=event.mail_from,
                            rcpt_tos=event.recipients,
                            code=event.reply_code,
                            reason=event.reason,
                        )
                    )
                elif isinstance(event, AuthAttempt):
                    self._authenticate(event)
                elif isinstance(event, StartTLSRequested):
                    self._start_tls()
                    return
                elif isinstance(event, Reset):
                    self.server._record_session(SessionEvent(peer=self.peer, kind="RSET"))
                elif isinstance(event, Quit):
                    code = event.reply_code
                    kind = "QUIT" if code == 221 else "CLOSE"
                    self.server._record_session(
                        SessionEvent(peer=self.peer, kind=kind, reply_code=code)
                    )
                    self._flush()
                    if self._held is not None:
                        self._close_after_hold = True
                    elif self.transport is not None:
                        self.transport.close()
                    return
                elif isinstance(event, ConnectionClosed):
                    if self._held is not None:
                        self._close_after_hold = True
                    elif self.transport is not None:
                        self.transport.close()
                    return
        finally:
            self._drain_records()
            self._flush()

    def _drain_records(self) -> None:
        m = self.machine
        assert m is not None
        records = m.take_records()
        if records:
            self.server._record_dialogue(self.peer, records)

    # -- write back-pressure (called by the transport) -------------------------

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._resume_on_write:
            self._resume_on_write = False
            t = self.transport
            if t is not None:
                t.reactor.call_soon(self._resume)

    def _yield(self) -> None:
        t = self.transport
        if t is None or self._resume_scheduled:
            return
        self._resume_scheduled = True
        t.pause_reading()  # the machine holds a backlog: read no more for now
        self._flush()  # lets the transport see its backlog (and pause writing)
        if self._write_paused:
            # The client is not reading its replies: answer no more commands
            # until it does (resume_writing()), instead of a pass every pass.
            self._resume_on_write = True
        else:
            t.reactor.call_soon(self._resume)

    def _resume(self) -> None:
        self._resume_scheduled = False
        self._resume_on_write = False
        if self.transport is None or self.machine is None:
            return
        self._pump()
        if (
            not self._resume_scheduled
            and len(self._held_input) < HELD_INPUT_LIMIT
            and self.transport is not None
        ):
            self.transport.resume_reading()

    def _call(self, fn: Callable[..., object], *args: Any, reason: str = "callback") -> int | None:
        """Run a user callback; answer the pending proposal from its outcome.

        Returns None when the proposal was accepted, else the reply code.
        """
        m = self.machine
        assert m is not None
        try:
            fn(*args)
        except SMTPReject as exc:
            m.reject(exc.code, exc.text, close=exc.close, reason=reason)
            return exc.code
        except Exception as exc:
            self.server.handle_error(exc, f"SMTP callback for {self.peer!r}")
            m.reject(451, "4.3.0 Local error in processing", reason="error")
            return 451
        m.accept()
        return None

    def _decide(self, fn: Callable[..., object] | None, address: str, options: Any) -> None:
        assert self.machine is not None
        if fn is None:
            self.machine.accept()
        else:
            self._call(fn, address, list(options))

    def _deliver(self, event: MessageReceived) -> None:
        m = self.machine
        assert m is not None and self.transport is not None
        ssl_object = self.transport.ssl_object
        envelope = Envelope(
            peer=self.peer,
            helo=m.helo_name,
            esmtp=m.esmtp,
            mail_from=event.mail_from,
            rcpt_tos=event.recipients,
            data=event.data,
            mail_options=event.mail_options,
            rcpt_options=event.recipient_options,
            tls=m.tls_active,
            tls_version=ssl_object.version() if ssl_object is not None else None,
            auth_user=m.authenticated_as,
        )
        server = self.server
        handler = server.handler
        if m.lmtp:
            self._deliver_lmtp(envelope)
            return
        if handler is None:
            m.accept()
            code = None
        else:
            code = self._call(handler, envelope)
        if code is None:
            server._record_message(envelope)
            if self.session is not None:
                self.session.messages += 1
        else:
            server._record_rejection(
                Rejection(
                    peer=self.peer,
                    mail_from=envelope.mail_from,
                    rcpt_tos=envelope.rcpt_tos,
                    code=code,
                    reason="handler",
                    envelope=envelope,
                    closed=m.state is State.CLOSED,
                )
            )

    def _deliver_lmtp(self, envelope: Envelope) -> None:
        """LMTP: one outcome per recipient (RFC 2033 §4.2).  The handler
        refuses them all by raising :class:`SMTPReject`, or some by returning
        ``{recipient: SMTPReject or (code, text)}``; the others are delivered.
        A key that is not one of the message's recipients is a handler error
        (:class:`InvalidArgumentError`, recorded; every recipient gets 451)."""
        m = self.machine
        server = self.server
        assert m is not None
        recipients = envelope.rcpt_tos
        results: list[tuple[int, str] | None] = [None] * len(recipients)
        close = False
        try:
            outcome = server.handler(envelope) if server.handler is not None else None
            if outcome is not None:
                if not isinstance(outcome, Mapping):
                    raise InvalidArgumentError(
                        f"an LMTP handler returns None or {{recipient: refusal}}, not {outcome!r}"
                    )
                # A key that names no recipient of this message (a typo, a
                # recipient refused at RCPT) would refuse nobody: say so.
                unknown = [key for key in outcome if key not in recipients]
                if unknown:
                    raise InvalidArgumentError(
                        f"the LMTP handler refused {', '.join(map(repr, unknown))}: not a "
                        f"recipient of this message (its recipients: "
                        f"{', '.join(map(repr, recipients))})"
                    )
                for i, rcpt in enumerate(recipients):
                    refusal = outcome.get(rcpt)
                    if isinstance(refusal, SMTPReject):
                        results[i] = (refusal.code, refusal.text)
                        close = close or refusal.close
                    elif refusal is not None:
                        code, text = SMTPReject(*refusal).args  # validates the code
                        results[i] = (code, text)
        except SMTPReject as exc:
            results = [(exc.code, exc.text)] * len(recipients)
            close = exc.close
        except Exception as exc:
            server.handle_error(exc, f"SMTP handler for {self.peer!r}")
            results = [(451, "4.3.0 Local error in processing")] * len(recipients)
        m.deliver(results, close=close)
        delivered = tuple(r for r, res in zip(recipients, results, strict=True) if res is None)
        if delivered:
            server._record_message(dataclasses.replace(envelope, rcpt_tos=delivered))
            if self.session is not None:
                self.session.messages += 1
        for rcpt, res in zip(recipients, results, strict=True):
            if res is not None:
                server._record_rejection(
                    Rejection(
                        peer=self.peer,
                        mail_from=envelope.mail_from,
                        rcpt_tos=(rcpt,),
                        code=res[0],
                        reason="handler",
                        envelope=envelope,
                        text=res[1],
                        closed=m.state is State.CLOSED,
                    )
                )

    def _authenticate(self, event: AuthAttempt) -> None:
        m = self.machine
        assert m is not None
        check = self.server.auth
        assert check is not None  # AUTH is only offered with a checker
        secrets = self.server._secrets

        def verify(username: str, password: str) -> None:
            if event.mechanism == "CRAM-MD5":  # RFC 2195: HMAC-MD5 of the challenge
                secret = secrets.get(username) if secrets is not None else None
                ok = secret is not None and hmac.compare_digest(
                    hmac.new(secret.encode(), event.challenge.encode(), "md5").hexdigest(),
                    event.digest,
                )
            else:
                ok = check(username, password)
            if not ok:
                raise SMTPReject(535, "5.7.8 Authentication credentials invalid")

        code = self._call(verify, event.username, event.password, reason="auth")
        self.server._record_login(
            Login(
                peer=self.peer,
                mechanism=event.mechanism,
                username=event.username,
                password=event.password,
                authzid=event.authzid,
                tls=m.tls_active,
                reply_code=self.server.replies.get("AUTH", (235, ""))[0] if code is None else code,
                initial_response=event.initial_response,
            )
        )

    def _start_tls(self) -> None:
        m = self.machine
        ctx = self.server.starttls_context
        assert m is not None and ctx is not None and self.transport is not None
        m.accept()  # queues the 220 and drops any pipelined plaintext
        self._flush()  # the 220 goes out in plaintext, before the handshake
        if self._held is not None:  # a DelayReply holds the 220: TLS after it
            self._tls_after_hold = True
            return
        self._begin_tls()

    def _begin_tls(self) -> None:
        ctx = self.server.starttls_context
        assert ctx is not None and self.transport is not None
        self.transport.start_tls(ctx, server_side=True, on_done=self._tls_done)

    def _tls_done(self) -> None:
        assert self.machine is not None
        self.machine.tls_established()


class SMTPServer(StreamServerBase):
    """An SMTP server (RFC 5321 + ESMTP) on the shared reactor.

    :param addr: ``(host, port)``; default ``("127.0.0.1", 0)``.
    :param handler: ``handler(envelope)`` for each complete message; raise
        :class:`SMTPReject` to refuse it.  Optional: every accepted message
        is recorded in :attr:`messages` anyway.
    :param on_mail_from: ``on_mail_from(address, options)``; raise
        :class:`SMTPReject` to refuse the sender.
    :param on_rcpt: ``on_rcpt(address, options)``; raise :class:`SMTPReject`
        to refuse one recipient (the others stay).
    :param hostname: name in the greeting and EHLO reply.
    :param greeting: text of the 220 banner after the hostname.
    :param ssl_context: implicit TLS ("SMTPS", port 465 style) on every
        connection.
    :param starttls_context: offer STARTTLS (RFC 3207) with this context.
    :param auth: a ``{username: password}`` mapping or a callable
        ``auth(username, password) -> bool`` (it may raise
        :class:`SMTPReject`, e.g. 454); AUTH is offered only with it, and only
        over TLS unless ``auth_over_plaintext``.
    :param auth_mechanisms: SASL mechanisms to offer (PLAIN, LOGIN).
    :param auth_required: refuse MAIL with 530 until the client authenticated.
    :param tls_required: refuse MAIL with 530 until TLS is active.
    :param max_message_size: fixed maximum message size in octets (RFC 1870),
        an ``int`` (``TypeError`` for ``None``: content is held in memory, so
        there is always a limit).  The CRLF that ends the last line is not
        counted, so ``smtplib`` can send a message of exactly this size.
    :param max_recipients: recipients per message (at least 100).
    :param allow_bare_line_endings: accept bare CR/LF in content instead of
        refusing the message with 554.
    :param lmtp: speak LMTP (RFC 2033) instead of SMTP: LHLO replaces
        HELO/EHLO (which get 500), and the end of data gets one reply per
        accepted recipient.  The handler then refuses every recipient by
        raising :class:`SMTPReject`, or some of them by returning
        ``{recipient: SMTPReject(...) or (code, text)}``; the message is
        recorded with the recipients it was delivered to, each refused
        recipient as a :class:`Rejection`.  A key that is not one of the
        message's recipients (a typo) is a handler error: an
        :class:`InvalidArgumentError` in :attr:`errors`, and 451 to every
        recipient, nothing delivered.
    :param enhanced_status_codes: add RFC 3463 codes to replies in EHLO
        sessions (and advertise ENHANCEDSTATUSCODES); False never does.
    :param replies: ``{step: (code, text)}`` for the accepted steps
        (``"greeting"``, ``"HELO"``, ``"EHLO"`` (its first line), ``"MAIL"``,
        ``"RCPT"``, ``"DATA"`` (3xx), ``"message"``, ``"AUTH"``, ``"QUIT"``,
        ``"RSET"``, ``"NOOP"``, ``"VRFY"``, ``"HELP"``, ``"STARTTLS"``); the
        code keeps its class (2xx, 354 for DATA).
    :param ehlo_keywords: the EHLO keyword lines instead of the built-in
        ones: a list, or ``f(builtin_list) -> list`` called at each EHLO.
    :param allow_repeated_helo: False answers a second HELO/EHLO with
        ``503 Duplicate HELO/EHLO`` (as smtpd did).
    :param auth_before_ehlo: accept AUTH before HELO/EHLO and after HELO.
    :param on_command: ``on_command(session, verb, argument)`` for every
        command line with a well-formed verb, known or unknown (VRFY, EXPN,
        HELP, QUIT, a second HELO, ``XFOO``...), on the reactor thread: return
        None to carry on, or a :class:`Reply` / ``(code, text)`` to send
        instead (the command is then not executed); raise
        :class:`SMTPReject` likewise.  421, ``Reply(close=True)`` and any
        reply to QUIT close the connection.
    :param command_faults: deterministic fault rules (:mod:`protocols.smtp._faults`:
        ``ReplyOn``, ``CloseAfterMessages``, ``DisconnectInData``,
        ``DelayReply``, ``Chaos``), checked before ``on_command``; each one
        that fires is recorded in :attr:`faults_fired`.
    :param sasl_mechanisms: ``{name: mechanism}`` custom SASL mechanisms
        (generator functions, see :data:`protocols.smtp.SASLMechanism`),
        offered after ``auth_mechanisms``.  CRAM-MD5 is built in (list it in
        ``auth_mechanisms``); it needs ``auth`` as a mapping (the server must
        know the password).

    Options are attributes; changing one (``server.auth_mechanisms``,
    ``server.replies``...) applies to connections made afterwards.

    Other keywords are :class:`reactor.BaseServer`'s (``poll_interval``,
    ``idle_timeout``, ``raise_errors``...).  Callbacks run on the reactor
    thread.  The lists :attr:`messages` and :attr:`rejected` are appended on
    the reactor thread; read them after a ``wait_for_*`` call.
    """

    def __init__(
        self,
        addr: Any = None,
        handler: Callable[[Envelope], object] | None = None,
        *,
        on_mail_from: Callable[[str, list[str]], object] | None = None,
        on_rcpt: Callable[[str, list[str]], object] | None = None,
        hostname: str = "localhost",
        greeting: str = "ESMTP testservers",
        ssl_context: ssl.SSLContext | None = None,
        starttls_context: ssl.SSLContext | None = None,
        auth: Mapping[str, str] | AuthCheck | None = None,
        auth_mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN"),
        auth_over_plaintext: bool = False,
        auth_required: bool = False,
        tls_required: bool = False,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_recipients: int = DEFAULT_MAX_RECIPIENTS,
        allow_bare_line_endings: bool = False,
        lmtp: bool = False,
        enhanced_status_codes: bool = True,
        replies: Mapping[str, tuple[int, str]] | None = None,
        ehlo_keywords: Sequence[str] | Callable[[list[str]], Sequence[str]] | None = None,
        allow_repeated_helo: bool = True,
        auth_before_ehlo: bool = False,
        on_command: CommandHookFn | None = None,
        sasl_mechanisms: Mapping[str, SASLMechanism] | None = None,
        command_faults: Sequence[SMTPFault] = (),
        **kwargs: Any,
    ) -> None:
        if ssl_context is not None and starttls_context is not None:
            raise InvalidArgumentError(
                "ssl_context (implicit TLS) and starttls_context are exclusive"
            )
        if auth_required and auth is None:
            raise InvalidArgumentError("auth_required needs auth=")
        self.handler = handler
        self.on_mail_from = on_mail_from
        self.on_rcpt = on_rcpt
        self.hostname = hostname
        self.greeting = greeting
        self.starttls_context = starttls_context
        self._secrets: dict[str, str] | None = None
        if isinstance(auth, Mapping):
            users = dict(auth)
            self._secrets = users

            def check(username: str, password: str) -> bool:
                return username in users and users[username] == password

            self.auth: AuthCheck | None = check
        else:
            self.auth = auth
        self.auth_mechanisms = auth_mechanisms
        self.auth_over_plaintext = auth_over_plaintext
        self.auth_required = auth_required
        self.tls_required = tls_required
        self.max_message_size = max_message_size
        self.max_recipients = max_recipients
        self.allow_bare_line_endings = allow_bare_line_endings
        self.lmtp = lmtp
        self.enhanced_status_codes = enhanced_status_codes
        self.ehlo_keywords = ehlo_keywords
        self.allow_repeated_helo = allow_repeated_helo
        self.auth_before_ehlo = auth_before_ehlo
        if on_command is not None and not callable(on_command):
            raise InvalidArgumentError("on_command must be callable")
        self.on_command = on_command
        self.command_faults = list(command_faults)
        for fault in self.command_faults:
            if not isinstance(fault, SMTPFault):
                raise InvalidArgumentError(f"command_faults takes SMTPFault rules, not {fault!r}")
        #: Every fault rule that fired (:class:`~protocols.smtp.FaultFired`), in order.
        self.faults_fired: list[FaultFired] = []
        self.sasl_mechanisms = {k.upper(): v for k, v in (sasl_mechanisms or {}).items()}
        if "CRAM-MD5" in (m.upper() for m in auth_mechanisms) and auth is not None:
            if self._secrets is None:
                raise InvalidArgumentError(
                    "CRAM-MD5 needs auth= as a {user: password} mapping (the server "
                    "must know the password to check the digest)"
                )
        # Validate the options once, here, in the caller's thread.
        self.replies = SMTPServerConnection(
            hostname=hostname,
            greeting=greeting,
            max_message_size=max_message_size,
            max_recipients=max_recipients,
            auth_mechanisms=self._offered_mechanisms(),
            replies=replies,
            ehlo_keywords=ehlo_keywords,
            custom_mechanisms=self.sasl_mechanisms,
        )._replies
        #: Accepted messages, in order of acceptance.
        self.messages: list[Envelope] = []
        #: Messages that were not delivered, in order.
        self.rejected: list[Rejection] = []
        #: Every AUTH attempt that got as far as credentials, in order.
        self.logins: list[Login] = []
        #: Every command line clients sent (:class:`SMTPCommand`), in order.
        self.commands: list[SMTPCommand] = []
        #: RSET, QUIT and server hang-ups (:class:`SessionEvent`), in order.
        self.session_events: list[SessionEvent] = []
        #: Records not kept because their list held :data:`RECORD_LIMIT`.
        self.records_dropped = 0
        self._record_bytes = 0  # line octets held in records (RECORD_BYTES)
        super().__init__(addr, ssl_context=ssl_context, **kwargs)

    def _offered_mechanisms(self) -> tuple[str, ...]:
        listed = tuple(m.upper() for m in self.auth_mechanisms)
        return listed + tuple(m for m in self.sasl_mechanisms if m not in listed)

    def make_protocol(self, addr: Any) -> _SMTPConnection:
        return _SMTPConnection(self, addr)

    def _detach(self) -> None:
        # Handle what already arrived, then say 421 to everyone still
        # connected; the base class then closes the sockets.
        for t in list(self._transports):
            t.drain_now()
            proto = t.protocol
            if isinstance(proto, _SMTPConnection):
                proto.shutdown()
        super()._detach()

    # -- recording (reactor thread) ----------------------------------------

    def _record_message(self, envelope: Envelope) -> None:
        self._record(self.messages, envelope)

    def _record_login(self, login: Login) -> None:
        self._record(self.logins, login)

    def _record_rejection(self, rejection: Rejection) -> None:
        self._record_bounded(self.rejected, rejection)

    def _record_session(self, event: SessionEvent) -> None:
        self._record_bounded(self.session_events, event)

    def _record_bounded(self, records: list[Any], item: Any) -> None:
        with self._cond:
            line = getattr(item, "line", b"")
            if len(records) < RECORD_LIMIT and self._record_bytes + len(line) <= RECORD_BYTES:
                records.append(item)
                self._record_bytes += len(line)
            else:
                self.records_dropped += 1
            self._cond.notify_all()

    def _record_dialogue(self, peer: Any, records: list[Event]) -> None:
        """Record the machine's notes (commands, refusals) in one wake-up."""
        with self._cond:
            for r in records:
                if isinstance(r, CommandLine):
                    target: list[Any] = self.commands
                    item: Any = SMTPCommand(
                        peer=peer, line=r.line, verb=r.verb, argument=r.argument
                    )
                elif isinstance(r, CommandRefusal):
                    target = self.rejected
                    item = Rejection(
                        peer=peer,
                        mail_from=r.mail_from,
                        rcpt_tos=(r.recipient,) if r.recipient else (),
                        code=r.code,
                        reason=r.reason,
                        command=r.verb,
                        line=r.line,
                        text=r.text,
                        closed=r.closes,
                    )
                else:  # pragma: no cover - take_records() returns only these
                    continue
                size = len(r.line)
                if len(target) < RECORD_LIMIT and self._record_bytes + size <= RECORD_BYTES:
                    target.append(item)
                    self._record_bytes += size
                else:
                    self.records_dropped += 1
            self._cond.notify_all()

    # -- waiting (any thread but the reactor's) ---------------------------------

    def wait_for_messages(
        self, count: int = 1, timeout: float | None = DEFAULT_WAIT_TIMEOUT, **matchers: Any
    ) -> list[Envelope]:
        """Block until ``count`` messages (matching ``sender=``, ``recipient=``,
        ``subject=``, ``headers=``, ``body=``, ``tls=``, ``auth_user=``,
        ``predicate=``, if given) were accepted; return the first ``count``.

        :raises TimeoutError: if they do not arrive within ``timeout`` seconds,
            naming what arrived and the nearest miss.
        """
        return _match.wait_matching(
            self,
            lambda: self.messages,
            count,
            timeout,
            "message(s)",
            _match.envelope_criteria(**matchers),
            _match.describe_envelope,
        )

    def wait_for_message(
        self, timeout: float | None = DEFAULT_WAIT_TIMEOUT, **matchers: Any
    ) -> Envelope:
        """Block until a (matching) message was accepted; return the first one."""
        return self.wait_for_messages(1, timeout, **matchers)[0]

    def find_messages(self, **matchers: Any) -> list[Envelope]:
        """Accepted messages matching the ``wait_for_messages()`` keywords (a snapshot)."""
        return _match.envelope_criteria(**matchers).select(self.messages)

    def wait_for_rejections(
        self, count: int = 1, timeout: float | None = DEFAULT_WAIT_TIMEOUT, **matchers: Any
    ) -> list[Rejection]:
        """Block until ``count`` refusals (matching ``command=``, ``code=``,
        ``reason=``, ``sender=``, ``recipient=``, ``line=``, ``text=``,
        ``predicate=``, if given: see :mod:`protocols` matchers) were
        recorded in :attr:`rejected`; return the first ``count``.

        :raises TimeoutError: if they do not arrive within ``timeout`` seconds.
        """
        return _match.wait_matching(
            self,
            lambda: self.rejected,
            count,
            timeout,
            "rejected message(s)",
            _rejection_criteria(**matchers),
            _describe_rejection,
        )

    def find_rejections(self, **matchers: Any) -> list[Rejection]:
        """Refusals matching the ``wait_for_rejections()`` keywords (a snapshot)."""
        return _rejection_criteria(**matchers).select(self.rejected)

    def wait_for_commands(
        self, count: int = 1, timeout: float | None = DEFAULT_WAIT_TIMEOUT, **matchers: Any
    ) -> list[SMTPCommand]:
        """Block until ``count`` command lines (matching ``verb=``,
        ``argument=``, ``line=``, ``predicate=``, if given) were recorded in
        :attr:`commands`; return the first ``count``.

        :raises TimeoutError: if they do not arrive within ``timeout`` seconds.
        """
        return _match.wait_matching(
            self,
            lambda: self.commands,
            count,
            timeout,
            "command line(s)",
            _command_criteria(**matchers),
            _describe_command,
        )

    def wait_for_faults(
        self, count: int = 1, timeout: float | None = DEFAULT_WAIT_TIMEOUT
    ) -> list[FaultFired]:
        """Block until ``count`` faults fired; return the first ``count``."""
        return self._wait_for_items(lambda: self.faults_fired, count, timeout, "fault(s) fired")

    def find_commands(self, **matchers: Any) -> list[SMTPCommand]:
        """Command lines matching the ``wait_for_commands()`` keywords (a snapshot)."""
        return _command_criteria(**matchers).select(self.commands)

    def wait_for_session_events(
        self, count: int = 1, timeout: float | None = DEFAULT_WAIT_TIMEOUT, **matchers: Any
    ) -> list[SessionEvent]:
        """Block until ``count`` session events (matching ``kind=``
        ``"RSET"``/``"QUIT"``/``"CLOSE"``, ``reply_code=``, ``predicate=``)
        were recorded in :attr:`session_events`; return the first ``count``.

        :raises TimeoutError: if they do not arrive within ``timeout`` seconds.
        """
        return _match.wait_matching(
            self,
            lambda: self.session_events,
            count,
            timeout,
            "session event(s)",
            _session_criteria(**matchers),
            _describe_session_event,
        )

    def wait_for_logins(
        self, count: int = 1, timeout: float | None = DEFAULT_WAIT_TIMEOUT
    ) -> list[Login]:
        """Block until ``count`` AUTH attempts were seen; return the first ``count``."""
        return self._wait_for_items(
            lambda: self.logins, count, timeout, "AUTH attempt(s)", _describe_login
        )

    def clear(self) -> None:
        """Forget every record: messages, rejections, logins, commands and
        session events."""
        with self._cond:
            self.messages.clear()
            self.rejected.clear()
            self.logins.clear()
            self.commands.clear()
            self.session_events.clear()
            self.faults_fired.clear()
            self.records_dropped = 0
            self._record_bytes = 0


def _describe_rejection(r: Rejection) -> str:
    return f"{r.command or '?'} -> {r.code} {r.reason} from {r.mail_from!r} to {list(r.rcpt_tos)!r}"


def _describe_command(c: SMTPCommand) -> str:
    return _match.short(c.line)


def _describe_session_event(e: SessionEvent) -> str:
    return f"{e.kind} ({e.reply_code})"


def _rejection_criteria(
    command: Any = None,
    code: Any = None,
    reason: Any = None,
    sender: Any = None,
    recipient: Any = None,
    line: Any = None,
    text: Any = None,
    predicate: Callable[[Any], object] | None = None,
) -> _match.Criteria:
    return _match.Criteria(
        [
            _match.field("command", lambda r: r.command, command),
            _match.field("code", lambda r: r.code, code),
            _match.field("reason", lambda r: r.reason, reason),
            _match.field("sender", lambda r: r.mail_from, sender),
            _match.field("recipient", lambda r: r.rcpt_tos[0] if r.rcpt_tos else "", recipient),
            _match.field("line", lambda r: r.line, line),
            _match.field("text", lambda r: r.text, text, default="contains"),
            _match.predicate_field(predicate),
        ]
    )


def _command_criteria(
    verb: Any = None,
    argument: Any = None,
    line: Any = None,
    predicate: Callable[[Any], object] | None = None,
) -> _match.Criteria:
    return _match.Criteria(
        [
            _match.field("verb", lambda c: c.verb, verb),
            _match.field("argument", lambda c: c.argument, argument),
            _match.field("line", lambda c: c.line, line),
            _match.predicate_field(predicate),
        ]
    )


def _session_criteria(
    kind: Any = None, reply_code: Any = None, predicate: Callable[[Any], object] | None = None
) -> _match.Criteria:
    return _match.Criteria(
        [
            _match.field("kind", lambda e: e.kind, kind),
            _match.field("reply_code", lambda e: e.reply_code, reply_code),
            _match.predicate_field(predicate),
        ]
    )


def _describe_login(login: Login) -> str:
    tls = ", TLS" if login.tls else ""
    return f"AUTH {login.mechanism} {login.username!r} -> {login.reply_code}{tls}"


def add_smtp_sink(
    host: str = "127.0.0.1",
    port: int = 8025,
    *,
    ssl_context: ssl.SSLContext | None = None,
    starttls_context: ssl.SSLContext | None = None,
    out: TextIO | Callable[[str, str], object] | None = None,
    start: bool = True,
    **kwargs: Any,
) -> SMTPServer:
    """Return a debugging SMTP sink that prints every message as it arrives.

    The successor of ``python -m smtpd -n -c DebuggingServer``: each message
    is printed with its envelope (``X-Peer``, ``X-Helo``, ``X-Mail-From``,
    ``X-Rcpt-To``, and ``X-TLS``/``X-Auth-User`` when they apply) followed
    by its content.  ``out`` is a text stream (default ``sys.stdout``) or a
    callable ``out(title, body)`` such as the CLI's ``Printer.block``.
    ``ssl_context`` serves implicit TLS, ``starttls_context`` offers
    STARTTLS; other keywords go to :class:`SMTPServer` (e.g.
    ``auth={"user": "password"}``).  The server is bound here (bind errors
    raise here) and started unless ``start=False``; the caller stops it.
    """

    def emit(title: str, body: str) -> None:
        if out is not None and not hasattr(out, "write"):
            out(title, body)
            return
        stream: Any = out if out is not None else sys.stdout
        stream.write(f"---------- {title}\n{body}------------ END MESSAGE ------------\n")
        stream.flush()

    def show(envelope: Envelope) -> None:
        facts = [
            f"X-Peer: {envelope.peer}",
            f"X-Helo: {envelope.helo}",
            f"X-Mail-From: {envelope.mail_from}",
            f"X-Rcpt-To: {', '.join(envelope.rcpt_tos)}",
        ]
        if envelope.tls:
            facts.append(f"X-TLS: {envelope.tls_version}")
        if envelope.auth_user is not None:
            facts.append(f"X-Auth-User: {envelope.auth_user}")
        body = envelope.data.decode("utf-8", "backslashreplace").replace("\r\n", "\n")
        emit(f"SMTP message from {envelope.peer}", "\n".join(facts) + "\n" + body)

    kwargs.setdefault("poll_interval", None)
    server = SMTPServer(
        (host, port),
        show,
        ssl_context=ssl_context,
        starttls_context=starttls_context,
        **kwargs,
    )
    if start:
        server.start()
    return server
