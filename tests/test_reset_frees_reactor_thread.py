"""A connection reset by its peer does not keep the stopped reactor's Thread alive.

The ``ConnectionResetError`` a read raises is handed on to the protocol's
``connection_lost`` on a later callback.  Its traceback holds the frames the
read ran under, up to the reactor thread's ``run`` frame (whose ``self`` is
the Thread); if one of those frames also held the exception (the loop pass's
last callback arguments), exception and frames formed a cycle that only the
cyclic GC frees, and CPython's ``threading_helper.threading_cleanup`` saw a
dangling thread (test_ftplib's TLS tests on testservers hit it under load).
"""

from __future__ import annotations

import gc
import socket
import struct
import threading
import unittest
import weakref

from test import support
from test.support import threading_helper

from protocols import ScriptedConnection, ScriptedServer, TCPServer

RESETS = 20


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class ResetFreesReactorThreadTest(unittest.TestCase):
    def setUp(self) -> None:
        gc.collect()
        gc.disable()
        self.addCleanup(gc.enable)

    def _serve_resets(self, server: TCPServer | ScriptedServer) -> weakref.ref[threading.Thread]:
        server.start()
        assert server._reactor is not None
        thread = server._reactor.thread
        assert thread is not None
        for _ in range(RESETS):
            c = socket.create_connection(server.server_address, timeout=10)
            c.sendall(b"data the server answers\n")
            c.recv(100)  # answered: the server's socket is quiet, then RST
            reset(c)
            server.wait_for(lambda: server.connection_count == 0, 10, "the reset")
        server.stop()
        self.assertFalse(thread.is_alive())
        return weakref.ref(thread)

    def check(self, server: TCPServer | ScriptedServer) -> None:
        key = threading_helper.threading_setup()
        thread_ref = self._serve_resets(server)
        self.assertIsNone(thread_ref(), "a reset kept the reactor's Thread alive until the GC")
        saved = support.environment_altered
        support.environment_altered = False
        try:
            with support.captured_stderr() as err:
                threading_helper.threading_cleanup(*key)
            self.assertFalse(support.environment_altered, err.getvalue())
        finally:
            support.environment_altered = saved

    def test_stream_server(self) -> None:
        self.check(TCPServer(on_data=lambda conn, data: conn.write(data), record=False))

    def test_scripted_server(self) -> None:
        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            conn.push(line + b"\n")

        self.check(ScriptedServer(on_frame=on_frame, terminator=b"\n"))


if __name__ == "__main__":
    unittest.main()
