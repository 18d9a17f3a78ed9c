"""stop() called by an HTTP handler itself: the client gets the 503 promised
for a response owed at stop(), never a connection closed without a byte."""

from __future__ import annotations

import http.client
import threading
import unittest

from protocols import HTTPRequest, HTTPServer, Reply


class StopFromInsideHandlerTests(unittest.TestCase):
    def test_handler_that_stops_its_server_answers_503(self) -> None:
        servers: list[HTTPServer] = []

        def handler(request: HTTPRequest) -> Reply:
            servers[0].stop()
            return Reply(200, b"ok")

        server = HTTPServer(handler=handler)
        servers.append(server)
        server.start()
        self.addCleanup(server.stop)
        client = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
        self.addCleanup(client.close)
        client.request("GET", "/stop")
        response = client.getresponse()
        self.assertEqual(response.status, 503)
        self.assertIn(b"server stopped", response.read())
        self.assertEqual([r.target for r in server.unanswered], ["/stop"])
        # The handler's stop() ran on the loop thread, so it could only tell
        # the loop to exit; a stop() from this thread returns once it has
        # ended (G1), else the next module's threading_setup() saw it alive.
        server.stop()
        alive = [t for t in threading.enumerate() if t.name == "testservers-reactor"]
        self.assertEqual(alive, [])
