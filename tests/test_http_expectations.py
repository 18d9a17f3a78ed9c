"""HTTP expectations: matching, kinds, sequences, delays, strict mode, queries (issue 13 item 2)."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import unittest
import urllib.error
import urllib.request

from protocols import (
    Contains,
    Exact,
    ExpectationError,
    HTTPServer,
    Prefix,
    Reply,
    Subset,
    make_reply,
)
from protocols.http import SequenceExhausted
from protocols.http._expect import UNEXPECTED_SHOWN
from reactor import InvalidArgumentError


def call(
    server: HTTPServer,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class MatchingTest(unittest.TestCase):
    def setUp(self) -> None:
        self.server = HTTPServer(strict=True, report_errors=False)
        self.server.start()
        self.addCleanup(self.server.stop)

    def test_method_and_exact_path(self) -> None:
        self.server.expect(method="get", path="/a").respond(201, b"made")
        self.assertEqual(call(self.server, "GET", "/a"), (201, b"made"))
        self.assertEqual(call(self.server, "POST", "/a")[0], 500)
        self.assertEqual(call(self.server, "GET", "/a/b")[0], 500)

    def test_prefix_and_regex_paths(self) -> None:
        self.server.expect(path=Prefix("/api/")).respond(200, b"prefix")
        self.server.expect(path=re.compile(r"^/items/\d+$")).respond(200, b"regex")
        self.assertEqual(call(self.server, "GET", "/api/x/y")[1], b"prefix")
        self.assertEqual(call(self.server, "GET", "/items/42")[1], b"regex")
        self.assertEqual(call(self.server, "GET", "/items/4x")[0], 500)

    def test_query_subset_exact_and_raw(self) -> None:
        self.server.expect(path="/s", query={"a": "1"}).respond(200, b"subset")
        self.server.expect(path="/e", query=Exact({"a": "1"})).respond(200, b"exact")
        self.server.expect(path="/r", query="x=1&y=2").respond(200, b"raw")
        self.server.expect(path="/l", query={"t": ["1", "2"]}).respond(200, b"list")
        self.assertEqual(call(self.server, "GET", "/s?a=1&b=2")[1], b"subset")
        self.assertEqual(call(self.server, "GET", "/e?a=1")[1], b"exact")
        self.assertEqual(call(self.server, "GET", "/e?a=1&b=2")[0], 500)
        self.assertEqual(call(self.server, "GET", "/r?x=1&y=2")[1], b"raw")
        self.assertEqual(call(self.server, "GET", "/l?t=1&t=2")[1], b"list")
        self.assertEqual(call(self.server, "GET", "/s?a=2")[0], 500)

    def test_headers_case_insensitive_names_and_regex_values(self) -> None:
        self.server.expect(headers={"x-token": "abc", "Accept": re.compile("json")}).respond(204)
        status, _ = call(self.server, "GET", "/", headers={"X-Token": "abc", "Accept": "a/json"})
        self.assertEqual(status, 204)
        self.assertEqual(call(self.server, "GET", "/", headers={"X-Token": "abd"})[0], 500)

    def test_json_equal_and_subset_body_and_predicate(self) -> None:
        self.server.expect(path="/eq", json={"a": 1}).respond(200, b"eq")
        self.server.expect(path="/sub", json=Subset({"user": {"id": 1}})).respond(200, b"sub")
        self.server.expect(path="/raw", body=b"exact bytes").respond(200, b"raw")
        self.server.expect(path="/has", body=Contains(b"needle")).respond(200, b"has")
        self.server.expect(path="/p", predicate=lambda r: len(r.body) == 3).respond(200, b"p")
        self.assertEqual(call(self.server, "POST", "/eq", b'{"a": 1}')[1], b"eq")
        self.assertEqual(call(self.server, "POST", "/eq", b'{"a": 1, "b": 2}')[0], 500)
        body = b'{"user": {"id": 1, "name": "x"}, "n": 2}'
        self.assertEqual(call(self.server, "POST", "/sub", body)[1], b"sub")
        self.assertEqual(call(self.server, "POST", "/raw", b"exact bytes")[1], b"raw")
        self.assertEqual(call(self.server, "POST", "/has", b"hay needle hay")[1], b"has")
        self.assertEqual(call(self.server, "POST", "/p", b"abc")[1], b"p")
        self.assertEqual(call(self.server, "POST", "/p", b"abcd")[0], 500)


class KindsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.server = HTTPServer(strict=True, report_errors=False)
        self.server.start()
        self.addCleanup(self.server.stop)

    def test_permanent_answers_every_time(self) -> None:
        e = self.server.expect(path="/p").respond(200, b"p")
        for _ in range(3):
            self.assertEqual(call(self.server, "GET", "/p"), (200, b"p"))
        self.assertEqual((e.kind, e.call_count, e.satisfied), ("permanent", 3, True))

    def test_one_shot_then_unexpected(self) -> None:
        e = self.server.expect_once(path="/o").respond(200, b"o")
        self.assertEqual(call(self.server, "GET", "/o"), (200, b"o"))
        status, body = call(self.server, "GET", "/o")
        self.assertEqual(status, 500)
        self.assertIn(b"used up", body)
        self.assertEqual(e.kind, "one-shot")

    def test_times_n(self) -> None:
        e = self.server.expect(path="/n", times=2).respond(200, b"n")
        self.server.expect(path="/n").respond(200, b"after")
        self.assertEqual(
            [call(self.server, "GET", "/n")[1] for _ in range(3)], [b"n", b"n", b"after"]
        )
        self.assertEqual(e.kind, "times=2")
        self.assertTrue(e.satisfied)

    def test_ordered_must_come_in_order(self) -> None:
        first = self.server.expect_ordered(path="/1").respond(200, b"one")
        self.server.expect_ordered(path="/2").respond(200, b"two")
        status, body = call(self.server, "GET", "/2")
        self.assertEqual(status, 500)
        self.assertIn(b"out of order: ordered #1 comes first", body)
        self.assertEqual(call(self.server, "GET", "/1")[1], b"one")
        self.assertEqual(call(self.server, "GET", "/2")[1], b"two")
        self.assertEqual(first.kind, "ordered")

    def test_limited_before_permanent_whatever_the_order_made(self) -> None:
        self.server.expect(path="/x").respond(200, b"permanent")
        self.server.expect_once(path="/x").respond(200, b"once")
        self.assertEqual(call(self.server, "GET", "/x")[1], b"once")
        self.assertEqual(call(self.server, "GET", "/x")[1], b"permanent")


class RespondTest(unittest.TestCase):
    def setUp(self) -> None:
        self.server = HTTPServer(strict=True, report_errors=False)
        self.server.start()
        self.addCleanup(self.server.stop)

    def test_json_and_headers(self) -> None:
        self.server.expect(path="/j").respond(json={"ok": True}, headers={"X-A": "1"})
        with urllib.request.urlopen(self.server.url + "/j", timeout=10) as resp:
            self.assertEqual(json.load(resp), {"ok": True})
            self.assertEqual(resp.headers["Content-Type"], "application/json")
            self.assertEqual(resp.headers["X-A"], "1")

    def test_bad_reply_settings_are_refused_where_the_test_wrote_them(self) -> None:
        # Refused at respond() time, not as a 500 once a request arrives.
        exp = self.server.expect(path="/bad")
        for kwargs in (
            {"status": 99},
            {"status": 1000},
            {"status": "200"},
            {"delay": -1},
            {"delay": float("nan")},
            {"body": 5},
            {"headers": {"Bad Name": "x"}},
            {"headers": {"X-A": "one\r\nX-Injected: two"}},
            {"headers": [("X-A",)]},
        ):
            with self.subTest(**{k: repr(v) for k, v in kwargs.items()}):
                with self.assertRaises(InvalidArgumentError):
                    exp.respond(**kwargs)  # type: ignore[arg-type]
        exp.respond(201, headers={"X-A": "ok"}, delay=0.01)
        self.assertEqual(call(self.server, "GET", "/bad")[0], 201)
        self.assertEqual(self.server.errors, [])

    def test_sequence_then_last_repeats(self) -> None:
        self.server.expect(path="/retry").respond_sequence([503, 503, make_reply(json=[1])])
        got = [call(self.server, "GET", "/retry") for _ in range(4)]
        self.assertEqual([s for s, _ in got], [503, 503, 200, 200])
        self.assertEqual(got[3][1], b"[1]")

    def test_sequence_then_fail(self) -> None:
        self.server.expect(path="/s").respond_sequence([Reply(202)], then="fail")
        self.assertEqual(call(self.server, "GET", "/s")[0], 202)
        self.assertEqual(call(self.server, "GET", "/s")[0], 500)
        [err] = self.server.errors
        self.assertIsInstance(err, SequenceExhausted)

    def test_respond_with_callable(self) -> None:
        self.server.expect(path=Prefix("/echo/")).respond_with(lambda r: r.path[6:])
        self.assertEqual(call(self.server, "GET", "/echo/abc"), (200, b"abc"))

    def test_delay_does_not_block_the_reactor(self) -> None:
        self.server.expect(path="/slow").respond(200, b"slow", delay=1.0)
        self.server.expect(path="/fast").respond(200, b"fast")
        slow: list[tuple[int, bytes]] = []
        t = threading.Thread(target=lambda: slow.append(call(self.server, "GET", "/slow")))
        started = time.monotonic()
        t.start()
        self.server.expectations[0].wait(1, timeout=10)  # the slow request has arrived
        self.assertEqual(call(self.server, "GET", "/fast"), (200, b"fast"))
        fast_done = time.monotonic() - started
        t.join(10)
        self.assertEqual(slow, [(200, b"slow")])
        self.assertLess(fast_done, 0.9, "the delayed reply held up another request")
        self.assertGreaterEqual(time.monotonic() - started, 0.95)

    def test_handler_is_the_fallback(self) -> None:
        self.server.handler = lambda r: Reply(299, b"fallback")
        self.server.expect(path="/e").respond(200, b"expected")
        self.assertEqual(call(self.server, "GET", "/e")[1], b"expected")
        self.assertEqual(call(self.server, "GET", "/other"), (299, b"fallback"))
        self.server.assert_no_unexpected()

    def test_non_strict_falls_back_to_the_sink_200(self) -> None:
        with HTTPServer() as server:
            server.expect(path="/e").respond(201)
            self.assertEqual(call(server, "GET", "/e")[0], 201)
            self.assertEqual(call(server, "GET", "/other"), (200, b""))
            server.assert_no_unexpected()


class OutcomeLike(BaseException):
    """What pytest.fail()/pytest.skip() raise: a BaseException, not an Exception."""


class CallbackBaseExceptionTest(unittest.TestCase):
    """G5: a respond_with() callable or a predicate raising a BaseException (pytest.fail()
    inside one) is a handler error answered 500, not the death of the reactor."""

    def setUp(self) -> None:
        self.server = HTTPServer(strict=True, report_errors=False)
        self.server.start()
        self.addCleanup(self.server.stop)
        self.reactor = self.server._reactor

    def assert_recorded_and_alive(self, status: int, body: bytes) -> None:
        self.assertEqual(status, 500, body)
        self.assertIn(b"OutcomeLike", body)
        [err] = self.server.errors
        self.assertIsInstance(err, OutcomeLike)
        self.assertTrue(self.server.ready.is_set())
        self.assertIs(self.server._reactor, self.reactor)
        self.server.clear_expectations()  # a raising predicate raises for every request
        self.server.expect(path="/after").respond(204)
        self.assertEqual(call(self.server, "GET", "/after")[0], 204)

    def test_respond_with_raising_a_base_exception(self) -> None:
        def fail(request: object) -> bytes:
            raise OutcomeLike("failed inside respond_with")

        self.server.expect(path="/f").respond_with(fail)
        self.assert_recorded_and_alive(*call(self.server, "GET", "/f"))

    def test_predicate_raising_a_base_exception(self) -> None:
        def pred(request: object) -> bool:
            raise OutcomeLike("failed inside a predicate")

        self.server.expect(path="/p", predicate=pred)
        self.assert_recorded_and_alive(*call(self.server, "GET", "/p"))


class StrictReportTest(unittest.TestCase):
    def test_500_body_names_the_nearest_expectations_and_why(self) -> None:
        with HTTPServer(strict=True) as server:
            server.expect(method="GET", path="/items/1").respond(200)
            server.expect(method="POST", path="/items", json={"a": 1}).respond(201)
            server.expect(path="/far/away", query={"z": "9"}, headers={"X": "y"}).respond(200)
            server.expect(path="/also/far", json={"q": 1}, body=b"z").respond(200)
            status, body = call(server, "GET", "/items/2?x=1")
            self.assertEqual(status, 500)
            text = body.decode()
            self.assertIn("no expectation matched GET /items/2?x=1 HTTP/1.1", text)
            self.assertIn("nearest expectation(s), 3 of 4", text)
            self.assertIn("#1 expect(method='GET', path='/items/1')", text)
            self.assertIn("path: got '/items/2', want '/items/1'", text)
            self.assertNotIn("#4", text)  # the farthest one is left out
            [unexpected] = server.unexpected
            self.assertEqual(unexpected.request.path, "/items/2")
            with self.assertRaises(ExpectationError) as cm:
                server.assert_no_unexpected()
            self.assertIsInstance(cm.exception, AssertionError)
            self.assertIn("path: got '/items/2', want '/items/1'", str(cm.exception))
            self.assertIn(server.url.split("//")[1].split(":")[0], str(cm.exception))

    def test_many_unexpected_requests_give_a_bounded_report(self) -> None:
        with HTTPServer(strict=True) as server:
            server.expect(path="/health").respond(204)
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            for i in range(40):  # a client retrying a wrong path
                conn.request("GET", f"/helth/{i}")
                resp = conn.getresponse()
                resp.read()
                self.assertEqual(resp.status, 500)
            conn.close()
            self.assertEqual(len(server.unexpected), 40)
            with self.assertRaises(ExpectationError) as cm:
                server.assert_no_unexpected()
        text = str(cm.exception)
        self.assertIn("40 unexpected request(s)", text)
        self.assertIn("no expectation matched GET /helth/0 HTTP/1.1", text)
        self.assertEqual(text.count("no expectation matched"), UNEXPECTED_SHOWN)
        self.assertIn(f"... and {40 - UNEXPECTED_SHOWN} more (see server.unexpected)", text)
        self.assertLess(len(text.splitlines()), 10 * UNEXPECTED_SHOWN)

    def test_no_expectations_at_all(self) -> None:
        with HTTPServer(strict=True) as server:
            status, body = call(server, "GET", "/")
            self.assertEqual(status, 500)
            self.assertIn(b"no expectations registered", body)

    def test_assert_all_used_lists_unused_and_short_ones(self) -> None:
        with HTTPServer(strict=True) as server:
            server.expect(path="/used").respond(200)
            server.expect(path="/never").respond(200)
            server.expect(path="/twice", times=2).respond(200)
            call(server, "GET", "/used")
            call(server, "GET", "/twice")
            with self.assertRaises(ExpectationError) as cm:
                server.assert_all_used()
            text = str(cm.exception)
            self.assertIn("2 expectation(s) not used", text)
            self.assertIn("#2 expect(path='/never') [permanent, called 0 of any]", text)
            self.assertIn("#3 expect(path='/twice') [times=2, called 1 of 2]", text)
            self.assertNotIn("/used", text)
            call(server, "GET", "/never")
            call(server, "GET", "/twice")
            server.assert_all_used()
            server.check_expectations()


class QueryTest(unittest.TestCase):
    def test_find_and_wait_with_the_same_matchers(self) -> None:
        with HTTPServer() as server:
            call(server, "GET", "/a?x=1")
            call(server, "POST", "/b", b'{"k": [1, 2]}')
            self.assertEqual([r.path for r in server.find_requests(method="POST")], ["/b"])
            self.assertEqual(len(server.find_requests(query={"x": "1"})), 1)
            self.assertEqual(len(server.find_requests(json=Subset({"k": [1, 2]}))), 1)
            [r] = server.wait_for_requests(1, timeout=5, path="/b")
            self.assertEqual(r.method, "POST")
            with self.assertRaises(TimeoutError) as cm:
                server.wait_for_requests(1, timeout=0.1, path="/c", method="POST")
            text = str(cm.exception)
            self.assertIn("matching method='POST', path='/c'", text)
            self.assertIn("2 arrived (0 matching)", text)
            self.assertIn("nearest miss: POST /b HTTP/1.1", text)
            self.assertIn("path: got '/b', want '/c'", text)

    def test_expectation_wait(self) -> None:
        with HTTPServer(strict=True) as server:
            e = server.expect(path="/w").respond(204)
            threading.Thread(target=call, args=(server, "GET", "/w")).start()
            [r] = e.wait(1, timeout=10)
            self.assertEqual(r.path, "/w")
            with self.assertRaises(TimeoutError) as cm:
                e.wait(2, timeout=0.1)
            self.assertIn("2 call(s) of #1 expect(path='/w')", str(cm.exception))


class RealClientsTest(unittest.TestCase):
    """requests, httpx and urllib3 (the test extras) against expectations."""

    def setUp(self) -> None:
        self.server = HTTPServer(strict=True)
        self.server.start()
        self.addCleanup(self.server.stop)
        self.server.expect(method="POST", path="/api/items", json={"name": "pen"}).respond(
            201, json={"id": 7}
        )

    def test_requests(self) -> None:
        try:
            import requests
        except ImportError:
            self.skipTest("requests is not installed (pip install -e '.[test]')")
        r = requests.post(self.server.url + "/api/items", json={"name": "pen"}, timeout=10)
        self.assertEqual((r.status_code, r.json()), (201, {"id": 7}))
        self.server.check_expectations()

    def test_httpx(self) -> None:
        try:
            import httpx
        except ImportError:
            self.skipTest("httpx is not installed (pip install -e '.[test]')")
        r = httpx.post(self.server.url + "/api/items", json={"name": "pen"}, timeout=10)
        self.assertEqual((r.status_code, r.json()), (201, {"id": 7}))
        self.server.check_expectations()

    def test_urllib3(self) -> None:
        try:
            import urllib3
        except ImportError:
            self.skipTest("urllib3 is not installed (pip install -e '.[test]')")
        with urllib3.PoolManager() as pool:
            r = pool.request("POST", self.server.url + "/api/items", json={"name": "pen"})
            self.assertEqual((r.status, r.json()), (201, {"id": 7}))
        self.server.check_expectations()

    def test_urllib_unexpected_gets_the_report(self) -> None:
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(self.server.url + "/api/item", timeout=10)
        with cm.exception as err:
            self.assertEqual(err.code, 500)
            self.assertIn(b"path: got '/api/item', want '/api/items'", err.read())


if __name__ == "__main__":
    unittest.main()
