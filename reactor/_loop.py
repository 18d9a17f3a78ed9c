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

import atexit
import heapq
import itertools
import os
import selectors
import socket
import sys
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from ._errors import ReactorDied, ReactorError, ReactorExited, WaitTimeout

__all__ = [
    "Reactor",
    "TimerHandle",
    "acquire",
    "close_parked",
    "release",
    "release_user",
    "running_reactor",
    "current_reactor",
]

T = TypeVar("T")

#: How many cancelled timers may sit on the heap before it is rebuilt
#: without them (the lazy-cancellation compaction of asyncio and trio).
_COMPACT_CANCELLED_AT = 256

#: Rounds of queued callbacks an exiting loop still runs (each round may
#: queue the next: connection_lost, then a settled run_sync's wake-up).
_EXIT_DRAIN_ROUNDS = 4

#: Wake-up bytes read per readable wake-up socket.
_WAKEUP_DRAIN = 4096

#: Longest select() timeout: a timer further away (call_later(1e300), which an
#: HTTP Reply(delay=) accepts) would overflow select() and kill the loop.
_MAX_SELECT_TIMEOUT = 3600.0

#: Name of the reactor thread, so that thread dumps and leak checkers say
#: what it is.
THREAD_NAME = "testservers-reactor"


def _wakeup_drainer(wake_r: socket.socket) -> Callable[[int], None]:
    """The wake-up socket's callback: it names the socket, not a Reactor.

    So a parked selector serves the next loop as it is (no re-registration).
    One recv, no EAGAIN exception: more than :data:`_WAKEUP_DRAIN` pending
    wake-up bytes leave the socket readable, and the next pass drains the rest.
    """
    recv = wake_r.recv

    def drain(mask: int) -> None:
        try:
            recv(_WAKEUP_DRAIN)
        except (BlockingIOError, InterruptedError):
            pass

    return drain


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


def _no_thread() -> threading.Thread | None:
    """``Reactor._thread`` before the loop thread is started."""
    return None


class Reactor:
    """One selector loop on one thread.

    Methods whose docstring says *reactor thread only* must be called from
    callbacks running on the loop; the others are safe from any thread.
    """

    def __init__(self) -> None:
        self._ready: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._cancelled_timers = 0
        self._seq = itertools.count()
        parked = _take_parked()
        if parked is not None:
            # The previous loop's selector and wake-up pair (see _park), the
            # wake-up socket still registered with its drain callback.
            self._selector, self._wake_r, self._wake_w = parked
        else:
            self._selector = selectors.DefaultSelector()
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._selector.register(
                self._wake_r, selectors.EVENT_READ, _wakeup_drainer(self._wake_r)
            )
        # A weak reference: a stopped thread that something still references
        # is what CPython's threading_cleanup() reports as dangling, and a
        # stopped reactor may stay referenced (a recorded connection, a
        # reference cycle not yet collected).  ``threading`` holds the thread
        # strongly while it runs, so a joiner that reads None finds it gone.
        self._thread: Callable[[], threading.Thread | None] = _no_thread
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
        self._thread = weakref.ref(t)
        t.start()

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread()

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
        # No lock: set.add/discard are atomic; a hook added while the dying
        # loop takes and clears the set is not called, as it would not have
        # been with the lock (it was added after the clear).
        self._death_hooks.add(hook)

    def remove_death_hook(self, hook: Callable[[], object]) -> None:
        """Forget a hook given to :meth:`add_death_hook` (harmless if absent)."""
        self._death_hooks.discard(hook)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the loop thread to exit (not from the loop thread)."""
        t = self._thread()
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    def _close_unstarted(self) -> None:
        """Discard a reactor whose thread was never started (its setup failed)."""
        with self._waiters_lock:
            self._closed = True
        self._ready.clear()
        self._timers.clear()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

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

    def run_sync(
        self,
        fn: Callable[..., T],
        *args: Any,
        timeout: float | None = None,
        settle: bool = False,
        exit: bool = False,
    ) -> T:
        """Run ``fn(*args)`` on the reactor thread and return its result.

        Called from the reactor thread itself, it simply calls ``fn`` (with
        ``exit``, the loop then exits at the end of the current pass).
        Otherwise it blocks the caller until ``fn`` has run, and re-raises
        what ``fn`` raised.

        ``settle``: return only once the callbacks ``fn`` queued with
        :meth:`call_soon` (e.g. the ``connection_lost`` of the connections it
        closed) have run too: one hand-off instead of a second ``run_sync``.
        ``exit``: the loop exits right after ``fn`` (and, with ``settle``,
        its callbacks), and the caller waits by joining the loop thread: one
        hand-off for "clean up, then stop", as the caller of the last
        server's ``stop()`` needs.

        :raises WaitTimeout: (a ``TimeoutError``) if ``fn`` has not finished
            within ``timeout`` (with ``exit``: the thread has not exited).
        :raises ReactorDied: if the loop thread dies before running ``fn``.
        :raises ReactorExited: if the loop thread had exited normally.
        """
        if self.in_reactor_thread():
            if exit:
                self._exit_requested = True  # no wakeup needed: we are the loop
            return fn(*args)
        if exit and self._thread() is not None:
            return self._run_then_exit(fn, args, timeout)
        waiter = _Waiter()

        def finish() -> None:
            with self._waiters_lock:
                self._waiters.discard(waiter)
            waiter.event.set()

        def call() -> None:
            try:
                waiter.result = fn(*args)
            except BaseException as exc:  # handed to the waiting thread
                waiter.exc = exc
            finally:
                if settle:
                    # Behind what fn queued: FIFO, so those run first.
                    self._ready.append((finish, ()))
                else:
                    finish()

        with self._waiters_lock:
            if self.dead or self._closed:
                raise self._died_error()
            self._waiters.add(waiter)
        if exit:
            # A loop whose thread was never started: it runs nothing.
            self._exit_requested = True
        self.call_soon_threadsafe(call)
        if not waiter.event.wait(timeout):
            raise WaitTimeout(f"reactor did not run {fn!r} within {timeout} s")
        if waiter.exc is not None:
            exc = waiter.exc
            waiter.exc = None  # no reference cycle through the traceback
            raise exc
        return waiter.result  # type: ignore[no-any-return]

    def _run_then_exit(self, fn: Callable[..., T], args: tuple[Any, ...],
                       timeout: float | None) -> T:
        """``run_sync(fn, *args, exit=True)`` from another thread.

        No waiter (no Event, no lock): the caller waits by joining the loop
        thread, and learns from ``outcome`` whether ``fn`` ran and what it
        returned or raised.  The exiting loop runs what ``fn`` queued (its
        bounded drain rounds) before the thread ends, so ``settle`` holds
        too.  A loop that exited or died before running ``fn`` leaves
        ``outcome`` empty: the caller gets :meth:`_died_error`.
        """
        thread = self._thread()
        if thread is None or self.dead or self._closed:
            raise self._died_error()
        outcome: list[Any] = []

        def call() -> None:
            try:
                outcome.append(fn(*args))
            except BaseException as exc:  # handed to the joining thread
                outcome.append(None)
                outcome.append(exc)

        self._ready.append((call, ()))
        self._exit_requested = True  # after the append: call runs before the exit
        self._wakeup()
        thread.join(timeout)
        alive = thread.is_alive()
        del thread  # no traceback raised below may keep the Thread referenced
        if alive:
            raise WaitTimeout(f"reactor did not run {fn!r} and exit within {timeout} s")
        if not outcome:
            raise self._died_error()
        if len(outcome) > 1:
            exc = outcome.pop()
            outcome.clear()  # no reference cycle through the traceback
            raise exc
        return outcome[0]  # type: ignore[no-any-return]

    # -- selector registration (reactor thread only) ------------------------

    def register(
        self, fileobj: socket.socket, events: int, callback: Callable[[int], object]
    ) -> None:
        """Watch ``fileobj`` for ``events``; call ``callback(mask)`` when ready.

        :raises ReactorDied: (or :class:`ReactorExited`) once the loop has
            ended: its selector may serve the next loop by then.
        """
        if self._closed:
            raise self._died_error()
        self._selector.register(fileobj, events, callback)

    def modify(
        self, fileobj: socket.socket, events: int, callback: Callable[[int], object]
    ) -> None:
        """Change the events watched for ``fileobj`` (0 events means unregister)."""
        if self._closed:
            raise self._died_error()
        if events:
            try:
                self._selector.modify(fileobj, events, callback)
            except KeyError:
                self._selector.register(fileobj, events, callback)
        else:
            self.unregister(fileobj)

    def unregister(self, fileobj: socket.socket) -> None:
        """Stop watching ``fileobj``; harmless if it was not registered (or the loop ended)."""
        if self._closed:
            return
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
        if self._closed:
            return  # its wake-up pair may be parked for the next loop
        try:
            self._wake_w.send(b"\0")
        except BlockingIOError:
            pass  # the buffer is full: a wakeup is already pending
        except OSError:
            pass  # closed: the loop has exited, callers see ReactorDied/Exited

    def _timer_cancelled(self) -> None:
        self._cancelled_timers += 1
        if self._cancelled_timers > _COMPACT_CANCELLED_AT and self._cancelled_timers * 2 > len(
            self._timers
        ):
            self._timers = [entry for entry in self._timers if not entry[2].cancelled]
            heapq.heapify(self._timers)
            self._cancelled_timers = 0

    def _run(self) -> None:
        self._thread_id = ident = threading.get_ident()
        _loops[ident] = self
        try:
            # This 'while' loop right here is the event loop.
            while not self._exit_requested:
                self._run_once()
        except BaseException as exc:
            self.death_cause = exc
            sys.stderr.write("testservers: the reactor thread died:\n")
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        finally:
            try:
                self._shutdown_loop()
            finally:
                _loops.pop(ident, None)

    def _shutdown_loop(self) -> None:
        if self.death_cause is None:
            # A normal exit: what the last pass queued still runs (e.g.
            # connection_lost of the connections the last stop() closed,
            # which transports deliver on the next pass, then the settled
            # run_sync's wake-up queued behind them), a bounded number of
            # rounds.
            ready = self._ready
            for _ in range(_EXIT_DRAIN_ROUNDS):
                if not ready:
                    break
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
        if self.dead or not _park(self._selector, self._wake_r, self._wake_w):
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
            timeout = timers[0][0] - time.monotonic()
            if timeout < 0.0:
                timeout = 0.0
            elif timeout > _MAX_SELECT_TIMEOUT:  # 1e300 or inf overflow select()
                timeout = _MAX_SELECT_TIMEOUT  # wakes early, finds nothing due
        else:
            timeout = None  # nothing to do until a socket or a wakeup fires
        events = self._selector.select(timeout)
        for key, mask in events:
            try:  # self._dispatch(key.data, mask), inlined: once per ready socket
                key.data(mask)
            except Exception:
                self._report_callback_error(key.data)
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
            self._report_callback_error(callback)

    def _report_callback_error(self, callback: object) -> None:
        # Transports attribute handler errors to their server; anything
        # reaching here is a bug in a callback, reported but not fatal.
        sys.stderr.write(f"testservers: exception in reactor callback {callback!r}:\n")
        traceback.print_exc(file=sys.stderr)


# -- the process-wide shared reactor ------------------------------------------

_lock = threading.Lock()
_current: Reactor | None = None
_users = 0


# A loop that exits normally parks its selector and wake-up socketpair here
# (only the wake-up socket registered, its bytes drained), and the next
# Reactor takes them: a cold start()/stop() cycle then creates and closes
# neither (about 12 us of the cycle), while the thread still exits and is
# joined (G1).  At most one set is parked (3 descriptors per process); they
# are closed at interpreter exit, and dropped in a forked child (an epoll
# instance is shared with the parent across fork()).
_Parked = tuple[selectors.BaseSelector, socket.socket, socket.socket]
_parked: _Parked | None = None
_parked_lock = threading.Lock()

def _park(sel: selectors.BaseSelector, wake_r: socket.socket, wake_w: socket.socket) -> bool:
    """Keep an exited loop's selector and wake-up pair for the next one; False: close them."""
    global _parked
    # Wake-up bytes left in the pair are not drained here: they only give
    # the next loop one spurious (harmless) pass.
    try:
        # The wake-up socket is always registered (nothing unregisters it),
        # so one key means it alone.
        if len(sel.get_map()) != 1:
            return False  # something is still registered: start afresh next time
    except (RuntimeError, KeyError, ValueError):
        return False
    with _parked_lock:
        if _parked is not None:
            return False
        _parked = (sel, wake_r, wake_w)
    return True


def _take_parked() -> _Parked | None:
    global _parked
    with _parked_lock:
        parked, _parked = _parked, None
    return parked


@atexit.register
def close_parked() -> None:
    """Close the parked selector and wake-up pair, if any (any thread; also at exit)."""
    parked = _take_parked()
    if parked is not None:
        for obj in parked:
            obj.close()


# Reactor of each loop thread, by thread ident, while its loop runs (a
# plain dict, not a threading.local: nothing to set up before the loop's
# first select() nor to tear down when its thread ends).
_loops: dict[int, Reactor] = {}


def _after_fork_in_child() -> None:
    """In a forked child: the parent's loop thread does not exist here.

    The shared reactor is forgotten (the next start() makes a new loop),
    and the parked selector and wake-up pair are closed (the child's copies
    only: an epoll instance is shared with the parent across fork()).
    Registered with os.register_at_fork, so start() and a loop's exit need
    no getpid() per cycle.
    """
    global _current, _users, _parked, _lock, _parked_lock
    _lock, _parked_lock = threading.Lock(), threading.Lock()  # may be held by a parent thread
    _current, _users = None, 0
    parked, _parked = _parked, None
    _loops.clear()
    for obj in parked or ():
        try:
            obj.close()
        except OSError:
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def running_reactor() -> Reactor | None:
    """The reactor whose loop runs on the calling thread, or None.

    Unlike :func:`current_reactor`, still the loop's own reactor while its
    last server is stopping (it is no longer the shared one then).
    """
    r = _loops.get(threading.get_ident())
    return r if r is not None and r.in_reactor_thread() else None


def current_reactor() -> Reactor | None:
    """The running shared reactor, or None when no server is started."""
    return _current


def acquire(
    setup: Callable[[Reactor], object] | None = None, timeout: float | None = None
) -> Reactor:
    """Count one more user of the shared reactor, starting it if needed.

    Safe from any thread.  A reactor whose thread died is replaced by a new
    one for the new user (the servers of the dead one see
    :class:`ReactorDied`).

    ``setup(reactor)``, if given, runs as reactor-side code before this
    returns: when a new loop thread is needed, in the *calling* thread
    before that thread starts (nothing else can touch the new selector
    then, and the caller needs no hand-off to it: a cold ``start()`` costs
    one thread start); on a running reactor with :meth:`Reactor.run_sync`
    (``timeout`` bounds it).  If ``setup`` raises, the user is not counted
    and the exception propagates.
    """
    global _current, _users
    with _lock:
        r = _current
        if r is None or r.dead or r._closed or r._exit_requested:
            r = Reactor()
            if setup is not None:
                try:
                    setup(r)
                except BaseException:
                    r._close_unstarted()
                    raise
            r.start()
            _current = r
            _users = 1
            return r
        _users += 1
    if setup is not None:
        try:
            r.run_sync(setup, r, timeout=timeout)
        except BaseException:
            release(r, join_timeout=timeout)
            raise
    return r


def release_user(reactor: Reactor) -> bool:
    """Count one user less without stopping the loop; True if it was the last.

    For a caller that makes the loop exit itself (``run_sync(...,
    exit=True)``, one hand-off for "clean up, then exit"): when this returns
    True the reactor is no longer the shared one (a new user gets a new
    loop) and nothing else will stop it.
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
    return True


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
