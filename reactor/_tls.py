"""TLS as a layer of its own, over ``ssl.MemoryBIO`` + ``ssl.SSLObject``.

The layer never touches a socket: the transport feeds it the ciphertext it
read (:meth:`TLSLayer.feed`), gets back plaintext chunks and events in
order, hands it plaintext to encrypt (:meth:`TLSLayer.write`), and sends
whatever :meth:`TLSLayer.take_output` returns.  So a handshake never blocks
the loop, and the same layer serves implicit TLS (created with the
connection) and STARTTLS (created later on a plaintext connection).

Reactor thread only, like the transport that drives it.
"""

from __future__ import annotations

import enum
import ssl
from collections.abc import Callable
from typing import TypeAlias

from ._loop import Reactor, TimerHandle

__all__ = ["TLS_HANDSHAKE_TIMEOUT", "TLSEvent", "TLSFailure", "TLSLayer", "TLS_READ_CHUNK"]

#: A TLS client that has not finished its handshake after this many seconds
#: is dropped (a silent client must not hold a connection slot forever).
TLS_HANDSHAKE_TIMEOUT = 30.0

#: Plaintext bytes asked of one ``SSLObject.read()``.
TLS_READ_CHUNK = 256 * 1024


class TLSEvent(enum.Enum):
    """Events :meth:`TLSLayer.feed` reports between plaintext chunks."""

    HANDSHAKE_DONE = "handshake done"
    CLOSE_NOTIFY = "close_notify"  # the peer ended its TLS stream cleanly
    #: The peer answered :meth:`TLSLayer.begin_unwrap` with its close_notify:
    #: TLS is over, the items after this one are plaintext read past it.
    UNWRAPPED = "unwrapped"


class TLSFailure:
    """A TLS error reported by :meth:`TLSLayer.feed` (always its last item).

    ``in_handshake`` tells a failed handshake (the alert, if any, is in
    :meth:`TLSLayer.take_output`) from a failure on an established session.
    """

    __slots__ = ("exc", "in_handshake")

    def __init__(self, exc: BaseException, in_handshake: bool) -> None:
        self.exc = exc
        self.in_handshake = in_handshake


TLSItem: TypeAlias = "bytes | TLSEvent | TLSFailure"


class TLSLayer:
    """One TLS session over memory BIOs.

    ``on_timeout()`` is called (by a reactor timer) if the handshake has not
    completed within ``timeout`` seconds of creation (default: the module's
    :data:`TLS_HANDSHAKE_TIMEOUT` at that moment; kept in :attr:`timeout`
    for the report); :meth:`close` cancels that timer.  Plaintext written before the
    handshake completes is held and encrypted once it has.
    """

    def __init__(
        self,
        reactor: Reactor,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        on_timeout: Callable[[], None],
        timeout: float | None = None,
    ) -> None:
        self._in_bio = ssl.MemoryBIO()
        self._out_bio = ssl.MemoryBIO()
        self.sslobj: ssl.SSLObject = context.wrap_bio(
            self._in_bio, self._out_bio, server_side=server_side
        )
        self.handshaking = True
        #: :meth:`begin_unwrap` was called: close_notify sent, the peer's awaited.
        self.unwrapping = False
        self._pending_plain: list[bytes] = []
        self._on_timeout = on_timeout
        #: Seconds the handshake may take (what a timeout report states).
        self.timeout: float = TLS_HANDSHAKE_TIMEOUT if timeout is None else timeout
        self._timer: TimerHandle | None = reactor.call_later(self.timeout, self._timed_out)

    @property
    def pending_plain_size(self) -> int:
        """Plaintext bytes held until the handshake completes."""
        return sum(map(len, self._pending_plain))

    def _timed_out(self) -> None:
        self._timer = None
        if self.handshaking:
            self._on_timeout()

    def close(self) -> None:
        """Cancel the handshake timer (the connection is gone)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def take_output(self) -> bytes:
        """Ciphertext produced so far (handshake records, data, alerts)."""
        pending = self._out_bio.pending
        return self._out_bio.read(pending) if pending else b""

    def write(self, data: bytes) -> bytes:
        """Encrypt ``data``; returns the ciphertext to send.

        While handshaking, or unwrapping (the bytes then go out in plaintext
        once the peer's close_notify arrived: see ``take_held``), ``data`` is
        held and ``b""`` returned.
        """
        if self.handshaking or self.unwrapping:
            self._pending_plain.append(data)
            return b""
        self._encrypt(data)
        return self.take_output()

    def _encrypt(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self.sslobj.write(view)
            view = view[n:]

    def unwrap(self) -> None:
        """Queue close_notify (a no-op while handshaking or if it fails)."""
        if self.handshaking:
            return
        try:
            self.sslobj.unwrap()
        except (ssl.SSLError, ValueError, OSError):
            pass

    def begin_unwrap(self) -> None:
        """Queue close_notify and go back to plaintext once the peer answers.

        For a protocol that ends TLS but keeps the connection (FTP's CCC,
        RFC 4217 §12.3).  Plaintext written meanwhile is held; once
        :meth:`feed` reports :attr:`TLSEvent.UNWRAPPED`, :meth:`take_held`
        returns it for sending in the clear.
        """
        if self.handshaking or self.unwrapping:
            return
        self.unwrapping = True
        try:
            self.sslobj.unwrap()
        except (ssl.SSLError, ValueError, OSError):
            pass  # SSLWantReadError: close_notify sent, the peer's not yet here

    def take_held(self) -> bytes:
        """Plaintext held while unwrapping (send it in the clear now)."""
        held, self._pending_plain = self._pending_plain, []
        return b"".join(held)

    def feed(self, data: bytes) -> list[TLSItem]:
        """Take ciphertext from the peer; return what it yields, in order.

        Items are plaintext ``bytes``, :class:`TLSEvent` values and at most
        one :class:`TLSFailure`, which is always last (so is
        ``CLOSE_NOTIFY``).  After ``UNWRAPPED`` (see :meth:`begin_unwrap`)
        only the plaintext the peer sent past its close_notify may follow.
        ``feed(b"")`` just advances a handshake (a client starts its
        handshake that way).  Never raises for bad input.
        """
        if data:
            self._in_bio.write(data)
        items: list[TLSItem] = []
        if self.handshaking:
            try:
                self.sslobj.do_handshake()
            except ssl.SSLWantReadError:
                return items
            except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
                items.append(TLSFailure(exc, in_handshake=True))
                return items
            self.handshaking = False
            self.close()
            pending, self._pending_plain = self._pending_plain, []
            for chunk in pending:
                self._encrypt(chunk)
            items.append(TLSEvent.HANDSHAKE_DONE)
        while True:
            try:
                plain = self.sslobj.read(TLS_READ_CHUNK)
            except ssl.SSLWantReadError:
                return items
            except ssl.SSLZeroReturnError:
                if self.unwrapping:
                    return self._unwrapped(items)
                items.append(TLSEvent.CLOSE_NOTIFY)
                return items
            except ssl.SSLError as exc:
                items.append(TLSFailure(exc, in_handshake=False))
                return items
            if not plain:
                if self.unwrapping:
                    return self._unwrapped(items)
                items.append(TLSEvent.CLOSE_NOTIFY)
                return items
            items.append(plain)

    def _unwrapped(self, items: list[TLSItem]) -> list[TLSItem]:
        try:
            self.sslobj.unwrap()  # completes the shutdown on our side
        except (ssl.SSLError, ValueError, OSError):
            pass
        items.append(TLSEvent.UNWRAPPED)
        rest = self._in_bio.read()  # what the peer sent after close_notify
        if rest:
            items.append(rest)
        return items
