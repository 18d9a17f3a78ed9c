"""After stop(), no thread of ours is left running or referenced.

CPython's ``threading_helper.threading_cleanup()`` (test_imaplib, test_ftplib
and the other modules run on these servers call it) reports a thread that is
still running, and a stopped ``Thread`` object that something still
references, as dangling on its first look, before it collects garbage.  Two
ways we left one: a blocking-handler worker that had left the server's
worker table but was still closing its sockets when stop() returned (stop()
did not join it), and a stopped reactor, still referenced by a server's
records, holding its ``Thread``.
"""

from __future__ import annotations

import gc
import socket
import threading
import time
import unittest
import weakref
from typing import Any

import reactor
from protocols import StreamConnection, TCPServer, TestTCPServer
from reactor._loop import running_reactor


class _SlowClose(socket.socket):
    """A socket whose close() takes a while: the worker's very last step."""

    closing = threading.Event()

    def close(self) -> None:
        if self.fileno() >= 0:
            type(self).closing.set()
            time.sleep(0.3)
        super().close()


class WorkerJoinTest(unittest.TestCase):
    def test_stop_waits_for_a_worker_still_closing_its_socket(self) -> None:
        # socketserver-style: get_request() overridden (as test_imaplib's
        # SecureTCPServer does), returning a socket whose close() is slow.
        class Handler:
            def __init__(self, request: socket.socket, addr: Any, server: Any) -> None:
                request.recv(16)

        class Server(TestTCPServer):
            def get_request(self) -> tuple[socket.socket, Any]:
                sock, addr = super().get_request()
                slow = _SlowClose(sock.family, sock.type, sock.proto, fileno=sock.detach())
                return slow, addr

            def close_request(self, request: socket.socket) -> None:
                pass  # left to the worker's own last step

        _SlowClose.closing.clear()
        server = Server(("127.0.0.1", 0), Handler)
        server.start()
        workers: list[threading.Thread] = []
        try:
            with socket.create_connection(server.server_address, timeout=5) as c:
                c.sendall(b"x")
                self.assertTrue(_SlowClose.closing.wait(5), "the handler never finished")
                workers = [
                    t for t in threading.enumerate() if t.name.startswith("testservers-worker")
                ]
                self.assertTrue(workers)
                # It has left the worker table: only its close() is running.
                self.assertNotIn(workers[0], server._workers)
        finally:
            server.stop()
        alive = [t for t in workers if t.is_alive()]
        self.assertEqual(alive, [], "stop() returned while a worker thread was still running")

    def test_a_stop_after_a_handler_stopped_its_server_joins_that_handler(self) -> None:
        # A handler stops its own server (its stop() cannot join its own
        # thread) and goes on a little; the test's stop() afterwards (a
        # 'with' block's exit, a cleanup) found the server stopped and
        # returned at once, its worker still running.
        stopped = threading.Event()
        workers: list[threading.Thread] = []

        def handler(request: Any) -> None:
            workers.append(threading.current_thread())
            server.stop()
            stopped.set()
            time.sleep(0.3)  # the handler's last steps

        server = TCPServer(handler=handler)
        server.start()
        with socket.create_connection(server.server_address, timeout=5):
            self.assertTrue(stopped.wait(10), "the handler's stop() never returned")
            server.stop()
        alive = [t for t in workers if t.is_alive()]
        self.assertEqual(alive, [], "stop() returned while the handler that stopped it ran")
        self.assertEqual(server.errors, [])

    def test_two_handlers_stopping_their_server_at_once_do_not_wait_for_each_other(
        self,
    ) -> None:
        # The first stop() joins the other worker, which waited for the
        # first stop()'s lock: a stall of the whole stop timeout and a
        # spurious HandlerTimeout.
        barrier = threading.Barrier(2)
        returned: list[float] = []

        def handler(request: Any) -> None:
            barrier.wait(10)
            server.stop(timeout=5)
            returned.append(time.monotonic())

        server = TCPServer(handler=handler, report_errors=False, raise_errors=False)
        server.start()
        t0 = time.monotonic()
        with socket.create_connection(server.server_address, timeout=5), \
                socket.create_connection(server.server_address, timeout=5):
            deadline = time.monotonic() + 20
            while len(returned) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        self.assertEqual(len(returned), 2, "a handler's stop() never returned")
        server.stop()
        self.assertEqual(server.errors, [])
        self.assertLess(max(returned) - t0, 3.0, "one handler's stop() waited for the other")

    def test_a_handler_that_stops_its_server_on_eof_does_not_stall_the_tests_stop(
        self,
    ) -> None:
        # stop() shuts the workers' sockets down for reading; a handler that
        # stops its server on EOF then waited for that stop()'s lock while
        # that stop() joined it: 10 s and a HandlerTimeout.
        def handler(request: Any) -> None:
            while request.connection.recv(100):
                pass
            server.stop()

        server = TCPServer(handler=handler, report_errors=False, raise_errors=False)
        server.start()
        with socket.create_connection(server.server_address, timeout=5):
            server.wait_for(lambda: server.worker_count or None, 10, "the worker")
            t0 = time.monotonic()
            server.stop(timeout=5)
            took = time.monotonic() - t0
        self.assertEqual(server.errors, [])
        self.assertLess(took, 3.0, "stop() waited for the handler's own stop()")


class ReactorThreadReferenceTest(unittest.TestCase):
    def test_a_stopped_reactor_does_not_keep_its_thread(self) -> None:
        stopped = threading.Event()
        loops: list[reactor.Reactor] = []

        def on_data(conn: StreamConnection, data: bytes) -> None:
            loop = running_reactor()
            assert loop is not None
            loops.append(loop)
            conn.server.stop()  # the last server, stopped on the loop thread: no joiner
            stopped.set()

        server = TCPServer(on_data=on_data)
        server.start()
        try:
            thread = reactor.current_reactor().thread  # type: ignore[union-attr]
            self.assertIsNotNone(thread)
            ref = weakref.ref(thread)  # type: ignore[arg-type]
            del thread
            with socket.create_connection(server.server_address, timeout=5) as c:
                c.sendall(b"stop")
                self.assertTrue(stopped.wait(5))
            gc.disable()  # not freed by a collection: never referenced at all
            try:
                deadline = time.monotonic() + 5
                while ref() is not None and time.monotonic() < deadline:
                    time.sleep(0.005)
                self.assertIsNone(ref(), "the stopped reactor still references its Thread")
                self.assertTrue(loops)  # the reactor itself is still referenced here
                self.assertIsNone(loops[0].thread)
            finally:
                gc.enable()
        finally:
            server.stop()

    def test_the_joined_reactor_does_not_keep_its_thread(self) -> None:
        server = TCPServer(on_data=lambda conn, data: None)
        server.start()
        loop = reactor.current_reactor()
        assert loop is not None
        ref = weakref.ref(loop.thread)  # type: ignore[arg-type]
        server.stop()
        gc.disable()
        try:
            self.assertIsNone(ref())
            self.assertIsNone(loop.thread)
        finally:
            gc.enable()


if __name__ == "__main__":
    unittest.main()
