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
   :attr:`tls_handshake_timeout`; a failure goes to ``tls_errors`` and the
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

Request handler classes
-----------------------

Given a class instead of a function (``handler_class=``, or a class passed
as ``handler``), the worker does what ``socketserver`` does for each
connection: ``verify_request(request, client_address)``, then
``finish_request()`` (``RequestHandlerClass(request, client_address,
server)``: a ``socketserver.StreamRequestHandler`` subclass runs its
``setup``/``handle``/``finish``), then ``shutdown_request(request)``.
``request`` is the connected socket (an ``ssl.SSLSocket`` with
``ssl_context``).  These hooks, ``handle_error(request, client_address)``
(called while the exception is being handled, so a bare ``raise`` works)
and ``get_request()`` keep socketserver's signatures and may be
overridden.  Whatever escapes is recorded in ``errors`` (G5); an
overridden ``handle_error`` that returns normally has reported the error
itself, so it is recorded without printing.

An overridden ``get_request()`` (a test that wraps the accepted socket in
TLS there, as CPython's test_imaplib does) may block, so it never runs on
the reactor: when a connection is pending the reactor stops watching the
listener and a worker thread calls ``get_request()``; the reactor watches
again once it has returned, so calls never overlap (socketserver, too,
calls it from one thread): one that never returns (a peer that never
completes the handshake) stalls this server's accepting, not the reactor,
and ``stop()`` reports it as ``HandlerTimeout``.  An ``OSError`` it raises
(the peer left, a failed handshake) goes to ``tls_errors``: socketserver
ignores it.
"""

from __future__ import annotations

import io
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, BinaryIO

from ._errors import HandlerTimeout, ReactorError
from ._loop import Reactor
from ._server import BaseServer, StreamServerBase
from ._transport import Listener

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
    """One connection's worker thread and the control socket stop() shuts down.

    ``control`` is None while the worker is still in ``get_request()``.
    """

    __slots__ = ("thread", "control")

    def __init__(self, thread: threading.Thread, control: socket.socket | None) -> None:
        self.thread = thread
        self.control = control


#: Length of a server's list of departed workers at which the ended ones are dropped.
_LEAVING_PRUNE_AT = 32


def _running(refs: list[weakref.ref[threading.Thread]]) -> list[weakref.ref[threading.Thread]]:
    """The references of ``refs`` whose thread still runs."""
    return [r for r in refs if (t := r()) is not None and t.is_alive()]


def _join_threads(
    refs: list[weakref.ref[threading.Thread]], me: threading.Thread, deadline: float
) -> list[str]:
    """Join the threads of ``refs`` but ``me`` until ``deadline``; the names still running.

    Names, not threads: nothing the caller keeps (a traceback included)
    references a stopped Thread, which CPython's threading_cleanup() counts.
    """
    running: list[str] = []
    for ref in refs:
        t = ref()
        if t is None or t is me:
            continue
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            running.append(t.name)
    return running


class _GetRequestListener(Listener):
    """The listener of a server whose ``get_request()`` is overridden.

    Reactor thread.  On readiness it stops watching and has the server call
    ``get_request()`` on a worker thread; :meth:`resume` watches again.
    ``stop()``'s final drain accepts nothing: connections still queued are
    refused when the socket closes, as they would be by socketserver.
    """

    def __init__(self, reactor: Reactor, server: ThreadedStreamServerBase) -> None:
        assert server.socket is not None
        self._server = server
        super().__init__(reactor, server.socket, server._on_accept, server, 1)

    def _on_readable(self, mask: int) -> None:
        if self._registered:
            self._reactor.unregister(self._sock)
            self._registered = False
        self._server._spawn(self._server._run_get_request, (self,), None, "get_request")

    def accept_pending(self, limit: int) -> None:
        pass

    def resume(self) -> None:
        self._watch()


def _shutdown(sock: socket.socket, how: int) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass


class ThreadedStreamServerBase(StreamServerBase):
    """A stream server that runs a blocking ``handler`` on a thread per connection.

    :param handler: ``handler(request)`` with a :class:`StreamRequest`, run on
        a worker thread per connection; or a request handler class (as
        ``handler_class``).  ``None`` leaves connections to the reactor-side
        protocol of :meth:`make_protocol`.
    :param handler_class: a ``socketserver.BaseRequestHandler`` subclass (or
        any callable taking ``(request, client_address, server)``), run on a
        worker thread per connection with socketserver's hooks (see the
        module docstring).  Exclusive with a ``handler`` function.

    ``ssl_context`` (a :class:`StreamServerBase` keyword) applies to worker
    connections too: the handshake completes on the worker thread before
    the handler runs.  See the module docstring for what ``stop()`` does to
    the workers.
    """

    def __init__(
        self,
        addr: Any = None,
        handler: Callable[[StreamRequest], object] | None = None,
        *,
        handler_class: Callable[..., object] | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(handler, type):
            if handler_class is not None:
                raise TypeError("give a request handler class once (handler or handler_class)")
            handler, handler_class = None, handler
        elif handler is not None and handler_class is not None:
            raise TypeError("handler= (a function) and handler_class= are exclusive")
        self.handler = handler
        #: socketserver's name: the request handler class (None without one).
        self.RequestHandlerClass = handler_class
        self._workers: dict[threading.Thread, _Worker] = {}
        # Workers that have left ``_workers`` but whose thread may still be
        # finishing (closing its sockets, waking waiters): stop() joins them
        # too, or its caller may see the thread alive (CPython's
        # threading_cleanup() does).  Weak: a finished thread is forgotten.
        self._leaving: list[weakref.ref[threading.Thread]] = []
        # Workers whose handler stopped this server (a stop() cannot join its
        # own thread): a later stop() from another thread joins them.
        self._self_stopped: list[weakref.ref[threading.Thread]] = []
        self._workers_lock = threading.Lock()
        super().__init__(addr, **kwargs)

    @property
    def worker_count(self) -> int:
        """Blocking-handler threads running now."""
        with self._workers_lock:
            return len(self._workers)

    @property
    def _blocking(self) -> bool:
        return self.handler is not None or self.RequestHandlerClass is not None

    def _get_request_overridden(self) -> bool:
        return (
            self.RequestHandlerClass is not None
            and type(self).get_request is not ThreadedStreamServerBase.get_request
        )

    # -- socketserver's hooks (handler classes; worker threads) -----------------

    def get_request(self) -> tuple[socket.socket, Any]:
        """socketserver's: accept a connection; only called when overridden."""
        assert self.socket is not None
        return self.socket.accept()

    def verify_request(self, request: socket.socket, client_address: Any) -> bool:
        """socketserver's: return False to refuse the connection (default True)."""
        return True

    def finish_request(self, request: socket.socket, client_address: Any) -> None:
        """socketserver's: run ``RequestHandlerClass(request, client_address, self)``."""
        assert self.RequestHandlerClass is not None
        self.RequestHandlerClass(request, client_address, self)

    def shutdown_request(self, request: socket.socket) -> None:
        """socketserver's: shut the connection down for writing, then close it."""
        _shutdown(request, socket.SHUT_WR)
        self.close_request(request)

    def close_request(self, request: socket.socket) -> None:
        """socketserver's: close the connection."""
        request.close()

    def server_close(self) -> None:
        """Close the listening socket (socketserver's name).

        On a started server called from another thread (a handler's hook
        may call it, as test_imaplib's ``handle_error`` does), the reactor
        closes the listener: the server stops accepting, and ``stop()``
        closes the rest.  Never closes a socket the reactor is watching
        from another thread.
        """
        loop = self._loop
        if loop is not None and self._listener is not None and not loop.in_reactor_thread():
            try:
                loop.call_on_reactor(self._close_listener)
            except ReactorError:
                pass  # the reactor is gone; its death hook closed the socket
            return
        super().server_close()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
            self.socket = None

    # -- accepting (reactor thread) -------------------------------------------

    def _attach(self, reactor: Reactor) -> None:
        if not self._get_request_overridden():
            super()._attach(reactor)
            return
        self._loop = reactor
        self._listener = _GetRequestListener(reactor, self)

    def _on_accept(self, sock: socket.socket, addr: Any) -> None:
        if not self._blocking:
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
        try:
            self._spawn(self._run_worker, (sock, addr, control), control, repr(addr))
        except BaseException:
            sock.close()
            control.close()
            raise

    def _spawn(
        self, target: Callable[..., None], args: tuple[Any, ...], control: Any, what: str
    ) -> None:
        """Start a worker thread known to stop() (any thread)."""
        t = threading.Thread(target=target, args=args, name=f"testservers-worker {what}")
        t.daemon = True
        with self._workers_lock:
            self._workers[t] = _Worker(t, control)
        try:
            t.start()
        except BaseException:
            # No thread, no handler: undo.
            with self._workers_lock:
                self._workers.pop(t, None)
            raise
        self._notify()  # worker_count changed

    # -- the workers (their own threads) ------------------------------------------

    def _run_get_request(self, listener: _GetRequestListener) -> None:
        """Call an overridden ``get_request()``, then serve what it returned."""
        try:
            try:
                sock, addr = self.get_request()
            finally:
                try:
                    listener._reactor.call_on_reactor(listener.resume)
                except ReactorError:
                    pass
        except BlockingIOError:
            return self._forget_worker()  # another accept() took it first
        except OSError as exc:
            self.handle_tls_error(exc, None)
            return self._forget_worker()
        except BaseException as exc:
            self._record_error(exc, "get_request()")
            del exc
            return self._forget_worker()
        try:
            control = socket.fromfd(sock.fileno(), sock.family, sock.type)
        except OSError:
            sock.close()
            return self._forget_worker()
        with self._workers_lock:
            self._workers[threading.current_thread()].control = control
            stopping = self._listener is not listener
        if stopping:  # stop() began meanwhile: it must not miss this socket
            _shutdown(control, socket.SHUT_RD)
        self._run_worker(sock, addr, control, tls=False)

    def _forget_worker(self) -> None:
        with self._workers_lock:
            self._leave()
        self._notify()

    def _leave(self) -> None:
        """Move the calling worker from ``_workers`` to ``_leaving`` (lock held)."""
        me = threading.current_thread()
        if self._workers.pop(me, None) is not None:
            leaving = self._leaving
            if len(leaving) >= _LEAVING_PRUNE_AT:  # a long-running server: drop the ended
                leaving[:] = _running(leaving)
            leaving.append(weakref.ref(me))

    def _run_worker(
        self, sock: socket.socket, addr: Any, control: socket.socket, tls: bool = True
    ) -> None:
        """Handshake if TLS, run the handler, record what it raises, close."""
        request: StreamRequest | None = None
        conn = sock
        try:
            if tls and self.ssl_context is not None:
                wrapped = self._handshake(sock, addr)
                if wrapped is None:
                    return
                conn = wrapped
            if self.RequestHandlerClass is not None:
                self._process_request(conn, addr)
                return
            assert self.handler is not None
            request = StreamRequest(conn, addr, self)
            self.handler(request)
        except BaseException as exc:  # SystemExit too: recorded, never lost (G5)
            try:
                if self.RequestHandlerClass is not None:
                    self._handler_class_error(conn, addr, exc)
                else:
                    self.handle_error(exc, f"request from {addr!r}")
            except BaseException:
                pass
            del exc  # no frame -> traceback -> frame cycle kept alive
        finally:
            self._end_worker(conn, request, control)

    def _process_request(self, request: socket.socket, addr: Any) -> None:
        """socketserver's verify / finish / shutdown sequence for a handler class."""
        try:
            if self.verify_request(request, addr):
                try:
                    self.finish_request(request, addr)
                except BaseException as exc:
                    self._handler_class_error(request, addr, exc)
                    del exc
        finally:
            self.shutdown_request(request)

    def _handler_class_error(self, request: socket.socket, addr: Any, exc: BaseException) -> None:
        # Called in the except block: sys.exc_info() is ``exc``.
        context = f"request from {addr!r}"
        if type(self).handle_error is BaseServer.handle_error:
            self._record_error(exc, context)
            return
        try:
            self.handle_error(request, addr)  # type: ignore[arg-type]
        except BaseException as raised:
            self._record_error(raised, context)
        else:
            with self._cond:
                recorded = any(e is exc for e in self.errors)  # chained to the base
            if not recorded:
                self._record(self.errors, exc)  # the hook reported it

    def _handshake(self, sock: socket.socket, addr: Any) -> socket.socket | None:
        """Complete the server's TLS handshake on ``sock`` (worker thread).

        Returns the ``ssl.SSLSocket`` in blocking mode, or None after
        recording a failure (timeout, bad client hello, peer gone, or
        ``stop()`` shutting the socket down) in ``tls_errors``; ``sock``
        is then closed.
        """
        assert self.ssl_context is not None
        timeout = self.tls_handshake_timeout
        try:
            sock.settimeout(timeout)
            tls = self.ssl_context.wrap_socket(sock, server_side=True)
            tls.settimeout(None)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            sock.close()
            if isinstance(exc, TimeoutError):  # say so as the reactor-side transport does
                exc = TimeoutError(f"TLS handshake not done in {timeout} s")
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
                self._leave()
                # Through the control duplicate: it works even when the
                # handler wrapped (detached) the original socket object.
                _shutdown(control, socket.SHUT_WR)
                conn.close()
                control.close()
            self._notify()

    # -- stopping (stop()'s thread) ---------------------------------------------

    def _join_leaving(self, me: threading.Thread, deadline: float) -> None:
        # A worker past its handler (only closing sockets): a short wait.
        if not self._leaving:
            return
        with self._workers_lock:
            refs, self._leaving = self._leaving, []
        _join_threads(refs, me, deadline)

    def _is_own_worker(self) -> bool:
        return threading.current_thread() in self._workers

    def _join_stragglers(self, deadline: float) -> None:
        # G1 from any thread: a handler that stopped its own server was still
        # running when that stop() returned; a later stop() waits for it
        # (reported if it is still running at the deadline), and for the
        # workers that left since.
        me = threading.current_thread()
        if self._self_stopped:
            with self._workers_lock:
                refs = self._self_stopped
                self._self_stopped = [r for r in refs if r() is me]
            for name in _join_threads(refs, me, deadline):
                self._record_error(
                    HandlerTimeout(
                        f"handler thread {name!r} that stopped its server still "
                        "running after stop() timeout"
                    ),
                    "stop()",
                )
        self._join_leaving(me, deadline)

    def _join_workers(self, deadline: float) -> None:
        me = threading.current_thread()  # a handler may stop its own server
        if not self._workers:
            # Seeing none needs no lock: workers are added on the reactor,
            # whose clean-up (listener closed) stop() has waited for; one
            # added later (a stop() that timed out) would be missed by the
            # snapshot under the lock just as well.
            self._join_leaving(me, deadline)
            return
        with self._workers_lock:
            workers = list(self._workers.values())
            # Unblock recv(): data already received stays readable, then EOF.
            for w in workers:
                if w.control is not None:
                    _shutdown(w.control, socket.SHUT_RD)
        for w in workers:
            if w.thread is not me:
                w.thread.join(max(0.0, deadline - time.monotonic()))
            else:
                with self._workers_lock:
                    self._self_stopped = _running(self._self_stopped)
                    self._self_stopped.append(weakref.ref(me))
        self._join_leaving(me, deadline)
        for w in workers:
            if w.thread is me or not w.thread.is_alive():
                continue
            # A handler stuck in sendall() to a client that never reads is
            # not woken by SHUT_RD: shut the socket down both ways too.
            with self._workers_lock:
                if w.thread in self._workers and w.control is not None:
                    _shutdown(w.control, socket.SHUT_RDWR)
            self._record_error(
                HandlerTimeout(
                    f"handler thread {w.thread.name!r} still running after stop() timeout"
                ),
                "stop()",
            )
