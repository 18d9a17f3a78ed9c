"""States, transition tables and session facts of the SMTP machine.

Every change of dialogue state is listed here, in two tables, and the
machine (:class:`~protocols.smtp._machine.SMTPServerConnection`) changes
state only by looking one of them up:

* :data:`TRANSITIONS` maps ``(state, verb)`` to the name of the machine
  method that handles the command and the state entered when the command
  succeeds (for commands the consumer decides on: when it accepts).  A verb
  that appears in the table but not for the current state is answered 503
  (bad sequence) by the dispatcher, so no handler checks the sequence
  itself.  The same table generates the HELP reply.
* :data:`TRIGGERS` maps ``(state, trigger)`` to the next state for the
  changes that are not commands (:class:`Trigger`): the end of message
  content, the end of an AUTH exchange, the end of a STARTTLS handshake, and
  the ways a dialogue ends without QUIT (EOF, giving up after too many
  errors, the server shutting down), which lead from every state to
  :attr:`State.CLOSED` (the shape of h11's ``process_error``).

The session facts (:class:`Session`) and the mail transaction
(:class:`Transaction`) are plain objects the machine replaces rather than
resets: RSET drops the transaction, STARTTLS starts a new session.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ._content import ContentReader

__all__ = [
    "AUTH_MECHANISMS",
    "COMMAND_STATES",
    "HELP_ORDER",
    "INITIAL_STATE",
    "KNOWN_VERBS",
    "TRANSITIONS",
    "TRIGGERS",
    "UNIMPLEMENTED_VERBS",
    "Session",
    "State",
    "Transaction",
    "Trigger",
]


class State(enum.Enum):
    """Where the dialogue is.  Proposals pause the machine *within* a state."""

    #: Greeting sent; HELO/EHLO expected (also the state after STARTTLS).
    GREETED = "GREETED"
    #: HELO/EHLO accepted; no mail transaction in progress.
    READY = "READY"
    #: MAIL FROM accepted; RCPT TO expected.
    MAIL = "MAIL"
    #: At least one recipient accepted; more RCPT TO, or DATA.
    RCPT = "RCPT"
    #: 354 sent; reading message content up to CRLF.CRLF.
    DATA = "DATA"
    #: AUTH accepted: the SASL exchange (RFC 4954) is in progress (a 334
    #: sent, or a response being judged) until :attr:`Trigger.SASL_END`.
    AUTH = "AUTH"
    #: 220 to STARTTLS sent; waiting for :meth:`SMTPServerConnection.tls_established`.
    TLS_PENDING = "TLS_PENDING"
    #: 221/421 sent, or EOF seen: no further commands are read.
    CLOSED = "CLOSED"


#: The state of a new connection (the 220 greeting is queued).
INITIAL_STATE = State.GREETED


class Trigger(enum.Enum):
    """What changes the state besides a command (see :data:`TRIGGERS`)."""

    #: The content ended (CRLF.CRLF), whether the message is kept or refused.
    CONTENT_END = "CONTENT_END"
    #: The AUTH exchange ended: credentials accepted or rejected, the client
    #: cancelled (``*``), a response was malformed or over-long.
    SASL_END = "SASL_END"
    #: The TLS handshake after an accepted STARTTLS completed.
    TLS_ESTABLISHED = "TLS_ESTABLISHED"
    #: EOF from the peer was processed.
    EOF = "EOF"
    #: The server gives up on the peer with 421 queued: too many
    #: syntax/sequence errors, or a refusal that closes (421, ``close=True``).
    GIVE_UP = "GIVE_UP"
    #: The server is stopping (``shutdown()``): 421 queued.
    SHUTDOWN = "SHUTDOWN"


#: SASL mechanisms the machine implements (RFC 4616 PLAIN, LOGIN, RFC 2195
#: CRAM-MD5); others can be added as custom mechanisms.
AUTH_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")

#: States in which a command line is read and dispatched through the table.
COMMAND_STATES = (State.GREETED, State.READY, State.MAIL, State.RCPT)
_ANYTIME_VERBS = {"NOOP": "_noop", "HELP": "_help", "VRFY": "_vrfy", "QUIT": "_quit"}

#: ``(state, verb) -> (handler method name, state entered on success)``.
#: A verb listed somewhere but not for the current state gets 503.
TRANSITIONS: dict[tuple[State, str], tuple[str, State]] = {
    # Verbs valid in every command state; QUIT ends the dialogue.
    **{
        (state, verb): (handler, State.CLOSED if verb == "QUIT" else state)
        for state in COMMAND_STATES
        for verb, handler in _ANYTIME_VERBS.items()
    },
    # HELO/EHLO (re)start the session; in a transaction they act as RSET
    # (RFC 5321 §4.1.4).
    **{
        (state, verb): (handler, State.READY)
        for state in COMMAND_STATES
        for verb, handler in (("HELO", "_helo"), ("EHLO", "_ehlo"))
    },
    # RSET drops the transaction; before HELO there is nothing to drop.
    (State.GREETED, "RSET"): ("_rset", State.GREETED),
    (State.READY, "RSET"): ("_rset", State.READY),
    (State.MAIL, "RSET"): ("_rset", State.READY),
    (State.RCPT, "RSET"): ("_rset", State.READY),
    # Outside a transaction only.
    (State.READY, "STARTTLS"): ("_starttls", State.TLS_PENDING),
    (State.READY, "AUTH"): ("_auth", State.AUTH),
    # Before HELO/EHLO only with auth_before_ehlo (the gate refuses
    # otherwise); the exchange then ends in READY, as after EHLO.
    (State.GREETED, "AUTH"): ("_auth", State.AUTH),
    # The transaction itself.
    (State.READY, "MAIL"): ("_mail", State.MAIL),
    (State.MAIL, "RCPT"): ("_rcpt", State.RCPT),
    (State.RCPT, "RCPT"): ("_rcpt", State.RCPT),
    # DATA needs an accepted recipient.  In State.MAIL it is absent, so it
    # is refused; the dispatcher then says 554 "no valid recipients" (RFC
    # 5321 §3.3 allows 503 or 554; 554 tells the client more).
    (State.RCPT, "DATA"): ("_data", State.DATA),
}

#: ``(state, trigger) -> next state`` for every change that is not a command.
TRIGGERS: dict[tuple[State, Trigger], State] = {
    (State.DATA, Trigger.CONTENT_END): State.READY,
    (State.AUTH, Trigger.SASL_END): State.READY,
    # RFC 3207 §4.2: after the handshake the session starts over (EHLO again).
    (State.TLS_PENDING, Trigger.TLS_ESTABLISHED): State.GREETED,
    # The dialogue can end, without QUIT, in any state.
    **{
        (state, trigger): State.CLOSED
        for state in State
        for trigger in (Trigger.EOF, Trigger.GIVE_UP, Trigger.SHUTDOWN)
    },
}

KNOWN_VERBS = frozenset(verb for _, verb in TRANSITIONS)

#: The order in which HELP lists the verbs available.
HELP_ORDER = (
    "HELO",
    "EHLO",
    "MAIL",
    "RCPT",
    "DATA",
    "RSET",
    "NOOP",
    "QUIT",
    "VRFY",
    "HELP",
    "STARTTLS",
    "AUTH",
)
assert frozenset(HELP_ORDER) == KNOWN_VERBS
# RFC 5321 verbs (and common extensions) that this server does not implement:
# 502 rather than 500 (§4.2.4).
UNIMPLEMENTED_VERBS = frozenset({"EXPN", "TURN", "ETRN", "ATRN", "BDAT", "SEND", "SOML", "SAML"})


@dataclass(slots=True)
class Session:
    """What the machine knows about the client, from HELO/EHLO to STARTTLS
    (which starts a new session) or the end of the connection."""

    #: TLS is in effect (implicit TLS, or after STARTTLS).
    tls_active: bool = False
    #: The HELO/EHLO argument; None before the first one.
    helo_name: str | None = None
    #: The session started with EHLO.
    esmtp: bool = False
    #: The username of a successful AUTH.
    auth_user: str | None = None


@dataclass(slots=True)
class Transaction:
    """One mail transaction: from an accepted MAIL FROM to the end of the
    message, RSET, HELO/EHLO or the end of the connection.  Never reset in
    place: the machine drops it and starts a new one."""

    mail_from: str
    mail_options: tuple[str, ...] = ()
    smtputf8: bool = False
    recipients: list[str] = field(default_factory=list)
    recipient_options: list[tuple[str, ...]] = field(default_factory=list)
    #: The reader of the content, once DATA was accepted.
    content: ContentReader | None = None
