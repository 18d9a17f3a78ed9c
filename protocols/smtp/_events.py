"""Events, errors, sentinels and limits of the sans-I/O SMTP server machine.

The machine itself lives in :mod:`protocols.smtp._machine`; this module holds the
vocabulary it speaks.  Events are small frozen dataclasses.  Some of them are
*proposals* (:class:`MailFromProposed`, :class:`RecipientProposed`,
:class:`MessageReceived`, :class:`StartTLSRequested`, :class:`AuthAttempt`):
after returning one, the machine is paused (``next_event()`` returns
:data:`PAUSED`) until the consumer answers with ``accept()`` or
``reject(code, text)``.  The others are information: the machine has already
queued its reply.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from reactor import TestServersError

__all__ = [
    "AUTH_LINE_LIMIT",
    "COMMANDS_PER_CALL",
    "COMMAND_LINE_LIMIT",
    "DEFAULT_MAX_ERRORS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_RECIPIENTS",
    "MAIL_LINE_LIMIT",
    "MIN_RECIPIENTS",
    "NEED_DATA",
    "PAUSED",
    "TEXT_LINE_LIMIT",
    "YIELD",
    "AuthAttempt",
    "CommandLine",
    "CommandRefusal",
    "ConnectionClosed",
    "ConnectionClosedError",
    "Event",
    "Hello",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "LocalProtocolError",
    "MailFromProposed",
    "MessageReceived",
    "MessageRefused",
    "Proposal",
    "Quit",
    "RecipientProposed",
    "RemoteProtocolError",
    "Reply",
    "REPLY_KEYS",
    "Reset",
    "SMTPProtocolError",
    "Sentinel",
    "StartTLSRequested",
]

# --------------------------------------------------------------------------
# Limits.  Every buffer of the machine is bounded by one of these.
# --------------------------------------------------------------------------

#: RFC 5321 §4.5.3.1.4: "The maximum total length of a command line including
#: the command word and the <CRLF> is 512 octets."
COMMAND_LINE_LIMIT = 512

#: MAIL FROM / RCPT TO lines may carry ESMTP parameters, and RFC 5321
#: §4.5.3.1.4 lets extensions raise the limit: RFC 1870 §3 (5) adds 26 octets
#: for SIZE=, RFC 4954 §5 adds 500 for AUTH=; BODY= (RFC 6152) and SMTPUTF8
#: (RFC 6531) name no number, so 64 more octets cover them.
MAIL_LINE_LIMIT = COMMAND_LINE_LIMIT + 26 + 500 + 64

#: RFC 4954 §4: the AUTH command line and each SASL response line may be up to
#: 12288 octets (room for base64 of large credentials).
AUTH_LINE_LIMIT = 12288

#: RFC 5321 §4.5.3.1.6: "The maximum total length of a text line including the
#: <CRLF> is 1000 octets (not counting the leading dot duplicated for
#: transparency)."  A longer line makes the message fail with 500 after the
#: end of data; the message is not delivered.
TEXT_LINE_LIMIT = 1000

#: Default fixed maximum message size (RFC 1870), in octets of unstuffed
#: message content including CRLFs, except the CRLF that ends the last line
#: (see :mod:`protocols.smtp._content`).  32 MiB is what CPython's smtpd used
#: (``DATA_SIZE_DEFAULT``); advertised as ``SIZE 33554432`` in EHLO.  The
#: limit is always an int: it also bounds the memory one message may hold.
DEFAULT_MAX_MESSAGE_SIZE = 33_554_432

#: RFC 5321 §4.5.3.1.8: "The minimum total number of recipients that MUST be
#: buffered is 100 recipients."  The machine refuses to be configured lower.
MIN_RECIPIENTS = 100

#: Default recipient limit per transaction; recipient 1001 gets
#: "452 4.5.3 Too many recipients" (RFC 5321 §4.5.3.1.10).
DEFAULT_MAX_RECIPIENTS = 1000

#: After this many syntax or sequence error replies (500, 501, 502, 503, 504,
#: 555: ``protocols.smtp._machine.COUNTED_ERRORS``) on one connection, the machine
#: answers "421" and asks to close: a peer spewing garbage costs the server
#: one bounded burst, not an endless dialogue.  Policy refusals of
#: well-formed commands (452 too many recipients, 553, 530, 538, 552...) do
#: not count: a client may meet any number of them and go on.
DEFAULT_MAX_ERRORS = 50

#: Command lines the machine answers on its own, with no event (NOOP, HELP,
#: VRFY, the 354 to DATA, 334 challenges, syntax and sequence errors,
#: over-long lines...), within one ``next_event()`` call.  Once this many
#: were answered, the call returns :data:`YIELD`: a peer pipelining thousands
#: of such commands in one read cannot hold the shared reactor thread for the
#: whole batch (64 NOOPs take tens of microseconds; 43,690 took 138 ms).
COMMANDS_PER_CALL = 64


# --------------------------------------------------------------------------
# Sentinels
# --------------------------------------------------------------------------


class Sentinel(enum.Enum):
    """Values ``next_event()`` returns when it has no event."""

    #: The machine needs more bytes from the peer (``receive_data``).
    NEED_DATA = "NEED_DATA"
    #: The machine is waiting for the consumer: answer the last proposal with
    #: ``accept()``/``reject()``, or finish the TLS handshake and call
    #: ``tls_established()``.
    PAUSED = "PAUSED"
    #: Budget spent: the machine answered :data:`COMMANDS_PER_CALL` commands
    #: on its own in this call.  Call ``next_event()`` again, typically on a
    #: later reactor pass (after sending ``data_to_send()``); nothing is
    #: lost, the unparsed input stays buffered.
    YIELD = "YIELD"

    def __repr__(self) -> str:
        return self.value


NEED_DATA = Sentinel.NEED_DATA
PAUSED = Sentinel.PAUSED
YIELD = Sentinel.YIELD


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class SMTPProtocolError(TestServersError):
    """Base of every error :mod:`protocols.smtp` raises on its own; carries
    the SMTP reply that describes it.

    ``reply_code`` is the three-digit code (``500``, ``503``...) and
    ``enhanced_code`` the RFC 3463 code (``"5.5.1"``) a server would send.
    It derives from the library-wide base, :class:`reactor.TestServersError`.

    * :class:`RemoteProtocolError`: the peer broke the protocol.
    * :class:`LocalProtocolError`: the consumer misused the machine;
      :class:`ConnectionClosedError` fed bytes after the end.
    * :class:`InvalidArgumentError`: an option, event field or reply code
      given to the package is invalid (also a ``ValueError``);
      :class:`InvalidArgumentTypeError` when its type is wrong (also a
      ``TypeError``).
    * ``SMTPReject`` (``protocols.smtp``): raised by a server callback to
      refuse with a reply.
    """

    def __init__(self, text: str, reply_code: int = 451, enhanced_code: str = "4.3.0") -> None:
        super().__init__(text)
        self.text = text
        self.reply_code = reply_code
        self.enhanced_code = enhanced_code


class RemoteProtocolError(SMTPProtocolError):
    """The peer's bytes broke the protocol.

    The machine turns these into replies itself (500 line too long, 503 bad
    sequence...), so consumers only meet them through the replies; the class
    exists so the machine's own code carries one reply per failure.
    """


class LocalProtocolError(SMTPProtocolError):
    """The consumer used the machine wrongly (e.g. ``accept()`` with no
    proposal pending, ``tls_established()`` without a STARTTLS in flight).
    The machine's state is unchanged when this is raised."""


class ConnectionClosedError(LocalProtocolError):
    """The connection is over (EOF was fed, or ``close()`` was called) and the
    consumer fed more bytes."""


class InvalidArgumentError(SMTPProtocolError, ValueError):
    """An argument given to the package is invalid: a machine or server
    option (``max_recipients=99``, an unknown AUTH mechanism...), an event
    field (``Hello(command="HELLO")``), a reply code outside 400-599 for
    ``reject()`` or ``SMTPReject``.  Also a ``ValueError``, which is what
    these raised before, so ``except ValueError`` keeps catching them.
    Nothing was changed when it is raised."""

    def __init__(self, text: str) -> None:
        super().__init__(text, 451, "4.3.0")


class InvalidArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument given to the package has the wrong type
    (``max_message_size=None``: content is held in memory, so there is
    always a limit).  Also a ``TypeError``."""


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base class of everything ``next_event()`` returns besides sentinels."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal(Event):
    """An event the consumer must answer with ``accept()`` or ``reject()``.

    Until it does, ``next_event()`` returns :data:`PAUSED` and the machine
    reads no further commands, so replies stay in order even when the client
    pipelines.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(Event):
    """HELO, EHLO or (LMTP) LHLO was accepted (the 250 is already queued).

    ``command`` is ``"HELO"``, ``"EHLO"`` or ``"LHLO"``; ``name`` the
    client's argument.
    """

    command: str
    name: str

    def __post_init__(self) -> None:
        if self.command not in ("HELO", "EHLO", "LHLO"):
            raise InvalidArgumentError(f"command must be HELO, EHLO or LHLO, not {self.command!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class MailFromProposed(Proposal):
    """``MAIL FROM:<address> params``.  ``address`` is ``""`` for the null
    reverse-path ``<>``.  ``options`` are the raw parameters as sent
    (``("SIZE=1234", "BODY=8BITMIME")``); ``size`` is the declared SIZE=, or
    None.  ``accept()`` answers 250, ``reject()`` the chosen code."""

    address: str
    options: tuple[str, ...] = ()
    size: int | None = None
    body: str | None = None
    smtputf8: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientProposed(Proposal):
    """``RCPT TO:<address> params``; ``accept()`` adds the recipient to the
    transaction (250), ``reject()`` leaves it out with the chosen code."""

    address: str
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReceived(Proposal):
    """A complete, well-formed message arrived (``CRLF.CRLF`` seen).

    ``data`` is the content with dot-stuffing removed and every line ending
    in CRLF (the final CRLF before the dot belongs to the content).
    ``recipients`` are the accepted recipients, in order, and
    ``recipient_options`` their parameters, index for index.
    ``accept()`` answers "250 2.0.0 OK"; ``reject(code, text)`` refuses it
    (e.g. 554 or 451).  Either way the transaction is over.
    """

    mail_from: str
    recipients: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...] = ()
    recipient_options: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if not self.recipients:
            raise InvalidArgumentError("a message needs at least one recipient")


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRefused(Event):
    """The machine refused a message on its own after the end of data (the
    reply, ``reply_code``, is already queued) and delivers nothing.

    ``reason`` is one of ``"size"`` (over the maximum message size, 552),
    ``"line-length"`` (a text line over 1000 octets, 500) or
    ``"bare-line-ending"`` (a CR or LF not part of a CRLF, 554); when
    several apply, the first in that order.
    """

    reason: str
    reply_code: int
    mail_from: str
    recipients: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTLSRequested(Proposal):
    """The client sent STARTTLS.

    ``accept()`` queues "220 Ready to start TLS", discards every byte already
    buffered after the command (RFC 3207 §4.2: no plaintext injection survives
    the upgrade) and pauses until the I/O layer has sent the 220, completed the
    handshake and called ``tls_established()``.  ``reject(454, ...)`` refuses.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthAttempt(Proposal):
    """A complete SASL exchange (RFC 4954) produced credentials.

    ``mechanism`` is ``"PLAIN"``, ``"LOGIN"``, ``"CRAM-MD5"`` or a custom
    mechanism's name; ``authzid`` the PLAIN authorization identity (``""``
    if none).  ``accept()`` answers
    "235 2.7.0", ``reject()`` defaults to "535 5.7.8".
    """

    mechanism: str
    username: str
    password: str
    authzid: str = ""
    #: The client sent its first response on the AUTH line itself (RFC 4954
    #: §4 "initial-response"), not after a 334.
    initial_response: bool = False
    #: CRAM-MD5 (RFC 2195): the challenge sent and the client's hex digest
    #: (``password`` is then ``""``: it never crosses the wire).
    challenge: str = ""
    digest: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reset(Event):
    """RSET was accepted; any transaction in progress was dropped."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Quit(Event):
    """The machine queued its last reply (221 after QUIT, or 421 when it gives
    up on the peer).  The consumer should send ``data_to_send()`` and close.
    """

    reply_code: int = 221


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(Event):
    """The peer closed its side (``receive_data(b"")``).

    ``aborted`` is True when a transaction was in progress (e.g. the client
    vanished mid-DATA): nothing of it is delivered.  ``next_event()`` keeps
    returning this event once EOF has been processed.
    """

    aborted: bool = False


# --------------------------------------------------------------------------
# Records: facts the machine notes for ``take_records()``, never returned by
# ``next_event()`` (so they cost a consumer that ignores them nothing).
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandLine(Event):
    """One command line as read (``line``: the raw bytes without CRLF),
    with its ``verb`` (upper-cased; ``""`` when the line has none) and
    ``argument``.  SASL response lines and message content are not command
    lines."""

    line: bytes
    verb: str
    argument: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandRefusal(Event):
    """A 4xx/5xx reply to a command: by the machine (``reason`` ``"syntax"``,
    ``"sequence"``, ``"size"``, ``"policy"``, ``"closing"``) or by the
    consumer's ``reject()`` (the reason it gave, ``"rejected"`` by default).

    ``verb`` and ``line`` are the command refused (``"AUTH"`` for a refused
    SASL response); ``mail_from``/``recipient`` what the transaction knew.
    ``closes`` is True when the reply ends the connection (421).
    Refusals of message content after the end of data are
    :class:`MessageRefused` events instead.
    """

    verb: str
    line: bytes
    code: int
    text: str
    reason: str
    mail_from: str = ""
    recipient: str = ""
    closes: bool = False


#: The accepted steps whose reply a consumer may set (``replies=``):
#: ``(code class allowed, what it answers)``.
REPLY_KEYS: dict[str, tuple[int, str]] = {
    "greeting": (2, "the 220 banner"),
    "HELO": (2, "HELO"),
    "EHLO": (2, "the first line of the EHLO reply (the keywords follow)"),
    "MAIL": (2, "an accepted MAIL FROM"),
    "RCPT": (2, "an accepted RCPT TO"),
    "DATA": (3, "the 354 to DATA"),
    "message": (2, "an accepted message (after the end of data)"),
    "AUTH": (2, "a successful AUTH (235)"),
    "QUIT": (2, "QUIT (221)"),
    "RSET": (2, "RSET"),
    "NOOP": (2, "NOOP"),
    "VRFY": (2, "VRFY (252)"),
    "HELP": (2, "HELP (214)"),
    "STARTTLS": (2, "an accepted STARTTLS (220)"),
}


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply a command hook (``on_command``) or a fault script sends
    instead of the server's own.

    ``code`` is 2xx, 4xx or 5xx (:class:`InvalidArgumentError` otherwise:
    a 3xx would make the client send data the server does not expect);
    ``text`` may span lines (``"\n"``) and may start with an RFC 3463 code.
    ``close=True`` closes the connection after the reply; a 421 always does
    (RFC 5321 §3.8), and so does any reply to QUIT.
    """

    code: int
    text: str = ""
    close: bool = False
    #: The ``reason`` of the :class:`CommandRefusal` noted for a 4xx/5xx
    #: (``"hook"`` for ``on_command``, ``"fault"`` for a fault rule).
    reason: str = "hook"

    def __post_init__(self) -> None:
        if not isinstance(self.code, int) or self.code // 100 not in (2, 4, 5):
            raise InvalidArgumentError(f"a reply needs a 2xx, 4xx or 5xx code, not {self.code!r}")
        if not isinstance(self.text, str):
            raise InvalidArgumentTypeError(f"reply text must be a str, not {self.text!r}")

    @property
    def closes(self) -> bool:
        """True when this reply ends the connection (``close`` or 421)."""
        return self.close or self.code == 421
