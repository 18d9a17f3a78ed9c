"""A sans-I/O SMTP server machine (RFC 5321, with ESMTP extensions).

Theory of operation
-------------------

:class:`SMTPServerConnection` is one server side of one SMTP connection.  It
never touches a socket: the I/O layer feeds it the peer's bytes with
:meth:`~SMTPServerConnection.receive_data` (``b""`` meaning EOF), pulls
events with :meth:`~SMTPServerConnection.next_event`, and sends whatever
:meth:`~SMTPServerConnection.data_to_send` returns.  The greeting is queued
by the constructor.

Replies the machine can make on its own (250 to NOOP, 503 bad sequence, 354
for DATA, 552 for an oversized message...) go straight to the outbound buffer.
Decisions that belong to the application come out as *proposals*
(:class:`MailFromProposed`, :class:`RecipientProposed`,
:class:`MessageReceived`, :class:`StartTLSRequested`, :class:`AuthAttempt`):
the machine then stops reading (``next_event()`` returns :data:`PAUSED`) until
the consumer calls :meth:`accept` or :meth:`reject`, which queue the reply and
let the machine go on.  Because it reads nothing while paused, pipelined
commands (RFC 2920) are answered strictly in order and the consumer may answer
later, from another callback, with any reply code it likes.

Commands are dispatched through :data:`TRANSITIONS`, the ``(state, verb) ->
(handler, next state)`` table in :mod:`protocols.smtp._state`: a verb that
exists but is absent for the current state is a 503 (bad sequence) without
any per-handler checks.  The dispatcher, not the handler, enters the next
state once the command succeeds (for proposals: :meth:`accept` does, when
the consumer accepts); every other change of state (end of content, end of
an AUTH exchange, end of a TLS handshake, EOF, 421) is a lookup in
:data:`~protocols.smtp._state.TRIGGERS`.  No code sets a state of its own.
HELP lists the verbs the table and the configuration allow right now.
Framing of message content lives in :mod:`protocols.smtp._content`, SASL
in :mod:`protocols.smtp._auth`, parsing and reply formatting in
:mod:`protocols.smtp._syntax`.

Message content (``DATA``) is framed strictly: it ends only at
``CRLF . CRLF`` (a line holding a single dot).  Bare ``LF.LF``, ``CR.CR`` or
``LF.CRLF`` never end it, so a client cannot smuggle a second message past a
different parser (the 2023 "SMTP smuggling" attacks).  A bare CR or LF inside
the content makes the machine refuse the message with 554 once the content
ends (RFC 5321 §2.3.8 says they MUST NOT be sent), unless the machine was
built with ``allow_bare_line_endings=True``, which keeps them verbatim.
Over-long text lines (RFC 5321 §4.5.3.1.6) and content over the size limit
(RFC 1870) are counted but not stored, and answered with 500/552 after the
end of data; nothing is delivered.  The size limit counts the unstuffed
content without the CRLF that ends its last line (that CRLF is the first
half of the ``CRLF . CRLF`` terminator; see :mod:`protocols.smtp._content`).

Verbs are ASCII letters only (anything else is 500, so no Unicode case
folding can turn ``MAıL`` into ``MAIL``), and arguments are split on the
ASCII space only (RFC 5321 §4.1.2: ``SP``), never on other whitespace.

Only syntax and sequence errors (500, 501, 502, 503, 504, 555) count toward
``max_errors``: policy refusals such as 452 (too many recipients), 553
(non-ASCII address without SMTPUTF8), 552, 530 or 538 answer a well-formed
command and leave the dialogue going (RFC 5321 §4.5.3.1.10: a client sent
452 goes on with the recipients already accepted).

STARTTLS (RFC 3207): after the consumer accepts, the 220 is queued, every
byte already buffered is discarded (a plaintext command pipelined after
STARTTLS must not execute inside the TLS session), bytes fed before
:meth:`tls_established` are discarded too, and ``tls_established()`` returns
the machine to the pre-EHLO state with everything learnt from the client
forgotten.

Thread safety: none.  One thread (the reactor's) drives one machine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from .._buffer import ReceiveBuffer
from ._auth import BUILTIN_MECHANISMS, SASLExchange, SASLMechanism
from ._content import ContentReader
from ._events import (
    AUTH_LINE_LIMIT,
    COMMAND_LINE_LIMIT,
    COMMANDS_PER_CALL,
    DEFAULT_MAX_ERRORS,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_RECIPIENTS,
    MAIL_LINE_LIMIT,
    MIN_RECIPIENTS,
    NEED_DATA,
    PAUSED,
    REPLY_KEYS,
    YIELD,
    AuthAttempt,
    CommandLine,
    CommandRefusal,
    ConnectionClosed,
    ConnectionClosedError,
    Event,
    Hello,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LocalProtocolError,
    MailFromProposed,
    MessageReceived,
    MessageRefused,
    Proposal,
    Quit,
    RecipientProposed,
    RemoteProtocolError,
    Reply,
    Reset,
    Sentinel,
    SMTPProtocolError,
    StartTLSRequested,
)
from ._state import (
    AUTH_MECHANISMS,
    HELP_ORDER,
    INITIAL_STATE,
    KNOWN_VERBS,
    TRANSITIONS,
    TRIGGERS,
    UNIMPLEMENTED_VERBS,
    Session,
    State,
    Transaction,
    Trigger,
)
from ._syntax import (
    check_no_controls,
    format_reply,
    parse_mail_parameters,
    parse_path,
    split_sp,
)

__all__ = ["AUTH_MECHANISMS", "COUNTED_ERRORS", "TRANSITIONS", "SMTPServerConnection", "State"]

#: What :meth:`SMTPServerConnection._read_line` returns for a line it
#: consumed and answered itself (500 too long, 500 bare LF).
_ANSWERED = b"\x00answered"

#: Reply codes that count toward ``max_errors``: the client's syntax and
#: sequence mistakes (RFC 5321 §4.2.1 "x0z Syntax" replies, and 555 for an
#: unknown MAIL/RCPT parameter).  Policy refusals of well-formed commands
#: (452, 530, 538, 552, 553, 554...) are answers, not errors, and never count.
COUNTED_ERRORS = frozenset({500, 501, 502, 503, 504, 555})

#: The ``reason`` of a :class:`CommandRefusal` the machine made itself, by
#: reply code; any other code is ``"policy"`` (452, 530, 538, 553, 554...).
_REFUSAL_REASONS = {
    500: "syntax",
    501: "syntax",
    502: "syntax",
    504: "syntax",
    555: "syntax",
    503: "sequence",
    552: "size",
    421: "closing",
}


# Default reject replies per proposal type: (code, enhanced code, text).
_DEFAULT_REJECTS: dict[type[Proposal], tuple[int, str, str]] = {
    MailFromProposed: (550, "5.7.1", "Sender rejected"),
    RecipientProposed: (550, "5.1.1", "Recipient rejected"),
    MessageReceived: (554, "5.6.0", "Message rejected"),
    StartTLSRequested: (454, "4.7.0", "TLS not available"),
    AuthAttempt: (535, "5.7.8", "Authentication credentials invalid"),
}

_Handler = Callable[["SMTPServerConnection", str], "Event | None"]

#: ``command_hook(verb, argument) -> Reply | None`` (see the class docstring).
CommandHook = Callable[[str, str], "Reply | None"]

#: ``ehlo_keywords``: the keyword lines themselves, or a function of the
#: built-in list returning them.
EhloKeywords = Sequence[str] | Callable[[list[str]], Sequence[str]]

#: What ``_sasl_initial`` holds for an AUTH line without initial response.
_NO_INITIAL = "\x00none"


class SMTPServerConnection:
    """The server side of one SMTP connection, as a state machine.

    Keyword options (all validated here; :class:`InvalidArgumentError`, a
    ``ValueError``, on nonsense):

    ``hostname``: name in the greeting and the EHLO reply.
    ``greeting``: text after ``220 <hostname> `` in the banner.
    ``max_message_size``: fixed maximum message size in octets (RFC 1870), a
    positive ``int`` (:class:`InvalidArgumentTypeError`, a ``TypeError``,
    for anything else, ``None`` included: the content is held in memory, so
    there is always a limit), advertised as
    ``SIZE n`` and enforced both at ``MAIL FROM ... SIZE=`` and after the
    content (where the CRLF ending the last line is not counted).
    ``max_recipients``: recipients per transaction, at least 100 (RFC 5321
    §4.5.3.1.8).  ``max_errors``: syntax/sequence error replies (see
    :data:`COUNTED_ERRORS`) before giving up with 421.
    ``starttls``: offer STARTTLS (the I/O layer can upgrade).  ``tls_active``:
    the connection is already TLS (implicit TLS, "SMTPS").
    ``auth_mechanisms``: SASL mechanisms to offer, from :data:`AUTH_MECHANISMS`.
    ``auth_over_plaintext``: offer AUTH without TLS (RFC 4954 §4 says
    plaintext passwords need TLS; tests may want it anyway).
    ``auth_required`` / ``tls_required``: refuse MAIL with 530 until the
    client authenticated / started TLS.
    ``allow_bare_line_endings``: keep bare CR/LF in content instead of
    refusing the message.

    Scripting (issue 11): ``enhanced_status_codes=False`` never adds RFC
    3463 codes (nor advertises ENHANCEDSTATUSCODES).  ``replies`` maps an
    accepted step (:data:`~protocols.smtp.REPLY_KEYS`: ``"greeting"``,
    ``"EHLO"``, ``"MAIL"``, ``"message"``, ``"AUTH"``, ``"QUIT"``...) to the
    ``(code, text)`` sent instead of the built-in one (same code class).
    ``ehlo_keywords`` replaces the keyword lines of the EHLO reply: a
    sequence of lines, or a callable given the built-in list (called at each
    EHLO) that returns them; what the machine implements does not change.
    ``allow_repeated_helo=False`` answers a second HELO/EHLO with 503
    (smtpd's behaviour) instead of restarting the session.
    ``auth_before_ehlo=True`` accepts AUTH before any HELO/EHLO and after
    HELO.  ``command_hook(verb, argument)`` is called for every command line
    with a well-formed verb, known or not (not for SASL responses or message
    content); a :class:`Reply` it returns (or an ``SMTPProtocolError`` it
    raises) is sent instead of executing the command, which then changes
    nothing (a 2xx to RCPT adds no recipient); 421, ``close=True`` and any
    reply to QUIT end the dialogue.  ``custom_mechanisms`` maps SASL
    mechanism names to :data:`~protocols.smtp.SASLMechanism` generator
    functions, offered when listed in ``auth_mechanisms``; an exchange that
    sent ``max_errors`` challenges without ending is closed with 421.
    """

    def __init__(
        self,
        *,
        hostname: str = "localhost",
        greeting: str = "ESMTP testservers",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_recipients: int = DEFAULT_MAX_RECIPIENTS,
        max_errors: int = DEFAULT_MAX_ERRORS,
        starttls: bool = False,
        tls_active: bool = False,
        auth_mechanisms: tuple[str, ...] | list[str] = (),
        auth_over_plaintext: bool = False,
        auth_required: bool = False,
        tls_required: bool = False,
        allow_bare_line_endings: bool = False,
        lmtp: bool = False,
        enhanced_status_codes: bool = True,
        replies: Mapping[str, tuple[int, str]] | None = None,
        ehlo_keywords: EhloKeywords | None = None,
        allow_repeated_helo: bool = True,
        auth_before_ehlo: bool = False,
        command_hook: CommandHook | None = None,
        custom_mechanisms: Mapping[str, SASLMechanism] | None = None,
    ) -> None:
        if not hostname or any(c.isspace() for c in hostname):
            raise InvalidArgumentError(f"hostname must be one non-empty word, not {hostname!r}")
        if not isinstance(max_message_size, int) or isinstance(max_message_size, bool):
            raise InvalidArgumentTypeError(
                f"max_message_size must be an int (octets), not {max_message_size!r}: "
                "message content is held in memory, so it needs a limit"
            )
        if max_message_size <= 0:
            raise InvalidArgumentError("max_message_size must be positive")
        if max_recipients < MIN_RECIPIENTS:
            raise InvalidArgumentError(
                f"max_recipients must be at least {MIN_RECIPIENTS} (RFC 5321 §4.5.3.1.8)"
            )
        if max_errors < 1:
            raise InvalidArgumentError("max_errors must be at least 1")
        custom = {name.upper(): fn for name, fn in (custom_mechanisms or {}).items()}
        for name, fn in custom.items():
            if not name or not all(c.isascii() and (c.isalnum() or c in "-_") for c in name):
                raise InvalidArgumentError(f"a SASL mechanism name is [A-Z0-9-_]+, not {name!r}")
            if not callable(fn):
                raise InvalidArgumentTypeError(f"SASL mechanism {name} must be callable")
        mechanisms = tuple(m.upper() for m in auth_mechanisms)
        unknown = [m for m in mechanisms if m not in BUILTIN_MECHANISMS and m not in custom]
        if unknown:
            raise InvalidArgumentError(
                f"unsupported AUTH mechanisms {unknown}; known: {BUILTIN_MECHANISMS} "
                "and custom_mechanisms"
            )
        self._replies = _check_replies(replies or {})
        if ehlo_keywords is not None and not callable(ehlo_keywords):
            ehlo_keywords = _check_keywords(ehlo_keywords)
        if command_hook is not None and not callable(command_hook):
            raise InvalidArgumentTypeError("command_hook must be callable")
        self.enhanced_status_codes = enhanced_status_codes
        self.ehlo_keywords = ehlo_keywords
        self.allow_repeated_helo = allow_repeated_helo
        self.auth_before_ehlo = auth_before_ehlo
        self.command_hook = command_hook
        self.custom_mechanisms = custom
        self.hostname = hostname
        self.max_message_size = max_message_size
        self.max_recipients = max_recipients
        self.max_errors = max_errors
        self.starttls_available = starttls
        self.auth_mechanisms = mechanisms
        self.auth_over_plaintext = auth_over_plaintext
        self.auth_required = auth_required
        self.tls_required = tls_required
        self.allow_bare_line_endings = allow_bare_line_endings
        self.lmtp = lmtp

        self._state = INITIAL_STATE
        # Received bytes: the buffer shared with the HTTP machine (offsets,
        # a resumable search, compaction at protocols._buffer.COMPACT_AT).
        self._in = ReceiveBuffer()
        self._discarding = False  # dropping an over-long command line
        self._eof = False
        self._closed_event: ConnectionClosed | None = None
        self._out = bytearray()
        self._pending: Proposal | None = None
        # The state accept() enters for the pending proposal, when the
        # command that made it has one in TRANSITIONS.
        self._pending_next: State | None = None
        self._errors = 0
        self._closing_event: Quit | None = None  # 421 after too many errors

        self._session = Session(tls_active=tls_active)
        self._txn: Transaction | None = None  # the mail transaction, once MAIL is accepted
        self._sasl: SASLExchange | None = None  # the AUTH exchange in progress
        self._sasl_initial: str | None = None  # its initial response, not yet judged
        # Records for take_records(), and the command line being handled
        # (what a refusal names; in State.AUTH the AUTH command line).
        self._records: list[Event] = []
        self._verb = ""
        self._line = b""

        # format_reply turns a multi-line greeting into 220- lines (and drops
        # CRs), so no greeting text can forge another reply.
        code, text = self._replies.get("greeting", (220, f"{hostname} {greeting}"))
        self._out += format_reply(code, None, text, esmtp=False)

    # ------------------------------------------------------------------
    # Public read-only facts
    # ------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current :class:`State`."""
        return self._state

    @property
    def pending(self) -> Proposal | None:
        """The proposal awaiting ``accept()``/``reject()``, if any."""
        return self._pending

    @property
    def helo_name(self) -> str | None:
        """The HELO/EHLO argument of this session (None before, and after STARTTLS)."""
        return self._session.helo_name

    @property
    def esmtp(self) -> bool:
        """True when the session started with EHLO."""
        return self._session.esmtp

    @property
    def tls_active(self) -> bool:
        """True once TLS is in effect (implicit TLS or after STARTTLS)."""
        return self._session.tls_active

    @property
    def authenticated_as(self) -> str | None:
        """The username of a successful AUTH, or None."""
        return self._session.auth_user

    @property
    def auth_offered(self) -> bool:
        """True when EHLO currently advertises AUTH."""
        return bool(self.auth_mechanisms) and (self._session.tls_active or self.auth_over_plaintext)

    @property
    def starttls_offered(self) -> bool:
        """True when EHLO currently advertises STARTTLS."""
        return self.starttls_available and not self._session.tls_active

    @property
    def pending_output(self) -> int:
        """Octets queued for :meth:`data_to_send` and not yet taken (cheap).

        An I/O layer whose transport stopped accepting writes can stop
        calling :meth:`next_event` (and feeding) while this is large.
        """
        return len(self._out)

    # ------------------------------------------------------------------
    # I/O side
    # ------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed its side.

        Raises :class:`ConnectionClosedError` if EOF was already fed.  Bytes
        fed after QUIT, or while a STARTTLS upgrade is pending, are discarded.
        Nothing is parsed here: call :meth:`next_event`.  While a proposal
        is pending, bytes are only buffered; an I/O layer that answers
        proposals asynchronously should pause reading meanwhile (its
        back-pressure), since the machine reads nothing until the answer.
        """
        if self._eof:
            raise ConnectionClosedError("receive_data() after EOF")
        if not data:
            self._eof = True
            return
        if self._state in (State.CLOSED, State.TLS_PENDING):
            return
        self._in.feed(data)

    def take_records(self) -> list[Event]:
        """Return and clear the records noted since the last call: a
        :class:`CommandLine` for every command line read and a
        :class:`CommandRefusal` for every 4xx/5xx reply to a command, in
        order.  They are facts for the consumer to log; ``next_event()``
        never returns them.  At most one per command line or response line
        read (two when the refusal is the one that gives up with 421), so
        the list stays as bounded as the input the caller feeds."""
        records = self._records
        self._records = []
        return records

    def data_to_send(self) -> bytes:
        """Return and clear the replies queued so far (possibly ``b""``)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_event(self) -> Event | Sentinel:
        """Parse buffered input and return the next event.

        Returns :data:`PAUSED` while a proposal awaits an answer or a STARTTLS
        upgrade awaits :meth:`tls_established`, :data:`NEED_DATA` when the
        buffered bytes hold no complete command or message, :data:`YIELD`
        once :data:`COMMANDS_PER_CALL` commands were answered in this call
        without an event (call again later; the rest of the input stays
        buffered), and :class:`ConnectionClosed` (repeatedly) once EOF has
        been processed.  Replies made along the way are queued for
        :meth:`data_to_send`.
        """
        if self._pending is not None:
            return PAUSED
        answered = 0  # command lines answered without an event, this call
        result: Event | Sentinel | None
        while True:  # each pass consumes one command, response line or content chunk
            state = self._state
            if self._closing_event is not None:
                event, self._closing_event = self._closing_event, None
                return event
            if self._closed_event is not None:
                return self._closed_event
            if state is State.TLS_PENDING:
                if self._eof:
                    return self._connection_closed()
                return PAUSED
            if state is State.CLOSED:
                if self._eof:
                    return self._connection_closed()
                return NEED_DATA
            if answered >= COMMANDS_PER_CALL:
                return YIELD
            if state is State.DATA:
                result = self._read_content()
            elif state is State.AUTH and self._sasl_initial is not None:
                response, self._sasl_initial = self._sasl_initial, None
                result = self._sasl_step(response, start=True)
            else:
                line = self._read_line()
                if line is None:
                    if self._eof:
                        return self._connection_closed()
                    return NEED_DATA
                if line is _ANSWERED:
                    answered += 1
                    if self._state is State.AUTH:
                        # RFC 4954 §4: a refused response line ends the
                        # exchange; the next line is a command again.
                        self._end_sasl()
                    continue
                if state is State.AUTH:
                    result = self._auth_response(line)
                else:
                    result = self._command(line)
            if result is NEED_DATA:
                if self._eof:
                    return self._connection_closed()
                return NEED_DATA
            if result is None:
                answered += 1
                continue
            if isinstance(result, Proposal):
                self._pending = result
            return result

    # ------------------------------------------------------------------
    # Consumer decisions
    # ------------------------------------------------------------------

    def accept(self) -> None:
        """Accept the pending proposal and queue its success reply.

        Raises :class:`LocalProtocolError` if nothing is pending.
        """
        proposal, next_state = self._take_pending()
        if isinstance(proposal, MailFromProposed):
            self._txn = Transaction(
                mail_from=proposal.address,
                mail_options=proposal.options,
                smtputf8=proposal.smtputf8,
            )
            self._success("MAIL", 250, "2.1.0", "OK")
        elif isinstance(proposal, RecipientProposed):
            txn = self._txn
            assert txn is not None  # RCPT is only in the table after MAIL
            txn.recipients.append(proposal.address)
            txn.recipient_options.append(proposal.options)
            self._success("RCPT", 250, "2.1.5", "OK")
        elif isinstance(proposal, MessageReceived):
            # LMTP (RFC 2033 §4.2): one reply per accepted recipient, in order.
            for _ in range(len(proposal.recipients) if self.lmtp else 1):
                self._success("message", 250, "2.0.0", "OK: message accepted")
        elif isinstance(proposal, StartTLSRequested):
            self._success("STARTTLS", 220, "2.0.0", "Ready to start TLS")
            # RFC 3207 §4.2 / PIPELINING: whatever followed STARTTLS in
            # plaintext is dropped, never executed after the upgrade.
            self._drop_input()
        elif isinstance(proposal, AuthAttempt):
            self._session.auth_user = proposal.username
            self._end_sasl()
            self._success("AUTH", 235, "2.7.0", "Authentication successful")
        else:  # pragma: no cover - every Proposal subclass is handled above
            raise AssertionError(proposal)
        if next_state is not None:
            self._state = next_state  # from TRANSITIONS, kept by _command

    def reject(
        self,
        code: int | None = None,
        text: str | None = None,
        *,
        enhanced: str | None = None,
        close: bool = False,
        reason: str = "rejected",
    ) -> None:
        """Refuse the pending proposal with reply ``code`` (4xx or 5xx).

        ``text`` may hold several lines (``"\\n"``); ``enhanced`` is the RFC
        3463 code, derived from ``code`` when omitted (and not already at the
        start of ``text``).  Defaults depend on the proposal (550 for
        senders/recipients, 554 for messages, 454 for STARTTLS, 535 for AUTH).
        A rejected MAIL/RCPT leaves the transaction as it was; a rejected
        message or AUTH ends it.  Raises :class:`LocalProtocolError` if
        nothing is pending, :class:`InvalidArgumentError` (a ``ValueError``)
        for a code outside 400-599 (the proposal then stays pending).

        A 421, or any refusal with ``close=True``, ends the dialogue (RFC
        5321 §3.8: 421 means the server closes): input is dropped and the
        next ``next_event()`` returns ``Quit(reply_code=code)``.  Except for
        a refused message (the consumer has its content), the refusal is
        noted as a :class:`CommandRefusal` with ``reason``.
        """
        if self._pending is None:
            raise LocalProtocolError("reject() with no proposal pending")
        default_code, default_enhanced, default_text = _DEFAULT_REJECTS[type(self._pending)]
        if code is None:
            code = default_code
            enhanced = enhanced or default_enhanced
        if not 400 <= code <= 599:
            raise InvalidArgumentError(f"a rejection needs a 4xx or 5xx code, not {code}")
        proposal, _ = self._take_pending()
        if isinstance(proposal, AuthAttempt):
            self._end_sasl()
        text = default_text if text is None else text
        # LMTP: a refused message gets the refusal once per recipient.
        repeat = (
            len(proposal.recipients) if self.lmtp and isinstance(proposal, MessageReceived) else 1
        )
        for _ in range(repeat):
            self._reply(code, enhanced, text)
        closes = close or code == 421
        if not isinstance(proposal, MessageReceived):
            txn = self._txn
            mail_from = txn.mail_from if txn is not None else ""
            recipient = ""
            if isinstance(proposal, MailFromProposed):
                mail_from = proposal.address
            elif isinstance(proposal, RecipientProposed):
                recipient = proposal.address
            self._note_refusal(code, text, reason, mail_from, recipient, closes)
        if closes:
            self._hang_up(code)

    def deliver(self, results: Sequence[tuple[int, str] | None], *, close: bool = False) -> None:
        """LMTP (RFC 2033 §4.2): answer the pending :class:`MessageReceived`
        with one reply per recipient, in the order of ``recipients``: None
        is the success reply, ``(code, text)`` a 4xx/5xx refusal of that
        recipient.  A 421 among them, or ``close=True``, ends the dialogue
        after the replies.

        Raises :class:`LocalProtocolError` unless the machine is in LMTP
        mode with a message pending, :class:`InvalidArgumentError` (nothing
        changed) when ``results`` does not have one entry per recipient or a
        code is outside 400-599.
        """
        proposal = self._pending
        if not self.lmtp or not isinstance(proposal, MessageReceived):
            raise LocalProtocolError("deliver() needs an LMTP machine with a message pending")
        results = list(results)
        if len(results) != len(proposal.recipients):
            raise InvalidArgumentError(
                f"deliver() needs {len(proposal.recipients)} results, one per recipient, "
                f"not {len(results)}"
            )
        for result in results:
            if result is not None and not (isinstance(result[0], int) and 400 <= result[0] <= 599):
                raise InvalidArgumentError(f"a refusal needs a 4xx or 5xx code, not {result!r}")
        self._take_pending()
        for result in results:
            if result is None:
                self._success("message", 250, "2.0.0", "OK: message accepted")
            else:
                self._reply(result[0], None, result[1])
        codes = [r[0] for r in results if r is not None]
        if close or 421 in codes:
            self._hang_up(421 if 421 in codes else codes[-1] if codes else 221)

    def tls_established(self) -> None:
        """Tell the machine the TLS handshake after STARTTLS completed.

        The machine forgets the HELO name and any AUTH (RFC 3207 §4.2) and
        waits for a new EHLO; no new greeting is sent.  Raises
        :class:`LocalProtocolError` unless a STARTTLS upgrade is pending.
        """
        if self._state is not State.TLS_PENDING:
            raise LocalProtocolError("tls_established() without an accepted STARTTLS")
        self._session = Session(tls_active=True)
        self._txn = None
        self._drop_input()
        self._advance(Trigger.TLS_ESTABLISHED)

    def shutdown(self, text: str = "Service closing transmission channel") -> None:
        """Queue ``421 <text>`` and stop reading (e.g. the server is stopping).

        Any pending proposal is dropped.  Idempotent once closed.  The I/O
        layer should then send ``data_to_send()`` and close.
        """
        if self._state is State.CLOSED:
            return
        self._pending = self._pending_next = None
        self._reply(421, "4.3.0", text)
        self._advance(Trigger.SHUTDOWN)

    # ------------------------------------------------------------------
    # Input framing
    # ------------------------------------------------------------------

    def _read_line(self) -> bytes | None:
        """Return the next complete command/response line without its CRLF.

        An over-long line, or one not ending in CRLF, is answered here (500)
        and consumed: the result is then :data:`_ANSWERED`.  Returns None
        when no complete line is buffered.
        """
        buf = self._in
        pos = buf.pos
        end = buf.find(b"\n")  # resumes where the last search stopped
        if end < 0:
            if len(buf) > AUTH_LINE_LIMIT:
                # No verb may be longer than this; drop the bytes now so
                # memory stays bounded, answer when the line ends.
                self._discarding = True
                buf.consume_to(len(buf.data))
            return None
        buf.consume_to(end + 1)
        if self._discarding:
            self._discarding = False
            self._unparsed(b"")
            self._error(500, "5.5.2", "Line too long")
            return _ANSWERED
        if end == pos or buf.data[end - 1] != 0x0D:
            self._unparsed(bytes(buf.data[pos:end]))
            self._error(500, "5.5.2", "Syntax error: lines must end with CRLF")
            return _ANSWERED
        line = bytes(buf.data[pos : end - 1])
        if len(line) + 2 > self._line_limit(line):
            self._unparsed(line[:COMMAND_LINE_LIMIT])
            self._error(500, "5.5.2", "Line too long")
            return _ANSWERED
        return line

    def _unparsed(self, line: bytes) -> None:
        """Note a command line refused before it was parsed (cut to
        :data:`COMMAND_LINE_LIMIT` octets; empty when it was dropped as it
        came).  In State.AUTH the line is a SASL response: not noted."""
        if self._state is not State.AUTH:
            self._verb, self._line = "", line
            self._records.append(CommandLine(line=line, verb="", argument=""))

    def _line_limit(self, line: bytes) -> int:
        if self._state is State.AUTH:
            return AUTH_LINE_LIMIT
        verb = line[:5].upper()
        if verb in (b"MAIL ", b"RCPT "):
            return MAIL_LINE_LIMIT
        if verb == b"AUTH ":
            return AUTH_LINE_LIMIT
        return COMMAND_LINE_LIMIT

    def _read_content(self) -> Event | Sentinel:
        txn = self._txn
        assert txn is not None and txn.content is not None
        if not txn.content.read(self._in):
            return NEED_DATA
        return self._end_of_content(txn, txn.content)

    def _end_of_content(self, txn: Transaction, content: ContentReader) -> Event:
        recipients = tuple(txn.recipients)
        error = content.error
        self._txn = None
        self._advance(Trigger.CONTENT_END)
        if error is None:
            return MessageReceived(
                mail_from=txn.mail_from,
                recipients=recipients,
                data=content.content(),
                mail_options=txn.mail_options,
                recipient_options=tuple(txn.recipient_options),
            )
        if error == "size":
            code, enhanced, text = 552, "5.3.4", "Message size exceeds fixed maximum message size"
        elif error == "line-length":
            code, enhanced, text = 500, "5.5.2", "Line too long (RFC 5321 section 4.5.3.1.6)"
        else:
            code, enhanced, text = 554, "5.6.0", "Bare CR or LF in message (RFC 5321 section 2.3.8)"
        for _ in recipients if self.lmtp else (None,):  # LMTP: once per recipient
            self._reply(code, enhanced, text)
        return MessageRefused(
            reason=error, reply_code=code, mail_from=txn.mail_from, recipients=recipients
        )

    # ------------------------------------------------------------------
    # Commands
    # ------------------------------------------------------------------

    def _command(self, raw: bytes) -> Event | None:
        """Dispatch one command line through :data:`TRANSITIONS`.

        Handlers either queue a reply and return an informational event or
        None, return a proposal, or raise :class:`RemoteProtocolError`, whose
        reply is sent here.  The next state from the table is entered here
        when the handler succeeds, or kept for :meth:`accept` when it made a
        proposal.
        """
        self._verb, self._line = "", raw
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._records.append(CommandLine(line=raw, verb="", argument=""))
            return self._error(500, "5.5.2", "Syntax error: command is not UTF-8")
        verb, _, arg = line.partition(" ")
        if not (verb.isascii() and verb.isalpha()):
            # Checked before upper(): "ı".upper() == "I", "ſ".upper() == "S".
            self._records.append(CommandLine(line=raw, verb="", argument=arg))
            return self._error(500, "5.5.2", "Command unrecognized")
        verb = verb.upper()
        self._verb = verb
        self._records.append(CommandLine(line=raw, verb=verb, argument=arg))
        if self.command_hook is not None:
            try:
                scripted = self.command_hook(verb, arg)
            except SMTPProtocolError as exc:
                scripted = Reply(exc.reply_code, exc.text, getattr(exc, "close", False))
            if scripted is not None:
                self._scripted_reply(verb, scripted)
                return None
        if self.lmtp:
            # RFC 2033 §4.1: LHLO is EHLO's place (same reply, same state
            # change); HELO and EHLO are not LMTP commands.
            if verb == "LHLO":
                verb = "EHLO"
            elif verb in ("HELO", "EHLO"):
                return self._error(500, "5.5.1", "Command unrecognized: LMTP uses LHLO")
        entry = _DISPATCH.get((self._state, verb))
        if entry is None:
            return self._refuse(verb)
        handler, next_state = entry
        try:
            check_no_controls(arg)
            gate = self._gate(verb)
            if gate is not None:
                raise gate
            result = handler(self, arg)
        except RemoteProtocolError as exc:
            return self._error(exc.reply_code, exc.enhanced_code, exc.text)
        if isinstance(result, Proposal):
            self._pending_next = next_state
        else:
            self._state = next_state
        return result

    def _scripted_reply(self, verb: str, reply: Reply) -> None:
        """Send a hook's reply instead of executing the command."""
        if not isinstance(reply, Reply):
            raise InvalidArgumentTypeError(f"a command hook returns a Reply or None, not {reply!r}")
        self._reply(reply.code, None, reply.text)
        closes = reply.closes or verb == "QUIT"
        if reply.code >= 400:
            txn = self._txn
            mail_from = txn.mail_from if txn is not None else ""
            self._note_refusal(reply.code, reply.text, reply.reason, mail_from, closes=closes)
        if closes:
            self._hang_up(reply.code)

    def _success(self, key: str, code: int, enhanced: str | None, text: str) -> None:
        """Queue the success reply of an accepted step, or the one ``replies`` set."""
        scripted = self._replies.get(key)
        if scripted is None:
            self._reply(code, enhanced, text)
        else:
            self._reply(scripted[0], None, scripted[1])

    def _refuse(self, verb: str) -> Event | None:
        """Answer a verb the table does not have for the current state."""
        if verb not in KNOWN_VERBS:
            if verb in UNIMPLEMENTED_VERBS:
                return self._error(502, "5.5.1", "Command not implemented")
            return self._error(500, "5.5.2", "Command unrecognized")
        if verb == "DATA" and self._state is State.MAIL:
            return self._error(554, "5.5.1", "No valid recipients")
        if self._state is State.GREETED:
            hint = "send HELO/EHLO first"
        elif verb in ("MAIL", "STARTTLS", "AUTH"):
            hint = "mail transaction in progress"
        elif verb == "RCPT":
            hint = "need MAIL first"
        else:
            hint = "need RCPT first"
        return self._error(503, "5.5.1", f"Bad sequence of commands: {hint}")

    def _gate(self, verb: str) -> RemoteProtocolError | None:
        """Why the configuration or the session refuses ``verb`` before its
        arguments are looked at, or None.  HELP lists a verb only when the
        table has it for the current state and this returns None."""
        session = self._session
        if verb == "STARTTLS":
            if session.tls_active:
                return RemoteProtocolError("TLS already active", 503, "5.5.1")
            if not self.starttls_available:
                return RemoteProtocolError("STARTTLS not available", 502, "5.5.1")
        elif verb == "AUTH":
            if self._state is State.GREETED and not self.auth_before_ehlo:
                return RemoteProtocolError(
                    "Bad sequence of commands: send HELO/EHLO first", 503, "5.5.1"
                )
            if not self.auth_mechanisms:
                return RemoteProtocolError("AUTH not available", 502, "5.5.1")
            if not session.esmtp and not self.auth_before_ehlo:
                return RemoteProtocolError(
                    "Bad sequence of commands: send EHLO first", 503, "5.5.1"
                )
            if session.auth_user is not None:
                return RemoteProtocolError("Already authenticated", 503, "5.5.1")
            if not self.auth_offered:
                return RemoteProtocolError(  # RFC 4954 §6
                    "Encryption required for requested authentication mechanism", 538, "5.7.11"
                )
        elif verb == "MAIL":
            if self.tls_required and not session.tls_active:
                return RemoteProtocolError("Must issue a STARTTLS command first", 530, "5.7.0")
            if self.auth_required and session.auth_user is None:
                return RemoteProtocolError("Authentication required", 530, "5.7.0")
        return None

    def _helo(self, arg: str) -> Event | None:
        return self._greet("HELO", arg)

    def _ehlo(self, arg: str) -> Event | None:
        return self._greet("LHLO" if self.lmtp else "EHLO", arg)

    def _greet(self, command: str, arg: str) -> Event | None:
        name = arg.strip()
        if not name:
            raise RemoteProtocolError(f"Syntax: {command} hostname", 501, "5.5.4")
        session = self._session
        if session.helo_name is not None and not self.allow_repeated_helo:
            raise RemoteProtocolError("Duplicate HELO/EHLO", 503, "5.5.1")
        self._txn = None
        session.helo_name = name
        session.esmtp = command != "HELO"
        first_code, first = self._replies.get(command, (250, f"{self.hostname} Hello {name}"))
        if not session.esmtp:
            self._reply(first_code, None, first)
            return Hello(command=command, name=name)
        keywords = self._builtin_keywords()
        chosen = self.ehlo_keywords
        if chosen is not None:
            keywords = list(chosen(keywords) if callable(chosen) else chosen)
        # One line each, whatever a callable returned: no forged replies.
        lines = [first.split("\n")[0].replace("\r", "")]
        lines += [str(k).replace("\r", " ").replace("\n", " ") for k in keywords]
        # EHLO keyword lines carry no enhanced codes (RFC 2034 §3 covers
        # replies, not the keyword list), so they are written directly.
        last = len(lines) - 1
        for i, line in enumerate(lines):
            self._out += f"{first_code}{' ' if i == last else '-'}{line}\r\n".encode()
        return Hello(command=command, name=name)

    def _builtin_keywords(self) -> list[str]:
        """The EHLO keywords this configuration implements, in order."""
        lines = [
            "8BITMIME",
            f"SIZE {self.max_message_size}",
            "PIPELINING",
            "SMTPUTF8",
        ]
        if self.enhanced_status_codes:
            lines.append("ENHANCEDSTATUSCODES")
        if self.starttls_offered:
            lines.append("STARTTLS")
        if self.auth_offered:
            lines.append("AUTH " + " ".join(self.auth_mechanisms))
        lines.append("HELP")
        return lines

    def _noop(self, arg: str) -> Event | None:
        self._success("NOOP", 250, "2.0.0", "OK")
        return None

    def _help(self, arg: str) -> Event | None:
        state = self._state
        names = [
            verb for verb in HELP_ORDER if (state, verb) in TRANSITIONS and self._gate(verb) is None
        ]
        if self.lmtp:
            names = ["LHLO" if v == "EHLO" else v for v in names if v != "HELO"]
        verbs = " ".join(names)
        self._success("HELP", 214, "2.0.0", f"Commands: {verbs}")
        return None

    def _vrfy(self, arg: str) -> Event | None:
        _no_more_than(arg, "VRFY <address>", required=True)
        # RFC 5321 §3.5.3: 252 when the server will not verify but would try.
        self._success(
            "VRFY", 252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"
        )
        return None

    def _quit(self, arg: str) -> Event | None:
        _no_more_than(arg, "QUIT")
        self._success("QUIT", 221, "2.0.0", f"{self.hostname} closing connection")
        self._drop_input()
        return Quit(reply_code=221)

    def _rset(self, arg: str) -> Event | None:
        _no_more_than(arg, "RSET")
        self._txn = None
        self._success("RSET", 250, "2.0.0", "OK")
        return Reset()

    def _starttls(self, arg: str) -> Event | None:
        _no_more_than(arg, "STARTTLS")
        return StartTLSRequested()

    def _mail(self, arg: str) -> Event | None:
        address, params = parse_path(arg, "FROM:")
        if params and not self._session.esmtp:
            raise RemoteProtocolError("MAIL FROM parameters need EHLO", 555, "5.5.4")
        parsed = parse_mail_parameters(params)
        if parsed.size is not None and parsed.size > self.max_message_size:
            # RFC 1870 §6.1
            raise RemoteProtocolError(
                "Message size exceeds fixed maximum message size", 552, "5.3.4"
            )
        if not address.isascii() and not parsed.smtputf8:
            # RFC 6531 §3.4: non-ASCII addresses need the SMTPUTF8 parameter.
            raise RemoteProtocolError("Non-ASCII address needs SMTPUTF8", 553, "5.6.7")
        return MailFromProposed(
            address=address,
            options=tuple(params),
            size=parsed.size,
            body=parsed.body,
            smtputf8=parsed.smtputf8,
        )

    def _rcpt(self, arg: str) -> Event | None:
        txn = self._txn
        assert txn is not None  # RCPT is only in the table after MAIL
        address, params = parse_path(arg, "TO:")
        if not address:
            raise RemoteProtocolError("Syntax: RCPT TO:<address>", 501, "5.5.4")
        if params:
            raise RemoteProtocolError("RCPT TO parameters not recognized", 555, "5.5.4")
        if not address.isascii() and not txn.smtputf8:
            raise RemoteProtocolError("Non-ASCII address needs SMTPUTF8", 553, "5.6.7")
        if len(txn.recipients) >= self.max_recipients:
            # RFC 5321 §4.5.3.1.10
            raise RemoteProtocolError("Too many recipients", 452, "4.5.3")
        return RecipientProposed(address=address, options=tuple(params))

    def _data(self, arg: str) -> Event | None:
        _no_more_than(arg, "DATA")
        txn = self._txn
        assert txn is not None  # DATA is only in the table after RCPT
        txn.content = ContentReader(self.max_message_size, self.allow_bare_line_endings)
        code, text = self._replies.get("DATA", (354, "End data with <CR><LF>.<CR><LF>"))
        self._out += format_reply(code, None, text, esmtp=False)
        return None

    # ------------------------------------------------------------------
    # AUTH (RFC 4954).  State.AUTH covers the exchange: the machine is in it
    # from the accepted AUTH command until Trigger.SASL_END (credentials
    # accepted or rejected, cancel, a malformed response).
    # ------------------------------------------------------------------

    def _auth(self, arg: str) -> Event | None:
        parts = split_sp(arg)
        if not 1 <= len(parts) <= 2:
            raise RemoteProtocolError("Syntax: AUTH mechanism [initial-response]", 501, "5.5.4")
        mechanism = parts[0].upper() if parts[0].isascii() else ""
        if mechanism not in self.auth_mechanisms:
            raise RemoteProtocolError("Unrecognized authentication type", 504, "5.5.4")
        self._sasl = SASLExchange(
            mechanism, hostname=self.hostname, custom=self.custom_mechanisms.get(mechanism)
        )
        # Started in State.AUTH, like any response (next_event takes it).
        self._sasl_initial = parts[1] if len(parts) == 2 else _NO_INITIAL
        return None

    def _auth_response(self, raw: bytes) -> Event | None:
        if raw == b"*":  # RFC 4954 §4: the client cancels
            self._end_sasl()
            return self._error(501, "5.0.0", "Authentication cancelled")
        return self._sasl_step(raw.decode("ascii", "replace"))

    def _sasl_step(self, response: str, start: bool = False) -> Event | None:
        """Take one SASL response (initial or after a 334): queue the next
        challenge, or return the :class:`AuthAttempt` once complete."""
        sasl = self._sasl
        assert sasl is not None
        try:
            if not start:
                result = sasl.respond(response)
            else:
                result = sasl.start(None if response is _NO_INITIAL else response)
        except SMTPProtocolError as exc:
            self._end_sasl()
            self._error(exc.reply_code, exc.enhanced_code, exc.text)
            if getattr(exc, "close", False) or exc.reply_code == 421:
                self._hang_up(exc.reply_code)
            return None
        except Exception:
            self._end_sasl()
            self._reply(454, "4.7.0", "Temporary authentication failure")
            raise
        if isinstance(result, bytes):
            if sasl.rounds > self.max_errors:
                # A mechanism that never ends (a buggy client or script).
                self._end_sasl()
                text = "Too many authentication rounds, closing connection"
                self._reply(421, "4.7.0", text)
                self._note_refusal(421, text, "closing", closes=True)
                self._hang_up(421)
                return None
            self._out += result
            return None
        return result  # the exchange ends with the consumer's answer

    def _end_sasl(self) -> None:
        if self._sasl is not None:
            self._sasl.close()
        self._sasl = None
        self._sasl_initial = None
        self._advance(Trigger.SASL_END)

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------

    def _advance(self, trigger: Trigger) -> None:
        """Enter the state :data:`TRIGGERS` gives for ``trigger`` now."""
        self._state = TRIGGERS[(self._state, trigger)]

    def _take_pending(self) -> tuple[Proposal, State | None]:
        proposal = self._pending
        if proposal is None:
            raise LocalProtocolError("no proposal is pending")
        next_state = self._pending_next
        self._pending = self._pending_next = None
        return proposal, next_state

    def _drop_input(self) -> None:
        self._in.clear()

    def _connection_closed(self) -> ConnectionClosed:
        if self._closed_event is None:
            aborted = self._state in (State.MAIL, State.RCPT, State.DATA)
            self._txn = None
            self._drop_input()
            self._advance(Trigger.EOF)
            self._closed_event = ConnectionClosed(aborted=aborted)
        return self._closed_event

    def _reply(self, code: int, enhanced: str | None, text: str) -> None:
        """Queue one reply; ``text`` may span lines.  RFC 2034 enhanced codes
        go on every line, only in EHLO sessions."""
        self._out += format_reply(
            code, enhanced, text, esmtp=self._session.esmtp and self.enhanced_status_codes
        )

    def _error(self, code: int, enhanced: str, text: str) -> Event | None:
        """Reply to a refused command.  Replies in :data:`COUNTED_ERRORS`
        (syntax and sequence mistakes) count; after ``max_errors`` of them,
        queue 421 and a :class:`Quit` event.  Returns None, so that a handler
        can end with ``return self._error(...)``."""
        self._reply(code, enhanced, text)
        txn = self._txn
        mail_from = txn.mail_from if txn is not None else ""
        self._note_refusal(code, text, _REFUSAL_REASONS.get(code, "policy"), mail_from)
        if code not in COUNTED_ERRORS:
            return None
        self._errors += 1
        if self._errors >= self.max_errors and self._state is not State.CLOSED:
            text = "Too many errors, closing connection"
            self._reply(421, "4.7.0", text)
            self._note_refusal(421, text, "closing", mail_from, closes=True)
            self._hang_up(421)
        return None

    def _note_refusal(
        self,
        code: int,
        text: str,
        reason: str,
        mail_from: str = "",
        recipient: str = "",
        closes: bool = False,
    ) -> None:
        self._records.append(
            CommandRefusal(
                verb=self._verb,
                line=self._line,
                code=code,
                text=text,
                reason=reason,
                mail_from=mail_from,
                recipient=recipient,
                closes=closes,
            )
        )

    def _hang_up(self, code: int) -> None:
        """End the dialogue after a closing reply (421, or a refusal asked
        to close): read nothing more; ``next_event()`` returns ``Quit``."""
        self._drop_input()
        self._pending = self._pending_next = None
        if self._sasl is not None:
            self._sasl.close()
        self._sasl = self._sasl_initial = None
        self._txn = None
        if self._state is not State.CLOSED:
            self._advance(Trigger.GIVE_UP)
        self._closing_event = Quit(reply_code=code)


def _no_more_than(arg: str, syntax: str, *, required: bool = False) -> None:
    """Check that a command has an argument exactly when ``required``."""
    if bool(arg.strip(" ")) != required:
        raise RemoteProtocolError(f"Syntax: {syntax}", 501, "5.5.4")


# TRANSITIONS with the handler names resolved once, for dispatch speed.
_DISPATCH: dict[tuple[State, str], tuple[_Handler, State]] = {
    key: (getattr(SMTPServerConnection, name), next_state)
    for key, (name, next_state) in TRANSITIONS.items()
}


def _check_replies(replies: Mapping[str, tuple[int, str]]) -> dict[str, tuple[int, str]]:
    """Validate ``replies=``: known keys, a code of the step's class."""
    checked: dict[str, tuple[int, str]] = {}
    for key, value in replies.items():
        if key not in REPLY_KEYS:
            raise InvalidArgumentError(
                f"replies: unknown step {key!r}; known: {sorted(REPLY_KEYS)}"
            )
        if not (isinstance(value, tuple) and len(value) == 2):
            raise InvalidArgumentTypeError(f"replies[{key!r}] must be (code, text), not {value!r}")
        code, text = value
        klass = REPLY_KEYS[key][0]
        if not isinstance(code, int) or code // 100 != klass or not 100 <= code <= 599:
            raise InvalidArgumentError(
                f"replies[{key!r}]: {REPLY_KEYS[key][1]} needs a {klass}xx code, not {code!r} "
                "(refusals go through on_command or SMTPReject)"
            )
        if not isinstance(text, str):
            raise InvalidArgumentTypeError(f"replies[{key!r}]: the text must be a str")
        checked[key] = (code, text)
    return checked


def _check_keywords(keywords: Sequence[str]) -> list[str]:
    """Validate a fixed ``ehlo_keywords`` list: one printable line each."""
    if isinstance(keywords, str):
        raise InvalidArgumentTypeError("ehlo_keywords is a sequence of keyword lines, not a str")
    out = []
    for k in keywords:
        if not isinstance(k, str) or not k.strip() or any(c in k for c in "\r\n\x00"):
            raise InvalidArgumentError(f"an EHLO keyword is one non-empty line, not {k!r}")
        out.append(k)
    return out
