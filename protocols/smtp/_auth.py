"""SASL exchanges for AUTH (RFC 4954): PLAIN (RFC 4616), LOGIN, CRAM-MD5
(RFC 2195) and custom mechanisms.

A custom mechanism is a generator function ``mechanism(initial)``:
``initial`` is the decoded initial response (``None`` when the AUTH line
had none); each ``yield challenge`` (bytes) sends ``334 base64(challenge)``
and receives the client's next decoded response; ``return (username,
password)`` ends the exchange with credentials for the server to judge.
Raising an :class:`SMTPProtocolError` (``SMTPReject``) ends it with that
reply.  A mechanism that never returns is bounded by the machine: after
``max_errors`` challenges in one exchange it says 421 and closes.

Pure protocol logic: the machine feeds each client response line (base64)
to a :class:`SASLExchange` and sends back the challenge it returns, until the
exchange yields an :class:`AuthAttempt` for the consumer to judge.
Malformed responses raise :class:`RemoteProtocolError` carrying the 501 the
server should send.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable, Generator

from ._events import AuthAttempt, InvalidArgumentError, RemoteProtocolError

__all__ = [
    "BUILTIN_MECHANISMS",
    "SASLExchange",
    "SASLMechanism",
    "decode_sasl",
    "decode_utf8",
    "parse_plain",
]

#: The mechanisms implemented here; others must be given as custom ones.
BUILTIN_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")

#: A custom SASL mechanism (see the module docstring).
SASLMechanism = Callable[[bytes | None], Generator[bytes, bytes, tuple[str, str]]]

# RFC 4954 prescribes no challenge text for LOGIN; "Username:" and
# "Password:" in base64 are what every LOGIN client expects.
_USERNAME_CHALLENGE = b"334 " + base64.b64encode(b"Username:") + b"\r\n"
_PASSWORD_CHALLENGE = b"334 " + base64.b64encode(b"Password:") + b"\r\n"


class SASLExchange:
    """One AUTH exchange.  ``mechanism`` is a built-in name, or any name
    with ``custom`` (its :data:`SASLMechanism`)."""

    __slots__ = (
        "mechanism",
        "rounds",
        "initial",
        "_username",
        "_challenge",
        "_gen",
        "_host",
        "_custom",
    )

    def __init__(
        self, mechanism: str, *, hostname: str = "localhost", custom: SASLMechanism | None = None
    ) -> None:
        if custom is None and mechanism not in BUILTIN_MECHANISMS:
            raise InvalidArgumentError(f"unsupported SASL mechanism {mechanism!r}")
        self.mechanism = mechanism
        #: Challenges sent so far (the machine bounds them).
        self.rounds = 0
        #: The exchange started with an initial response on the AUTH line.
        self.initial = False
        self._username: str | None = None  # LOGIN: set once the first answer came
        self._challenge = ""  # CRAM-MD5
        self._host = hostname
        self._gen: Generator[bytes, bytes, tuple[str, str]] | None = None
        self._custom: SASLMechanism | None = custom

    def start(self, initial: str | None) -> AuthAttempt | bytes:
        """Begin: ``initial`` is the base64 initial response from the AUTH
        line, or None.  Returns a 334 line or the :class:`AuthAttempt`."""
        self.initial = initial is not None
        if self._custom is not None:
            value = None if initial is None else decode_sasl(initial)
            self._gen = self._custom(value)
            return self._resume(lambda gen: next(gen))
        if initial is not None:
            if self.mechanism == "CRAM-MD5":  # RFC 2195: the server speaks first
                raise RemoteProtocolError("CRAM-MD5 takes no initial response", 501, "5.5.4")
            return self.respond(initial)
        self.rounds += 1
        if self.mechanism == "PLAIN":
            return b"334 \r\n"
        if self.mechanism == "LOGIN":
            return _USERNAME_CHALLENGE
        self._challenge = f"<{secrets.randbelow(10**12)}.{secrets.token_hex(4)}@{self._host}>"
        return _challenge_line(self._challenge.encode())

    def respond(self, response: str) -> AuthAttempt | bytes:
        """Take one base64 response (the initial response counts).

        Returns the next 334 challenge line, or the :class:`AuthAttempt` once
        the credentials are complete.  Raises :class:`RemoteProtocolError`
        (501) for bad base64 or a malformed response.
        """
        value = decode_sasl(response)
        initial = self.initial and self.rounds == 0
        if self._gen is not None:
            return self._resume(lambda gen: gen.send(value))
        if self.mechanism == "PLAIN":
            authzid, username, password = parse_plain(value)
            return AuthAttempt(
                mechanism="PLAIN",
                username=username,
                password=password,
                authzid=authzid,
                initial_response=initial,
            )
        if self.mechanism == "CRAM-MD5":
            user, _, digest = decode_utf8(value).rpartition(" ")
            if not user or len(digest) != 32 or not all(c in "0123456789abcdef" for c in digest):
                raise RemoteProtocolError("Malformed CRAM-MD5 response", 501, "5.5.2")
            return AuthAttempt(
                mechanism="CRAM-MD5",
                username=user,
                password="",
                challenge=self._challenge,
                digest=digest,
            )
        if self._username is None:
            self._username = decode_utf8(value)
            self.rounds += 1
            return _PASSWORD_CHALLENGE
        return AuthAttempt(
            mechanism="LOGIN",
            username=self._username,
            password=decode_utf8(value),
            initial_response=self.initial,
        )

    def _resume(
        self, step: Callable[[Generator[bytes, bytes, tuple[str, str]]], bytes]
    ) -> AuthAttempt | bytes:
        gen = self._gen
        assert gen is not None
        try:
            challenge = step(gen)
        except StopIteration as stop:
            self._gen = None
            result = stop.value
            if not (
                isinstance(result, tuple)
                and len(result) == 2
                and all(isinstance(x, str) for x in result)
            ):
                raise RemoteProtocolError(
                    "Temporary authentication failure", 454, "4.7.0"
                ) from None
            return AuthAttempt(
                mechanism=self.mechanism,
                username=result[0],
                password=result[1],
                initial_response=self.initial,
            )
        self.rounds += 1
        if not isinstance(challenge, bytes):
            gen.close()
            self._gen = None
            raise RemoteProtocolError("Temporary authentication failure", 454, "4.7.0")
        return _challenge_line(challenge)

    def close(self) -> None:
        """Abandon the exchange (closes a custom mechanism's generator).

        Never raises: a mechanism that fails to close (it ignores
        GeneratorExit or raises in a ``finally`` clause) is abandoned all
        the same, since the reply that ends the exchange is already decided
        (``SMTPServer`` reports the failure through ``handle_error``)."""
        if self._gen is not None:
            gen, self._gen = self._gen, None
            try:
                gen.close()
            except Exception:  # noqa: S110 - see the docstring
                pass


def _challenge_line(challenge: bytes) -> bytes:
    return b"334 " + base64.b64encode(challenge) + b"\r\n"


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
