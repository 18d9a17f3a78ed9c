"""SMTP (RFC 5321) with STARTTLS (RFC 3207) and AUTH (RFC 4954).

Modules: ``_events`` (events, sentinels, limits, errors), ``_state`` (the
state enum, the (state, verb) and trigger tables, session and transaction),
``_syntax`` (paths, parameters, reply formatting), ``_content`` (the DATA
reader), ``_auth`` (SASL exchanges), ``_machine`` (:class:`SMTPServerConnection`), ``_server`` (the
native :class:`SMTPServer` and the debugging sink) and ``_compat``
(``TestSMTPServer``, the drop-in for CPython's test_logging helper).
"""

from ._compat import TestSMTPServer
from ._events import (
    AUTH_LINE_LIMIT,
    COMMAND_LINE_LIMIT,
    COMMANDS_PER_CALL,
    DEFAULT_MAX_ERRORS,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_RECIPIENTS,
    MAIL_LINE_LIMIT,
    NEED_DATA,
    PAUSED,
    TEXT_LINE_LIMIT,
    YIELD,
    AuthAttempt,
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
    Reset,
    SMTPProtocolError,
    StartTLSRequested,
)
from ._machine import AUTH_MECHANISMS, TRANSITIONS, SMTPServerConnection, State
from ._server import Envelope, Login, Rejection, SMTPReject, SMTPServer, add_smtp_sink
from ._state import TRIGGERS, Trigger

__all__ = [
    "AUTH_LINE_LIMIT",
    "AUTH_MECHANISMS",
    "COMMAND_LINE_LIMIT",
    "COMMANDS_PER_CALL",
    "DEFAULT_MAX_ERRORS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_RECIPIENTS",
    "MAIL_LINE_LIMIT",
    "NEED_DATA",
    "PAUSED",
    "TEXT_LINE_LIMIT",
    "TRANSITIONS",
    "TRIGGERS",
    "YIELD",
    "AuthAttempt",
    "ConnectionClosed",
    "ConnectionClosedError",
    "Envelope",
    "Event",
    "Hello",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "LocalProtocolError",
    "Login",
    "MailFromProposed",
    "MessageReceived",
    "MessageRefused",
    "Proposal",
    "Quit",
    "RecipientProposed",
    "Rejection",
    "RemoteProtocolError",
    "Reset",
    "SMTPProtocolError",
    "SMTPReject",
    "SMTPServer",
    "SMTPServerConnection",
    "StartTLSRequested",
    "State",
    "TestSMTPServer",
    "Trigger",
    "add_smtp_sink",
]
