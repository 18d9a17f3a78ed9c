"""The reactor: one thread, one ``selectors`` loop, every server's sockets.

Theory of operation
-------------------

A :class:`Reactor` owns a selector, a deque of ready callbacks, a heap of
timers and a wakeup socketpair.  Its thread runs :meth:`Reactor._run_once`
until told to exit.  One pass is:

1. compute the select timeout: 0 if callbacks are ready, else the time to the
   earliest live timer, else ``None`` (block until a socket or the wakeup
   socket becomes readable: an idle reactor makes no wake-ups at all);
2. ``select()`` and dispatch every ready key's callback;
3. move the timers that are due to the ready deque;
4. run exactly the callbacks that were ready when step 4 began, so a
   callback that schedules another cannot starve the sockets.

Other threads never touch the selector.  They call
:meth:`call_soon_threadsafe`, which appends to the deque (``deque.append`` is
atomic) and writes one byte to the wakeup socket; a full socket buffer means
a wakeup is already pending, so ``BlockingIOError`` is ignored.  The loop
drains the wakeup socket when it becomes readable.  Nothing ever polls.

Every callback runs on the reactor thread.  An exception escaping a callback
is reported on stderr and the loop goes on: handler errors are attributed to
their server by the transports before they get here, so this is the last
line of defence, not the normal path.  If the loop itself fails (a
``BaseException``, a broken selector), the thread records the cause, fails
every caller blocked in :meth:`run_sync` with :class:`ReactorDied`, and exits.

The process-wide reactor is shared by reference counting: :func:`acquire`
starts the thread with the first server, :func:`release` stops and joins it
when the last server stops (guarantee G1).
"""

from __future__ import annotations

import heapq
import itertools
import os
import selectors
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from ._errors import ReactorDied, ReactorError, ReactorExited, WaitTimeout

__all__ = ["Reactor", "TimerHandle", "acquire", "release", "current_reactor"]

T = TypeVar("T")

#: How many cancelled timers may sit on the heap before it is rebuilt
#: without them (the lazy-cancellation compaction of asyncio and trio).
_COMPACT_CANCELLED_AT = 256

#: Name of the reactor thread, so that thread dumps and leak checkers say
#: what it is.
THREAD_NAME = "testservers-reactor"


class TimerHandle:
    """A callback scheduled on the reactor's timer heap.

    :meth:`cancel` may be called from the reactor thread at any time before
    the callback runs; cancelled entries are dropped lazily.
    """

    __slots__ = ("when", "_callback", "_args", "cancelled", "_reactor")

    def __init__(
        self, reactor: Reactor, when: float, callback: Callable[..., object], args: tuple[Any, ...]
    ) -> None:
        self._reactor = reactor
        self.when = when
        self._callback = callback
        self._args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Stop the callback from running; harmless if it already ran."""
        if not self.cancelled:
            self.cancelled = True
            self._reactor._timer_cancelled()

    def _run(self) -> None:
        if not self.cancelled:
            self.cancelled = True  # a timer fires at most once
            self._callback(*self._args)


class _Waiter:
    """A one-shot result slot for :meth:`Reactor.run_sync`."""

    __slots__ = ("event", "result", "exc")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.result: Any = None
        self.exc: BaseException | None = None


class Reactor:
    """One selector loop on one thread.

    Methods whose docstring says *reactor thread only* must be called from
    callbacks running on the loop; the others are safe from any thread.
    """

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._ready: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._cancelled_timers = 0
        self._seq = itertools.count()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._drain_wakeup)
        self._thread: threading.Thread | None = None
        self._thread_id: int | None = None
        self._exit_requested = False
        self._closed = False
        #: The exception that killed the loop thread, if it died.
        self.death_cause: BaseException | None = None
        self.dead = False
        self._waiters: set[_Waiter] = set()
        self._waiters_lock = threading.Lock()
        self._death_hooks: set[Callable[[], object]] = set()
        #: Number of passes through the loop; tests and benchmarks read it
        #: to prove that an idle reactor does not wake up.
        self.iterations = 0

    # -- thread lifecycle ---------------------------------------------------

    def start(self) -> None:
        """Start the loop thread (it is a daemon thread named ``testservers-reactor``)."""
        t = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread = t
        t.start()

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def in_reactor_thread(self) -> bool:
        """True when called from the loop thread itself."""
        return threading.get_ident() == self._thread_id

    def request_exit(self) -> None:
        """Ask the loop to exit after its current pass (any thread)."""
        self._exit_requested = True
        self._wakeup()

    def add_death_hook(self, hook: Callable[[], object]) -> None:
        """Call ``hook()`` (on the dying thread) if the loop thread dies.

        Servers use it to wake their own waiters, which then raise
        :class:`ReactorDied` instead of waiting out their timeout.  Remove
        it with :meth:`remove_death_hook` when no longer interested, or the
        reactor keeps the hook's owner alive.
        """
        with self._waiters_lock:
            self._death_hooks.add(hook)

    def remove_death_hook(self, hook: Callable[[], object]) -> None:
        """Forget a hook given to :meth:`add_death_hook` (harmless if absent)."""
        with self._waiters_lock:
            self._death_hooks.discard(hook)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the loop thread to exit (not from the loop thread)."""
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
            if not t.is_alive():
                # Drop the reference: CPython's threading_cleanup() counts
                # stopped threads that are still referenced as dangling.
                self._thread = None

    # -- scheduling ---------------------------------------------------------

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the next pass (reactor thread only)."""
        self._ready.append((callback, args))

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the reactor thread, from any thread.

        :raises ReactorDied: if the loop thread has died.
        :raises ReactorExited: if the loop thread has exited normally.
        """
        if self.dead or self._closed:
            raise self._died_error()
        self._ready.append((callback, args))
        if not self.in_reactor_thread():
            self._wakeup()

    def call_on_reactor(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the reactor thread, from any thread.

        On the reactor thread it runs now, before this returns (so writes
        keep their order with the caller's other reactor work); from any
        other thread it is queued with :meth:`call_soon_threadsafe`.

        :raises ReactorDied: if the loop thread has died (other threads).
        :raises ReactorExited: if it has exited normally (other threads).
        """
        if self.in_reactor_thread():
            callback(*args)
        else:
            self.call_soon_threadsafe(callback, *args)

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` at ``time.monotonic()`` value ``when``.

        Reactor thread only.  Returns a handle whose ``cancel()`` unschedules it.
        """
        handle = TimerHandle(self, when, callback, args)
        heapq.heappush(self._timers, (when, next(self._seq), handle))
        return handle

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` after ``delay`` seconds (reactor thread only)."""
        return self.call_at(time.monotonic() + delay, callback, *args)

    def run_sync(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """Run ``fn(*args)`` on the reactor thread and return its result.

        Called from the reactor thread itself, it simply calls ``fn``.
        Otherwise it blocks the caller until ``fn`` has run, and re-raises
        what ``fn`` raised.

        :raises WaitTimeout: (a ``TimeoutError``) if ``fn`` has not finished
            within ``timeout``.
        :raises ReactorDied: if the loop thread dies before running ``fn``.
        :raises ReactorExited: if the loop thread had exited normally.
        """
        if self.in_reactor_thread():
            return fn(*args)
        waiter = _Waiter()

        def call() -> None:
            try:
                waiter.result = fn(*args)
            except BaseException as exc:  # handed to the waiting thread
                waiter.exc = exc
            finally:
                with self._waiters_lock:
                    self._waiters.discard(waiter)
                waiter.event.set()

        with self._waiters_lock:
            if self.dead or self._closed:
                raise self._died_error()
            self._waiters.add(waiter)
        self.call_soon_threadsafe(call)
        if not waiter.event.wait(timeout):
            raise WaitTimeout(f"reactor did not run {fn!r} within {timeout} s")
        if waiter.exc is not None:
            exc = waiter.exc
            waiter.exc = None  # no reference cycle through the traceback
            raise exc
        return waiter.result  # type: ignore[no-any-return]

    # -- selector registration (reactor thread only) ------------------------

    def register(
        self, fileobj: socket.socket, events: int, callback: Callable[[int], object]
    ) -> None:
        """Watch ``fileobj`` for ``events``; call ``callback(mask)`` when ready."""
        self._selector.register(fileobj, events, callback)

    def modify(
        self, fileobj: socket.socket, events: int, callback: Callable[[int], object]
    ) -> None:
        """Change the events watched for ``fileobj`` (0 events means unregister)."""
        if events:
            try:
                self._selector.modify(fileobj, events, callback)
            except KeyError:
                self._selector.register(fileobj, events, callback)
        else:
            self.unregister(fileobj)

    def unregister(self, fileobj: socket.socket) -> None:
        """Stop watching ``fileobj``; harmless if it was not registered."""
        try:
            self._selector.unregister(fileobj)
        except (KeyError, ValueError):
            pass

    # -- internals ----------------------------------------------------------

    def _died_error(self) -> ReactorError:
        """The error for a call into a loop that is not running.

        :class:`ReactorDied` (``__cause__`` the crash) if the thread crashed,
        :class:`ReactorExited` if it exited normally.
        """
        if self.death_cause is None:
            return ReactorExited("the reactor thread has exited")
        err = ReactorDied("the reactor thread died")
        err.__cause__ = self.death_cause
        return err

    def _wakeup(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except BlockingIOError:
            pass  # the buffer is full: a wakeup is already pending
        except OSError:
            pass  # closed: the loop has exited, callers see ReactorDied/Exited

    def _drain_wakeup(self, mask: int) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _timer_cancelled(self) -> None:
        self._cancelled_timers += 1
        if self._cancelled_timers > _COMPACT_CANCELLED_AT and self._cancelled_timers * 2 > len(
            self._timers
        ):
            self._timers = [entry for entry in self._timers if not entry[2].cancelled]
            heapq.heapify(self._timers)
            self._cancelled_timers = 0

    def _run(self) -> None:
        self._thread_id = threading.get_ident()
        try:
            # This 'while' loop right here is the event loop.
            while not self._exit_requested:
                self._run_once()
        except BaseException as exc:
            self.death_cause = exc
            sys.stderr.write("testservers: the reactor thread died:\n")
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        finally:
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        if self.death_cause is None:
            # A normal exit: what the last pass queued still runs, once
            # (e.g. connection_lost of the connections the last stop()
            # closed, which transports deliver on the next pass).
            ready = self._ready
            for _ in range(len(ready)):
                callback, args = ready.popleft()
                self._dispatch(callback, *args)
        with self._waiters_lock:
            self.dead = self.death_cause is not None
            self._closed = True
            # Thread idents are reused: a later reactor's thread must not
            # look like ours to in_reactor_thread().
            self._thread_id = None
            waiters = list(self._waiters)
            self._waiters.clear()
            hooks = list(self._death_hooks) if self.dead else []
            self._death_hooks.clear()
        for waiter in waiters:
            waiter.exc = self._died_error()
            waiter.event.set()
        for hook in hooks:
            try:
                hook()
            except Exception:
                traceback.print_exc(file=sys.stderr)
        self._ready.clear()
        self._timers.clear()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _run_once(self) -> None:
        self.iterations += 1
        timers = self._timers
        # Drop cancelled timers from the front so they never set a timeout.
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
            self._cancelled_timers = max(0, self._cancelled_timers - 1)
        timeout: float | None
        if self._ready or self._exit_requested:
            timeout = 0
        elif timers:
            timeout = max(0.0, timers[0][0] - time.monotonic())
        else:
            timeout = None  # nothing to do until a socket or a wakeup fires
        events = self._selector.select(timeout)
        for key, mask in events:
            self._dispatch(key.data, mask)
        if timers:
            now = time.monotonic()
            while timers and timers[0][0] <= now:
                handle = heapq.heappop(timers)[2]
                if handle.cancelled:
                    self._cancelled_timers = max(0, self._cancelled_timers - 1)
                else:
                    self._ready.append((handle._run, ()))
        ready = self._ready
        for _ in range(len(ready)):
            # Unpacked in _dispatch_ready's frame, not here: this frame is in
            # the traceback of any exception raised under the event dispatch
            # above (a reset read), and that exception is often the argument
            # of a callback queued for this very loop (connection_lost(exc)).
            # Held in a local here, it would make exception -> traceback ->
            # this frame -> exception a cycle, keeping every frame up to the
            # thread's run() (and so the Thread) alive until the cyclic GC.
            self._dispatch_ready(ready.popleft())

    def _dispatch_ready(self, item: tuple[Callable[..., object], tuple[Any, ...]]) -> None:
        self._dispatch(item[0], *item[1])

    def _dispatch(self, callback: Callable[..., object], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            # Transports attribute handler errors to their server; anything
            # reaching here is a bug in a callback, reported but not fatal.
            sys.stderr.write(f"testservers: exception in reactor callback {callback!r}:\n")
            traceback.print_exc(file=sys.stderr)


# -- the process-wide shared reactor ------------------------------------------

_lock = threading.Lock()
_current: Reactor | None = None
_users = 0
_pid = os.getpid()


def current_reactor() -> Reactor | None:
    """The running shared reactor, or None when no server is started."""
    return _current


def acquire() -> Reactor:
    """Count one more user of the shared reactor, starting it if needed.

    Safe from any thread.  A reactor whose thread died is replaced by a new
    one for the new user (the servers of the dead one see
    :class:`ReactorDied`).
    """
    global _current, _users, _pid
    with _lock:
        if _pid != os.getpid():  # forked: the parent's thread does not exist here
            _current, _users, _pid = None, 0, os.getpid()
        r = _current
        if r is None or r.dead or r._closed or r._exit_requested:
            r = Reactor()
            r.start()
            _current = r
            _users = 0
        _users += 1
        return r


def release(reactor: Reactor, join_timeout: float | None = None) -> bool:
    """Count one user less; the last one stops and joins the loop thread.

    Returns True when this was the last user (the loop thread is exiting).
    Called from the loop thread itself (``stop()`` does this, and so does a
    handler stopping its own server), the thread is told to exit but cannot
    be joined; it exits at the end of the current pass and the caller joins
    it.  ``join_timeout`` bounds the join (a loop stuck in a handler must not
    make ``stop()`` hang).
    """
    global _current, _users
    with _lock:
        if reactor is not _current:
            return False  # a reactor that died and was already replaced
        _users -= 1
        if _users > 0:
            return False
        _current = None
        _users = 0
    if reactor.in_reactor_thread():
        reactor._exit_requested = True  # no wakeup needed: we are the loop
    else:
        reactor.request_exit()
        reactor.join(join_timeout)
    return True
