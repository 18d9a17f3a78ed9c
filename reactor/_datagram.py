"""The datagram transport: reads every datagram, holds replies per peer.

Theory of operation.  Reading never waits for writing: every readable event
delivers up to :data:`_DATAGRAMS_PER_PASS` datagrams, whatever replies are
held.  A reply that ``sendto()`` refuses (EAGAIN) is held *for its peer*: a
later reply to that peer joins the end of the peer's queue (replies to one
peer keep their order), and a reply to any other peer is still sent at once,
so a peer that never reads holds up nobody else.

Held replies are retried on a timer, not when the socket turns writable.  For
a Unix datagram socket, EAGAIN means that the *peer's* receive queue is full
(``net.unix.max_dgram_qlen`` datagrams, 10 by default on Linux), and the
server socket's writability does not show it: ``select()`` reports the socket
writable all along.  Watching ``EVENT_WRITE`` for held replies (what the
transport did before) made every pass find the socket writable, fail the
send, and stop there without reading: the loop spun (tens of thousands of
passes a second) and no other client was read or answered.  The retry waits
:data:`HOLD_RETRY_MIN`, doubling up to :data:`HOLD_RETRY_MAX` while no held
reply goes out, and starts again from the minimum once one does.

A held reply the socket refuses for good is reported: one too big
(EMSGSIZE) is dropped alone, as it is when sent at once, and the peer's next
replies still go; any other error means the peer is gone (ECONNREFUSED,
ENOENT), and every reply held for it is dropped with it.

Reactor thread only, like every transport.
"""

from __future__ import annotations

import errno
import selectors
import socket
from collections import deque
from typing import Any

from ._loop import Reactor, TimerHandle
from ._transport import DatagramProtocol, ErrorSink

__all__ = ["DatagramTransport", "HOLD_RETRY_MIN", "HOLD_RETRY_MAX"]

#: Datagrams read per readable event before giving other sockets a turn.
_DATAGRAMS_PER_PASS = 256

#: First retry of held replies, seconds after a send was refused.
HOLD_RETRY_MIN = 0.001

#: Longest wait between retries of held replies (a peer that reads again is
#: answered within this).
HOLD_RETRY_MAX = 0.05


class DatagramTransport:
    """A bound datagram socket: reads every datagram, holds refused replies.

    ``protocol.datagram_received(data, addr)`` runs on the reactor thread for
    each datagram, in arrival order.  Replies that the socket cannot take for
    a peer right now are held, per peer and in order, at most
    :attr:`max_queued` in all (more are dropped), and retried on a timer (see
    the module docstring).  Errors go to ``owner.handle_error``.
    """

    max_queued = 4096

    def __init__(
        self, reactor: Reactor, sock: socket.socket, protocol: DatagramProtocol, owner: ErrorSink
    ) -> None:
        self._reactor = reactor
        self._sock = sock
        self.protocol = protocol
        self._owner = owner
        #: Replies held per peer (insertion order: the order peers were refused).
        self._held: dict[Any, deque[bytes]] = {}
        self._held_count = 0
        self._retry: TimerHandle | None = None
        self._retry_delay = HOLD_RETRY_MIN
        self._closed = False
        sock.setblocking(False)
        # Read events only, ever: held replies are retried on a timer.
        reactor.register(sock, selectors.EVENT_READ, self._on_events)

    @property
    def socket(self) -> socket.socket:
        return self._sock

    @property
    def held(self) -> int:
        """Replies held now, for peers that could not take them."""
        return self._held_count

    def sendto(self, data: bytes, addr: Any) -> None:
        """Send a datagram now, or hold it if the socket refuses it for ``addr``."""
        if self._closed:
            return
        if addr not in self._held:
            try:
                self._send(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                self._owner.handle_error(exc, f"sending a reply to {addr!r}")
                return
        if self._held_count >= self.max_queued:
            return
        self._held.setdefault(addr, deque()).append(data)
        self._held_count += 1
        if self._retry is None:
            self._retry = self._reactor.call_later(self._retry_delay, self._retry_held)

    def _send(self, data: bytes, addr: Any) -> None:
        if addr is None or addr == "":  # unnamed Unix datagram peer: no reply possible
            return
        self._sock.sendto(data, addr)

    def flush_queue(self) -> int:
        """Send held replies now, as far as the socket takes them; returns how many."""
        sent = 0
        for addr in list(self._held):
            queue = self._held[addr]
            while queue:
                try:
                    self._send(queue[0], addr)
                except (BlockingIOError, InterruptedError):
                    break  # this peer is still full; the next may not be
                except OSError as exc:
                    self._owner.handle_error(exc, f"sending a reply to {addr!r}")
                    if exc.errno == errno.EMSGSIZE:  # this reply, not the peer: the next go on
                        queue.popleft()
                        self._held_count -= 1
                        continue
                    # The peer is gone: its held replies go too.
                    self._held_count -= len(queue)
                    queue.clear()
                    break
                queue.popleft()
                self._held_count -= 1
                sent += 1
            if not queue:
                del self._held[addr]
        return sent

    def _retry_held(self) -> None:
        self._retry = None
        if self._closed:
            return
        if self.flush_queue():
            self._retry_delay = HOLD_RETRY_MIN
        else:
            self._retry_delay = min(self._retry_delay * 2, HOLD_RETRY_MAX)
        if self._held:
            self._retry = self._reactor.call_later(self._retry_delay, self._retry_held)

    def _on_events(self, mask: int) -> None:
        self.read_pending(_DATAGRAMS_PER_PASS)

    def read_pending(self, limit: int) -> int:
        """Deliver up to ``limit`` waiting datagrams; returns how many."""
        n = 0
        while n < limit and not self._closed:
            try:
                data, addr = self._sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionRefusedError:
                continue  # ICMP port unreachable from an earlier reply
            except OSError as exc:
                self._owner.handle_error(exc, "recvfrom()")
                break
            n += 1
            try:
                self.protocol.datagram_received(data, addr)
            except Exception as exc:
                self._owner.handle_error(exc, f"datagram from {addr!r}")
        return n

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._held.clear()
        self._held_count = 0
        self._reactor.unregister(self._sock)
        self._sock.close()
