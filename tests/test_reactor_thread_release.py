"""A stopped reactor's Thread object is freed without the cyclic GC.

CPython's ``threading_helper.threading_cleanup`` reports a thread that is
still referenced after a test as dangling (regrtest then says "env
changed").  Recorded handler errors and TLS handshake failures keep their
tracebacks, whose frames lead up to the reactor thread's ``run`` frame; after
``stop()`` those frames must not keep the thread alive (the server itself
may stay alive: the connections it recorded refer back to it).
"""

from __future__ import annotations

import gc
import socket
import threading
import unittest
import weakref

from test import support
from test.support import threading_helper

from protocols import StreamConnection, TCPServer
from protocols._tls import localhost_contexts


def _boom(conn: StreamConnection, data: bytes) -> None:
    raise ValueError("handler failed on purpose")


class ReactorThreadFreedWithoutGCTest(unittest.TestCase):
    def setUp(self) -> None:
        gc.collect()
        gc.disable()
        self.addCleanup(gc.enable)

    def _run_failing_servers(self) -> weakref.ref[threading.Thread]:
        server_ctx, _client_ctx = localhost_contexts()
        srv = TCPServer(on_data=_boom, report_errors=False)
        srv.start()
        with socket.create_connection(srv.server_address, timeout=10) as c:
            c.sendall(b"x")
            c.settimeout(10)
            try:
                c.recv(1)
            except ConnectionResetError:
                pass
        srv.wait_for(lambda: srv.errors, 10, "the handler error")
        tls = TCPServer(ssl_context=server_ctx, report_errors=False)
        tls.start()
        with socket.create_connection(tls.server_address, timeout=10) as c:
            c.sendall(b"GET / HTTP/1.0\r\n\r\n")  # not a ClientHello
            try:
                c.recv(100)
            except OSError:
                pass
        tls.wait_for(lambda: tls.tls_errors, 10, "the TLS failure")
        assert srv._reactor is not None
        thread = srv._reactor.thread
        assert thread is not None
        srv.stop()
        tls.stop()
        self.assertFalse(thread.is_alive())
        self.assertEqual(len(srv.errors), 1)
        self.assertEqual(len(tls.tls_errors), 1)
        return weakref.ref(thread)

    def test_no_dangling_thread_after_handler_and_tls_errors(self) -> None:
        key = threading_helper.threading_setup()
        thread_ref = self._run_failing_servers()
        self.assertIsNone(thread_ref(), "the reactor's Thread is kept alive until the GC runs")
        # What CPython's own tests run after each test: it must find no
        # dangling thread on its first look (else it marks the environment
        # as altered and retries with the GC).
        saved = support.environment_altered
        support.environment_altered = False
        try:
            with support.captured_stderr() as err:
                threading_helper.threading_cleanup(*key)
            self.assertFalse(support.environment_altered, err.getvalue())
        finally:
            support.environment_altered = saved


if __name__ == "__main__":
    unittest.main()
