"""The README's "pytest plugin" section, as a user would write it from the README alone.

Every fixture, an expectation of each kind, a sequence, the timeout message
of every wait, and (through pytester, in a child pytest) the strict-mode
teardown failures and their opt-outs.  Green under ``pytest -n 4``.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest

from protocols import (
    CA_FILE,
    Contains,
    Prefix,
    SMTPReject,
    SMTPServer,
    Subset,
    client_context,
    make_reply,
)

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent


def get(url: str, **kwargs: object) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5, **kwargs) as resp:  # type: ignore[arg-type]
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()


# -- every fixture ------------------------------------------------------------------


def test_http_server_expectations_of_each_kind(http_server):
    http_server.expect(method="GET", path="/health").respond(204)  # permanent
    http_server.expect_once(path="/token").respond(json={"token": "t1"})  # one-shot
    http_server.expect(path=Prefix("/page/"), times=2).respond(200, b"page")  # times=N
    http_server.expect_ordered(path="/step1").respond(200, b"1")  # ordered
    http_server.expect_ordered(path="/step2").respond(200, b"2")
    assert get(http_server.url + "/health")[0] == 204
    assert get(http_server.url + "/health")[0] == 204
    assert json.loads(get(http_server.url + "/token")[1]) == {"token": "t1"}
    assert get(http_server.url + "/page/1") == (200, b"page")
    assert get(http_server.url + "/page/2") == (200, b"page")
    assert get(http_server.url + "/step1") == (200, b"1")
    assert get(http_server.url + "/step2") == (200, b"2")
    http_server.assert_all_used()


def test_http_server_sequence_for_a_retry_loop(http_server):
    http_server.expect(path="/flaky").respond_sequence([503, 503, make_reply(json={"ok": True})])
    statuses = [get(http_server.url + "/flaky")[0] for _ in range(4)]
    assert statuses == [503, 503, 200, 200]


def test_http_server_matchers_and_queries(http_server):
    http_server.expect(
        method="POST", path="/items", json=Subset({"name": "pen"}), headers={"X-Key": "k"}
    ).respond(201, json={"id": 1})
    http_server.expect(path=re.compile(r"^/items/\d+$"), query={"full": "1"}).respond_with(
        lambda request: (200, request.path.encode())
    )
    req = urllib.request.Request(
        http_server.url + "/items", data=b'{"name": "pen", "n": 3}', headers={"X-Key": "k"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 201
    assert get(http_server.url + "/items/7?full=1") == (200, b"/items/7")
    assert [r.method for r in http_server.find_requests(path=Prefix("/items"))] == ["POST", "GET"]
    [posted] = http_server.wait_for_requests(1, method="POST", timeout=5)
    assert posted.json()["n"] == 3


def test_https_server_with_the_bundled_ca(https_server):
    https_server.expect(path="/secure").respond(200, b"tls")
    url = f"https://localhost:{https_server.port}/secure"
    assert get(url, context=client_context()) == (200, b"tls")
    assert get(url, context=ssl.create_default_context(cafile=CA_FILE)) == (200, b"tls")


def test_https_server_with_requests_httpx_urllib3(https_server):
    requests = pytest.importorskip("requests")
    httpx = pytest.importorskip("httpx")
    urllib3 = pytest.importorskip("urllib3")
    https_server.expect(path="/r").respond(json={"via": "any"})
    url = f"https://localhost:{https_server.port}/r"
    assert requests.get(url, verify=CA_FILE, timeout=5).json() == {"via": "any"}
    assert httpx.get(url, verify=client_context(), timeout=5).json() == {"via": "any"}
    with urllib3.PoolManager(ssl_context=client_context()) as pool:
        assert pool.request("GET", url).json() == {"via": "any"}


def test_smtp_server_matchers(smtp_server):
    port: int = smtp_server.port
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as c:
        c.sendmail(
            "app@example.org",
            ["a@example.net", "b@example.net"],
            "Subject: report\r\nX-Kind: daily\r\n\r\nall 3 jobs passed\r\n",
        )
    env = smtp_server.wait_for_message(
        sender="app@example.org",
        recipient="b@example.net",
        subject="report",
        headers={"X-Kind": "daily"},
        body="3 jobs",
        tls=False,
        timeout=5,
    )
    assert env.auth_user is None
    assert smtp_server.find_messages(body=re.compile(r"\d jobs")) == [env]
    assert env.received_at > 0 and env.received_wall > 0


def test_tcp_server(tcp_server):
    with socket.create_connection(tcp_server.server_address, timeout=5) as c:
        c.sendall(b"PING\r\n")
    [stream] = tcp_server.wait_for_streams(1, data=Prefix(b"PING"), timeout=5)
    assert stream.data == b"PING\r\n"
    assert tcp_server.wait_for_data(re.compile(rb"P.NG"), timeout=5) is stream


def test_udp_server(udp_server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.sendto(b"metric:1|c", udp_server.server_address)
    [d] = udp_server.wait_for_datagrams(1, data=Contains(b"metric"), timeout=5)
    assert d.data == b"metric:1|c"
    assert udp_server.find_datagrams(data=b"metric:1|c") == [d]


def test_unix_stream_server(unix_stream_server):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.connect(unix_stream_server.server_address)
        c.sendall(b"hello")
    unix_stream_server.wait_for_streams(1, data=b"hello", timeout=5)


def test_unix_datagram_server(unix_datagram_server):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
        c.sendto(b"dgram", unix_datagram_server.server_address)
    unix_datagram_server.wait_for_datagrams(1, data=b"dgram", timeout=5)


def test_syslog_server(syslog_server):
    handler = logging.handlers.SysLogHandler(syslog_server.server_address)
    handler.ident = "myapp: "
    log = logging.getLogger("readme-plugin-syslog")
    log.addHandler(handler)
    try:
        log.error("disk full")
    finally:
        log.removeHandler(handler)
        handler.close()
    [m] = syslog_server.wait_for_messages(severity="err", app="myapp", timeout=5)
    assert m.message == "disk full"


def test_make_server_with_options(make_server):
    mail = make_server(SMTPServer, auth={"app": "secret"}, auth_over_plaintext=True)
    with smtplib.SMTP("127.0.0.1", mail.port, timeout=5) as c:
        c.login("app", "secret")
        c.sendmail("app@example.org", ["new@example.net"], "Subject: welcome\r\n\r\nhi\r\n")
    mail.wait_for_message(subject="welcome", auth_user="app", timeout=5)


@pytest.mark.testservers(strict=False)
def test_lenient_http_server_is_a_sink(http_server):
    assert get(http_server.url + "/anything") == (200, b"")
    assert http_server.wait_for_requests(1, path="/anything", timeout=5)


# -- every wait's timeout message ----------------------------------------------------

SHORT = 0.05


def assert_timeout(server, call, *parts):
    with pytest.raises(TimeoutError) as info:
        call()
    text = str(info.value)
    assert f"{type(server).__name__} {server.server_address!r}" in text
    for part in parts:
        assert part in text, (part, text)


@pytest.mark.testservers(strict=False)
def test_http_wait_timeouts(http_server):
    get(http_server.url + "/b")
    assert_timeout(
        http_server,
        lambda: http_server.wait_for_requests(1, timeout=SHORT, path="/c"),
        "waiting for 1 HTTP request(s) matching path='/c'",
        "1 arrived (0 matching)",
        "GET /b HTTP/1.1",
        "nearest miss",
        "path: got '/b', want '/c'",
    )
    assert_timeout(
        http_server, lambda: http_server.wait_for_requests(2, timeout=SHORT), "1 arrived"
    )
    assert_timeout(
        http_server,
        lambda: http_server.wait_for_request(lambda r: False, timeout=SHORT),
        "GET /b",
    )
    assert_timeout(http_server, lambda: http_server.wait_for(lambda: None, SHORT, "x"), "for x")
    e = http_server.expect(path="/never")
    assert_timeout(http_server, lambda: e.wait(1, timeout=SHORT), "expect(path='/never')")
    http_server.clear_expectations()


def test_smtp_wait_timeouts(make_server):
    def refuse(envelope):
        if "refuse" in envelope.mail_from:
            raise SMTPReject(550, "no thanks")

    mail = make_server(SMTPServer, handler=refuse)
    with smtplib.SMTP("127.0.0.1", mail.port, timeout=5) as c:
        c.sendmail("a@example.org", ["b@example.net"], "Subject: one\r\n\r\nx\r\n")
        with pytest.raises(smtplib.SMTPDataError):
            c.sendmail("refuse@example.org", ["b@example.net"], "Subject: two\r\n\r\nx\r\n")
    assert_timeout(
        mail,
        lambda: mail.wait_for_messages(2, timeout=SHORT),
        "1 arrived",
        "from 'a@example.org' to ['b@example.net'] subject 'one'",
    )
    assert_timeout(
        mail,
        lambda: mail.wait_for_message(subject="three", timeout=SHORT),
        "nearest miss",
        "subject: got 'one', want 'three'",
    )
    assert_timeout(mail, lambda: mail.wait_for_rejections(2, timeout=SHORT), "550")
    assert_timeout(mail, lambda: mail.wait_for_logins(1, timeout=SHORT), "0 arrived")
    mail.errors.clear()  # the refusal is not a handler error, but be explicit


def test_datagram_and_stream_wait_timeouts(udp_server, tcp_server, syslog_server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.sendto(b"first bytes of it", udp_server.server_address)
        c.sendto(b"<11>app: disk full", syslog_server.server_address)
    udp_server.wait_for_datagrams(1, timeout=5)
    assert_timeout(
        udp_server,
        lambda: udp_server.wait_for_datagrams(2, timeout=SHORT),
        "1 arrived",
        "17 bytes from",
        "b'first bytes of it'",
    )
    with socket.create_connection(tcp_server.server_address, timeout=5) as c:
        c.sendall(b"stream bytes")
        tcp_server.wait_for_data(b"bytes", timeout=5)
        assert_timeout(
            tcp_server,
            lambda: tcp_server.wait_for_streams(1, timeout=SHORT),
            "closed connection(s)",
            "b'stream bytes'",
        )
        assert_timeout(
            tcp_server, lambda: tcp_server.wait_for_data(b"nope", timeout=SHORT), "nearest miss"
        )
    assert_timeout(
        syslog_server,
        lambda: syslog_server.wait_for_messages(1, text="other", timeout=SHORT),
        "1 arrived",
        "disk full",
    )


# -- strict-mode failures, seen from outside (pytester) -------------------------------

CHILD = """
import urllib.error, urllib.request
import pytest

def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()

def test_unexpected_request(http_server):
    http_server.expect(path="/health").respond(204)
    status, body = get(http_server.url + "/helth")
    assert status == 500 and b"path: got '/helth', want '/health'" in body
    get(http_server.url + "/health")

def test_unused_expectation(http_server):
    http_server.expect(method="DELETE", path="/items/1")

def test_handler_error(make_server):
    from protocols import HTTPServer
    def broken_handler(request):
        raise ZeroDivisionError("handler bug")
    server = make_server(HTTPServer, handler=broken_handler, report_errors=False)
    assert get(server.url + "/")[0] == 500

@pytest.mark.testservers(strict=False)
def test_opt_out_strict(http_server):
    http_server.expect(path="/unused")
    assert get(http_server.url + "/other")[0] == 200

@pytest.mark.testservers(check=False)
def test_opt_out_check(http_server):
    http_server.expect(path="/unused")
    assert get(http_server.url + "/other")[0] == 500
"""


def plugin_args() -> list[str]:
    """``-p protocols.pytest_plugin`` when the entry point is not installed (an old install)."""
    names = {ep.name for ep in metadata.entry_points(group="pytest11")}
    return [] if "testservers" in names else ["-p", "protocols.pytest_plugin"]


@pytest.fixture
def child(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    pytester.makepyfile(test_child=CHILD)
    return pytester


def test_strict_mode_failures_are_teardown_errors(child):
    result = child.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, errors=3)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_unexpected_request*",
            "*testservers teardown check failed:*",
            "*1 unexpected request(s):*",
            "*no expectation matched GET /helth HTTP/1.1*",
            "*path: got '/helth', want '/health'*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_unused_expectation*",
            "*1 expectation(s) not used:*",
            "*#1 expect(method='DELETE', path='/items/1') [[]permanent, called 0 of any[]]*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_handler_error*",
            "*1 handler error(s):*",
            "*in broken_handler*",
            "*ZeroDivisionError: handler bug*",
        ]
    )


def test_strict_mode_under_xdist(child):
    pytest.importorskip("xdist")
    result = child.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider", "-n", "4")
    result.assert_outcomes(passed=5, errors=3)
    result.stdout.fnmatch_lines(["*path: got '/helth', want '/health'*"])


NO_THREAD_LEFT = """
import threading

def test_uses_servers(http_server, udp_server, smtp_server):
    assert any(t.name == "testservers-reactor" for t in threading.enumerate())

def test_no_reactor_thread_outlives_a_test():
    assert not [t for t in threading.enumerate() if t.name == "testservers-reactor"]
"""


def test_no_thread_outlives_a_test(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    pytester.makepyfile(test_threads=NO_THREAD_LEFT)
    result = pytester.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_syslog_query_with_the_same_matchers(syslog_server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.sendto(b"<11>app: disk full", syslog_server.server_address)
        c.sendto(b"<14>app: all good", syslog_server.server_address)
    syslog_server.wait_for_messages(2, timeout=5)
    assert [m.message for m in syslog_server.find_messages(text="disk")] == ["disk full"]
    assert len(syslog_server.find_messages(app=Prefix("ap"), severity="info")) == 1
