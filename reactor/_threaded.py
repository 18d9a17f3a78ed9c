"""Threaded stream servers: blocking, socketserver-style handlers.

Theory of operation
-------------------

A handler whose API is blocking by nature (``handler(request)`` that calls
``recv()`` on ``request.connection`` or reads ``request.rfile``) cannot run on
the reactor thread.  :class:`ThreadedStreamServerBase` accepts on the reactor
as every stream server does, then hands the connected socket to a worker
thread of its own (guarantee G1 allows these threads; ``stop()`` joins them):

1. Accept (reactor thread): the socket goes back to blocking mode, gets
   ``TCP_NODELAY``, and a *control* duplicate of its descriptor is kept with
   the worker.  The duplicate is what ``stop()`` shuts down: a handler may
   wrap ``request.connection`` in TLS itself (``wrap_socket`` detaches the
   descriptor from the original socket object, so that object can no longer
   be shut down), and shutting down one descriptor shuts down the socket
   under all of them.  As the server holds the duplicate until the worker is
   gone, its number cannot be reused by another file meanwhile.
2. TLS (worker thread, when the server has an ``ssl_context``): the
   handshake runs before the handler sees the connection, with a timeout of
   :data:`TLS_HANDSHAKE_TIMEOUT`; a failure goes to ``tls_errors`` and the
   connection is closed without calling the handler.  The handler then gets
   an ``ssl.SSLSocket`` and reads and writes plaintext.
3. Handler (worker thread): every exception, ``BaseException`` included
   (``SystemExit``, ``KeyboardInterrupt``), is recorded in ``errors`` and
   reported; the worker then closes the connection and ends.
4. Stop (caller's thread): each control socket is shut down for reading (a
   handler blocked in ``recv()`` sees what was already received, then end
   of file), workers are joined until the deadline, and a worker still
   running then (stuck in ``sendall()`` to a peer that does not read) gets
   its socket shut down both ways and is recorded as ``HandlerTimeout``.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from ._errors import HandlerTimeout
from ._server import StreamServerBase
from ._transport import TLS_HANDSHAKE_TIMEOUT

__all__ = ["StreamRequest", "ThreadedStreamServerBase"]


class _SocketWriter(io.BufferedIOBase):
    """``wfile`` of a blocking request: every write goes out with sendall."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._sock.sendall(b)
        with memoryview(b) as view:
            return view.nbytes

    def fileno(self) -> int:
        return self._sock.fileno()


class StreamRequest:
    """The request a blocking handler receives (socketserver's attributes).

    Made on the worker thread, after any TLS handshake of the server's
    ``ssl_context``: ``connection`` is then an ``ssl.SSLSocket`` and
    ``rfile``/``wfile`` carry plaintext.
    """

    def __init__(self, sock: socket.socket, client_address: Any, server: Any) -> None:
        #: The connected socket, in blocking mode (``request`` is the same).
        self.connection = sock
        self.request = sock
        self.client_address = client_address
        self.server = server
        self.rfile: BinaryIO = sock.makefile("rb")
        self.wfile: io.BufferedIOBase = _SocketWriter(sock)

    def _finish(self) -> None:
        try:
            self.wfile.flush()
        except OSError:
            pass
        self.wfile.close()
        self.rfile.close()


class _Worker:
    """One connection's worker thread and the control socket stop() shuts down."""

    __slots__ = ("thread", "control")

    def __init__(self, thread: threading.Thread, control: socket.socket) -> None:
        self.thread = thread
        self.control = control


def _shutdown(sock: socket.socket, how: int) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass


class ThreadedStreamServerBase(StreamServerBase):
    """A stream server that runs a blocking ``handler`` on a thread per connection.

    :param handler: ``handler(request)`` with a :class:`StreamRequest`, run on
        a worker thread per connection.  ``None`` leaves connections to the
        reactor-side protocol of :meth:`make_protocol`.

    ``ssl_context`` (a :class:`StreamServerBase` keyword) applies to worker
    connections too: the handshake completes on the worker thread before
    the handler runs.  See the module docstring for what ``stop()`` does to
    the workers.
    """

    def __init__(
        self,
        addr: Any = None,
        handler: Callable[[StreamRequest], object] | None = None,
        **kwargs: Any,
    ) -> None:
        self.handler = handler
        self._workers: dict[threading.Thread, _Worker] = {}
        self._workers_lock = threading.Lock()
        super().__init__(addr, **kwargs)

    @property
    def worker_count(self) -> int:
        """Blocking-handler threads running now."""
        with self._workers_lock:
            return len(self._workers)

    # -- accepting (reactor thread) -------------------------------------------

    def _on_accept(self, sock: socket.socket, addr: Any) -> None:
        if self.handler is None:
            super()._on_accept(sock, addr)
            return
        try:
            sock.setblocking(True)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            control = sock.dup()
        except OSError:
            sock.close()  # the peer already left, or no descriptor for the dup
            return
        if self.family == socket.AF_UNIX and not addr:
            addr = self.server_address  # socketserver reports '' for unnamed peers
        t = threading.Thread(
            target=self._run_worker,
            args=(sock, addr, control),
            name=f"testservers-worker {addr!r}",
            daemon=True,
        )
        with self._workers_lock:
            self._workers[t] = _Worker(t, control)
        try:
            t.start()
        except BaseException:
            # No thread, no handler: undo and close.
            with self._workers_lock:
                self._workers.pop(t, None)
            sock.close()
            control.close()
            raise
        self._notify()  # worker_count changed

    # -- the worker (its own thread) --------------------------------------------

    def _run_worker(self, sock: socket.socket, addr: Any, control: socket.socket) -> None:
        """Handshake if TLS, run the handler, record what it raises, close."""
        assert self.handler is not None
        request: StreamRequest | None = None
        conn = sock
        try:
            if self.ssl_context is not None:
                tls = self._handshake(sock, addr)
                if tls is None:
                    return
                conn = tls
            request = StreamRequest(conn, addr, self)
            self.handler(request)
        except BaseException as exc:  # SystemExit too: recorded, never lost (G5)
            try:
                self.handle_error(exc, f"request from {addr!r}")
            except BaseException:
                pass
            del exc  # no frame -> traceback -> frame cycle kept alive
        finally:
            self._end_worker(conn, request, control)

    def _handshake(self, sock: socket.socket, addr: Any) -> socket.socket | None:
        """Complete the server's TLS handshake on ``sock`` (worker thread).

        Returns the ``ssl.SSLSocket`` in blocking mode, or None after
        recording a failure (timeout, bad client hello, peer gone, or
        ``stop()`` shutting the socket down) in ``tls_errors``; ``sock``
        is then closed.
        """
        assert self.ssl_context is not None
        try:
            sock.settimeout(TLS_HANDSHAKE_TIMEOUT)
            tls = self.ssl_context.wrap_socket(sock, server_side=True)
            tls.settimeout(None)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            sock.close()
            self.handle_tls_error(exc, addr)
            return None
        return tls

    def _end_worker(
        self, conn: socket.socket, request: StreamRequest | None, control: socket.socket
    ) -> None:
        try:
            if request is not None:
                request._finish()
        except BaseException:
            pass
        finally:
            with self._workers_lock:
                self._workers.pop(threading.current_thread(), None)
                # Through the control duplicate: it works even when the
                # handler wrapped (detached) the original socket object.
                _shutdown(control, socket.SHUT_WR)
                conn.close()
                control.close()
            self._notify()

    # -- stopping (stop()'s thread) ---------------------------------------------

    def _join_workers(self, deadline: float) -> None:
        with self._workers_lock:
            workers = list(self._workers.values())
            # Unblock recv(): data already received stays readable, then EOF.
            for w in workers:
                _shutdown(w.control, socket.SHUT_RD)
        me = threading.current_thread()  # a handler may stop its own server
        for w in workers:
            if w.thread is not me:
                w.thread.join(max(0.0, deadline - time.monotonic()))
        for w in workers:
            if w.thread is me or not w.thread.is_alive():
                continue
            # A handler stuck in sendall() to a client that never reads is
            # not woken by SHUT_RD: shut the socket down both ways too.
            with self._workers_lock:
                if w.thread in self._workers:  # else it ended and closed the control
                    _shutdown(w.control, socket.SHUT_RDWR)
            self._record_error(
                HandlerTimeout(
                    f"handler thread {w.thread.name!r} still running after stop() timeout"
                ),
                "stop()",
            )
