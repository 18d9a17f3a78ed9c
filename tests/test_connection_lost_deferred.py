"""connection_lost runs on a later loop pass, never inside a transport call.

``abort()``, ``close()`` and a failing ``write()`` called from a protocol
callback do not call back into that protocol: its ``connection_lost``
runs after the callback has returned (the asyncio shape).  ``stop()``
still delivers ``connection_lost`` to every connection before it returns.
"""

from __future__ import annotations

import socket
import threading
import unittest
from typing import Any

from reactor import StreamServerBase, StreamTransport


class _Recorder:
    """Records the order of callbacks and whether any nested inside another."""

    def __init__(self, server: RecordingServer) -> None:
        self.server = server
        self.transport: StreamTransport | None = None
        self.depth = 0
        self.lost_depth: int | None = None

    def connection_made(self, transport: StreamTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.depth += 1
        try:
            self.server.events.append("data")
            action = self.server.action
            if action == "abort":
                self.transport.abort()
            elif action == "close":
                self.transport.close()
            self.server.events.append("data returned")
        finally:
            self.depth -= 1

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost_depth = self.depth
        self.server.events.append("lost")
        self.server.lost.set()


class RecordingServer(StreamServerBase):
    def __init__(self, action: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.action = action
        self.events: list[str] = []
        self.lost = threading.Event()
        self.protocols: list[_Recorder] = []

    def make_protocol(self, addr: Any) -> _Recorder:
        p = _Recorder(self)
        self.protocols.append(p)
        return p


class ConnectionLostIsNotReentrantTest(unittest.TestCase):
    def _run(self, action: str) -> RecordingServer:
        srv = RecordingServer(action)
        srv.start()
        self.addCleanup(srv.stop)
        with socket.create_connection(srv.server_address, timeout=5) as c:
            c.sendall(b"x")
            self.assertTrue(srv.lost.wait(10), "connection_lost never ran")
        return srv

    def test_abort_from_data_received(self) -> None:
        srv = self._run("abort")
        self.assertEqual(srv.events, ["data", "data returned", "lost"])
        self.assertEqual(srv.protocols[0].lost_depth, 0)

    def test_close_from_data_received(self) -> None:
        srv = self._run("close")
        self.assertEqual(srv.events, ["data", "data returned", "lost"])
        self.assertEqual(srv.protocols[0].lost_depth, 0)


class StopDeliversConnectionLostTest(unittest.TestCase):
    def _assert_stop_delivers(self, *, other_server: bool) -> None:
        if other_server:  # this server's stop() is then not the reactor's last
            other = RecordingServer(None)
            other.start()
            self.addCleanup(other.stop)
        srv = RecordingServer(None)
        srv.start()
        self.addCleanup(srv.stop)
        conns = [socket.create_connection(srv.server_address, timeout=5) for _ in range(3)]
        for c in conns:
            self.addCleanup(c.close)
        srv.wait_for(lambda: srv.connection_count == 3, timeout=10, what="3 accepts")
        srv.stop()
        self.assertEqual(srv.events.count("lost"), 3)

    def test_last_server(self) -> None:
        self._assert_stop_delivers(other_server=False)

    def test_with_another_server_running(self) -> None:
        self._assert_stop_delivers(other_server=True)


if __name__ == "__main__":
    unittest.main()
