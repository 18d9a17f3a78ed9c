"""The server lifecycle every server kind shares.

States: *bound* (constructed; the socket is bound and listening unless
``bind_and_activate=False``), *started* (registered on the reactor;
``ready`` set) and *stopped* (socket closed; ``ready`` clear).  ``start()``
after ``stop()`` binds again to the same address (the same port, so a client
that kept the address can reconnect) and starts again; it raises the bind
error in the caller if that address has been taken meanwhile.

Which thread runs what:

* ``start()``, ``stop()``, ``wait_for()`` and the ``wait_for_*`` helpers:
  any thread except the reactor thread for ``start()``.
* ``_attach()``, ``_detach()``, ``service_actions()``, protocol callbacks and
  reactor-native handlers: the reactor thread.
* Blocking (socketserver-style) stream handlers: one worker thread per
  connection, joined by ``stop()``.
"""

from __future__ import annotations

import inspect
import math
import os
import socket
import ssl
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from . import _tls
from ._datagram import DatagramTransport
from ._errors import (
    HandlerErrors,
    HandlerTimeout,
    InvalidArgumentError,
    ReactorDied,
    ReactorExited,
    ServerBusyError,
    ServerClosedError,
    ServerStoppedError,
    WaitTimeout,
    safe_repr,
)
from ._loop import Reactor, TimerHandle, acquire, release, release_user, running_reactor
from ._transport import Listener, StreamProtocol, StreamTransport

__all__ = [
    "BaseServer",
    "StreamServerBase",
    "DatagramServerBase",
    "DEFAULT_STOP_TIMEOUT",
    "DEFAULT_WAIT_TIMEOUT",
    "UDP_RCVBUF",
]

T = TypeVar("T")

#: ``stop()`` without a timeout gives up waiting after this many seconds
#: (stuck handlers are then reported), so it never hangs forever.
DEFAULT_STOP_TIMEOUT = 10.0

#: ``stop()`` waits at least this long (seconds) for the reactor to run the
#: server's clean-up, even with ``timeout=0``: an idle reactor needs
#: microseconds, so only a reactor stuck in a handler is reported.
MIN_STOP_WAIT = 0.05

#: Default timeout of ``wait_for()`` and the ``wait_for_*`` helpers.
DEFAULT_WAIT_TIMEOUT = 10.0

#: Records summarized (the newest ones) in a ``wait_for_*`` timeout message.
WAIT_REPORT_ITEMS = 5

#: SO_RCVBUF asked for datagram sockets (the kernel caps it at
#: net.core.rmem_max): bursts from a log shipper must not be dropped while
#: the reactor is busy with another server.
UDP_RCVBUF = 4 * 1024 * 1024

#: Longest ``tls_handshake_timeout`` (a day): a larger value (inf, 1e300)
#: overflows select() and socket.settimeout() when the timer is armed.
_MAX_TLS_HANDSHAKE_TIMEOUT = 86400.0

#: Seconds between a worker's looks at a stop() in progress while it waits for
#: the server's lifecycle lock (its own stop(), from its handler).
_WORKER_STOP_POLL = 0.01

#: Waiting connections accepted in one go when ``stop()`` drains the backlog.
_DRAIN_ACCEPT_LIMIT = 4096

#: Datagrams read at most when ``stop()`` drains a datagram socket; a full
#: 4 MiB receive buffer of minimal datagrams holds fewer than this.
_DRAIN_DATAGRAM_LIMIT = 200_000


class _Lease:
    """One start()'s claim on the shared reactor, released exactly once.

    ``stop()`` may give up waiting for its clean-up callback (a stuck
    handler), and the callback still runs later: whichever side gets here
    first releases, the other does nothing, so the user count of the shared
    reactor stays right and no other server loses its loop.
    """

    __slots__ = ("reactor", "_token")

    def __init__(self, reactor: Reactor) -> None:
        self.reactor = reactor
        # One token, popped by whichever side releases first: list.pop() is
        # atomic, so no lock needs making per start().
        self._token = [True]

    def release(self, join_timeout: float | None = None) -> bool:
        """Release; True if the loop is exiting because of it (see ``release``)."""
        if not self._take():
            return False
        return release(self.reactor, join_timeout)

    def release_user(self) -> bool:
        """Release without stopping the loop; True if the caller must make it exit."""
        if not self._take():
            return False
        return release_user(self.reactor)

    def _take(self) -> bool:
        try:
            return self._token.pop()
        except IndexError:
            return False


_GENERATOR_FLAGS = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def release_traceback_frames(excs: list[BaseException]) -> None:
    """Clear the locals of the finished frames the tracebacks of ``excs`` hold.

    A recorded traceback keeps its frames, and through ``f_back`` every
    caller up to the thread's ``run`` frame, whose ``self`` is the Thread:
    the server (reached from a handler's locals) and the reactor's Thread
    then stay alive in a reference cycle until the cyclic GC runs.  Frames
    still executing (raise RuntimeError) and generator frames (clearing a
    suspended one would close it) are left alone.  The tracebacks still
    print file, line and code; only their local variables are dropped.
    """
    seen: set[int] = set()
    todo = list(excs)
    while todo:
        exc = todo.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        frames = []
        tb = exc.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        caller = frames[0].f_back if frames else None
        while caller is not None:
            frames.append(caller)
            caller = caller.f_back
        for frame in frames:
            if frame.f_code.co_flags & _GENERATOR_FLAGS:
                continue
            try:
                frame.clear()
            except RuntimeError:
                pass  # still executing
        todo.extend(e for e in (exc.__cause__, exc.__context__) if e is not None)


def _is_path(addr: object) -> bool:
    return isinstance(addr, (str, bytes, os.PathLike))


class BaseServer:
    """Lifecycle, address handling, ticks and error recording.

    :param addr: ``(host, port)``; an IPv6 literal host selects AF_INET6; a
        filesystem path (str, bytes or path-like) selects AF_UNIX.  ``None``
        means ``("127.0.0.1", 0)`` (or a fresh temporary path for Unix
        classes).
    :param poll_interval: period in seconds of :meth:`service_actions`.  It
        never delays ``stop()``.  Ticks are only scheduled when a subclass
        overrides ``service_actions``, so an idle server makes no wake-ups.
        ``None`` or 0 means no ticks.
    :param bind_and_activate: bind and listen in the constructor (as
        socketserver does); if False, call :meth:`server_bind` and
        :meth:`server_activate` yourself, or just :meth:`start`.
    :param idle_timeout: close (abort) stream connections silent for this
        many seconds, whatever ``poll_interval`` is: a per-server timer armed
        only while connections are open fires when the oldest can be idle.
    :param raise_errors: default of ``stop(raise_errors=...)``.
    :param report_errors: print handler errors on stderr (as socketserver
        does) in addition to recording them in :attr:`errors`.
    """

    #: Address family used for ``(host, port)`` addresses; callers may set
    #: it on the class (CPython's IPv6 syslog test does).
    address_family: ClassVar[int] = socket.AF_INET
    socket_type: ClassVar[int] = socket.SOCK_STREAM
    allow_reuse_address: ClassVar[bool] = True
    request_queue_size: ClassVar[int] = 128
    __test__ = False  # pytest must not collect classes named Test*

    def __init__(
        self,
        addr: Any = None,
        *,
        poll_interval: float | None = 0.5,
        bind_and_activate: bool = True,
        idle_timeout: float | None = None,
        raise_errors: bool = False,
        report_errors: bool = True,
    ) -> None:
        self.poll_interval = poll_interval
        self.idle_timeout = idle_timeout
        self.raise_errors = raise_errors
        self.report_errors = report_errors
        #: Set while the server is started (registered on the reactor).
        self.ready = threading.Event()
        #: Every handler exception, oldest first (guarantee G5).
        self.errors: list[BaseException] = []
        #: TLS handshake failures: recorded, never fatal.
        self.tls_errors: list[BaseException] = []
        #: accept() failures for lack of resources (EMFILE...), one per episode.
        self.accept_errors: list[OSError] = []
        self._raised_errors = 0
        self._cond_lock = threading.RLock()  # _cond's lock, taken directly by _notify
        self._cond = threading.Condition(self._cond_lock)
        self._lifecycle = threading.Lock()
        self._reactor: Reactor | None = None
        self._lease: _Lease | None = None
        self._detach_pending = False
        # The loop a stop() made on its own thread told to exit: that stop
        # could not join it, so the next stop() from another thread does.
        # Weak: a server nobody stops again must not keep the loop's Thread
        # referenced (threading_cleanup() counts it as dangling).
        self._exiting_reactor: weakref.ref[Reactor] | None = None
        self._stopping = False
        #: Bumped (under ``_cond``) by every stop() of a started server, so
        #: that a wait_for() begun before it raises ServerStoppedError.
        self._stops = 0
        self._bound = False
        self._listening = False
        self._tick_handle: TimerHandle | None = None
        self._tick_base = 0.0
        self._tick_n = 0
        self._unix_inode: tuple[int, int] | None = None
        self._temp_dir: str | None = None
        #: ``(host, port)`` (IPv6: ``(host, port, flowinfo, scope_id)``) or,
        #: for a Unix socket, its path; the real address once bound.
        self.server_address: Any
        self.family, self.server_address = self._resolve_address(addr)
        #: The bound port (the real one with port 0); before binding
        #: (``bind_and_activate=False``) the requested one; 0 for a Unix socket.
        self.port: int = 0 if self.family == socket.AF_UNIX else int(self.server_address[1])
        #: The server socket; created here (as socketserver does, so options
        #: can be set before ``server_bind()``), None once closed.
        self.socket: socket.socket | None = socket.socket(self.family, self.socket_type)
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except BaseException:
                self.server_close()
                raise

    # -- addresses ----------------------------------------------------------

    def _resolve_address(self, addr: Any) -> tuple[int, Any]:
        family = type(self).address_family
        if _is_path(addr):
            return socket.AF_UNIX, os.fsdecode(addr)
        if family == socket.AF_UNIX:
            if addr is None:
                import tempfile

                # A private directory with a short name (sun_path holds
                # ~108 bytes); removed again when the server closes.
                self._temp_dir = tempfile.mkdtemp(prefix="ts-")
                return socket.AF_UNIX, os.path.join(self._temp_dir, "sock")
            raise TypeError(f"a Unix socket server needs a filesystem path, not {addr!r}")
        if addr is None:
            addr = ("127.0.0.1", 0)
        host = addr[0]
        if family == socket.AF_INET and isinstance(host, str) and ":" in host:
            family = socket.AF_INET6
        return family, tuple(addr)

    @property
    def url_host(self) -> str:
        """The host part for a URL: IPv6 literals in brackets."""
        host = str(self.server_address[0])
        return f"[{host}]" if ":" in host else host

    # -- socketserver-compatible socket steps -------------------------------

    def server_bind(self) -> None:
        """Create the socket and bind it; ``server_address``/``port`` get the real values."""
        if self.socket is None:
            self.socket = socket.socket(self.family, self.socket_type)
        sock = self.socket
        if self._temp_dir is not None and not os.path.isdir(self._temp_dir):
            os.mkdir(self._temp_dir, 0o700)  # restarted after stop() removed it
        if self.family != socket.AF_UNIX and self.socket_type == socket.SOCK_STREAM:
            if self.allow_reuse_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.socket_type == socket.SOCK_DGRAM:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
            except OSError:
                pass
        sock.bind(self.server_address)
        self._bound = True
        self.server_address = sock.getsockname()
        if self.family == socket.AF_UNIX:
            st = os.stat(self.server_address)
            self._unix_inode = (st.st_dev, st.st_ino)
        else:
            self.port = self.server_address[1]

    def server_activate(self) -> None:
        """Listen (stream servers); nothing for datagram servers."""
        assert self.socket is not None
        if self.socket_type == socket.SOCK_STREAM:
            self.socket.listen(self.request_queue_size)
        self._listening = True

    def server_close(self) -> None:
        """Close the socket and remove a Unix socket file this server made."""
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        self._bound = self._listening = False
        self._unlink_unix_path()

    def _unlink_unix_path(self) -> None:
        if self._unix_inode is not None:
            try:
                st = os.stat(self.server_address)
                if (st.st_dev, st.st_ino) == self._unix_inode:
                    os.unlink(self.server_address)
            except OSError:
                pass
            self._unix_inode = None
        if self._temp_dir is not None:
            try:
                os.rmdir(self._temp_dir)
            except OSError:
                pass

    def fileno(self) -> int:
        if self.socket is None:
            raise ServerClosedError("server socket is closed")
        return self.socket.fileno()

    # -- lifecycle ----------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._reactor is not None

    def start(self) -> None:
        """Register the server on the shared reactor; return once it serves.

        Binds first if needed (after ``stop()``, or with
        ``bind_and_activate=False``), so bind errors such as ``EADDRINUSE``
        raise here, in the caller's thread.  Sets :attr:`ready`.  A no-op on
        a started server.

        :raises OSError: bind or listen failed.
        :raises ReactorDied: the reactor thread died while registering.
        :raises ServerBusyError: a previous ``stop()`` timed out and its
            clean-up is still queued on a busy reactor.
        """
        with self._lifecycle:
            if self._reactor is not None:
                if not self._reactor.dead:
                    return
                # The loop died under us: clean up, then start on a new one.
                self._detach_after_death()
                self._drop_reactor()
            if self._detach_pending:
                raise ServerBusyError(
                    "the previous stop() timed out and its clean-up is still queued on a "
                    "busy reactor; start() again once it has run"
                )
            if self.socket is None:
                self.socket = socket.socket(self.family, self.socket_type)
            try:
                if not self._bound:
                    self.server_bind()
                if not self._listening:
                    self.server_activate()
            except BaseException:
                self.server_close()
                raise
            # A cold start registers in this thread before the loop thread
            # starts (no hand-off); a warm one runs on the loop.
            try:
                reactor = acquire(self._attach_on_reactor, timeout=DEFAULT_STOP_TIMEOUT)
            except BaseException:
                self.server_close()
                raise
            lease = _Lease(reactor)
            self._reactor, self._lease = reactor, lease
            reactor.add_death_hook(self._on_reactor_death)
            self.ready.set()

    def _drop_reactor(self) -> None:
        reactor, lease = self._reactor, self._lease
        self._reactor = self._lease = None
        if reactor is not None:
            reactor.remove_death_hook(self._on_reactor_death)
        if lease is not None:
            lease.release(join_timeout=DEFAULT_STOP_TIMEOUT)

    def _on_reactor_death(self) -> None:
        # On the dying reactor thread, before its selector closes: close
        # every socket of this server at once, so clients see a reset or
        # EOF instead of a kernel that keeps accepting for nobody.
        self.ready.clear()
        try:
            self._detach_after_death()
        except Exception:
            traceback.print_exc(file=sys.stderr)
        self._notify()

    def stop(self, timeout: float | None = None, *, raise_errors: bool | None = None) -> None:
        """Stop serving, close every socket of this server, and return.

        Wakes the reactor (no polling), so its latency does not depend on
        ``poll_interval``.  Before closing, bytes, connections and datagrams
        that had already reached the server are read and handled.  Worker
        threads of blocking handlers are unblocked (their sockets are shut
        down for reading) and joined.  Whatever is still running when
        ``timeout`` (default :data:`DEFAULT_STOP_TIMEOUT`) runs out is
        recorded as :class:`HandlerTimeout` in :attr:`errors` and reported:
        a stuck worker thread gets its socket shut down both ways and is
        left behind (a daemon); a reactor stuck in some handler gets this
        server's clean-up queued behind it, which closes its sockets when
        the handler returns (``start()`` refuses until then).

        Idempotent; stopping a server that was never started just closes its
        socket.  Called on the reactor thread (from a handler) while another
        thread is stopping the same server, it returns at once and leaves the
        work to that stop.  With ``raise_errors`` (default: the constructor's), raises
        :class:`HandlerErrors` if handlers failed since the last raise.
        """
        if timeout is None:
            timeout = DEFAULT_STOP_TIMEOUT
        if not self._lifecycle.acquire(False):  # positional: no keyword parsing
            loop = running_reactor()
            if loop is not None:
                # Another thread is starting or stopping this server and may
                # be waiting on this very thread: blocking here would stall
                # both for the whole timeout.  A stop in progress does our
                # work; a start in progress is stopped once it has finished.
                if not self._stopping:
                    loop.call_soon(self.stop, timeout)
                return None
            if self._is_own_worker():
                # A handler of this server on its worker thread: a stop in
                # progress joins this very thread, so waiting for its lock
                # would stall both until its timeout.  That stop does our
                # work; a start in progress is waited for.
                while not self._lifecycle.acquire(timeout=_WORKER_STOP_POLL):
                    if self._stopping:
                        return None
            else:
                self._lifecycle.acquire()
        try:
            self._stopping = True
            self._stop_locked(timeout)
        finally:
            self._stopping = False
            self._lifecycle.release()
        # The handlers' frames are finished now: the recorded tracebacks
        # must not keep this server or the reactor's Thread in a cycle.
        if self.errors or self.tls_errors or self.accept_errors:
            with self._cond:
                recorded = [*self.errors, *self.tls_errors, *self.accept_errors]
            release_traceback_frames(recorded)
        self._maybe_raise(raise_errors)

    def _join_exiting_reactor(self, timeout: float) -> None:
        # G1 from any thread: a stop() that ran on the loop thread (a handler
        # stopping the last server) made the loop exit without joining it; a
        # later stop() from another thread returns only once it has ended.
        ref = self._exiting_reactor
        exiting = ref() if ref is not None else None
        if exiting is None:
            self._exiting_reactor = None
        elif not exiting.in_reactor_thread():
            self._exiting_reactor = None
            exiting.join(timeout)

    def _stop_locked(self, timeout: float) -> None:
        # Timeout 0 still gives an idle reactor MIN_STOP_WAIT to run the
        # clean-up, so that it is not reported as stuck.
        wait = max(timeout, MIN_STOP_WAIT)
        deadline = time.monotonic() + wait
        reactor, lease = self._reactor, self._lease
        self._reactor = self._lease = None
        self.ready.clear()
        if reactor is None or lease is None:
            self._join_exiting_reactor(wait)
            self._join_stragglers(deadline)
            if not self._detach_pending:
                self.server_close()
            return
        reactor.remove_death_hook(self._on_reactor_death)
        # Released here, exactly once, even if the clean-up below is stuck:
        # the last server makes the loop exit right after its clean-up and
        # waits by joining the thread (one hand-off, as a bare loop's stop).
        last = lease.release_user()

        self._detach_pending = True
        try:
            reactor.run_sync(self._detach_queued, timeout=wait, settle=True, exit=last)
        except (ReactorDied, ReactorExited):
            self._detach_pending = False
            self._detach_after_death()
        except TimeoutError:
            # The callback stays queued and will close our sockets (and,
            # for the last server, let the loop exit) when the loop gets to it.
            self._record_error(
                HandlerTimeout(
                    f"the reactor was busy for {wait} s (a handler running on the "
                    "reactor thread is stuck?); this server's sockets close when it returns"
                ),
                "stop()",
            )
        if last and reactor.in_reactor_thread():
            self._exiting_reactor = weakref.ref(reactor)
        self._join_workers(deadline)
        self._unlink_unix_path()
        with self._cond_lock:  # as _notify(): a Condition's own enter/exit only with waiters
            self._stops += 1
            if self._cond._waiters:  # type: ignore[attr-defined]
                self._cond.notify_all()

    def _maybe_raise(self, raise_errors: bool | None) -> None:
        if raise_errors is None:
            raise_errors = self.raise_errors
        if raise_errors:
            self.raise_errors_now()

    def raise_errors_now(self) -> None:
        """Raise :class:`HandlerErrors` for errors recorded since the last raise."""
        with self._cond:
            new = self.errors[self._raised_errors :]
            self._raised_errors = len(self.errors)
        if new:
            raise HandlerErrors(new) from new[0]

    def __enter__(self: T) -> T:
        self.start()  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Re-raise handler errors only if the body itself succeeded.
        self.stop(raise_errors=self.raise_errors and exc_info[0] is None)

    def __repr__(self) -> str:
        state = "started" if self.started else "stopped"
        return f"<{type(self).__name__} {self.server_address!r} {state}>"

    # -- hooks for subclasses -----------------------------------------------

    def service_actions(self) -> None:
        """Called every ``poll_interval`` seconds on the reactor thread.

        Override it to do periodic work; only then are ticks scheduled.
        """

    def _attach(self, reactor: Reactor) -> None:
        """Register the server's sockets on ``reactor`` (reactor thread)."""
        raise NotImplementedError

    def _detach(self) -> None:
        """Handle what already arrived, then close every socket (reactor thread)."""
        raise NotImplementedError

    def _detach_after_death(self) -> None:
        """The reactor died: close what we own from the caller's thread."""
        self.server_close()

    def _join_workers(self, deadline: float) -> None:
        """Join worker threads (servers with blocking handlers override it)."""

    def _join_stragglers(self, deadline: float) -> None:
        """stop() of a stopped server: join workers an earlier stop() could not."""

    def _is_own_worker(self) -> bool:
        """True on a worker thread of this server (servers with workers override it)."""
        return False

    # -- reactor-side lifecycle -----------------------------------------------

    def _attach_on_reactor(self, reactor: Reactor) -> None:
        self._attach(reactor)
        pi = self.poll_interval
        # Idle connections are swept by their own timer (StreamServerBase),
        # whatever poll_interval is.
        needs_tick = type(self).service_actions is not BaseServer.service_actions
        if needs_tick and pi is not None and pi > 0:
            self._tick_base = time.monotonic()
            self._tick_n = 1
            self._tick_handle = reactor.call_at(self._tick_base + pi, self._tick, reactor)

    def _detach_queued(self) -> None:
        # stop()'s clean-up, on the loop thread.  run_sync(settle=True)
        # returns once the connection_lost callbacks this queues have run
        # too, so every protocol of this server has heard of the close when
        # stop() returns.
        try:
            self._detach_on_reactor()
        finally:
            self._detach_pending = False

    def _detach_on_reactor(self) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        try:
            self._detach()
        finally:
            self.server_close()

    def _tick(self, reactor: Reactor) -> None:
        pi = self.poll_interval
        assert pi is not None
        now = time.monotonic()
        try:
            self.service_actions()
        except Exception as exc:
            self.handle_error(exc, "service_actions()")
        # Next deadline on the base + n * interval grid: no drift.  A next
        # slot that is already due but less than a period late (epoll waits
        # in whole milliseconds, so at 1 ms every wait overshoots a little)
        # fires at once; only after an overrun of a whole period or more are
        # the missed ticks skipped, instead of firing a burst.
        n = self._tick_n + 1
        if self._tick_base + (n + 1) * pi <= now:
            n = math.floor((now - self._tick_base) / pi) + 1
        self._tick_n = n
        if self._tick_handle is not None:
            self._tick_handle = reactor.call_at(self._tick_base + n * pi, self._tick, reactor)

    # -- errors ---------------------------------------------------------------

    def handle_error(self, exc: BaseException, context: str) -> None:
        """Record a handler exception and report it on stderr (G5).

        Runs on whichever thread the handler ran on.  Never raises.  Also
        takes socketserver's ``handle_error(request, client_address)`` call
        (an override chaining up to it), from an ``except`` block: the
        exception being handled is recorded.
        """
        if not isinstance(exc, BaseException):
            current = sys.exc_info()[1]
            if current is None:
                return
            exc, context = current, f"request from {context!r}"
        self._record_error(exc, context)

    def _record_error(self, exc: BaseException, context: str) -> None:
        self._record(self.errors, exc)
        if self.report_errors:
            try:
                sys.stderr.write(
                    f"{'-' * 40}\n{type(self).__name__} {self.server_address!r}: "
                    f"exception during {context}:\n"
                )
                traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
                sys.stderr.write("-" * 40 + "\n")
            except Exception:
                pass

    def handle_accept_error(self, exc: OSError) -> None:
        """Record that accept() ran out of resources (once per episode).

        Not a handler error: it goes to :attr:`accept_errors` and stderr, not
        to :attr:`errors`.  The listener retries by itself.
        """
        self._record(self.accept_errors, exc)
        if self.report_errors:
            sys.stderr.write(
                f"{type(self).__name__} {self.server_address!r}: accept() failed ({exc}); "
                "not accepting for a moment, then retrying\n"
            )

    def handle_tls_error(self, exc: BaseException, peer: object) -> None:
        """Record a failed TLS handshake in :attr:`tls_errors` (not fatal)."""
        self._record(self.tls_errors, exc)

    # -- waiting for what arrives --------------------------------------------

    def _notify(self) -> None:
        """Wake threads blocked in :meth:`wait_for` (call after recording)."""
        # Called per chunk, line or datagram: with nobody waiting it only
        # takes the lock (the C-level RLock itself, not the Condition's
        # Python-level __enter__).  The check must be made holding the lock:
        # a waiter evaluates its predicate and joins _waiters in one hold.
        with self._cond_lock:
            if self._cond._waiters:  # type: ignore[attr-defined]
                self._cond.notify_all()

    def _record(self, records: list[T], item: T) -> None:
        """Append ``item`` to one of the server's record lists and wake waiters."""
        with self._cond:
            records.append(item)
            self._cond.notify_all()

    def _wait_for_items(
        self,
        records: Callable[[], list[T]],
        count: int,
        timeout: float | None,
        what: str,
        describe: Callable[[T], str] | None = None,
    ) -> list[T]:
        """Wait until ``records()`` holds ``count`` items; return the first ``count``.

        On timeout the error also says how many arrived and summarizes the
        last :data:`WAIT_REPORT_ITEMS` with ``describe`` (default: a cut ``repr``).
        """

        def enough() -> list[T] | None:
            items = records()
            return items[:count] if len(items) >= count else None

        def report() -> str:
            items = list(records())
            text = f"{len(items)} arrived"
            last = items[-WAIT_REPORT_ITEMS:]
            for item in last:
                try:
                    line = describe(item) if describe is not None else repr(item)
                except Exception:  # noqa: BLE001 - a report must not fail the wait
                    line = f"<{type(item).__name__}>"
                text += f"\n  {line[:200]}"
            return text

        return self.wait_for(enough, timeout, f"{count} {what}", report=report)

    def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        what: str = "condition",
        *,
        report: Callable[[], str] | None = None,
    ) -> T:
        """Block until ``predicate()`` is true and return its value.

        The predicate is re-evaluated whenever the server records something.

        :raises WaitTimeout: (a ``TimeoutError``) naming the server and its
            address, ``what`` was awaited and, with ``report``, what
            ``report()`` says arrived, if ``timeout`` passes first.
        :raises ReactorDied: at once if the reactor thread dies meanwhile
            (unless the predicate is already true).
        :raises ServerStoppedError: at once if the server was started when
            the wait began and ``stop()`` (from any thread) finishes before
            the predicate is true; the predicate is checked one last time
            after everything that reached the server was handled.
        """
        reactor = self._reactor
        result: T | None = None
        with self._cond:
            stops = self._stops
        watch_stop = reactor is not None

        def stopped() -> bool:
            return watch_stop and self._stops != stops

        def done() -> bool:
            nonlocal result
            result = predicate()
            return bool(result) or (reactor is not None and reactor.dead) or stopped()

        with self._cond:
            self._cond.wait_for(done, timeout)
            was_stopped = stopped()
        if not result and reactor is not None and reactor.dead:
            raise reactor._died_error()
        if not result and was_stopped:
            raise ServerStoppedError(
                f"{type(self).__name__}: the server was stopped while waiting for {what}"
            )
        if not result:
            msg = f"{self._label()}: timed out after {timeout} s waiting for {what}"
            if report is not None:
                try:
                    msg += f"; {report()}"
                except Exception as exc:  # noqa: BLE001 - never hide the timeout
                    msg += f"; (report failed: {safe_repr(exc)})"
            raise WaitTimeout(msg)
        return result

    def _label(self) -> str:
        """``"HTTPServer ('127.0.0.1', 8080)"``: names the server in messages."""
        return f"{type(self).__name__} {self.server_address!r}"


class StreamServerBase(BaseServer):
    """A listening stream server whose connections run reactor-side protocols.

    Subclasses implement :meth:`make_protocol`.  ``ssl_context`` makes every
    accepted connection TLS (handshake driven by the reactor, failures go to
    :attr:`tls_errors`).  ``tls_handshake_timeout`` is how many seconds a
    client may take over its handshake (implicit TLS or STARTTLS) before it
    is dropped and a ``TimeoutError`` stating that value is recorded in
    :attr:`tls_errors` (default: :data:`reactor.TLS_HANDSHAKE_TIMEOUT`; an
    int or float > 0 and at most a day, else :class:`InvalidArgumentError`).
    """

    def __init__(
        self,
        addr: Any = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        tls_handshake_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.ssl_context = ssl_context
        if tls_handshake_timeout is None:
            tls_handshake_timeout = _tls.TLS_HANDSHAKE_TIMEOUT
        elif type(tls_handshake_timeout) not in (int, float) or not (
            0 < tls_handshake_timeout <= _MAX_TLS_HANDSHAKE_TIMEOUT
        ):
            # Not inf or 1e300: the handshake timer would overflow select()
            # (and the worker's settimeout()), killing the reactor thread.
            raise InvalidArgumentError(
                f"tls_handshake_timeout must be a number of seconds > 0 and <= "
                f"{_MAX_TLS_HANDSHAKE_TIMEOUT:g}, not {tls_handshake_timeout!r}"
            )
        #: Seconds a client may take over its TLS handshake (read when one starts).
        self.tls_handshake_timeout: float = tls_handshake_timeout
        self._listener: Listener | None = None
        self._transports: set[StreamTransport] = set()
        self._idle_handle: TimerHandle | None = None
        self._fault_set: Any = None  # made by the ``faults`` property on first use
        super().__init__(addr, **kwargs)

    @property
    def faults(self) -> Any:
        """Transport faults of this server (a :class:`reactor.TransportFaults`; made on use)."""
        if self._fault_set is None:
            self._fault_set = self._make_faults()
        return self._fault_set

    def _make_faults(self) -> Any:
        from ._faults import TransportFaults

        return TransportFaults(self)

    def make_protocol(self, addr: Any) -> StreamProtocol:
        """Return the protocol object for a new connection (reactor thread)."""
        raise NotImplementedError

    def _on_accept(self, sock: socket.socket, addr: Any) -> None:
        assert self._loop is not None
        proto = self.make_protocol(addr)
        transport = StreamTransport(
            self._loop,
            sock,
            proto,
            self,
            ssl_context=self.ssl_context,
            on_closed=self._on_transport_closed,
        )
        if not transport.is_closing():
            self._transports.add(transport)
            if self._fault_set is not None:
                self._fault_set.connection_opened(transport)
            if self.idle_timeout is not None and self._idle_handle is None:
                self._idle_handle = self._loop.call_at(
                    transport.last_activity + self.idle_timeout, self._idle_check
                )
        self._notify()  # wait_for* predicates re-check on every open

    def _on_transport_closed(self, transport: StreamTransport) -> None:
        self._transports.discard(transport)
        self._notify()  # ... and on every close

    def _idle_check(self) -> None:
        # Reactor thread.  One timer per server, armed only while it has
        # connections: it fires at the earliest moment a connection can have
        # been idle for idle_timeout, closes those that were, and re-arms for
        # the next candidate.  An idle server makes no wake-ups.
        self._idle_handle = None
        idle = self.idle_timeout
        loop = self._loop
        if idle is None or loop is None:
            return
        now = time.monotonic()
        first: float | None = None
        for t in list(self._transports):
            due = t.last_activity + idle
            if due <= now:
                t.abort()
            elif first is None or due < first:
                first = due
        if first is not None:
            self._idle_handle = loop.call_at(first, self._idle_check)

    _loop: Reactor | None = None

    @property
    def connection_count(self) -> int:
        """Open connections right now (a snapshot)."""
        return len(self._transports)

    def _attach(self, reactor: Reactor) -> None:
        assert self.socket is not None
        self._loop = reactor
        self._listener = Listener(
            reactor, self.socket, self._on_accept, self, self.request_queue_size
        )

    def _cancel_idle_timer(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    def _detach(self) -> None:
        if self._idle_handle is not None:
            self._cancel_idle_timer()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.accept_pending(_DRAIN_ACCEPT_LIMIT)
        for t in list(self._transports):
            t.drain_now()
        self._before_close()
        if listener is not None:
            listener.close()
        self.socket = None  # the listener closed it
        self._loop = None
        for t in list(self._transports):
            t.close()  # sends what is buffered if the socket takes it now
            t.abort()
        self._transports.clear()

    def _before_close(self) -> None:
        """Hook for ``stop()``: what arrived is handled; connections close next."""

    def _detach_after_death(self) -> None:
        self._idle_handle = None
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        for t in list(self._transports):
            t.abort()
        self._transports.clear()
        self._loop = None
        self.server_close()


class DatagramServerBase(BaseServer):
    """A bound datagram socket whose datagrams are handled on the reactor."""

    socket_type: ClassVar[int] = socket.SOCK_DGRAM

    def __init__(self, addr: Any = None, **kwargs: Any) -> None:
        self._transport: DatagramTransport | None = None
        super().__init__(addr, **kwargs)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """Handle one datagram (reactor thread)."""
        raise NotImplementedError

    def sendto(self, data: bytes, addr: Any) -> None:
        """Send a datagram from the server socket (reactor thread)."""
        if self._transport is not None:
            self._transport.sendto(data, addr)

    def _attach(self, reactor: Reactor) -> None:
        assert self.socket is not None
        self._transport = DatagramTransport(reactor, self.socket, self, self)

    def _detach_after_death(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        self.server_close()

    def _detach(self) -> None:
        transport = self._transport
        if transport is not None:
            # Everything that reached the socket before stop() is handled
            # (bounded: a flood that goes on during stop cannot hold it),
            # and the replies to it are sent while the socket is still ours.
            transport.read_pending(_DRAIN_DATAGRAM_LIMIT)
            transport.flush_queue()
            self._transport = None
            transport.close()
        self.socket = None
