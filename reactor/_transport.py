"""Stream transports and listeners: with :mod:`reactor._datagram` (datagram
sockets), the only code that calls accept, recv, send and close.

Every method here runs on the reactor thread unless its docstring says
otherwise.  A transport talks to a *protocol* object through a handful of
callbacks (the asyncio shape, without asyncio)::

    connection_made(transport)      once, before any data
    data_received(data: bytes)      decrypted application bytes
    eof_received() -> bool | None   peer half-closed; return True to keep writing
    connection_lost(exc)            once, last, on the loop pass after the close
                                    (never inside abort/close/write); exc is
                                    None for a clean close
    pause_writing() / resume_writing()   optional: more than ``high_water``
                                    bytes wait to be sent / back at ``low_water``

Streams coalesce the ``write()`` calls of one reactor pass into one
``send()`` at the end of that pass (with ``TCP_NODELAY`` set, so nothing
waits for Nagle's algorithm), buffer what the socket cannot take, and apply
back-pressure by pausing reads while more than :data:`WRITE_HIGH_WATER`
bytes wait to be sent.  TLS runs over ``ssl.MemoryBIO`` pairs, so a
handshake never blocks the loop, and a connection can be upgraded in place
(STARTTLS) with :meth:`StreamTransport.start_tls`.
"""

from __future__ import annotations

import errno
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from ._errors import InvalidArgumentError, UsageError, WaitTimeout
from ._loop import Reactor, TimerHandle
from ._pacing import PASS_TIME_BUDGET
from ._tls import TLS_HANDSHAKE_TIMEOUT, TLSEvent, TLSFailure, TLSLayer

__all__ = [
    "StreamProtocol",
    "DatagramProtocol",
    "ErrorSink",
    "StreamTransport",
    "Listener",
    "READ_CHUNK",
    "READS_PER_EVENT",
    "DIRECT_SEND_MIN",
    "WRITE_HIGH_WATER",
    "WRITE_LOW_WATER",
    "ACCEPT_RETRY_DELAY",
    "TLS_HANDSHAKE_TIMEOUT",
    "THREAD_WRITE_TIMEOUT",
]

#: Bytes asked of one ``recv()``.  One readable event reads more than one
#: chunk while the kernel holds more, up to :data:`READS_PER_EVENT` and
#: within the per-pass budget (see ``StreamTransport._read_once``), so a bulk
#: upload costs one ``select()`` per burst of chunks, not per chunk.
READ_CHUNK = 256 * 1024

#: ``recv()`` calls one readable event may make (a megabyte at most): a
#: connection whose peer never stops sending then holds the loop for a few
#: reads per pass, not for the whole :data:`PASS_TIME_BUDGET`.  With 64 reads
#: allowed, four clients flooding one server each held every pass for 2 ms
#: and another client's round trips took a median 18-20 ms (G6b: under 10).
READS_PER_EVENT = 4

#: A plain ``write()`` of at least this many bytes with nothing queued before
#: it is sent at once from the caller's buffer instead of being copied into
#: the write buffer for the end-of-pass send: coalescing only pays for small
#: writes (replies written in pieces), and a bulk echo saves a copy and a
#: pass per chunk.
DIRECT_SEND_MIN = 64 * 1024

#: Default high-water mark of a stream transport (its ``high_water``
#: attribute).  Checked on every ``write()``: once more than this many bytes
#: wait to be sent, reading from the connection pauses and the protocol's
#: optional ``pause_writing()`` is called (a client that pipelines requests,
#: or echoes, but never reads replies cannot make the server buffer without
#: bound).
WRITE_HIGH_WATER = 4 * 1024 * 1024

#: Default low-water mark (a transport's ``low_water`` attribute): once the
#: bytes waiting to be sent drop to this many or fewer, reading resumes and
#: the protocol's optional ``resume_writing()`` is called.
WRITE_LOW_WATER = WRITE_HIGH_WATER // 4

#: Longest a :meth:`StreamTransport.write_threadsafe` from another thread
#: waits for room (the connection's backlog above ``high_water``) while not
#: one byte of it goes out before it raises :class:`WaitTimeout` (the peer
#: does not read; a slow reader only makes it wait longer): a thread writing
#: without end to such a peer is stopped and told, it does not pile up
#: gigabytes on the server.
THREAD_WRITE_TIMEOUT = 10.0

#: Creates each transport's condition for writes from other threads (once).
_ROOM_LOCK = threading.Lock()

#: After EMFILE/ENFILE/ENOBUFS/ENOMEM on accept(), the listener stops
#: watching its socket for this long instead of spinning on a socket that
#: stays readable while no descriptor can be had.
ACCEPT_RETRY_DELAY = 0.1

#: accept() errors that mean "no descriptor or memory now": back off.
_ACCEPT_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class ErrorSink(Protocol):
    """Where transports report what goes wrong (a server implements it)."""

    def handle_error(self, exc: BaseException, context: str) -> None: ...

    def handle_tls_error(self, exc: BaseException, peer: object) -> None: ...

    def handle_accept_error(self, exc: OSError) -> None: ...


class StreamProtocol(Protocol):
    def connection_made(self, transport: StreamTransport) -> None: ...

    def data_received(self, data: bytes) -> None: ...

    def eof_received(self) -> bool | None: ...

    def connection_lost(self, exc: BaseException | None) -> None: ...


class DatagramProtocol(Protocol):
    def datagram_received(self, data: bytes, addr: Any) -> None: ...


class StreamTransport:
    """A non-blocking connected stream socket, optionally TLS.

    Write back-pressure: every ``write()`` checks the bytes waiting to be
    sent against ``high_water`` (default :data:`WRITE_HIGH_WATER`); above it
    reading pauses and ``protocol.pause_writing()`` (if defined) is called;
    once the backlog is at or below ``low_water`` (default
    :data:`WRITE_LOW_WATER`) reading resumes and ``resume_writing()`` is
    called.  Both marks may be set per transport.

    Reactor thread only, but for :meth:`write_threadsafe` (any thread; it
    keeps the order of writes made from other threads).  ``protocol``
    callbacks that raise are reported to ``owner.handle_error`` and the
    connection is aborted; the loop and the other connections go on.
    """

    def __init__(
        self,
        reactor: Reactor,
        sock: socket.socket,
        protocol: StreamProtocol,
        owner: ErrorSink,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_side: bool = True,
        on_closed: Callable[[StreamTransport], None] | None = None,
    ) -> None:
        self._reactor = reactor
        self._on_closed = on_closed
        self._sock = sock
        self.protocol = protocol
        self._owner = owner
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        try:
            self.peername: Any = sock.getpeername()
        except OSError:
            self.peername = None
        self.sockname: Any = sock.getsockname()
        self._wbuf = bytearray()
        # write_threadsafe() from other threads: sent, in order, before the
        # next reactor-thread write/close (or by the callback each one queues).
        self._from_threads: deque[bytes] = deque()
        self._taking_from_threads = False
        # Made by the first write_threadsafe() from another thread; guards
        # _from_threads' appends and clears, _queued_bytes and _room_waiters.
        self._room: threading.Condition | None = None
        self._queued_bytes = 0  # the bytes of _from_threads
        self._room_waiters = 0  # threads waiting in write_threadsafe() for room
        self._events = 0
        self._reading = True
        self._paused_for_writes = False
        self._closing = False  # close() called: flush, then close (also set once closed)
        self._closed = False  # socket closed, connection_lost queued
        self._eof = False
        self._write_eof_pending = False
        self._flush_scheduled = False
        self.high_water = WRITE_HIGH_WATER
        self.low_water = WRITE_LOW_WATER
        self.last_activity = time.monotonic()
        self.extra: dict[str, Any] = {}
        self._tls: TLSLayer | None = None
        self._tls_done_cb: Callable[[], None] | None = None  # start_tls(on_done=)
        self._unwrap_done_cb: Callable[[], None] | None = None  # stop_tls(on_done=)
        # Direct sends (DIRECT_SEND_MIN) only from the first I/O event on:
        # fault hooks attach once connection_made (which may write) returned.
        self._direct_ok = False
        self._faults: Any = None  # a reactor._faults.ConnectionFaults while faults apply
        self._update_events()
        if ssl_context is not None:
            self._begin_tls(ssl_context, server_side)
        self._call(self.protocol.connection_made, self)

    # -- public API ---------------------------------------------------------

    @property
    def socket(self) -> socket.socket:
        return self._sock

    @property
    def reactor(self) -> Reactor:
        """The reactor this transport runs on (any thread may read it)."""
        return self._reactor

    @property
    def is_tls(self) -> bool:
        return self._tls is not None and not self._tls.handshaking

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        return None if self._tls is None else self._tls.sslobj

    def is_closing(self) -> bool:
        return self._closing

    def get_write_buffer_size(self) -> int:
        """Bytes waiting to be sent (and TLS-held plaintext); any thread may read it."""
        tls = self._tls  # read once: another thread may see it change
        return len(self._wbuf) + (0 if tls is None else tls.pending_plain_size)

    def set_write_buffer_limits(
        self, high: int | None = None, low: int | None = None, *, kernel: int | None = None
    ) -> None:
        """Set this transport's back-pressure marks, and optionally the kernel's share.

        ``high``/``low`` replace :attr:`high_water`/:attr:`low_water` (``low``
        defaults to a quarter of ``high``).  ``kernel`` sets the socket's send
        buffer (``SO_SNDBUF``), which otherwise grows to megabytes on its own:
        a protocol with small replies (SMTP) uses it so that a peer that
        never reads is stopped after kilobytes of replies, not megabytes.

        :raises InvalidArgumentError: ``low`` above ``high``, or a negative size.
        """
        high = self.high_water if high is None else high
        low = high // 4 if low is None else low
        if not 0 <= low <= high:
            raise InvalidArgumentError(f"need 0 <= low <= high, got low={low} high={high}")
        self.high_water, self.low_water = high, low
        if kernel is not None:
            if kernel <= 0:
                raise InvalidArgumentError(f"kernel send buffer must be > 0, got {kernel}")
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, kernel)
            except OSError:
                pass  # a socket that refuses keeps the kernel's default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data``; it is sent in order, in as few sends as possible.

        Writes made during one reactor pass are coalesced: the buffer is
        sent by one ``send()`` at the end of the pass (a reply written in
        pieces still leaves in one segment, and pipelined replies share one).
        """
        if self._closing or not data:
            return
        if self._from_threads:  # written before, from another thread: first
            self._take_from_threads()
            if self._closing:
                return
        if self._tls is not None:
            out = self._tls.write(bytes(data))  # held while handshaking
            if self._tls.handshaking:
                return
            self._wbuf += out
        elif (
            len(data) >= DIRECT_SEND_MIN
            and not self._wbuf
            and self._faults is None
            and not self._flush_scheduled
            and self._direct_ok
        ):
            # A large write with nothing queued before it: send it now, from
            # the caller's buffer (no copy into the write buffer, no pass
            # delay); only what the socket does not take is queued.
            sent = self._send_direct(data)
            if sent < 0 or sent == len(data):
                return
            self._wbuf += memoryview(data)[sent:]
        else:
            self._wbuf += data
        if not self._flush_scheduled and not self._events & selectors.EVENT_WRITE:
            self._flush_scheduled = True
            self._reactor.call_soon(self._scheduled_flush)
        if not self._paused_for_writes and (
            len(self._wbuf) if self._tls is None else self.get_write_buffer_size()
        ) > self.high_water:
            self._update_back_pressure()  # enforced on every write, not only on a flush
            self._update_events()

    def write_now(self, data: bytes) -> None:
        """``write(data)``, but sent at once when nothing is waiting before it.

        For a protocol that writes everything one read produced in one call
        (the HTTP server's keep-alive fast path): with nothing queued, no
        flush scheduled, plain TCP, no fault hooks and no back-pressure, the
        bytes go out now instead of at the end of the pass, which saves the
        scheduled flush.  Anything else, and whatever the socket does not
        take, goes through :meth:`write` (same order, same back-pressure).
        """
        if (
            self._wbuf
            or self._flush_scheduled
            or self._closing
            or self._tls is not None
            or self._faults is not None
            or self._paused_for_writes
            or not self._direct_ok
            or not data
            or self._from_threads
        ):
            self.write(data)
            return
        sent = self._send_direct(data)
        if 0 <= sent < len(data):
            self.write(memoryview(data)[sent:])

    def _send_direct(self, data: bytes | bytearray | memoryview) -> int:
        """One ``send()`` of ``data`` from the caller's buffer, now.

        Returns the bytes the socket took (0 when it is full), or -1 when
        the connection broke (EPIPE, ECONNRESET): it is then closed, and the
        caller must drop the rest.  For :meth:`write` and :meth:`write_now`,
        only with nothing queued before ``data``.
        """
        try:
            return self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:  # EPIPE, ECONNRESET
            self._force_close(exc)
            return -1

    def write_threadsafe(self, data: bytes) -> None:
        """:meth:`write` from any thread.

        On the reactor thread this is ``write(data)``.  From another thread
        ``data`` is queued on this connection and a callback that writes it
        is handed to the reactor (:meth:`Reactor.call_soon_threadsafe`); a
        reactor-thread :meth:`write`, :meth:`write_now`, :meth:`write_eof`,
        :meth:`close`, :meth:`start_tls` or :meth:`stop_tls` that runs before
        that callback writes the queue first.  So bytes written from another
        thread are never overtaken by what the reactor writes after them (a
        callback that learned of the write, a reply to what the peer sent
        next), nor dropped by a ``close()`` made after them; writes from
        other threads keep their order among themselves.  ``data`` must not
        change after the call (pass ``bytes``).  Dropped once the transport
        is closing, as :meth:`write` drops it.

        Back-pressure for the writing thread: while more than ``high_water``
        bytes wait to be sent (written, or queued by other threads), a call
        from another thread waits for the peer to read them, as a blocking
        socket's ``sendall()`` would, so a thread writing to a peer that
        never reads holds the server's memory to about ``high_water`` plus
        one write instead of piling up everything it writes.

        :raises WaitTimeout: (other threads) no room, and not one byte sent,
            for :data:`THREAD_WRITE_TIMEOUT` seconds; ``data`` was not queued.
        :raises ReactorDied: (other threads) the loop thread has died.
        :raises ReactorExited: (other threads) it has exited normally.
        """
        reactor = self._reactor
        if reactor.in_reactor_thread():
            self.write(data)
            return
        if self._closing or not data:
            return
        room = self._room
        if room is None:
            with _ROOM_LOCK:
                room = self._room
                if room is None:
                    room = self._room = threading.Condition(threading.Lock())
        with room:
            if self._queued_bytes + self.get_write_buffer_size() > self.high_water:
                self._wait_for_room(room)
            if self._closing:  # under the lock: _force_close() clears the queue under it
                return
            self._from_threads.append(data)  # before the hand-off: its callback finds it
            self._queued_bytes += len(data)
        reactor.call_soon_threadsafe(self._take_from_threads)

    def _wait_for_room(self, room: threading.Condition) -> None:
        """Wait, holding ``room``, until the backlog is at most ``high_water`` (other threads).

        Also returns once the connection is closing.  The reactor notifies
        when it takes the queue, when writing resumes (``low_water``) and
        when the connection closes; the wait also re-checks every 0.1 s.

        :raises WaitTimeout: no byte went out for :data:`THREAD_WRITE_TIMEOUT` seconds.
        :raises ReactorDied: the loop thread has died.
        :raises ReactorExited: it has exited normally.
        """
        reactor = self._reactor
        deadline = time.monotonic() + THREAD_WRITE_TIMEOUT
        lowest = self._queued_bytes + self.get_write_buffer_size()
        self._room_waiters += 1
        try:
            while not self._closing:
                backlog = self._queued_bytes + self.get_write_buffer_size()
                if backlog <= self.high_water:
                    return
                now = time.monotonic()
                if backlog < lowest:  # the peer reads, however slowly: wait on
                    lowest, deadline = backlog, now + THREAD_WRITE_TIMEOUT
                if reactor.dead or reactor._closed:
                    raise reactor._died_error()
                if now >= deadline:
                    raise WaitTimeout(
                        f"write to {self.peername!r} from another thread: more than"
                        f" {self.high_water} bytes waited to be sent and none went out"
                        f" for {THREAD_WRITE_TIMEOUT} s (the peer does not read)"
                    )
                room.wait(min(deadline - now, 0.1))
        finally:
            self._room_waiters -= 1

    def _wake_writers(self) -> None:
        """Wake the threads waiting in :meth:`write_threadsafe` (reactor thread)."""
        room = self._room
        if room is not None and self._room_waiters:
            with room:
                room.notify_all()

    def _take_from_threads(self) -> None:
        """Write what :meth:`write_threadsafe` queued, in order (reactor thread)."""
        if self._taking_from_threads:  # write() below, or a callback under it
            return
        queue = self._from_threads
        room = self._room
        self._taking_from_threads = True
        try:
            while queue:
                data = queue.popleft()
                self.write(data)  # counted in _wbuf now (or dropped: closing)
                if room is not None:
                    with room:
                        self._queued_bytes = max(0, self._queued_bytes - len(data))
        finally:
            self._taking_from_threads = False
        self._wake_writers()

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def write_eof(self) -> None:
        """Half-close: shut down the write side once the buffer is sent."""
        if self._from_threads:
            self._take_from_threads()
        self._write_eof_pending = True
        self._flush()

    def close(self) -> None:
        """Close after the write buffer is flushed; reads stop at once."""
        if self._closing:
            return
        if self._from_threads:  # written before the close: sent before it
            self._take_from_threads()
            if self._closing:
                return
        self._closing = True
        self._reading = False
        self._wake_writers()
        if self._tls is not None:
            self._tls.unwrap()  # queues close_notify once the handshake is done
            self._wbuf += self._tls.take_output()
        self._flush()
        self._update_events()

    def abort(self, exc: BaseException | None = None) -> None:
        """Close now, dropping anything unsent."""
        self._force_close(exc)

    def pause_reading(self) -> None:
        self._reading = False
        self._update_events()

    def resume_reading(self) -> None:
        if not self._closing:
            self._reading = True
            self._update_events()

    def start_tls(
        self,
        context: ssl.SSLContext,
        *,
        server_side: bool = True,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        """Upgrade this plaintext connection to TLS in place (STARTTLS).

        Bytes already written (the "220 ready" reply) go out in plaintext
        first; everything after is TLS.  Plaintext the peer sent before its
        handshake is the protocol's to discard (RFC 3207 §4.2).  ``on_done``
        runs once the handshake has completed.
        """
        if self._tls is not None:
            raise UsageError("connection is already TLS")
        if self._from_threads:  # written before: plaintext, as documented
            self._take_from_threads()
            if self._closed:
                return
        self._tls_done_cb = on_done
        self._begin_tls(context, server_side)
        self._flush()

    def stop_tls(self, *, on_done: Callable[[], None] | None = None) -> None:
        """End TLS but keep the connection, going back to plaintext (FTP's CCC).

        Bytes already written go out encrypted, then close_notify; bytes
        written after this call are held and sent in the clear once the
        peer's close_notify has arrived, and ``on_done`` then runs.  What the
        peer sends after its close_notify is delivered as plaintext.

        :raises UsageError: the connection is not TLS, or its handshake is
            not done yet.
        """
        tls = self._tls
        if tls is None or tls.handshaking or tls.unwrapping:
            raise UsageError("stop_tls() needs an established TLS session")
        if self._from_threads:  # written before: still encrypted
            self._take_from_threads()
            if self._closed:
                return
        self._unwrap_done_cb = on_done
        tls.begin_unwrap()
        self._wbuf += tls.take_output()
        self._flush()

    def drain_now(self) -> None:
        """Read and deliver everything the kernel holds for this connection.

        Used by ``stop()`` so that bytes which reached the server before the
        stop are handled, not lost.  Bounded: it stops at EAGAIN.
        """
        for _ in range(4096):
            if self._closing or self._eof:
                return
            if not self._read_once():
                return

    # -- I/O callbacks ------------------------------------------------------

    def _on_events(self, mask: int) -> None:
        self._direct_ok = True
        if mask & selectors.EVENT_WRITE:
            self._flush()
        if mask & selectors.EVENT_READ and self._reading:  # False once closed
            self._read_once(READS_PER_EVENT)

    def _read_once(self, limit: int = 1) -> bool:
        """Read what one readable event offers; True if the last recv() delivered bytes.

        Up to ``limit`` ``recv()`` calls of :data:`READ_CHUNK` bytes
        (:data:`READS_PER_EVENT` for a readable event), each delivered before
        the next, so a burst larger than one chunk costs one ``select()`` and
        not one per chunk.  It stops at the first short read (the kernel held
        no more: a ``recv()`` would only raise EAGAIN), at EOF, once reading
        is off (paused by the protocol or by write back-pressure, closed),
        after ``limit`` reads, and once the per-pass time budget
        (:data:`PASS_TIME_BUDGET`) is spent, so that one flooding connection
        leaves the other sockets their turn; the selector reports what is
        left on the next pass.  With fault hooks, one ``recv()`` per call.
        """
        sock = self._sock
        deadline = 0.0
        while True:
            try:
                data = sock.recv(READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as exc:  # ECONNRESET, ETIMEDOUT...: the peer broke it
                self._force_close(exc)
                return False
            now = self.last_activity = time.monotonic()
            if self._faults is not None:  # injected faults deliver it (now or later)
                return bool(self._faults.received(data))
            if not data:
                self._on_eof()
                return False
            if self._tls is not None:
                self._tls_feed(data)
            else:
                try:  # self._call(self.protocol.data_received, data), inlined: the hot path
                    self.protocol.data_received(data)
                except Exception as exc:
                    self._owner.handle_error(exc, f"connection from {self.peername!r}")
                    self._force_close(exc)
                    return True
            limit -= 1
            if limit <= 0 or len(data) < READ_CHUNK or not self._events & selectors.EVENT_READ:
                return True
            if not deadline:
                deadline = now + PASS_TIME_BUDGET
            elif now > deadline:
                return True

    def _on_eof(self) -> None:
        self._eof = True
        self._reading = False
        if self._tls is not None and self._tls.handshaking:
            self._force_close(None)
            return
        keep_open = self._call(self.protocol.eof_received)
        if keep_open:  # (if it aborted, both branches below are no-ops)
            self._update_events()
        else:
            self.close()

    def _flush(self) -> None:
        if self._closed:
            return
        if self._faults is not None:  # injected faults send it (now or later)
            self._faults.flush()
            return
        buf = self._wbuf
        while buf:
            try:
                sent = self._sock.send(buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # EPIPE, ECONNRESET
                self._force_close(exc)
                return
            del buf[:sent]
        if not buf:
            if self._closing:
                self._force_close(None)
                return
            if self._write_eof_pending:
                self._write_eof_pending = False
                try:
                    self._sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            elif (
                self._events == selectors.EVENT_READ
                and self._reading
                and not self._eof
                and not self._paused_for_writes
                and self._tls is None
            ):
                # The common case: all sent, still reading: nothing changes.
                # (No fault hooks here: with hooks _flush returned above.)
                return
        self._update_back_pressure()
        self._update_events()

    def _update_back_pressure(self) -> None:
        size = self.get_write_buffer_size()
        if not self._paused_for_writes and size > self.high_water:
            self._paused_for_writes = True
            hook = getattr(self.protocol, "pause_writing", None)
        elif self._paused_for_writes and size <= self.low_water:
            self._paused_for_writes = False
            self._wake_writers()
            hook = getattr(self.protocol, "resume_writing", None)
        else:
            return
        if hook is not None:  # optional protocol callbacks, as in asyncio
            self._call(hook)

    def _update_events(self) -> None:
        if self._closed:
            return
        events = 0
        # Write back-pressure never stops a TLS handshake or a stop_tls():
        # the plaintext held meanwhile (counted in the backlog) can only be
        # sent once the handshake completes or the peer's close_notify is in.
        tls = self._tls
        if (
            self._reading
            and not self._eof
            and (
                not self._paused_for_writes
                or (tls is not None and (tls.handshaking or tls.unwrapping))
            )
        ):
            events |= selectors.EVENT_READ
        if self._wbuf:
            events |= selectors.EVENT_WRITE
        if self._faults is not None:  # no interest in what faults hold back
            events = self._faults.filter_events(events)
        if events != self._events:
            if self._events == 0:
                self._reactor.register(self._sock, events, self._on_events)
            else:
                self._reactor.modify(self._sock, events, self._on_events)
            self._events = events

    def _force_close(self, exc: BaseException | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing = True
        self._reading = False
        if self._faults is not None:  # no fault timer outlives the connection
            self._faults.closed()
        if self._tls is not None:
            self._tls.close()
        if self._events:
            self._reactor.unregister(self._sock)
            self._events = 0
        self._sock.close()
        self._wbuf.clear()
        room = self._room
        if room is None:
            self._from_threads.clear()
        else:  # a thread appending now sees _closing under the lock
            with room:
                self._from_threads.clear()
                self._queued_bytes = 0
                room.notify_all()
        # The protocol hears of it on the next pass, never from inside the
        # transport call (abort, close, write...) that closed the connection.
        self._reactor.call_soon(self._connection_lost, exc)

    def _connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._call(self.protocol.connection_lost, exc)
        finally:
            # Server bookkeeping last: once a connection no longer counts
            # (connection_count, wait_for), its connection_lost has run.
            if self._on_closed is not None:
                self._on_closed(self)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            self._owner.handle_error(exc, f"connection from {self.peername!r}")
            self._force_close(exc)
            return None

    # -- driving the TLS layer ------------------------------------------------

    def _begin_tls(self, context: ssl.SSLContext, server_side: bool) -> None:
        self._tls = TLSLayer(
            self._reactor,
            context,
            server_side=server_side,
            on_timeout=self._tls_timed_out,
            # The server's tls_handshake_timeout (None: the module default).
            timeout=getattr(self._owner, "tls_handshake_timeout", None),
        )
        if not server_side:
            self._tls_feed(b"")  # the client speaks first

    def _tls_timed_out(self) -> None:
        # Never after _force_close: that cancels the layer's timer.
        assert self._tls is not None
        self._owner.handle_tls_error(
            TimeoutError(f"TLS handshake not done in {self._tls.timeout} s"), self.peername
        )
        self._force_close(None)

    def _tls_feed(self, data: bytes) -> None:
        tls = self._tls
        assert tls is not None
        for item in tls.feed(data):
            if self._closed:
                return
            if isinstance(item, bytes):
                self._call(self.protocol.data_received, item)
            elif item is TLSEvent.HANDSHAKE_DONE:
                self._wbuf += tls.take_output()  # handshake tail, then held plaintext
                self._flush()
                done, self._tls_done_cb = self._tls_done_cb, None
                if done is not None:
                    self._call(done)
            elif item is TLSEvent.UNWRAPPED:  # stop_tls() completed: plaintext from here
                self._wbuf += tls.take_output()
                tls.close()
                self._tls = None
                self._wbuf += tls.take_held()
                self._flush()
                done, self._unwrap_done_cb = self._unwrap_done_cb, None
                if done is not None:
                    self._call(done)
            elif item is TLSEvent.CLOSE_NOTIFY:
                self._wbuf += tls.take_output()
                self._on_eof()
                return
            elif isinstance(item, TLSFailure):
                self._owner.handle_tls_error(item.exc, self.peername)
                if item.in_handshake:
                    self._wbuf += tls.take_output()
                    self._flush()  # send the alert if the socket takes it now
                    self._force_close(None)
                else:
                    self._force_close(item.exc)
                return
        if not self._closed:
            self._wbuf += tls.take_output()  # handshake records, session tickets
            self._flush()


class Listener:
    """A listening socket that accepts on readiness and hands connections on.

    ``on_accept(sock, addr)`` runs on the reactor thread for each accepted
    connection.  Resource exhaustion on accept() (EMFILE and friends) makes
    the listener stop watching its socket for :data:`ACCEPT_RETRY_DELAY`
    seconds instead of spinning.
    """

    def __init__(
        self,
        reactor: Reactor,
        sock: socket.socket,
        on_accept: Callable[[socket.socket, Any], None],
        owner: ErrorSink,
        backlog: int,
    ) -> None:
        self._reactor = reactor
        self._sock = sock
        self._on_accept = on_accept
        self._owner = owner
        self._backlog = max(1, backlog)
        self._retry: TimerHandle | None = None
        self._starved = False  # in an EMFILE episode (reported already)
        self._registered = False
        self._closed = False
        #: The bound address (``getsockname()``): the real port after port 0.
        self.sockname: Any = sock.getsockname()
        sock.setblocking(False)
        self._watch()

    def _watch(self) -> None:
        self._retry = None
        if not self._closed and not self._registered:
            self._reactor.register(self._sock, selectors.EVENT_READ, self._on_readable)
            self._registered = True

    def _on_readable(self, mask: int) -> None:
        self.accept_pending(self._backlog)

    def accept_pending(self, limit: int) -> None:
        """Accept up to ``limit`` waiting connections (stops at EAGAIN)."""
        for _ in range(limit):
            if self._closed:
                return
            try:
                conn, addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the peer gave up while queued: next one
            except OSError as exc:
                if exc.errno in _ACCEPT_RESOURCE_ERRNOS:
                    if not self._starved:  # report once per episode
                        self._starved = True
                        self._owner.handle_accept_error(exc)
                    if self._registered:
                        self._reactor.unregister(self._sock)
                        self._registered = False
                    self._retry = self._reactor.call_later(ACCEPT_RETRY_DELAY, self._watch)
                    return
                raise
            self._starved = False
            try:
                self._on_accept(conn, addr)
            except Exception as exc:
                conn.close()
                self._owner.handle_error(exc, f"setting up connection from {addr!r}")

    def close(self) -> None:
        """Stop accepting and close the socket (reactor thread only)."""
        if self._closed:
            return
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
        if self._registered:
            self._reactor.unregister(self._sock)
            self._registered = False
        self._sock.close()
