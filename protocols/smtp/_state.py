"""States and the command transition table of the SMTP machine.

Every change of dialogue state that a *command* causes is listed here, in one
table: :data:`TRANSITIONS` maps ``(state, verb)`` to the name of the
:class:`~protocols.smtp._machine.SMTPServerConnection` method that handles the
command and the state entered when the command succeeds (for commands the
consumer decides on, when it accepts).  A verb that appears in the table but
not for the current state is answered 503 (bad sequence) by the dispatcher,
so no handler checks the sequence itself.

The few state changes that are not commands sit beside the code that causes
them: the end of message content (DATA -> READY), the steps of an AUTH
exchange (AUTH -> READY), the end of a STARTTLS handshake (TLS_PENDING ->
GREETED), EOF and giving up after too many errors (-> CLOSED).
"""

from __future__ import annotations

import enum

__all__ = [
    "AUTH_MECHANISMS",
    "COMMAND_STATES",
    "KNOWN_VERBS",
    "TRANSITIONS",
    "UNIMPLEMENTED_VERBS",
    "State",
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
    #: 334 sent; reading a SASL response line (RFC 4954).
    AUTH = "AUTH"
    #: 220 to STARTTLS sent; waiting for :meth:`SMTPServerConnection.tls_established`.
    TLS_PENDING = "TLS_PENDING"
    #: 221/421 sent, or EOF seen: no further commands are read.
    CLOSED = "CLOSED"


#: SASL mechanisms the machine implements (RFC 4616 PLAIN, and LOGIN).
AUTH_MECHANISMS = ("PLAIN", "LOGIN")

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
    # The transaction itself.
    (State.READY, "MAIL"): ("_mail", State.MAIL),
    (State.MAIL, "RCPT"): ("_rcpt", State.RCPT),
    (State.RCPT, "RCPT"): ("_rcpt", State.RCPT),
    # DATA with no accepted recipient: RFC 5321 §3.3 allows 503 or 554; the
    # 554 "no valid recipients" tells the client more.
    (State.MAIL, "DATA"): ("_no_recipients", State.MAIL),
    (State.RCPT, "DATA"): ("_data", State.DATA),
}

KNOWN_VERBS = frozenset(verb for _, verb in TRANSITIONS)
# RFC 5321 verbs (and common extensions) that this server does not implement:
# 502 rather than 500 (§4.2.4).
UNIMPLEMENTED_VERBS = frozenset({"EXPN", "TURN", "ETRN", "ATRN", "BDAT", "SEND", "SOML", "SAML"})
