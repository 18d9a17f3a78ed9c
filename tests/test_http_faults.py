"""HTTP faults, observed by http.client and urllib: late, cut, reset, malformed,
garbage and missing responses, and fail-first-N-then-succeed."""

from __future__ import annotations

import http.client
import re
import time
import unittest
import urllib.error
import urllib.request

from protocols import (
    CloseWithoutResponse,
    DelayBody,
    DelayHead,
    FailFirst,
    Garbage,
    HTTPServer,
    Latency,
    MalformedChunk,
    Reply,
    ResetMidBody,
    TruncateBody,
)
from reactor import InvalidArgumentError

BODY = b"0123456789" * 100


def body_handler(request):  # type: ignore[no-untyped-def]
    return Reply(200, BODY)


def get(srv, path: str = "/", timeout: float = 5.0):  # type: ignore[no-untyped-def]
    conn = http.client.HTTPConnection(srv.url_host, srv.port, timeout=timeout)
    conn.request("GET", path)
    return conn, conn.getresponse()


class DelayTest(unittest.TestCase):
    def test_delay_before_the_head(self) -> None:
        with HTTPServer(handler=body_handler) as srv:
            srv.faults.add(DelayHead(0.3), path="/slow")
            t0 = time.monotonic()
            conn, resp = get(srv, "/slow")
            self.assertGreaterEqual(time.monotonic() - t0, 0.29)
            self.assertEqual(resp.read(), BODY)
            conn.request("GET", "/fast")  # same connection, other path: no delay
            t0 = time.monotonic()
            self.assertEqual(conn.getresponse().read(), BODY)
            self.assertLess(time.monotonic() - t0, 0.25)
            conn.close()
            [rec] = srv.faults.records
            self.assertEqual((rec.name, rec.detail), ("delay-head", "GET /slow"))

    def test_client_timeout_behind_a_head_delay(self) -> None:
        with HTTPServer() as srv:
            srv.faults.add(DelayHead(2), first=1)
            conn = http.client.HTTPConnection(srv.url_host, srv.port, timeout=0.3)
            with self.assertRaises(TimeoutError):
                conn.request("GET", "/")
                conn.getresponse()
            conn.close()
            conn, resp = get(srv)  # the retry (request 2) is not delayed
            self.assertEqual(resp.status, 200)
            conn.close()

    def test_delay_between_head_and_body(self) -> None:
        with HTTPServer(handler=body_handler) as srv:
            srv.faults.add(DelayBody(0.4))
            t0 = time.monotonic()
            conn, resp = get(srv)
            self.assertLess(time.monotonic() - t0, 0.3)  # the head came at once
            self.assertEqual(resp.getheader("Content-Length"), str(len(BODY)))
            self.assertEqual(resp.read(), BODY)
            self.assertGreaterEqual(time.monotonic() - t0, 0.39)
            conn.request("GET", "/again")  # keep-alive goes on after the body
            self.assertEqual(conn.getresponse().read(), BODY)
            conn.close()


class CutResponsesTest(unittest.TestCase):
    def test_body_cut_short_of_content_length(self) -> None:
        with HTTPServer(handler=body_handler) as srv:
            srv.faults.add(TruncateBody(keep=100))
            conn, resp = get(srv)
            with self.assertRaises(http.client.IncompleteRead) as cm:
                resp.read()
            self.assertEqual(cm.exception.partial, BODY[:100])
            conn.close()
            [rec] = srv.faults.records
            self.assertEqual(rec.bytes, len(BODY) - 100)

    def test_reset_mid_body(self) -> None:
        with HTTPServer(handler=body_handler) as srv:
            srv.faults.add(ResetMidBody(keep=10))
            conn = http.client.HTTPConnection(srv.url_host, srv.port, timeout=5)
            conn.request("GET", "/")
            with self.assertRaises((ConnectionResetError, http.client.IncompleteRead)):
                conn.getresponse().read()
            conn.close()

    def test_malformed_chunk(self) -> None:
        with HTTPServer(handler=body_handler) as srv:
            srv.faults.add(MalformedChunk())
            conn, resp = get(srv)
            self.assertEqual(resp.getheader("Transfer-Encoding"), "chunked")
            with self.assertRaises((ValueError, http.client.IncompleteRead)):
                resp.read()
            conn.close()

    def test_garbage_instead_of_a_response(self) -> None:
        calls = []
        with HTTPServer(handler=lambda r: calls.append(r) or "ok") as srv:
            srv.faults.add(Garbage(b"SSH-2.0-nope\r\n\r\n"))
            conn = http.client.HTTPConnection(srv.url_host, srv.port, timeout=5)
            with self.assertRaises(http.client.BadStatusLine):
                conn.request("GET", "/")
                conn.getresponse()
            conn.close()
            self.assertEqual(calls, [])  # the handler was not called
            self.assertEqual(len(srv.requests), 1)  # but the request was recorded

    def test_close_without_response(self) -> None:
        with HTTPServer() as srv:
            srv.faults.add(CloseWithoutResponse(), method="POST")
            conn = http.client.HTTPConnection(srv.url_host, srv.port, timeout=5)
            with self.assertRaises(http.client.RemoteDisconnected):
                conn.request("POST", "/", body=b"x")
                conn.getresponse()
            conn.close()
            conn, resp = get(srv)  # GET is not selected
            self.assertEqual(resp.status, 200)
            conn.close()


class FailFirstTest(unittest.TestCase):
    def test_retries_succeed_on_the_n_plus_first_try(self) -> None:
        calls = []

        def handler(request):  # type: ignore[no-untyped-def]
            calls.append(request.path)
            return "fine"

        with HTTPServer(handler=handler) as srv:
            srv.faults.add(FailFirst(2), path=re.compile(r"^/api/"))
            url = f"{srv.url}/api/x"
            statuses = []
            for _ in range(3):
                try:
                    with urllib.request.urlopen(url, timeout=5) as resp:
                        statuses.append(resp.status)
                        self.assertEqual(resp.read(), b"fine")
                except urllib.error.HTTPError as exc:
                    statuses.append(exc.code)
                    exc.close()
            self.assertEqual(statuses, [503, 503, 200])
            self.assertEqual(calls, ["/api/x"])  # the handler ran once, for the 3rd
            with urllib.request.urlopen(f"{srv.url}/other", timeout=5) as resp:
                self.assertEqual(resp.status, 200)
            self.assertEqual([r.action for r in srv.faults.records],
                             ["status 503", "status 503", "passed"])

    def test_any_status(self) -> None:
        with HTTPServer() as srv:
            srv.faults.add(FailFirst(1, status=429, body="slow down",
                                     headers=[("Retry-After", "0")]))
            conn, resp = get(srv)
            self.assertEqual((resp.status, resp.read(), resp.getheader("Retry-After")),
                             (429, b"slow down", "0"))
            conn.request("GET", "/")
            self.assertEqual(conn.getresponse().status, 200)
            conn.close()

    def test_seeded_selection_gives_the_same_failures_twice(self) -> None:
        runs = []
        for _ in range(2):
            with HTTPServer() as srv:
                srv.faults.add(FailFirst(1000), probability=0.5, seed="s")
                conn = http.client.HTTPConnection(srv.url_host, srv.port, timeout=5)
                got = []
                for i in range(16):
                    conn.request("GET", f"/{i}")
                    resp = conn.getresponse()
                    resp.read()
                    got.append(resp.status)
                conn.close()
                runs.append(got)
        self.assertEqual(runs[0], runs[1])
        self.assertIn(503, runs[0])
        self.assertIn(200, runs[0])


class HookTest(unittest.TestCase):
    def test_a_handler_applies_a_fault_to_its_own_reply(self) -> None:
        def handler(request):  # type: ignore[no-untyped-def]
            if request.path == "/cut":
                request.apply_fault(TruncateBody(keep=5))
            return BODY

        with HTTPServer(handler=handler) as srv:
            conn, resp = get(srv, "/cut")
            with self.assertRaises(http.client.IncompleteRead):
                resp.read()
            conn.close()
            conn, resp = get(srv, "/whole")
            self.assertEqual(resp.read(), BODY)
            conn.close()
            self.assertEqual([r.name for r in srv.faults.records], ["truncate-body"])

    def test_an_expectation_carries_a_fault(self) -> None:
        def cut(request):  # type: ignore[no-untyped-def]
            request.apply_fault(FailFirst(1, status=502))
            return "expected"

        with HTTPServer() as srv:
            srv.expect(path="/e").respond_with(cut)
            conn, resp = get(srv, "/e")
            self.assertEqual(resp.status, 502)
            resp.read()
            conn.close()
            self.assertEqual([r.name for r in srv.faults.records], ["fail-first"])

    def test_stop_during_a_body_delay_sends_the_body(self) -> None:
        srv = HTTPServer(handler=body_handler)
        srv.start()
        try:
            srv.faults.add(DelayBody(30))
            conn, resp = get(srv)
            self.assertEqual(resp.status, 200)
        finally:
            t0 = time.monotonic()
            srv.stop()
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(resp.read(), BODY)  # the rest of the response, not a 503
        conn.close()

    def test_transport_and_http_faults_together_and_bad_arguments(self) -> None:
        with HTTPServer() as srv:
            with self.assertRaises(InvalidArgumentError):
                srv.faults.add(Latency(1), path="/x")
            with self.assertRaises(InvalidArgumentError):
                srv.faults.add(FailFirst(1), direction="upstream")
            with self.assertRaises(InvalidArgumentError):
                FailFirst(1, status=99)
            with self.assertRaises(InvalidArgumentError):
                DelayHead(-1)
            rule = srv.faults.add(FailFirst(1))
            srv.faults.add(Latency(0.1))
            conn, resp = get(srv)
            self.assertEqual(resp.status, 503)
            rule.remove()
            resp.read()
            conn.close()
            conn, resp = get(srv)
            self.assertEqual(resp.status, 200)
            conn.close()
            self.assertEqual({r.name for r in srv.faults.records}, {"fail-first", "latency"})


if __name__ == "__main__":
    unittest.main()
