"""Scripted stream servers: asynchat's shape, on the reactor.

A test that fakes a line protocol (POP3, FTP, a Redis or memcached stand-in)
wants to write the server as a script: "greet, then for each line received,
push a reply".  :class:`ScriptedServer` runs such scripts on the shared
reactor thread, one :class:`ScriptedConnection` per connection.

Theory of operation
-------------------

1. Received bytes are appended to one buffer per connection.  The buffer is
   cut into *frames* by the connection's current **terminator**: a
   delimiter (``b"\\r\\n"``, ``b"\\0"``...: the frame is what comes before
   it), a byte count (the next *n* bytes), a :class:`LengthPrefix` (a
   big-endian length, then that many bytes), or ``None`` (raw: every chunk
   as it arrives).  The script may change the terminator from inside a
   frame callback; the next frame is cut by the new one.
2. Each frame goes to the script's ``on_frame(frame)`` (raw chunks to
   ``on_data(chunk)``), at most :data:`reactor.EVENTS_PER_PASS` frames and
   :data:`reactor.PASS_TIME_BUDGET` seconds per reactor pass
   (:class:`reactor.PassBudget`); the rest wait, reading paused, for a
   later pass, so a flood of short lines cannot starve other servers.
3. Replies are ``push(bytes)``: queued on the transport, coalesced into one
   send per pass.  A peer that does not read its replies trips the
   transport's high-water mark: frames stop being delivered (and reading
   stops) until the backlog drains to the low-water mark, so a client that
   pipelines commands without reading costs bounded memory.  A script that
   streams a large output does the same on its side: it pushes while
   :attr:`ScriptedConnection.writing_paused` is False and carries on from
   :meth:`ScriptedConnection.when_drained`, so it never holds more than
   about the high-water mark.
4. ``hold()`` stops frame delivery until ``release()`` (an FTP control
   connection waits for its data connection this way); input stays
   buffered, reading paused.
5. ``start_tls()`` upgrades the connection in place.  Input that was
   already buffered after the frame that asked for the upgrade is
   discarded, never delivered (counted in
   :attr:`ScriptedConnection.discarded_plaintext`): a command pipelined
   behind "STLS" in plaintext cannot be injected into the TLS session
   (RFC 3207 §4.2, RFC 2595 §3.1).  Bytes arriving after the upgrade are
   TLS records.
6. ``listen()`` and ``connect()`` open *child* connections (an FTP data
   channel, passive or active) from inside a callback; the server tracks
   them, and ``stop()`` closes them with everything else.

Every callback runs on the reactor thread and must not block.  An exception
from a callback is recorded in the server's ``errors`` (guarantee G5) and
aborts that connection only.
"""

from __future__ import annotations

import functools
import socket
import ssl
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from reactor import (
    CONNECT_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    Connector,
    InvalidArgumentError,
    Listener,
    PassBudget,
    PeerError,
    StreamServerBase,
    StreamTransport,
    UsageError,
    open_listener,
)

from ._framing import MAX_FRAME_LENGTH, Framer, LengthPrefix, Terminator, check_terminator

__all__ = [
    "CONNECT_TIMEOUT",
    "MAX_FRAME_LENGTH",
    "DataListener",
    "LengthPrefix",
    "ScriptedConnection",
    "ScriptedServer",
]

_HOOKS = ("on_connect", "on_frame", "on_data", "on_eof", "on_close")


class ScriptedConnection:
    """One scripted connection: its terminator, its replies, its script.

    Created by the server for each accepted connection (and by
    :meth:`listen`/:meth:`connect` for child connections).  ``script`` is
    the per-connection object the server's ``script`` factory made (its
    attributes are the script's state); :attr:`state` is a free namespace
    for function-style scripts.

    :meth:`push`, :meth:`close_when_done`, :meth:`close` may be called from
    any thread (from another thread they are handed to the reactor); every
    other method is for the reactor thread, i.e. from inside a callback.
    """

    def __init__(
        self,
        server: ScriptedServer,
        peer: Any,
        *,
        script: Callable[[ScriptedConnection], object] | None = None,
        callbacks: Mapping[str, Callable[..., object] | None] | None = None,
        terminator: Terminator = b"\r\n",
        greeting: bytes | None = None,
        tls_context: ssl.SSLContext | None = None,
        parent: ScriptedConnection | None = None,
    ) -> None:
        self.server = server
        self.peer = peer
        self.parent = parent
        #: A namespace for the script's per-connection state.
        self.state = types.SimpleNamespace()
        self.transport: StreamTransport | None = None
        #: Plaintext input dropped at a ``start_tls()`` (bytes): never delivered.
        self.discarded_plaintext = 0
        #: Frames delivered so far.
        self.frames_received = 0
        self.closed = False
        self._framer = Framer(terminator, server.max_frame_length)
        self._greeting = greeting
        self._tls_context = tls_context
        self._budget = PassBudget()
        self._held = False
        self._write_paused = False
        self._drain_waiters: list[Callable[[], object]] = []  # when_drained()
        self._drain_scheduled = False
        self._read_paused = False  # reading paused by us (held, yielded, write-paused)
        self._continue_scheduled = False
        self._eof_pending = False  # EOF arrived while frames were still waiting
        self._tls_starting = False  # start_tls() called, handshake not done yet
        self._close_after_tls = False  # close_when_done() during the handshake or stop_tls()
        self._tls_stopping = False  # stop_tls() called, the peer's close_notify not in yet
        self._children: set[DataListener | Connector] = set()
        #: The object ``script(conn)`` made (once the connection is made), or None.
        self.script: object | None = None
        self._script_factory = script
        # Every hook as a callable of the hook's own arguments: the function
        # callbacks bound to self, or (from connection_made on) the script
        # object's bound methods.
        self._cbs: dict[str, Callable[..., Any]] = {}
        for name, fn in (callbacks or {}).items():
            if fn is not None:
                self._cbs[name] = functools.partial(fn, self)

    # -- the script's API ------------------------------------------------------

    @property
    def terminator(self) -> Terminator:
        return self._framer.terminator

    def set_terminator(self, terminator: Terminator) -> None:
        """Cut the next frames by ``terminator`` (see the module docstring).

        :raises InvalidArgumentError: an empty delimiter, a count outside
            ``1..max_frame_length``, or another type.
        """
        self._framer.terminator = terminator

    @property
    def socket(self) -> socket.socket | None:
        """The connection's socket, for socket options only (never read or write it)."""
        return None if self.transport is None else self.transport.socket

    @property
    def sockname(self) -> Any:
        return None if self.transport is None else self.transport.sockname

    @property
    def is_tls(self) -> bool:
        """True once a TLS handshake has completed (and until ``stop_tls()``)."""
        return self.transport is not None and self.transport.is_tls

    @property
    def pending_input(self) -> bytes:
        """Buffered input not yet delivered (an unterminated last line at EOF...)."""
        return self._framer.pending

    def push(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` (queued in order; any thread).

        Never blocks on the reactor thread; from another thread it waits
        for room as ``StreamConnection.write()`` does (the high-water
        mark; ``WaitTimeout`` once nothing went out for
        ``reactor.THREAD_WRITE_TIMEOUT`` seconds).
        """
        t = self.transport
        if t is not None and not self.closed:
            # From another thread: sent before the reactor's next write or close.
            t.write_threadsafe(bytes(data))

    def push_line(self, line: str | bytes, ending: bytes = b"\r\n") -> None:
        """Send ``line`` (a str is UTF-8 encoded) followed by ``ending``."""
        data = line.encode("utf-8") if isinstance(line, str) else bytes(line)
        self.push(data + ending)

    def push_frame(self, payload: bytes, prefix: LengthPrefix | None = None) -> None:
        """Send ``payload`` length-prefixed (the terminator's prefix, else 4 bytes big-endian)."""
        if prefix is None:
            term = self._framer.terminator
            prefix = term if isinstance(term, LengthPrefix) else LengthPrefix()
        self.push(prefix.encode(bytes(payload)))

    @property
    def writing_paused(self) -> bool:
        """True while more than the transport's high-water mark waits to be sent.

        Set by the :meth:`push` that crosses the mark (so a script on the
        reactor thread sees it at once), cleared once the backlog has
        drained to the low-water mark (``reactor.WRITE_HIGH_WATER`` and
        ``WRITE_LOW_WATER`` unless ``transport.set_write_buffer_limits()``
        changed them).  While it is True no frames are delivered either.
        """
        return self._write_paused

    def when_drained(self, callback: Callable[[], object]) -> None:
        """Run ``callback()`` on the reactor thread once :attr:`writing_paused` is False.

        The write side of back-pressure, for a script that streams more
        than it should buffer: push chunks while ``writing_paused`` is
        False, then ``when_drained(carry_on)``.  If writing is not paused
        the callback runs on the next reactor pass; otherwise once the
        backlog has drained to the low-water mark.  Callbacks run in the
        order given, once each; none runs if the connection closes first.
        An exception from one is recorded in the server's ``errors`` and
        aborts the connection, like any callback's.  Any thread.
        """
        self._on_reactor(self._when_drained, callback)

    def _when_drained(self, callback: Callable[[], object]) -> None:
        if self.closed:
            return
        self._drain_waiters.append(callback)
        if not self._write_paused:
            self._schedule_drain()

    def _schedule_drain(self) -> None:
        t = self.transport
        if t is not None and not self._drain_scheduled:
            self._drain_scheduled = True
            t.reactor.call_soon(self._run_drain_waiters)

    def _run_drain_waiters(self) -> None:
        # Only the callbacks given before this pass: one that registers
        # again runs on a later pass (no loop inside one pass).
        self._drain_scheduled = False
        t = self.transport
        waiters, self._drain_waiters = self._drain_waiters, []
        for i, callback in enumerate(waiters):
            if t is None or self.closed:
                self._drain_waiters.clear()
                return
            if self._write_paused:  # a callback pushed past the mark: the rest wait
                self._drain_waiters[:0] = waiters[i:]
                return
            try:
                callback()
            except Exception as exc:
                self._drain_waiters.clear()
                self.server.handle_error(exc, f"when_drained callback for {self.peer!r}")
                t.abort(exc)
                return

    def close_when_done(self) -> None:
        """Close once everything pushed so far has been sent (any thread).

        During a TLS handshake the close waits for the handshake, and
        after ``stop_tls()`` for the peer's close_notify, so replies pushed
        behind ``start_tls()``/``stop_tls()`` are sent first.
        """
        self._on_reactor(self._close_when_done)

    def close(self) -> None:
        """Same as :meth:`close_when_done`: unlike asynchat's, unsent data is never dropped."""
        self.close_when_done()

    def abort(self) -> None:
        """Close now, dropping anything unsent (reactor thread)."""
        if self.transport is not None:
            self.transport.abort()

    def hold(self) -> None:
        """Stop delivering frames until :meth:`release` (input stays buffered, reading pauses)."""
        self._held = True
        self._pause_reading()

    def release(self) -> None:
        """Deliver frames again (from the next reactor pass on)."""
        if self._held:
            self._held = False
            self._schedule_continue()

    def start_tls(
        self,
        context: ssl.SSLContext,
        *,
        server_side: bool = True,
        on_done: Callable[[], object] | None = None,
    ) -> None:
        """Upgrade this connection to TLS now (POP3 STLS, FTP AUTH TLS, IMAP STARTTLS).

        Pushed bytes already queued go out in plaintext first (the "+OK
        begin TLS" reply); bytes pushed afterwards are held and encrypted
        once the handshake completes.  Input already buffered behind the
        frame being handled is discarded (see the module docstring, step
        5).  ``on_done()`` runs once the handshake has completed.  A failed
        handshake is recorded in the server's ``tls_errors`` and closes the
        connection.

        :raises UsageError: the connection is already TLS or closed.
        """
        t = self._require_transport()
        if t.ssl_object is not None:  # before any change: a caller may go on after it
            raise UsageError("the connection is already TLS")
        self.discarded_plaintext += self._framer.clear()
        self._resume_reading()  # the handshake must read (held frames pause it again after)
        self._tls_starting = True

        def done() -> None:
            self._tls_starting = False
            if on_done is not None:
                on_done()
            if self._close_after_tls and self.transport is not None:
                self.transport.close()

        t.start_tls(context, server_side=server_side, on_done=done)

    def stop_tls(self, *, on_done: Callable[[], object] | None = None) -> None:
        """End TLS and go on in plaintext (FTP CCC): see :meth:`reactor.StreamTransport.stop_tls`.

        :raises UsageError: the connection has no established TLS session.
        """
        t = self._require_transport()

        def done() -> None:
            self._tls_stopping = False
            if on_done is not None:
                on_done()
            if self._close_after_tls and self.transport is not None:
                self.transport.close()

        t.stop_tls(on_done=done)
        self._resume_reading()  # the peer's close_notify must be read, as a handshake
        self._tls_stopping = True

    def listen(
        self,
        script: Callable[[ScriptedConnection], object] | None = None,
        *,
        host: str | None = None,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        terminator: Terminator = None,
        once: bool = True,
        timeout: float | None = None,
        on_timeout: Callable[[], object] | None = None,
        **callbacks: Callable[..., object] | None,
    ) -> DataListener:
        """Listen for a child connection (FTP PASV/EPSV); returns the :class:`DataListener`.

        ``host`` defaults to the address this connection was accepted on
        (127.0.0.1 under a Unix socket server).
        Each accepted connection becomes a :class:`ScriptedConnection` of
        this server with ``script`` (or the ``on_connect=``, ``on_frame=``,
        ``on_data=``, ``on_eof=``, ``on_close=`` callbacks) and
        ``terminator`` (default raw); with ``ssl_context`` it is TLS from
        the first byte.  ``once`` closes the listener after the first
        accept.  After ``timeout`` seconds without one, the listener closes
        and ``on_timeout()`` runs.  The listener also closes when this
        connection closes and when the server stops.

        :raises OSError: bind or listen failed.
        :raises UsageError: not on the reactor thread, or the connection is closed.
        """
        t = self._require_transport()
        if host is None:
            name = t.sockname
            host = str(name[0]) if isinstance(name, tuple) else "127.0.0.1"  # Unix parent
        listener = DataListener(
            self,
            (host, port),
            script=script,
            callbacks=callbacks,
            ssl_context=ssl_context,
            terminator=terminator,
            once=once,
            timeout=timeout,
            on_timeout=on_timeout,
        )
        self._children.add(listener)
        return listener

    def connect(
        self,
        address: Any,
        script: Callable[[ScriptedConnection], object] | None = None,
        *,
        terminator: Terminator = None,
        timeout: float | None = None,
        on_error: Callable[[OSError], object] | None = None,
        **callbacks: Callable[..., object] | None,
    ) -> Connector:
        """Open an outbound child connection to ``address`` (FTP PORT/EPRT).

        ``address`` is a numeric ``(ip, port)`` or a Unix socket path (a
        host name fails with ``socket.gaierror``: resolving it would block).

        Non-blocking: once connected, the new :class:`ScriptedConnection`
        (with ``script`` or the ``on_*`` callbacks, and ``terminator``,
        default raw) gets its ``on_connect``.  A failure (refused, timed out
        after ``timeout`` seconds, default the server's ``connect_timeout``)
        is recorded in the server's :attr:`ScriptedServer.connect_errors`
        and passed to ``on_error(exc)``.  Returns the
        :class:`reactor.Connector` (``cancel()`` gives up).  Cancelled when
        this connection closes or the server stops.

        :raises UsageError: not on the reactor thread, or the connection is closed.
        """
        t = self._require_transport()
        server = self.server
        box: list[Connector] = []

        def connected(sock: socket.socket) -> None:
            self._children.discard(box[0])
            child = ScriptedConnection(
                server,
                sock.getpeername(),
                script=script,
                callbacks=callbacks,
                terminator=terminator,
                parent=self,
            )
            server._adopt(sock, child)

        def failed(exc: OSError) -> None:
            self._children.discard(box[0])
            server._record(server.connect_errors, exc)
            if on_error is not None:
                try:
                    on_error(exc)
                except Exception as err:
                    server.handle_error(err, f"on_error for a connection to {address!r}")
                    self.abort()

        connector = Connector(
            t.reactor,
            address,
            connected,
            failed,
            timeout=server.connect_timeout if timeout is None else timeout,
        )
        box.append(connector)
        self._children.add(connector)
        return connector

    # -- internals ---------------------------------------------------------------

    def _require_transport(self) -> StreamTransport:
        t = self.transport
        if t is None or self.closed:
            raise UsageError("the connection is closed")
        if not t.reactor.in_reactor_thread():
            raise UsageError("call this from a callback (the reactor thread)")
        return t

    def _on_reactor(self, fn: Callable[..., None], *args: Any) -> None:
        t = self.transport
        if t is not None and not self.closed:
            t.reactor.call_on_reactor(fn, *args)

    def _close_when_done(self) -> None:
        t = self.transport
        if t is None:
            return
        if self._tls_starting or self._tls_stopping:
            self._close_after_tls = True
        else:
            t.close()

    def _call(self, name: str, *args: Any) -> Any:
        cb = self._cbs.get(name)
        return None if cb is None else cb(*args)

    def _pause_reading(self) -> None:
        # Never during a TLS handshake (it would stall until its timeout) or
        # a stop_tls() (the peer's close_notify must be read).  Input
        # arriving once it is done pauses reading then.
        if (
            not self._read_paused
            and self.transport is not None
            and not self._tls_starting
            and not self._tls_stopping
        ):
            self._read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()

    def _schedule_continue(self) -> None:
        t = self.transport
        if t is not None and not self._continue_scheduled and not self.closed:
            self._continue_scheduled = True
            t.reactor.call_soon(self._continue)

    def _continue(self) -> None:
        self._continue_scheduled = False
        t = self.transport
        if t is None or self.closed:
            return
        try:
            self._process()
        except Exception as exc:
            self.server.handle_error(exc, f"scripted connection from {self.peer!r}")
            t.abort(exc)

    def _process(self) -> None:
        """Deliver complete frames within the pass budget (theory steps 1-4)."""
        t = self.transport
        assert t is not None
        framer = self._framer
        budget = self._budget
        draining = self.server._draining
        if draining:
            budget.unlimited()  # stop(): what arrived is handled now (G3)
        else:
            budget.start()
        try:
            self._deliver(t, framer, budget)
        finally:
            framer.compact()  # once per batch: linear time for a read of short lines

    def _deliver(self, t: StreamTransport, framer: Framer, budget: PassBudget) -> None:
        while True:
            if self.closed or t.is_closing():
                framer.clear()
                return
            # Even while stopping, a peer that does not read gets no more
            # frames delivered: their replies could only pile up unsent.
            if self._held or self._write_paused:
                self._pause_reading()  # release()/resume_writing() carry on
                return
            if not framer:
                break
            if not budget.spend():
                self._pause_reading()
                self._schedule_continue()
                return
            raw = framer.terminator is None
            try:
                frame = framer.next_frame()
            except PeerError as exc:
                raise PeerError(f"{exc} from {self.peer!r}") from None
            if frame is None:
                break
            if raw:
                self._call("on_data", frame)
            else:
                self.frames_received += 1
                self._call("on_frame", frame)
        # Everything complete is delivered: read again, or finish a deferred EOF.
        if self._eof_pending:
            self._eof_pending = False
            if not self._call("on_eof"):
                t.close()
            return
        self._resume_reading()

    # -- StreamProtocol (called by the transport) ----------------------------------

    def connection_made(self, transport: StreamTransport) -> None:
        self.transport = transport
        # Recorded once it has its transport: a test thread that finds it
        # in ``server.connections`` may push() to it at once.
        if self.server.record:
            self.server._record(self.server.connections, self)
        if self._script_factory is not None:
            # Made here, so that the script may push from its constructor.
            self.script = self._script_factory(self)
            for name in _HOOKS:
                method = getattr(self.script, name, None)
                if method is not None:
                    self._cbs[name] = method
        if self._tls_context is not None:
            self.start_tls(self._tls_context)
        if self._greeting:
            transport.write(self._greeting)
        self._call("on_connect")

    def data_received(self, data: bytes) -> None:
        self._framer.feed(data)
        if not self._continue_scheduled:
            self._process()
        self.server._notify()

    def eof_received(self) -> bool | None:
        if self._framer and (self._held or self._write_paused or self._continue_scheduled):
            self._eof_pending = True  # frames still wait: EOF once they are delivered
            return True
        return True if self._call("on_eof") else None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        if self._write_paused:
            self._write_paused = False
            self._schedule_continue()
            if self._drain_waiters:  # on a pass of their own, not inside the flush
                self._schedule_drain()

    def connection_lost(self, exc: BaseException | None) -> None:
        for child in list(self._children):  # before ``closed`` is seen by any thread
            if isinstance(child, DataListener):
                child.close()
            else:
                child.cancel()
        self._children.clear()
        self._drain_waiters.clear()
        self.closed = True
        try:
            self._call("on_close")
        finally:
            self.server._notify()

    def __repr__(self) -> str:
        return f"<ScriptedConnection from {self.peer!r}{' closed' if self.closed else ''}>"


class DataListener:
    """A listener a connection opened from a callback (see :meth:`ScriptedConnection.listen`).

    ``address`` is the bound ``(host, port)``; ``port`` its port;
    ``connections`` the :class:`ScriptedConnection` objects it accepted.
    Reactor thread only.
    """

    def __init__(
        self,
        parent: ScriptedConnection,
        address: Any,
        *,
        script: Callable[[ScriptedConnection], object] | None,
        callbacks: dict[str, Callable[..., object] | None],
        ssl_context: ssl.SSLContext | None,
        terminator: Terminator,
        once: bool,
        timeout: float | None,
        on_timeout: Callable[[], object] | None,
    ) -> None:
        self.parent = parent
        self._script = script
        self._callbacks = callbacks
        self._ssl_context = ssl_context
        self._terminator = check_terminator(terminator, parent.server.max_frame_length)
        self._once = once
        self._on_timeout = on_timeout
        self.connections: list[ScriptedConnection] = []
        self.closed = False
        server = parent.server
        t = parent.transport
        assert t is not None
        self._listener: Listener | None = open_listener(t.reactor, address, self._accepted, server)
        self.address: Any = self._listener.sockname
        self.port: int = self.address[1]
        self._timer = None if timeout is None else t.reactor.call_later(timeout, self._timed_out)
        server._children.add(self)

    def _accepted(self, sock: socket.socket, addr: Any) -> None:
        server = self.parent.server
        if self._once:
            self.close()
        child = ScriptedConnection(
            server,
            addr,
            script=self._script,
            callbacks=self._callbacks,
            terminator=self._terminator,
            tls_context=self._ssl_context,
            parent=self.parent,
        )
        if server.record:
            self.connections.append(child)
        server._adopt(sock, child)

    def _timed_out(self) -> None:
        self._timer = None
        if self.closed:
            return
        self.close()
        if self._on_timeout is not None:
            self._on_timeout()

    def close(self) -> None:
        """Stop listening (idempotent); connections it accepted stay open."""
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self.parent._children.discard(self)
        self.parent.server._children.discard(self)

    def cancel(self) -> None:
        self.close()


class ScriptedServer(StreamServerBase):
    """A stream server whose connections run a script (TCP, or Unix with a path).

    :param script: ``script(conn)`` makes the per-connection object; its
        optional methods ``on_connect()``, ``on_frame(frame)``,
        ``on_data(chunk)``, ``on_eof()`` (return True to keep the
        connection open after the peer's EOF) and ``on_close()`` are called
        on the reactor thread.  Exclusive with the function callbacks.
    :param on_connect: ``on_connect(conn)``, and likewise ``on_frame(conn,
        frame)``, ``on_data(conn, chunk)``, ``on_eof(conn)``,
        ``on_close(conn)``: function-style scripts (state in ``conn.state``).
    :param terminator: the initial terminator of every connection
        (default ``b"\\r\\n"``; see :class:`ScriptedConnection`).
    :param greeting: bytes pushed as each connection opens (before
        ``on_connect``).
    :param ssl_context: TLS from the first byte on every connection
        (POP3S, FTPS implicit); failures go to ``tls_errors``.
    :param max_frame_length: limit of one frame (default
        :data:`MAX_FRAME_LENGTH`).
    :param connect_timeout: default timeout of
        :meth:`ScriptedConnection.connect` (default
        :data:`reactor.CONNECT_TIMEOUT`).
    :param record: keep every connection in :attr:`connections` (and each
        child a :class:`DataListener` accepted in its ``connections``);
        default True.  With False nothing is kept (a long-running fake holds
        no connection it has closed); the callbacks still run, and
        :meth:`wait_for_connections` raises :class:`reactor.UsageError`.

    Other keywords are :class:`reactor.BaseServer`'s.  Every connection is
    recorded in :attr:`connections` (unless ``record=False``); child
    listeners and outbound connections are closed by ``stop()`` with the rest.
    """

    address_family: ClassVar[int] = socket.AF_INET

    def __init__(
        self,
        addr: Any = None,
        script: Callable[[ScriptedConnection], object] | None = None,
        *,
        terminator: Terminator = b"\r\n",
        greeting: bytes | str | None = None,
        on_connect: Callable[[ScriptedConnection], object] | None = None,
        on_frame: Callable[[ScriptedConnection, bytes], object] | None = None,
        on_data: Callable[[ScriptedConnection, bytes], object] | None = None,
        on_eof: Callable[[ScriptedConnection], object] | None = None,
        on_close: Callable[[ScriptedConnection], object] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_frame_length: int = MAX_FRAME_LENGTH,
        connect_timeout: float = CONNECT_TIMEOUT,
        record: bool = True,
        **kwargs: Any,
    ) -> None:
        callbacks = {
            "on_connect": on_connect,
            "on_frame": on_frame,
            "on_data": on_data,
            "on_eof": on_eof,
            "on_close": on_close,
        }
        if script is not None and any(callbacks.values()):
            raise TypeError("script= and the on_* callbacks are exclusive")
        if max_frame_length < 1:
            raise InvalidArgumentError(f"max_frame_length must be >= 1, got {max_frame_length}")
        self.max_frame_length = max_frame_length
        self.script = script
        self.callbacks = {k: v for k, v in callbacks.items() if v is not None}
        self.terminator = check_terminator(terminator, max_frame_length)
        self.greeting = greeting.encode("utf-8") if isinstance(greeting, str) else greeting
        self.tls_context = ssl_context
        self.connect_timeout = connect_timeout
        self.record = record
        #: Every connection (accepted and child), in the order they opened
        #: (none with ``record=False``).
        self.connections: list[ScriptedConnection] = []
        #: Outbound connections that failed (refused, timed out...), oldest first.
        self.connect_errors: list[OSError] = []
        self._children: set[DataListener] = set()
        # Implicit TLS is started by each connection itself (so its
        # close_when_done() can wait for the handshake), not by the base.
        super().__init__(addr, **kwargs)

    def make_protocol(self, addr: Any) -> ScriptedConnection:
        conn = ScriptedConnection(
            self,
            addr,
            script=self.script,
            callbacks=self.callbacks,
            terminator=self.terminator,
            greeting=self.greeting,
            tls_context=self.tls_context,
        )
        return conn

    def _adopt(self, sock: socket.socket, conn: ScriptedConnection) -> None:
        """Run a child connection's socket on this server (reactor thread)."""
        loop = self._loop
        if loop is None:  # stopping
            sock.close()
            return
        try:
            transport = StreamTransport(loop, sock, conn, self, on_closed=self._on_transport_closed)
        except Exception as exc:
            sock.close()
            self.handle_error(exc, f"setting up a child connection to {conn.peer!r}")
            return
        if not transport.is_closing():
            self._transports.add(transport)
        self._notify()

    _draining = False  # inside stop(): no per-pass budget, deliver what arrived

    def _before_close(self) -> None:
        # Frames put off to a later pass by the per-pass budget are delivered
        # now: nothing that reached the server before stop() is lost.  Held
        # connections, and peers that do not read their replies, get no more.
        for t in list(self._transports):
            conn = t.protocol
            if isinstance(conn, ScriptedConnection) and conn._framer and not conn.closed:
                try:
                    conn._process()
                except Exception as exc:
                    self.handle_error(exc, f"scripted connection from {conn.peer!r}")
                    t.abort(exc)

    def _detach(self) -> None:
        conns = [t.protocol for t in self._transports]
        self._draining = True
        try:
            super()._detach()
        finally:
            self._draining = False
            # After the drain: a listener a drained frame opened closes too.
            self._close_children(conns)

    def _close_children(self, conns: Sequence[object]) -> None:
        for child in list(self._children):
            child.close()
        self._children.clear()
        for conn in conns:
            if isinstance(conn, ScriptedConnection):
                for c in list(conn._children):
                    c.cancel()
                conn._children.clear()

    def _detach_after_death(self) -> None:
        conns = [t.protocol for t in self._transports]
        super()._detach_after_death()
        self._close_children(conns)

    # -- waiting ---------------------------------------------------------------

    def wait_for_connections(
        self, count: int = 1, *, closed: bool = False, timeout: float | None = DEFAULT_WAIT_TIMEOUT
    ) -> list[ScriptedConnection]:
        """Wait until ``count`` connections opened (and, with ``closed=True``, ended).

        :raises WaitTimeout: naming what was awaited, after ``timeout`` seconds.
        :raises UsageError: the server was made with ``record=False``.
        """
        if not self.record:
            raise UsageError("this server was created with record=False")

        def done() -> list[ScriptedConnection] | None:
            got = [c for c in self.connections if c.closed or not closed]
            return got[:count] if len(got) >= count else None

        what = f"{count} {'closed ' if closed else ''}scripted connection(s)"

        def report() -> str:
            from ._match import arrival_report

            def describe(c: ScriptedConnection) -> str:
                return f"{c.peer!r} {'closed' if c.closed else 'open'}"

            return arrival_report(list(self.connections), describe)

        return self.wait_for(done, timeout, what, report=report)
