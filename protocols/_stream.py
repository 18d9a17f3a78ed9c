"""TCP and Unix stream servers.

Two ways to handle a connection:

* **Blocking handler** (``handler=``): socketserver's shape, what CPython's
  test_logging uses.  ``handler(request)`` runs on a worker thread per
  connection and may make blocking ``recv()`` calls on
  ``request.connection`` or read ``request.rfile`` and write
  ``request.wfile``.  With ``ssl_context=`` the TLS handshake completes
  before the handler runs, and the handler reads and writes plaintext.
  ``stop()`` shuts the socket down for reading (so a handler blocked in
  ``recv()`` sees end of file after what was already received) and joins
  the worker.  The workers are :class:`reactor.ThreadedStreamServerBase`'s.
* **Reactor-native callbacks** (``on_data=``, ``on_line=``, ``on_connect=``,
  ``on_close=``): called on the reactor thread, no thread per connection;
  reply with ``conn.write()`` and hang up with ``conn.close()``.  Use them
  for many connections or when the test only needs to see bytes.

Without a blocking handler, every connection is recorded as a
:class:`Stream` (peer and every byte received) in :attr:`StreamServer.streams`,
and tests wait with :meth:`StreamServer.wait_for_streams` or
:meth:`StreamServer.wait_for_data`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from reactor import (
    DEFAULT_WAIT_TIMEOUT,
    PassBudget,
    PeerError,
    StreamRequest,
    StreamTransport,
    ThreadedStreamServerBase,
)

from . import _match

__all__ = [
    "Stream",
    "StreamConnection",
    "StreamRequest",
    "StreamServer",
    "TCPServer",
    "UnixStreamServer",
    "TestTCPServer",
    "TestUnixStreamServer",
    "MAX_LINE_LENGTH",
    "MAX_RECORDED_BYTES",
]

#: Longest line ``on_line`` accepts (bytes, terminator included); a longer
#: one is a protocol error that closes the connection.  64 KiB is far above
#: any syslog (RFC 5424 §6.1 suggests receivers handle 2048 octets) or
#: line-based test protocol while keeping memory per connection bounded.
MAX_LINE_LENGTH = 64 * 1024


#: Bytes recorded per connection (``max_recorded_bytes=``): far more than a
#: test asserts on, small enough that a client streaming without end cannot
#: exhaust memory; beyond it bytes are counted (``Stream.received``), not kept.
MAX_RECORDED_BYTES = 64 * 1024 * 1024


#: A received chunk of at least this many bytes is recorded by reference
#: (the ``bytes`` object itself, copied into :attr:`Stream.data` only when a
#: thread reads it); a smaller one is copied at once, so that a peer sending
#: tiny segments cannot make the record cost more memory (object headers)
#: than the bytes it holds: at this size the overhead is under 1 %.
_HOLD_MIN = 4096


class Stream:
    """What one connection sent: ``peer``, ``data``, ``received``, ``closed``.

    ``data`` holds the bytes received, up to the server's
    ``max_recorded_bytes`` (nothing when the server does not record);
    ``received`` counts every byte, stored or not.  Mutated on the reactor
    thread; read it after a ``wait_for_*`` call.  The limit bounds what
    ``data`` holds: bytes a test deletes from it (``del stream.data[:n]``)
    make room for as many new ones.

    Recording does not copy a large chunk on the reactor thread: the chunk
    is kept as received and appended to ``data``'s bytearray, in order, the
    first time any thread reads ``data`` (a bulk upload that no test reads
    costs no copy at all).  What ``data`` holds is the same either way.
    """

    __slots__ = ("peer", "_data", "_held", "_held_bytes", "_lock", "_recorded", "received",
                 "closed", "opened_at")

    def __init__(self, peer: Any) -> None:
        self.peer = peer
        self._data = bytearray()
        self._held: deque[bytes] = deque()  # recorded, not yet appended to _data
        self._held_bytes = 0  # what _held holds (under _lock)
        # Held whenever _held or _held_bytes change: the reactor's room check
        # and a reader moving _held into _data never see each other halfway.
        self._lock = threading.Lock()
        self._recorded = 0  # bytes ever recorded (reactor thread): see truncated
        self.received = 0
        self.closed = False
        self.opened_at = time.monotonic()

    @property
    def data(self) -> bytearray:
        """The bytes recorded so far (the live bytearray the reactor appends to)."""
        # Without the lock: a chunk reaches _data before it leaves _held, so
        # an empty _held means every chunk recorded so far is in _data (a
        # reader moving it still holds it in _held, and we wait for it).
        if self._held:
            self._take_held()
        return self._data

    @property
    def truncated(self) -> bool:
        """True when the limit kept received bytes out of ``data``."""
        return self.received > self._recorded

    def _record(self, chunk: bytes, limit: int) -> None:
        """Record what of ``chunk`` fits under ``limit`` (reactor thread).

        A large chunk is kept by reference, a small one copied now.  The
        room is what ``data`` holds now (held chunks included), not what was
        ever recorded.
        """
        with self._lock:
            room = limit - len(self._data) - self._held_bytes
            if room <= 0:
                return
            if len(chunk) > room:
                chunk = chunk[:room]
            self._recorded += len(chunk)
            self._held.append(chunk)
            self._held_bytes += len(chunk)
            if len(chunk) < _HOLD_MIN:
                self._move_held()

    def _take_held(self) -> None:
        # Any thread; under the lock, so chunks reach _data in arrival order.
        with self._lock:
            self._move_held()

    def _move_held(self) -> None:
        # Holding _lock.  Append, then popleft: the chunk is visible in _data
        # before _held no longer shows it, so a reader that finds _held empty
        # (unlocked, in ``data``) cannot miss it; popleft first left a moment
        # in which it was in neither, and a waiter woken for it evaluated its
        # predicate then and slept until its timeout.
        held, data = self._held, self._data
        while held:
            chunk = held[0]
            data += chunk
            held.popleft()
            self._held_bytes -= len(chunk)

    def __repr__(self) -> str:
        return (
            f"<Stream from {self.peer!r} {self.received} bytes{' closed' if self.closed else ''}>"
        )


class StreamConnection:
    """A live reactor-side connection handed to ``on_*`` callbacks.

    :meth:`write` and :meth:`close` may be called from any thread; from
    another thread they are handed to the reactor.
    """

    def __init__(self, server: StreamServer, stream: Stream) -> None:
        self.server = server
        self.stream = stream
        self.transport: StreamTransport | None = None
        self._linebuf = bytearray()
        self._scanned = 0  # bytes of _linebuf known to hold no b"\n"
        self._budget = PassBudget()  # on_line calls per reactor pass
        self._lines_yielded = False  # reading paused: lines wait for a later pass
        self._write_paused = False  # the client does not read: lines wait
        self._resume_on_write = False  # _resume_lines waits for resume_writing()
        self._eof_pending = False  # EOF arrived while lines were still waiting

    @property
    def peer(self) -> Any:
        return self.stream.peer

    @property
    def data(self) -> bytearray:
        """The bytes received on this connection so far, as recorded (see :class:`Stream`)."""
        return self.stream.data

    def write(self, data: bytes) -> None:
        """Send ``data`` (queued in order).

        On the reactor thread it never blocks.  From another thread it
        waits while more than the transport's high-water mark waits to be
        sent (a client that does not read), and raises ``WaitTimeout``
        once nothing went out for ``reactor.THREAD_WRITE_TIMEOUT`` seconds
        (see :meth:`reactor.StreamTransport.write_threadsafe`).
        """
        if type(data) is not bytes:
            data = bytes(data)  # a snapshot: the caller may reuse its buffer
        t = self.transport
        if t is None:
            return
        if t.reactor.in_reactor_thread():
            t.write(data)  # from an on_* callback (the usual case): no hop
        else:
            t.write_threadsafe(data)  # sent before the reactor's next write or close

    def close(self) -> None:
        """Close once what was written has been sent."""
        self._on_reactor(self._close)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _on_reactor(self, fn: Callable[..., None], *args: Any) -> None:
        t = self.transport
        if t is None:
            return
        t.reactor.call_on_reactor(fn, *args)

    # -- StreamProtocol ----------------------------------------------------

    def connection_made(self, transport: StreamTransport) -> None:
        self.transport = transport
        if self.server.on_connect is not None:
            self.server.on_connect(self)

    def data_received(self, data: bytes) -> None:
        server = self.server
        stream = self.stream
        if server.record:
            if type(data) is not bytes:
                data = bytes(data)  # a protocol's own caller: keep a snapshot
            stream._record(data, server.max_recorded_bytes)
        # Counted once recorded: a thread that sees received include the
        # chunk (a wait on received) finds it in data, and truncated right.
        stream.received += len(data)
        if server.on_data is not None:
            server.on_data(self, data)
        if server.on_line is not None:
            self._split_lines(data)
        server._notify()

    def _split_lines(self, data: bytes) -> None:
        self._linebuf += data
        if not self._lines_yielded:  # else the scheduled _resume_lines carries on
            self._run_lines()

    def _run_lines(self) -> None:
        """Call ``on_line`` for each complete buffered line, within the pass budget.

        Once the :class:`reactor.PassBudget` is spent (a 256 KiB read of
        short lines holds thousands), or while the client does not read
        what was written, reading pauses and the rest of the lines are
        delivered, in order, on later passes.  Raises :class:`PeerError`
        for a line longer than ``max_line_length``; whatever ``on_line``
        raises propagates.
        """
        on_line = self.server.on_line
        assert on_line is not None
        buf = self._linebuf
        budget = self._budget
        budget.start()
        pos = 0
        try:
            while True:
                nl = buf.find(b"\n", max(pos, self._scanned))
                if nl < 0:
                    self._scanned = len(buf)
                    break
                if self._write_paused or not budget.spend():
                    self._yield_lines()
                    return
                line = bytes(buf[pos : nl + 1])
                pos = self._scanned = nl + 1
                on_line(self, line)
        finally:
            del buf[:pos]
            self._scanned = max(0, self._scanned - pos)
        if len(buf) > self.server.max_line_length:
            raise PeerError(
                f"line longer than max_line_length={self.server.max_line_length} from {self.peer!r}"
            )

    def _yield_lines(self) -> None:
        t = self.transport
        assert t is not None
        self._lines_yielded = True
        t.pause_reading()
        if self._write_paused:
            self._resume_on_write = True  # resume_writing() carries on
        else:
            t.reactor.call_soon(self._resume_lines)

    def _resume_lines(self) -> None:
        self._lines_yielded = False
        self._resume_on_write = False
        t = self.transport
        if t is None or self.stream.closed:
            return
        try:
            self._run_lines()
            if not self._lines_yielded:
                if self._eof_pending:
                    self._eof_pending = False
                    self._last_line()
                    t.close()
                else:
                    t.resume_reading()
        except Exception as exc:
            self.server.handle_error(exc, f"connection from {self.peer!r}")
            t.abort(exc)
        finally:
            self.server._notify()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._resume_on_write:
            self._resume_on_write = False
            t = self.transport
            if t is not None:
                t.reactor.call_soon(self._resume_lines)

    def _last_line(self) -> None:
        if self.server.on_line is not None and self._linebuf:
            line, self._linebuf = bytes(self._linebuf), bytearray()
            self._scanned = 0
            self.server.on_line(self, line)  # the last line, unterminated

    def eof_received(self) -> bool | None:
        if self._lines_yielded:
            # Lines still wait for later passes: close once they are delivered.
            self._eof_pending = True
            return True
        self._last_line()
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.stream.closed = True
        try:
            if self.server.on_close is not None:
                self.server.on_close(self)
        finally:
            self.server._notify()


class StreamServer(ThreadedStreamServerBase):
    """A stream server (TCP unless ``address_family``/``addr`` say Unix).

    :param handler: blocking ``handler(request)`` run on a worker thread per
        connection (see the module docstring).  Exclusive with ``on_*``.
        A class here (or ``handler_class=``) is a socketserver request
        handler class: see :class:`reactor.ThreadedStreamServerBase`.
    :param on_connect: ``on_connect(conn)`` when a connection opens.
    :param on_data: ``on_data(conn, data)`` for each chunk received.
    :param on_line: ``on_line(conn, line)`` for each complete line
        (terminator included; the last unterminated line at end of file too).
    :param on_close: ``on_close(conn)`` when a connection ends.
    :param ssl_context: serve TLS on every connection.
    :param max_line_length: limit for ``on_line`` (default
        :data:`MAX_LINE_LENGTH`).
    :param record: keep a :class:`Stream` per connection in :attr:`streams`
        with the bytes received (default True; False records nothing).
    :param max_recorded_bytes: bytes kept per connection (default
        :data:`MAX_RECORDED_BYTES`); beyond it they are counted, not kept.

    Other keywords are :class:`reactor.BaseServer`'s.  Callbacks run on the
    reactor thread: they must not block.
    """

    def __init__(
        self,
        addr: Any = None,
        handler: Callable[[StreamRequest], object] | None = None,
        *,
        on_connect: Callable[[StreamConnection], object] | None = None,
        on_data: Callable[[StreamConnection, bytes], object] | None = None,
        on_line: Callable[[StreamConnection, bytes], object] | None = None,
        on_close: Callable[[StreamConnection], object] | None = None,
        max_line_length: int = MAX_LINE_LENGTH,
        record: bool = True,
        max_recorded_bytes: int = MAX_RECORDED_BYTES,
        **kwargs: Any,
    ) -> None:
        blocking = handler is not None or kwargs.get("handler_class") is not None
        if blocking and any((on_connect, on_data, on_line, on_close)):
            raise TypeError("handler= (blocking) and on_* (reactor) callbacks are exclusive")
        self.on_connect = on_connect
        self.on_data = on_data
        self.on_line = on_line
        self.on_close = on_close
        self.max_line_length = max_line_length
        self.record = record
        self.max_recorded_bytes = max_recorded_bytes
        #: One :class:`Stream` per connection, in accept order (when
        #: recording, and not with a blocking ``handler``).
        self.streams: list[Stream] = []
        super().__init__(addr, handler, **kwargs)

    # -- reactor-native connections -------------------------------------------

    def make_protocol(self, addr: Any) -> StreamConnection:
        stream = Stream(addr)
        if self.record:
            self._record(self.streams, stream)
        return StreamConnection(self, stream)

    # -- waiting --------------------------------------------------------------

    def wait_for_streams(
        self,
        count: int = 1,
        *,
        closed: bool = True,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        **matchers: Any,
    ) -> list[Stream]:
        """Wait until ``count`` connections were seen (and, by default, ended),
        matching ``data=``/``peer=``/``predicate=`` if given (:mod:`protocols._match`).

        Returns those streams, oldest first.
        :raises TimeoutError: naming what arrived, and the nearest miss.
        """
        what = f"{'closed ' if closed else ''}connection(s)"
        return _match.wait_matching(
            self,
            lambda: self.streams,
            count,
            timeout,
            what,
            _match.stream_criteria(**matchers),
            _match.describe_stream,
            extra=(lambda s: s.closed) if closed else None,
        )

    def wait_for_data(self, needle: Any, timeout: float | None = DEFAULT_WAIT_TIMEOUT) -> Stream:
        """Wait until some connection has received ``needle`` (bytes: a substring;
        or any ``data=`` matcher, e.g. a regex); return its stream."""
        if isinstance(needle, (bytes, bytearray)):
            needle = _match.Contains(bytes(needle))
        return _match.wait_matching(
            self,
            lambda: self.streams,
            1,
            timeout,
            "connection(s)",
            _match.stream_criteria(data=needle),
            _match.describe_stream,
        )[0]

    def find_streams(self, **matchers: Any) -> list[Stream]:
        """Recorded streams matching ``data=``/``peer=``/``predicate=`` (a snapshot)."""
        return _match.stream_criteria(**matchers).select(self.streams)


class TCPServer(StreamServer):
    """A TCP server on the shared reactor (see :class:`StreamServer`)."""


class UnixStreamServer(StreamServer):
    """A Unix stream socket server; ``addr`` is a path (default: a temporary one)."""

    address_family: ClassVar[int] = socket.AF_UNIX


class TestTCPServer(StreamServer):
    """Drop-in for test_logging's ``TestTCPServer``: blocking ``handler(request)``."""

    __test__ = False

    def __init__(
        self,
        addr: Any,
        handler: Callable[[StreamRequest], object],
        poll_interval: float = 0.5,
        bind_and_activate: bool = True,
    ) -> None:
        super().__init__(
            addr, handler, poll_interval=poll_interval, bind_and_activate=bind_and_activate
        )


class TestUnixStreamServer(TestTCPServer):
    """Drop-in for test_logging's ``TestUnixStreamServer``."""

    __test__ = False
    address_family: ClassVar[int] = socket.AF_UNIX
