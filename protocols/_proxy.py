"""A fault proxy: Toxiproxy in-process, on the reactor.

:class:`FaultProxy` listens (TCP, or a Unix socket path) and, for each
client, opens a connection to ``upstream`` (any ``(host, port)`` or Unix
path: a database, a subprocess, another test server) and copies bytes both
ways, unchanged: TLS passes through as opaque records.  Its ``faults`` are
the transport faults of every stream server (see :mod:`reactor._faults`),
applied on the client side: *downstream* is what the upstream sends to the
client, *upstream* is what the client sends to the upstream.

Back-pressure both ways: when one side's unsent bytes pass its transport's
high-water mark (a client that reads slowly, a bandwidth fault, an
upstream that does not read), the proxy stops reading from the other side
until they drop to the low-water mark, so a proxy costs bounded memory
whatever the two ends do.  Half-closes are forwarded (``shutdown(SHUT_WR)``
on the other side); a reset on one side aborts the other.

Reactor thread for everything but the public methods of the server base.
"""

from __future__ import annotations

import ipaddress
import math
import os
import socket
from typing import Any

from reactor import (
    CONNECT_TIMEOUT,
    Connector,
    InvalidArgumentError,
    Reactor,
    StreamServerBase,
    StreamTransport,
)

__all__ = ["FaultProxy"]


class _Side:
    """One side of a proxied pair (client or upstream): a StreamProtocol."""

    def __init__(self, pair: _Pair, name: str) -> None:
        self.pair = pair
        self.name = name
        self.transport: StreamTransport | None = None
        self.eof = False

    @property
    def other(self) -> _Side:
        return self.pair.upstream if self is self.pair.client else self.pair.client

    def connection_made(self, transport: StreamTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        other = self.other.transport
        if other is not None:
            other.write(data)
        else:
            self.pair.early += data  # the upstream is still connecting

    def eof_received(self) -> bool | None:
        self.eof = True
        other = self.other
        if other.transport is not None:
            other.transport.write_eof()
        if other.eof:
            return False  # both directions are done: close (the other side follows)
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        t = self.other.transport
        if t is not None and not t.is_closing():
            if exc is not None:
                t.abort()
            else:
                t.close()
        self.pair.closed(self)

    # A full other side pauses reading on this one (both directions).
    def pause_writing(self) -> None:
        t = self.other.transport
        if t is not None:
            t.pause_reading()

    def resume_writing(self) -> None:
        t = self.other.transport
        if t is not None:
            t.resume_reading()


class _Pair:
    """A client connection and its upstream connection."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.client = _Side(self, "client")
        self.upstream = _Side(self, "upstream")
        self.early = bytearray()
        self.connector: Connector | None = None

    def start(self, reactor: Reactor) -> None:
        t = self.client.transport
        assert t is not None
        t.pause_reading()  # until the upstream connection is there
        self.connector = Connector(
            reactor,
            self.proxy.upstream,
            self._connected,
            self._failed,
            timeout=self.proxy.connect_timeout,
        )

    def _connected(self, sock: socket.socket) -> None:
        self.connector = None
        proxy = self.proxy
        client = self.client.transport
        loop = proxy._loop
        if client is None or client.is_closing() or loop is None:
            sock.close()
            return
        up = StreamTransport(loop, sock, self.upstream, proxy, on_closed=proxy._upstream_closed)
        proxy._upstreams.add(up)
        if self.early:
            up.write(bytes(self.early))
            self.early.clear()
        if self.client.eof:
            up.write_eof()
        client.resume_reading()

    def _failed(self, exc: OSError) -> None:
        self.connector = None
        self.proxy._record(self.proxy.connect_errors, exc)
        t = self.client.transport
        if t is not None:
            t.abort()

    def closed(self, side: _Side) -> None:
        if side is self.client and self.connector is not None:
            self.connector.cancel()
            self.connector = None


def _check_upstream(upstream: Any) -> None:
    """Refuse an upstream the reactor could not connect to without blocking."""
    if isinstance(upstream, (str, bytes)):
        if not upstream:
            raise InvalidArgumentError("upstream Unix socket path is empty")
        return
    if not isinstance(upstream, tuple) or len(upstream) not in (2, 4):
        raise InvalidArgumentError(
            f"upstream must be (host, port) or a Unix socket path, not {upstream!r}"
        )
    host, port = upstream[0], upstream[1]
    if type(port) is not int or not 0 < port < 65536:
        raise InvalidArgumentError(f"upstream port must be an int in 1..65535, not {port!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise InvalidArgumentError(
            f"upstream host must be a numeric IP address, not {host!r} "
            "(resolving a name would block the reactor)"
        ) from None


class FaultProxy(StreamServerBase):
    """A TCP or Unix stream proxy in front of ``upstream``, with transport faults.

    :param upstream: where to connect for each client: ``(host, port)`` with
        a numeric host (resolving a name would block the reactor), or a Unix
        socket path.
    :param addr: where to listen: ``(host, port)`` (default
        ``("127.0.0.1", 0)``) or a filesystem path for a Unix socket.
    :param connect_timeout: seconds an upstream connect may take.  A failed
        connect is recorded in :attr:`connect_errors` and the client's
        connection is closed.
    :raises InvalidArgumentError: ``upstream`` is not a numeric
        ``(host, port)`` or a path, or ``connect_timeout`` is not > 0.

    Use it as a context manager; ``proxy.faults.add(...)`` as on any stream
    server.  Other keywords are :class:`reactor.BaseServer`'s.
    """

    def __init__(
        self,
        upstream: Any,
        addr: Any = None,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        if isinstance(upstream, list):
            upstream = tuple(upstream)
        if isinstance(upstream, os.PathLike):
            upstream = os.fspath(upstream)
        _check_upstream(upstream)
        if type(connect_timeout) not in (int, float) or not 0 < connect_timeout < math.inf:
            raise InvalidArgumentError(
                f"connect_timeout must be a finite number of seconds > 0, not {connect_timeout!r}"
            )
        self.upstream = upstream
        self.connect_timeout = connect_timeout
        #: Upstream connects that failed (``ConnectionRefusedError``...).
        self.connect_errors: list[OSError] = []
        self._upstreams: set[StreamTransport] = set()
        self._pairs: set[_Pair] = set()
        kwargs.setdefault("poll_interval", None)
        super().__init__(addr, **kwargs)

    @property
    def address(self) -> Any:
        """Where clients connect: ``(host, port)`` or the Unix path."""
        return self.server_address

    def make_protocol(self, addr: Any) -> _Side:
        pair = _Pair(self)
        self._pairs.add(pair)
        return _ProxyClient(pair)

    def _upstream_closed(self, transport: StreamTransport) -> None:
        self._upstreams.discard(transport)

    def _detach(self) -> None:
        for pair in list(self._pairs):
            if pair.connector is not None:
                pair.connector.cancel()
                pair.connector = None
        super()._detach()
        for t in list(self._upstreams):
            t.close()
            t.abort()
        self._upstreams.clear()
        self._pairs.clear()

    def _detach_after_death(self) -> None:
        for t in list(self._upstreams):
            try:
                t.socket.close()
            except OSError:
                pass
        self._upstreams.clear()
        self._pairs.clear()
        super()._detach_after_death()


class _ProxyClient(_Side):
    """The client side: starts the upstream connect once accepted."""

    def __init__(self, pair: _Pair) -> None:
        super().__init__(pair, "client")
        pair.client = self

    def connection_made(self, transport: StreamTransport) -> None:
        super().connection_made(transport)
        self.pair.start(transport.reactor)

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.pair.proxy._pairs.discard(self.pair)
