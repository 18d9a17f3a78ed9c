"""The pytest plugin's edges: markers, make_server with every kind of class, failing bodies."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent


def plugin_args() -> list[str]:
    names = {ep.name for ep in metadata.entry_points(group="pytest11")}
    return [] if "testservers" in names else ["-p", "protocols.pytest_plugin"]


def run(pytester, monkeypatch, source: str, *args: str):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    pytester.makepyfile(test_child=source)
    return pytester.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider", *args)


def test_bad_marker_arguments_are_a_usage_error(pytester, monkeypatch):
    result = run(
        pytester,
        monkeypatch,
        """
import pytest

@pytest.mark.testservers(lenient=True)
def test_x(http_server):
    pass
""",
    )
    result.stdout.fnmatch_lines(["*takes only strict= and check= keywords*lenient*"])
    assert result.ret != 0


def test_make_server_with_compat_and_explicit_strict(pytester, monkeypatch):
    result = run(
        pytester,
        monkeypatch,
        """
import urllib.request
from protocols import HTTPServer, TestHTTPServer, TestTCPServer

def test_compat_http(make_server):
    def handler(request):
        request.send_response(200)
        request.end_headers()
    server = make_server(TestHTTPServer, ("127.0.0.1", 0), handler, 0.01)
    with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/", timeout=5) as r:
        assert r.status == 200

def test_compat_tcp(make_server):
    server = make_server(TestTCPServer, ("127.0.0.1", 0), lambda request: None, 0.01)
    assert server.ready.is_set()

def test_explicit_strict_false_wins(make_server):
    server = make_server(HTTPServer, strict=False)
    server.expect(path="/unused")  # not checked: the server is not strict
    with urllib.request.urlopen(server.url + "/other", timeout=5) as r:
        assert r.status == 200

SEEN = []

def test_a_server_used_here(make_server):
    SEEN.append(make_server(HTTPServer))
    assert SEEN[0].ready.is_set()

def test_was_stopped_at_the_previous_teardown():
    assert not SEEN[0].ready.is_set() and SEEN[0].socket is None
""",
    )
    result.assert_outcomes(passed=5)


def test_a_failing_body_still_reports_the_teardown_check(pytester, monkeypatch):
    result = run(
        pytester,
        monkeypatch,
        """
def test_body_fails(http_server):
    http_server.expect(path="/never")
    assert False, "the body's own failure"
""",
    )
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(["*the body's own failure*"])
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_body_fails*", "*expect(path='/never')*"]
    )


def test_the_closest_marker_wins_over_a_class_or_module_one(pytester, monkeypatch):
    result = run(
        pytester,
        monkeypatch,
        """
import pytest

pytestmark = pytest.mark.testservers(strict=False)

@pytest.mark.testservers(strict=True)
def test_function_mark_over_module_mark(http_server):
    assert http_server.strict is True

def test_module_mark_applies(http_server):
    assert http_server.strict is False

class TestUnchecked:
    pytestmark = [pytest.mark.testservers(check=False)]

    @pytest.mark.testservers(check=True, strict=True)
    def test_checked_again(self, http_server):
        http_server.expect(path="/never-called")  # must error at teardown
""",
    )
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of TestUnchecked.test_checked_again*"])


def test_a_raise_errors_server_reports_each_traceback_once(pytester, monkeypatch):
    result = run(
        pytester,
        monkeypatch,
        """
import urllib.error, urllib.request
from protocols import HTTPServer

def test_handler_fails(make_server):
    def handler(request):
        raise ZeroDivisionError("handler failed once")
    server = make_server(HTTPServer, handler=handler, raise_errors=True, report_errors=False)
    try:
        urllib.request.urlopen(server.url + "/", timeout=5)
    except urllib.error.HTTPError as err:
        err.close()
""",
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_handler_fails*"])
    # The report section only: with CI set, pytest's short summary repeats
    # the whole message untruncated, which is pytest's copy, not a second report.
    text = result.stdout.str().split("short test summary info")[0]
    assert text.count("ZeroDivisionError: handler failed once") == 1, text
