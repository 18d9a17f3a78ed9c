"""The reactor on its own: timers, cross-thread calls, death, sharing."""

from __future__ import annotations

import threading
import time
import unittest

import reactor
from reactor import Reactor, ReactorDied


def wait_until_sleeping(r: Reactor, timeout: float = 5.0) -> None:
    """Wait until the loop thread is blocked in the kernel (state S in /proc)."""
    t = r.thread
    assert t is not None and t.native_id is not None
    deadline = time.monotonic() + timeout
    while True:
        with open(f"/proc/self/task/{t.native_id}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
        if state == "S":
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the reactor thread never blocked (state {state})")
        time.sleep(0.001)

class ReactorTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.r = Reactor()
        self.r.start()
        self.addCleanup(self._shutdown)

    def _shutdown(self) -> None:
        self.r.request_exit()
        self.r.join(5)
        self.assertIsNone(self.r.thread, "reactor thread did not exit")


class TimerTest(ReactorTestCase):
    def test_timers_fire_in_deadline_order(self) -> None:
        fired: list[int] = []
        done = threading.Event()

        def schedule() -> None:
            for i, delay in enumerate([0.05, 0.01, 0.03, 0.02, 0.04]):
                self.r.call_later(delay, fired.append, i)
            self.r.call_later(0.06, done.set)

        self.r.call_soon_threadsafe(schedule)
        self.assertTrue(done.wait(5))
        self.assertEqual(fired, [1, 3, 2, 4, 0])

    def test_timer_not_early_and_reasonably_on_time(self) -> None:
        result: list[float] = []
        done = threading.Event()

        def schedule() -> None:
            start = time.monotonic()
            self.r.call_later(0.05, lambda: (result.append(time.monotonic() - start), done.set()))

        self.r.call_soon_threadsafe(schedule)
        self.assertTrue(done.wait(5))
        self.assertGreaterEqual(result[0], 0.05)
        self.assertLess(result[0], 1.0)  # generous: shared, noisy machine

    def test_cancelled_timer_never_fires(self) -> None:
        fired: list[str] = []
        done = threading.Event()

        def schedule() -> None:
            h = self.r.call_later(0.01, fired.append, "cancelled")
            h.cancel()
            self.r.call_later(0.03, done.set)

        self.r.call_soon_threadsafe(schedule)
        self.assertTrue(done.wait(5))
        self.assertEqual(fired, [])

    def test_a_timer_too_far_away_for_select_does_not_kill_the_loop(self) -> None:
        # A finite delay of 1e300 s (HTTP Reply(delay=1e300) takes it) made the
        # nearest timer's timeout overflow select(): the reactor thread died.
        done = threading.Event()

        def schedule() -> None:
            self.r.call_later(1e300, done.set)
            self.r.call_later(float("inf"), done.set)

        self.r.run_sync(schedule, timeout=5)
        time.sleep(0.2)  # the loop goes to select() with those timers the nearest
        self.assertEqual(self.r.run_sync(lambda: "alive", timeout=5), "alive")
        self.assertFalse(done.is_set())

    def test_many_cancelled_timers_are_compacted(self) -> None:
        def churn() -> int:
            handles = [self.r.call_later(100, lambda: None) for _ in range(2000)]
            for h in handles:
                h.cancel()
            return len(self.r._timers)

        left = self.r.run_sync(churn, timeout=5)
        self.assertLess(left, 2000)


class CrossThreadTest(ReactorTestCase):
    def test_run_sync_returns_result_and_runs_on_reactor_thread(self) -> None:
        name = self.r.run_sync(lambda: threading.current_thread().name, timeout=5)
        self.assertEqual(name, reactor.THREAD_NAME)

    def test_run_sync_reraises(self) -> None:
        def boom() -> None:
            raise KeyError("x")

        with self.assertRaises(KeyError):
            self.r.run_sync(boom, timeout=5)

    def test_callbacks_from_many_threads_all_run_in_order_per_thread(self) -> None:
        seen: dict[int, list[int]] = {t: [] for t in range(8)}

        def producer(t: int) -> None:
            for i in range(500):
                self.r.call_soon_threadsafe(seen[t].append, i)

        threads = [threading.Thread(target=producer, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.r.run_sync(lambda: None, timeout=5)  # a barrier behind every append
        for t in range(8):
            self.assertEqual(seen[t], list(range(500)))

    def test_idle_reactor_does_not_wake_up(self) -> None:
        self.r.run_sync(lambda: None, timeout=5)
        before = self.r.iterations
        time.sleep(0.3)
        # No timers, no sockets, no calls: select() blocks with no timeout.
        self.assertEqual(self.r.iterations, before)

    def test_wakeup_is_prompt(self) -> None:
        self.r.run_sync(lambda: None, timeout=5)
        wait_until_sleeping(self.r)  # blocked in select(), so the call must wake it
        t0 = time.perf_counter()
        self.r.run_sync(lambda: None, timeout=5)
        self.assertLess(time.perf_counter() - t0, 0.5)

    def test_callback_exception_does_not_kill_loop(self) -> None:
        def bad() -> None:
            raise ValueError("reported, not fatal")

        from test.support import captured_stderr

        with captured_stderr() as err:
            self.r.call_soon_threadsafe(bad)
            self.assertEqual(self.r.run_sync(lambda: 42, timeout=5), 42)
        self.assertIn("ValueError", err.getvalue())


class DeathTest(unittest.TestCase):
    def test_waiters_get_reactor_died_not_a_hang(self) -> None:
        r = Reactor()
        r.start()
        entered = threading.Event()
        release = threading.Event()

        def block_then_die() -> None:
            entered.set()
            release.wait(5)
            raise SystemExit("simulated loop death")

        r.call_soon_threadsafe(block_then_die)
        self.assertTrue(entered.wait(5))
        results: list[BaseException] = []

        def waiter() -> None:
            try:
                r.run_sync(lambda: None, timeout=30)
            except BaseException as exc:
                results.append(exc)

        threads = [threading.Thread(target=waiter) for _ in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5  # until all three are queued on the loop
        while len(r._waiters) < 3:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.001)
        from test.support import captured_stderr

        with captured_stderr() as err:
            release.set()
            for t in threads:
                t.join(10)
        self.assertIn("reactor thread died", err.getvalue())
        self.assertEqual(len(results), 3)
        for exc in results:
            self.assertIsInstance(exc, ReactorDied)
            self.assertIsInstance(exc.__cause__, SystemExit)
        with self.assertRaises(ReactorDied):
            r.call_soon_threadsafe(lambda: None)
        with self.assertRaises(ReactorDied):
            r.run_sync(lambda: None, timeout=1)
        r.join(5)


class SharedReactorTest(unittest.TestCase):
    def test_acquire_release_starts_and_joins_one_thread(self) -> None:
        before = set(threading.enumerate())

        def new() -> list[str]:
            return [t.name for t in threading.enumerate() if t not in before]

        r1 = reactor.acquire()
        r2 = reactor.acquire()
        self.assertIs(r1, r2)
        self.assertEqual(new(), [reactor.THREAD_NAME])
        self.assertFalse(reactor.release(r1))
        self.assertEqual(new(), [reactor.THREAD_NAME])
        self.assertTrue(reactor.release(r2))  # the last user: joined
        self.assertEqual(new(), [])
        self.assertIsNone(reactor.current_reactor())


if __name__ == "__main__":
    unittest.main()
