"""Sockets a protocol opens from the reactor: outbound connections and child listeners.

A scripted server sometimes needs a second socket in the middle of a
conversation: FTP's active mode (PORT/EPRT) connects back to the client,
its passive mode (PASV/EPSV) listens for the client's data connection.
Both must run on the reactor thread without blocking it, so:

* :class:`Connector` starts a non-blocking ``connect()``, waits for the
  socket to become writable (``SO_ERROR`` then tells success from failure)
  or for its timeout, and hands the connected socket on.  It never blocks.
* :func:`open_listener` binds and listens on a new socket and returns a
  :class:`reactor.Listener` that accepts on readiness.

Reactor thread only.  Whoever creates them owns them and closes them (a
server closes the ones its connections made when it stops).
"""

from __future__ import annotations

import errno
import selectors
import socket
from collections.abc import Callable
from typing import Any

from ._errors import InvalidArgumentError
from ._loop import Reactor, TimerHandle
from ._transport import ErrorSink, Listener

__all__ = ["CONNECT_TIMEOUT", "Connector", "open_listener"]

#: Default seconds an outbound connection may take to be established before
#: it fails with ``TimeoutError`` (loopback connects take microseconds; a
#: port that drops SYNs must not hold the attempt forever).
CONNECT_TIMEOUT = 10.0

_IN_PROGRESS = frozenset({errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EALREADY})


class Connector:
    """One non-blocking outbound stream connection attempt.

    ``on_connected(sock)`` gets the connected non-blocking socket (the
    callback owns it from then on); ``on_failed(exc)`` gets the ``OSError``
    (``ConnectionRefusedError``, ``TimeoutError`` after ``timeout`` seconds,
    ``socket.gaierror`` for a host name: the address must be a numeric IP
    and port, or a Unix socket path, as resolving a name would block).
    Exactly one of them runs, on the reactor thread, and never from inside
    this constructor: a refusal known at once is reported on the next pass.
    :meth:`cancel` stops the attempt and closes the socket without calling
    either.

    :raises InvalidArgumentError: ``timeout`` is not positive.
    """

    def __init__(
        self,
        reactor: Reactor,
        address: Any,
        on_connected: Callable[[socket.socket], object],
        on_failed: Callable[[OSError], object],
        *,
        timeout: float = CONNECT_TIMEOUT,
        family: int | None = None,
    ) -> None:
        if not timeout > 0:
            raise InvalidArgumentError(f"connect timeout must be > 0, got {timeout!r}")
        self.address = address
        self._reactor = reactor
        self._on_connected = on_connected
        self._on_failed = on_failed
        self._sock: socket.socket | None = None
        self._registered = False
        self._timer: TimerHandle | None = None
        self.done = False
        try:
            family, address = _numeric_address(address, family)
            sock = socket.socket(family, socket.SOCK_STREAM)
        except (OSError, TypeError, ValueError, IndexError) as exc:
            reactor.call_soon(self._fail, _as_oserror(exc))
            return
        sock.setblocking(False)
        self._sock = sock
        try:
            err = sock.connect_ex(address)
        except (OSError, TypeError, OverflowError) as exc:  # bad address, name resolution
            reactor.call_soon(self._fail, _as_oserror(exc))
            return
        if err == 0:
            reactor.call_soon(self._connected)
        elif err in _IN_PROGRESS:
            reactor.register(sock, selectors.EVENT_WRITE, self._on_writable)
            self._registered = True
            self._timer = reactor.call_later(timeout, self._timed_out, timeout)
        else:
            reactor.call_soon(self._fail, _errno_error(err, address))

    def _on_writable(self, mask: int) -> None:
        sock = self._sock
        if sock is None:
            return
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._fail(_errno_error(err, self.address))
        else:
            self._connected()

    def _connected(self) -> None:
        sock = self._release()
        if sock is None:
            return
        self.done = True
        try:
            sock.getpeername()  # connect_ex(0) on a socket the peer already reset
        except OSError as exc:
            sock.close()
            self._on_failed(exc)
            return
        self._on_connected(sock)

    def _timed_out(self, timeout: float) -> None:
        self._timer = None
        self._fail(TimeoutError(f"connect to {self.address!r} not done in {timeout} s"))

    def _fail(self, exc: OSError) -> None:
        if self.done:
            return
        sock = self._release()
        if sock is not None:
            sock.close()
        self.done = True
        self._on_failed(exc)

    def _release(self) -> socket.socket | None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sock, self._sock = self._sock, None
        if sock is not None and self._registered:
            self._reactor.unregister(sock)
            self._registered = False
        return sock

    def cancel(self) -> None:
        """Stop the attempt and close its socket; neither callback runs."""
        self.done = True
        sock = self._release()
        if sock is not None:
            sock.close()


def _numeric_address(address: Any, family: int | None) -> tuple[int, Any]:
    """``(family, sockaddr)`` for a numeric ``(host, port)`` or a Unix path.

    Host names are refused (``socket.gaierror``): resolving one would block
    the reactor thread.
    """
    if isinstance(address, (str, bytes)):
        return socket.AF_UNIX, address
    host, port = address[0], address[1]
    infos = socket.getaddrinfo(
        host, port, family or 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
    )
    fam, _, _, _, sockaddr = infos[0]
    return fam, sockaddr


def _errno_error(err: int, address: Any) -> OSError:
    exc = OSError(err, f"{errno.errorcode.get(err, err)} connecting to {address!r}")
    if err == errno.ECONNREFUSED:
        return ConnectionRefusedError(err, f"connection to {address!r} refused")
    return exc


def _as_oserror(exc: BaseException) -> OSError:
    if isinstance(exc, OSError):
        return exc
    return OSError(f"cannot connect: {exc}")


def open_listener(
    reactor: Reactor,
    address: Any,
    on_accept: Callable[[socket.socket, Any], None],
    owner: ErrorSink,
    *,
    backlog: int = 8,
) -> Listener:
    """Bind and listen on ``address`` (``(host, port)``, port 0 for any) and accept on readiness.

    The family follows the host (an IPv6 literal selects AF_INET6).  The
    returned :class:`reactor.Listener` calls ``on_accept(sock, addr)`` on
    the reactor thread; its ``socket.getsockname()`` has the real port.

    :raises OSError: bind or listen failed (the socket is closed again).
    """
    family = socket.AF_INET6 if ":" in str(address[0]) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind(address)
        sock.listen(backlog)
        return Listener(reactor, sock, on_accept, owner, backlog)
    except BaseException:
        sock.close()
        raise
