"""SASL exchanges for AUTH (RFC 4954): PLAIN (RFC 4616) and LOGIN.

Pure protocol logic: the machine feeds each client response line (base64)
to a :class:`SASLExchange` and sends back the challenge it returns, until the
exchange yields an :class:`AuthAttempt` for the consumer to judge.
Malformed responses raise :class:`RemoteProtocolError` carrying the 501 the
server should send.
"""

from __future__ import annotations

import base64
import binascii

from ._events import AuthAttempt, InvalidArgumentError, RemoteProtocolError

__all__ = ["SASLExchange", "decode_sasl", "decode_utf8", "parse_plain"]

# RFC 4954 prescribes no challenge text for LOGIN; "Username:" and
# "Password:" in base64 are what every LOGIN client expects.
_USERNAME_CHALLENGE = b"334 " + base64.b64encode(b"Username:") + b"\r\n"
_PASSWORD_CHALLENGE = b"334 " + base64.b64encode(b"Password:") + b"\r\n"


class SASLExchange:
    """One AUTH exchange.  ``mechanism`` is ``"PLAIN"`` or ``"LOGIN"``."""

    __slots__ = ("mechanism", "_username")

    def __init__(self, mechanism: str) -> None:
        if mechanism not in ("PLAIN", "LOGIN"):
            raise InvalidArgumentError(f"unsupported SASL mechanism {mechanism!r}")
        self.mechanism = mechanism
        self._username: str | None = None  # LOGIN: set once the first answer came

    def first_challenge(self) -> bytes:
        """The 334 line to send when AUTH came without an initial response."""
        return b"334 \r\n" if self.mechanism == "PLAIN" else _USERNAME_CHALLENGE

    def respond(self, response: str) -> AuthAttempt | bytes:
        """Take one base64 response (the initial response counts).

        Returns the next 334 challenge line, or the :class:`AuthAttempt` once
        the credentials are complete.  Raises :class:`RemoteProtocolError`
        (501) for bad base64 or a malformed PLAIN message.
        """
        value = decode_sasl(response)
        if self.mechanism == "PLAIN":
            authzid, username, password = parse_plain(value)
            return AuthAttempt(
                mechanism="PLAIN", username=username, password=password, authzid=authzid
            )
        if self._username is None:
            self._username = decode_utf8(value)
            return _PASSWORD_CHALLENGE
        return AuthAttempt(mechanism="LOGIN", username=self._username, password=decode_utf8(value))


def decode_sasl(text: str) -> bytes:
    """Base64-decode one SASL response line; ``=`` is the empty response
    (RFC 4954 §4).  Raises :class:`RemoteProtocolError` (501) otherwise."""
    if text == "=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RemoteProtocolError("Cannot decode base64 response", 501, "5.5.2")


def parse_plain(value: bytes) -> tuple[str, str, str]:
    """Split a PLAIN response into ``(authzid, username, password)``
    (RFC 4616 §2: ``[authzid] NUL authcid NUL passwd``, UTF-8).
    Raises :class:`RemoteProtocolError` (501) when malformed."""
    fields = value.split(b"\0")
    if len(fields) != 3 or not fields[1]:
        raise RemoteProtocolError("Malformed PLAIN response", 501, "5.5.2")
    try:
        authzid, username, password = (f.decode("utf-8") for f in fields)
    except UnicodeDecodeError:
        raise RemoteProtocolError("Malformed PLAIN response", 501, "5.5.2") from None
    return authzid, username, password


def decode_utf8(value: bytes) -> str:
    """Decode a SASL field; :class:`RemoteProtocolError` (501) if not UTF-8."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError("Malformed authentication response", 501, "5.5.2")
