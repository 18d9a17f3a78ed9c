"""UDP and Unix datagram servers.

Each datagram is handled on the reactor thread, in arrival order.  With a
``handler``, it is called as ``handler(request)`` with socketserver's
``DatagramRequestHandler`` attributes; whatever it writes to
``request.wfile`` is sent back to the sender as one datagram.  With
``record=True`` (the default of the native classes) every datagram is also
kept in :attr:`DatagramServer.datagrams` for :meth:`wait_for_datagrams`.
"""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from reactor import DEFAULT_WAIT_TIMEOUT, DatagramServerBase, UsageError

from . import _match

__all__ = [
    "Datagram",
    "DatagramRequest",
    "DatagramServer",
    "UDPServer",
    "UnixDatagramServer",
    "TestUDPServer",
    "TestUnixDatagramServer",
]


@dataclass(frozen=True, slots=True)
class Datagram:
    """One received datagram."""

    data: bytes
    peer: Any
    received_at: float = field(default_factory=time.monotonic, compare=False)


class DatagramRequest:
    """What a datagram ``handler`` receives (socketserver's attributes)."""

    __slots__ = ("packet", "socket", "client_address", "server", "_rfile", "_wfile")

    def __init__(self, packet: bytes, sock: socket.socket, client_address: Any, server: Any):
        self.packet = packet
        #: The server's socket (socketserver passes it too).
        self.socket = sock
        self.client_address = client_address
        self.server = server
        self._rfile: io.BytesIO | None = None
        self._wfile: io.BytesIO | None = None

    @property
    def rfile(self) -> io.BytesIO:
        """The datagram as a file (made on first use)."""
        if self._rfile is None:
            self._rfile = io.BytesIO(self.packet)
        return self._rfile

    @property
    def wfile(self) -> io.BytesIO:
        """What the handler writes here is sent back as one datagram."""
        if self._wfile is None:
            self._wfile = io.BytesIO()
        return self._wfile

    def _reply(self) -> bytes:
        return self._wfile.getvalue() if self._wfile is not None else b""


class DatagramServer(DatagramServerBase):
    """A datagram server on the shared reactor.

    :param handler: ``handler(request)`` per datagram, on the reactor thread
        (it must not block).  Replies written to ``request.wfile`` are sent
        back.
    :param reply: alternatively ``reply(data, peer) -> bytes | None``; the
        bytes returned are sent back.
    :param record: keep every datagram in :attr:`datagrams`.

    Other keywords are :class:`reactor.BaseServer`'s.
    """

    def __init__(
        self,
        addr: Any = None,
        handler: Callable[[DatagramRequest], object] | None = None,
        *,
        reply: Callable[[bytes, Any], bytes | None] | None = None,
        record: bool = True,
        **kwargs: Any,
    ) -> None:
        self.handler = handler
        self.reply = reply
        self.record = record
        #: Received datagrams, in arrival order (when ``record``).
        self.datagrams: list[Datagram] = []
        #: Count of datagrams received, recorded or not.
        self.received_count = 0
        self._fault_set: Any = None  # made by the ``faults`` property on first use
        super().__init__(addr, **kwargs)

    @property
    def faults(self) -> Any:
        """Datagram faults of this server (a ``DatagramFaults``; made on first use)."""
        if self._fault_set is None:
            from ._datagram_faults import DatagramFaults

            self._fault_set = DatagramFaults(
                self, {"upstream": self._handle_datagram, "downstream": super().sendto}
            )
        return self._fault_set

    def sendto(self, data: bytes, addr: Any) -> None:
        """Send a datagram from the server socket, through the downstream faults."""
        if self._fault_set is not None and self._fault_set.active("downstream"):
            self._fault_set.handle("downstream", data, addr)
        else:
            super().sendto(data, addr)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self._fault_set is not None and self._fault_set.active("upstream"):
            self._fault_set.handle("upstream", data, addr)
        else:
            self._handle_datagram(data, addr)

    def _handle_datagram(self, data: bytes, addr: Any) -> None:
        self.received_count += 1
        if self.record:
            self._record(self.datagrams, Datagram(data, addr))
        try:
            if self.handler is not None:
                assert self.socket is not None
                request = DatagramRequest(data, self.socket, addr, self)
                self.handler(request)
                out = request._reply()
                if out:
                    self.sendto(out, addr)
            if self.reply is not None:
                answer = self.reply(data, addr)
                if answer:
                    self.sendto(answer, addr)
        except Exception as exc:
            self.handle_error(exc, f"datagram from {addr!r}")
        if self.record:
            self._notify()

    def wait_for_datagrams(
        self, count: int = 1, timeout: float | None = DEFAULT_WAIT_TIMEOUT, **matchers: Any
    ) -> list[Datagram]:
        """Wait until ``count`` datagrams (matching ``data=``/``peer=``/``predicate=``,
        if given) were recorded; return the first ``count``.

        :raises TimeoutError: naming what arrived, and the nearest miss.
        """
        if not self.record:
            raise UsageError("this server was created with record=False")
        return _match.wait_matching(
            self,
            lambda: self.datagrams,
            count,
            timeout,
            "datagram(s)",
            _match.datagram_criteria(**matchers),
            _match.describe_datagram,
        )

    def find_datagrams(self, **matchers: Any) -> list[Datagram]:
        """Recorded datagrams matching ``data=``/``peer=``/``predicate=`` (a snapshot)."""
        return _match.datagram_criteria(**matchers).select(self.datagrams)


class UDPServer(DatagramServer):
    """A UDP server (IPv4; an IPv6 literal host selects IPv6)."""


class UnixDatagramServer(DatagramServer):
    """A Unix datagram server; ``addr`` is a path (default: a temporary one)."""

    address_family: ClassVar[int] = socket.AF_UNIX


class TestUDPServer(DatagramServer):
    """Drop-in for test_logging's ``TestUDPServer``."""

    __test__ = False

    def __init__(
        self,
        addr: Any,
        handler: Callable[[DatagramRequest], object],
        poll_interval: float = 0.5,
        bind_and_activate: bool = True,
    ) -> None:
        super().__init__(
            addr,
            handler,
            record=False,
            poll_interval=poll_interval,
            bind_and_activate=bind_and_activate,
        )


class TestUnixDatagramServer(TestUDPServer):
    """Drop-in for test_logging's ``TestUnixDatagramServer``."""

    __test__ = False
    address_family: ClassVar[int] = socket.AF_UNIX
