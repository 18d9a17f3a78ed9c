"""HTTP expectations: what a test expects a client to send, and what to answer.

``server.expect(method=, path=, query=, headers=, json=, body=, predicate=,
times=None)`` registers an :class:`Expectation`; ``.respond()``,
``.respond_sequence()`` or ``.respond_with()`` says what to answer.  Each
request that arrives is matched on the reactor thread, in this order:

1. *ordered* expectations (``expect_ordered()``): only the first one not yet
   used up is eligible, so they must be met in the order they were made;
2. expectations with a count (``times=N``; ``expect_once()`` is ``times=1``),
   in the order they were made, skipping those used up;
3. *permanent* expectations (``times=None``), in the order they were made;
4. the server's ``handler=`` (the fallback), if any;
5. otherwise: in *strict* mode (``HTTPServer(strict=True)``, the pytest
   fixtures' default) a ``500`` whose body names the nearest expectations and
   why each did not match, recorded in ``server.unexpected``; without strict
   mode the default ``200`` of a recording sink.

Matching follows :mod:`protocols._match`: a plain value is equal, a compiled
regex is searched, :class:`Prefix`/:class:`Contains`/:class:`Exact`/
:class:`Subset` say what they mean, a callable is a predicate.  ``query=``
takes the raw query string, or a dict (a subset of the parsed query; a
repeated field is a list; ``Exact({...})`` for the whole query);
``headers=`` a dict of field matchers (names case-insensitive, a subset);
``json=`` the parsed body (equal; ``Subset({...})`` for a subset); ``body=``
the raw bytes (a ``str`` is encoded as UTF-8).

Thread safety: ``expect()`` and the assertions run on the test's thread,
matching on the reactor thread; both hold the server's condition lock.
"""

from __future__ import annotations

import json as jsonlib
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from reactor import DEFAULT_WAIT_TIMEOUT, InvalidArgumentError, TestServersError

from .._match import (
    _MISSING,
    Criteria,
    arrival_report,
    check,
    describe_request,
    field,
    predicate_field,
    short,
    wait_matching,
)
from ._grammar import TOKEN_STR, VALUE_STR

if TYPE_CHECKING:
    from ._server import HandlerResult, HTTPRequest, Reply

__all__ = [
    "Expectation",
    "ExpectationError",
    "ExpectingServer",
    "UnexpectedRequest",
    "request_criteria",
    "make_reply",
]

T = TypeVar("T")

#: Expectations named in a strict-mode 500 and in its report (the nearest ones).
NEAREST_SHOWN: Final = 3
#: Unexpected requests whose near-miss report is shown in a check's report
#: (``server.unexpected`` has all of them).
UNEXPECTED_SHOWN: Final = 10


class ExpectationError(TestServersError, AssertionError):
    """An HTTP expectation was not met: unused, or requests nobody expected.

    Raised by ``assert_all_used()``, ``assert_no_unexpected()`` and
    ``check_expectations()``; an ``AssertionError``, so test runners report
    it as a failed assertion.
    """


class SequenceExhausted(ExpectationError):
    """A ``respond_sequence(..., then="fail")`` got more calls than responses.

    Recorded in ``server.errors``; the client gets a 500.
    """


def make_reply(
    status: int = 200,
    body: bytes | str = b"",
    *,
    json: Any = None,
    headers: Iterable[tuple[str, str]] | dict[str, str] | None = None,
    delay: float = 0,
) -> Reply:
    """A :class:`Reply` from keywords: ``json=`` is serialized with its Content-Type.

    ``delay`` (seconds) sends the reply from a reactor timer: nothing blocks.

    :raises InvalidArgumentError: a status outside 200-999, a body that is
        not bytes or str, a delay that is not a finite number >= 0, or a
        header that is not a (token, field value) pair of str: refused here,
        where the test wrote it, rather than as a 500 when a request arrives.
    """
    from ._server import Reply

    if type(status) is not int or not 200 <= status <= 999:
        raise InvalidArgumentError(f"status must be an int from 200 to 999, not {status!r}")
    if not isinstance(body, (bytes, str)):
        raise InvalidArgumentError(f"body must be bytes or str, not {type(body).__name__}")
    if type(delay) not in (int, float) or not 0 <= delay < float("inf"):
        raise InvalidArgumentError(f"delay must be a finite number of seconds >= 0, not {delay!r}")
    fields = list(headers.items() if isinstance(headers, dict) else headers or ())
    for pair in fields:
        if not (
            isinstance(pair, (tuple, list))
            and len(pair) == 2
            and isinstance(pair[0], str)
            and TOKEN_STR.fullmatch(pair[0])
            and isinstance(pair[1], str)
            and VALUE_STR.fullmatch(pair[1])
        ):
            raise InvalidArgumentError(
                f"each header must be a (name, value) pair of str, a token and a "
                f"field value without CR or LF, not {pair!r:.80}"
            )
    if json is not None:
        body = jsonlib.dumps(json).encode("utf-8")
        if not any(n.lower() == "content-type" for n, _ in fields):
            fields.append(("Content-Type", "application/json"))
    return Reply(status, body, tuple(fields), "", delay or None)


# --------------------------------------------------------------------------
# Matchers over requests
# --------------------------------------------------------------------------


def _query_value(request: HTTPRequest) -> dict[str, str | list[str]]:
    parsed = urllib.parse.parse_qs(request.query, keep_blank_values=True)
    return {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}


def _check_query(request: HTTPRequest, want: Any) -> str | None:
    if isinstance(want, str):
        return check(want, request.query)
    if isinstance(want, dict):
        got = _query_value(request)
        for key, spec in want.items():
            if key not in got:
                return f"{key!r} missing from {short(request.query)}"
            why = check(spec, got[key])
            if why is not None:
                return f"[{key!r}]: {why}"
        return None
    return check(want, _query_value(request))


def _check_headers(request: HTTPRequest, want: Any) -> str | None:
    if not isinstance(want, dict):
        return check(want, request.headers)
    for name, spec in want.items():
        value = request.header(name)
        why = check(spec, _MISSING if value is None else value)
        if why is not None:
            return f"{name}: {why}"
    return None


def _check_json(request: HTTPRequest, want: Any) -> str | None:
    try:
        value = request.json()
    except ValueError:
        return f"body is not JSON: {short(bytes(request.body))}"
    return check(want, value)


def _check_method(request: HTTPRequest, want: Any) -> str | None:
    return check(want.upper() if isinstance(want, str) else want, request.method)


def request_criteria(
    method: Any = None,
    path: Any = None,
    query: Any = None,
    headers: Any = None,
    json: Any = None,
    body: Any = None,
    predicate: Callable[[HTTPRequest], object] | None = None,
) -> Criteria:
    """The :class:`Criteria` for HTTP requests (the keywords of ``expect()``)."""
    return Criteria(
        [
            ("method", method, _check_method),
            field("path", lambda r: r.path, path),
            ("query", query, _check_query),
            ("headers", headers, _check_headers),
            ("json", json, _check_json),
            field("body", lambda r: bytes(r.body), body),
            predicate_field(predicate),
        ]
    )


# --------------------------------------------------------------------------
# Expectations
# --------------------------------------------------------------------------


class Expectation:
    """One expected request shape and what to answer it (made by ``server.expect()``).

    ``calls`` lists the requests it answered, oldest first.  ``times`` is
    ``None`` for a permanent expectation (any number of calls, at least one
    to count as used), else the exact number of calls it takes; once used up
    it no longer matches.  ``ordered`` expectations take their turn in the
    order they were made.  The ``respond*`` methods return the expectation,
    so ``e = server.expect(path="/x").respond(204)`` reads as one line.
    """

    def __init__(
        self,
        server: ExpectingServer,
        criteria: Criteria,
        times: int | None,
        ordered: bool,
        number: int,
    ) -> None:
        if times is not None and (type(times) is not int or times < 1):
            raise InvalidArgumentError(f"times must be None or an int >= 1, not {times!r}")
        self.server = server
        self.criteria = criteria
        self.times = times
        self.ordered = ordered
        #: 1 for the first expectation of the server, 2 for the next...
        self.number = number
        #: Requests this expectation answered, oldest first.
        self.calls: list[HTTPRequest] = []
        self._respond: Callable[[HTTPRequest, int], HandlerResult] = _default_respond

    # -- what to answer ---------------------------------------------------------

    def respond(
        self,
        status: int = 200,
        body: bytes | str = b"",
        *,
        json: Any = None,
        headers: Iterable[tuple[str, str]] | dict[str, str] | None = None,
        delay: float = 0,
    ) -> Expectation:
        """Answer every matching request with this response (see :func:`make_reply`)."""
        reply = make_reply(status, body, json=json, headers=headers, delay=delay)
        self._respond = lambda request, n: reply
        return self

    def respond_sequence(self, responses: Sequence[Any], *, then: str = "repeat") -> Expectation:
        """Answer the n-th call with ``responses[n]``: a :class:`Reply` (see
        :func:`make_reply`) or anything a handler may return (an ``int``
        status, a body, a tuple).  After the last: ``then="repeat"`` repeats
        it, ``then="fail"`` answers 500 and records :class:`SequenceExhausted`
        in ``server.errors``.
        """
        items = list(responses)
        if not items:
            raise InvalidArgumentError("respond_sequence() needs at least one response")
        if then not in ("repeat", "fail"):
            raise InvalidArgumentError(f'then must be "repeat" or "fail", not {then!r}')

        def pick(request: HTTPRequest, n: int) -> HandlerResult:
            if n < len(items):
                return items[n]  # type: ignore[no-any-return]
            if then == "repeat":
                return items[-1]  # type: ignore[no-any-return]
            raise SequenceExhausted(
                f"expectation #{self.number} ({self.describe()}) had {len(items)} "
                f"response(s) for call {n + 1}: {request.method} {request.target}"
            )

        self._respond = pick
        return self

    def respond_with(self, handler: Callable[[HTTPRequest], HandlerResult]) -> Expectation:
        """Answer with ``handler(request)`` (reactor thread; same results as ``handler=``)."""
        self._respond = lambda request, n: handler(request)
        return self

    # -- state ------------------------------------------------------------------

    @property
    def call_count(self) -> int:
        return len(self.calls)

    @property
    def kind(self) -> str:
        """``"permanent"``, ``"one-shot"``, ``"times=N"`` or ``"ordered"``."""
        if self.ordered:
            return "ordered"
        if self.times is None:
            return "permanent"
        return "one-shot" if self.times == 1 else f"times={self.times}"

    @property
    def used_up(self) -> bool:
        return self.times is not None and len(self.calls) >= self.times

    @property
    def satisfied(self) -> bool:
        """Called at least once (permanent), or exactly ``times`` times."""
        return len(self.calls) >= (self.times or 1)

    def describe(self) -> str:
        return f"expect({self.criteria.describe()})"

    def state(self) -> str:
        want = "any" if self.times is None else str(self.times)
        return f"{self.kind}, called {len(self.calls)} of {want}"

    def __repr__(self) -> str:
        return f"<Expectation #{self.number} {self.describe()} [{self.state()}]>"

    def wait(
        self, count: int = 1, timeout: float | None = DEFAULT_WAIT_TIMEOUT
    ) -> list[HTTPRequest]:
        """Block until this expectation answered ``count`` requests; return them.

        :raises TimeoutError: naming the expectation and the requests that arrived.
        """
        server = self.server

        def enough() -> list[HTTPRequest] | None:
            return list(self.calls[:count]) if len(self.calls) >= count else None

        def report() -> str:
            return arrival_report(list(server.requests), describe_request, self.criteria)

        return server.wait_for(
            enough, timeout, f"{count} call(s) of #{self.number} {self.describe()}", report=report
        )


def _default_respond(request: HTTPRequest, n: int) -> HandlerResult:
    return 200


class UnexpectedRequest:
    """A request no expectation (and no handler) answered, with the near-miss report."""

    __slots__ = ("request", "report")

    def __init__(self, request: HTTPRequest, report: str) -> None:
        self.request = request
        #: What the client got in the 500's body: the nearest expectations and why not.
        self.report = report

    def __repr__(self) -> str:
        return f"<UnexpectedRequest {describe_request(self.request)}>"


# --------------------------------------------------------------------------
# The server side (a mixin of HTTPServer)
# --------------------------------------------------------------------------


class ExpectingServer:
    """Expectations, strict mode and request queries for :class:`HTTPServer`.

    A mixin: the server calls :meth:`_route` for every request (reactor
    thread) to learn which callable answers it.
    """

    #: Strict mode (see the module doc); the constructor's ``strict=``.
    strict: bool = False
    handler: Callable[[HTTPRequest], HandlerResult] | None
    requests: list[HTTPRequest]
    _cond: Any
    _expectation_list: list[Expectation] | None = None
    _unexpected: list[UnexpectedRequest] | None = None

    if TYPE_CHECKING:

        def _record(self, records: list[Any], item: Any) -> None: ...
        def _label(self) -> str: ...
        def wait_for(
            self,
            predicate: Callable[[], T | None],
            timeout: float | None = ...,
            what: str = ...,
            *,
            report: Callable[[], str] | None = None,
        ) -> T: ...

        errors: list[BaseException]

    # -- registering (test thread) --------------------------------------------------

    def expect(
        self,
        method: Any = None,
        path: Any = None,
        query: Any = None,
        headers: Any = None,
        json: Any = None,
        body: Any = None,
        predicate: Callable[[HTTPRequest], object] | None = None,
        times: int | None = None,
        *,
        ordered: bool = False,
    ) -> Expectation:
        """Expect a request matching every keyword given; answer it with ``.respond*()``.

        ``times=None``: permanent (any number of calls, at least one);
        ``times=N``: exactly N calls, then it no longer matches.
        ``ordered=True``: one of a series that must be met in order (one call
        each unless ``times`` says otherwise).  Until a ``respond*`` method
        is called the answer is ``200`` with an empty body.
        """
        criteria = request_criteria(method, path, query, headers, json, body, predicate)
        if ordered and times is None:
            times = 1
        with self._cond:
            if self._expectation_list is None:
                self._expectation_list = []
            exp = Expectation(self, criteria, times, ordered, len(self._expectation_list) + 1)
            self._expectation_list.append(exp)
        return exp

    def expect_once(self, *args: Any, **kwargs: Any) -> Expectation:
        """``expect(..., times=1)``: one call, then it no longer matches."""
        kwargs["times"] = 1
        return self.expect(*args, **kwargs)

    def expect_ordered(self, *args: Any, **kwargs: Any) -> Expectation:
        """``expect(..., ordered=True)``: met in the order the ordered ones were made."""
        return self.expect(*args, ordered=True, **kwargs)

    @property
    def expectations(self) -> list[Expectation]:
        """Every expectation, in the order they were made (a snapshot)."""
        with self._cond:
            return list(self._expectation_list or ())

    @property
    def unexpected(self) -> list[UnexpectedRequest]:
        """Requests nothing answered in strict mode, oldest first (a snapshot)."""
        with self._cond:
            return list(self._unexpected or ())

    def clear_expectations(self) -> None:
        """Forget every expectation and every unexpected request."""
        with self._cond:
            self._expectation_list = None
            self._unexpected = None

    # -- checking (test thread) ----------------------------------------------------

    def unused_expectations(self) -> list[Expectation]:
        """Expectations not (fully) used: permanent ones never called, ``times=N`` ones short."""
        with self._cond:
            return [e for e in self._expectation_list or () if not e.satisfied]

    def assert_all_used(self) -> None:
        """:raises ExpectationError: listing every expectation that was not fully used."""
        unused = self.unused_expectations()
        if unused:
            raise ExpectationError(self._unused_report(unused))

    def assert_no_unexpected(self) -> None:
        """:raises ExpectationError: with the near-miss report of every unexpected request."""
        unexpected = self.unexpected
        if unexpected:
            raise ExpectationError(self._unexpected_report(unexpected))

    def check_expectations(self) -> None:
        """Both assertions at once, one report (what the pytest plugin runs at teardown).

        :raises ExpectationError: unexpected requests or unused expectations.
        """
        parts = []
        unexpected = self.unexpected
        if unexpected:
            parts.append(self._unexpected_report(unexpected))
        unused = self.unused_expectations()
        if unused:
            parts.append(self._unused_report(unused))
        if parts:
            raise ExpectationError("\n".join(parts))

    def _unused_report(self, unused: list[Expectation]) -> str:
        lines = [f"{self._label()}: {len(unused)} expectation(s) not used:"]
        lines += [f"  #{e.number} {e.describe()} [{e.state()}]" for e in unused]
        return "\n".join(lines)

    def _unexpected_report(self, unexpected: list[UnexpectedRequest]) -> str:
        head = f"{self._label()}: {len(unexpected)} unexpected request(s):"
        text = head + "".join("\n" + _indent(u.report) for u in unexpected[:UNEXPECTED_SHOWN])
        if len(unexpected) > UNEXPECTED_SHOWN:
            more = len(unexpected) - UNEXPECTED_SHOWN
            text += f"\n  ... and {more} more (see server.unexpected)"
        return text

    # -- queries (any thread) -------------------------------------------------------

    def find_requests(
        self,
        method: Any = None,
        path: Any = None,
        query: Any = None,
        headers: Any = None,
        json: Any = None,
        body: Any = None,
        predicate: Callable[[HTTPRequest], object] | None = None,
    ) -> list[HTTPRequest]:
        """Recorded requests matching every keyword given (same matchers as ``expect()``)."""
        criteria = request_criteria(method, path, query, headers, json, body, predicate)
        return criteria.select(self.requests)

    def _wait_requests(
        self, count: int, timeout: float | None, matchers: dict[str, Any]
    ) -> list[HTTPRequest]:
        """``wait_for_requests(count, timeout, **matchers)``: the server's wait."""
        criteria = request_criteria(**matchers)
        return wait_matching(
            self,
            lambda: self.requests,
            count,
            timeout,
            "HTTP request(s)",
            criteria,
            describe_request,
        )

    # -- routing (reactor thread) ---------------------------------------------------

    def _route(self, request: HTTPRequest) -> Callable[[HTTPRequest], HandlerResult] | None:
        """Which callable answers ``request``: an expectation, the handler, strict 500, None."""
        exps = self._expectation_list
        if exps is None and not self.strict:
            return self.handler
        with self._cond:
            chosen = _choose(exps or [], request)
            if chosen is not None:
                n = len(chosen.calls)
                chosen.calls.append(request)
                self._cond.notify_all()
                respond = chosen._respond
                return lambda r: respond(r, n)
            if self.handler is not None or not self.strict:
                return self.handler
            report = near_miss_report(list(exps or ()), request)
            self._unexpected = self._unexpected or []
            self._unexpected.append(UnexpectedRequest(request, report))
            self._cond.notify_all()
        return lambda r: _strict_reply(report)


def _choose(exps: list[Expectation], request: HTTPRequest) -> Expectation | None:
    head = next((e for e in exps if e.ordered and not e.used_up), None)
    if head is not None and head.criteria.matches(request):
        return head
    for e in exps:
        if not e.ordered and e.times is not None and not e.used_up:
            if e.criteria.matches(request):
                return e
    for e in exps:
        if e.times is None and e.criteria.matches(request):
            return e
    return None


def near_miss_report(exps: list[Expectation], request: HTTPRequest) -> str:
    """Why no expectation matched ``request``: the nearest ones, each with its reasons."""
    lines = [f"no expectation matched {describe_request(request)}"]
    if not exps:
        lines.append("  (no expectations registered, and no handler= fallback)")
        return "\n".join(lines)
    head = next((e for e in exps if e.ordered and not e.used_up), None)
    scored = []
    for e in exps:
        reasons = e.criteria.mismatches(request)
        if e.used_up:
            reasons.append(f"used up ({e.state()})")
        elif e.ordered and e is not head and head is not None and not reasons:
            reasons.append(f"out of order: ordered #{head.number} comes first")
        scored.append((len(reasons), e.number, e, reasons))
    scored.sort(key=lambda t: (t[0], t[1]))
    shown = scored[:NEAREST_SHOWN]
    lines.append(f"nearest expectation(s), {len(shown)} of {len(exps)}:")
    for _, _, e, reasons in shown:
        lines.append(f"  #{e.number} {e.describe()} [{e.state()}]")
        lines += [f"      {why}" for why in reasons]
    return "\n".join(lines)


def _strict_reply(report: str) -> Reply:
    from ._server import Reply

    body = f"500 testservers strict mode: {report}\n".encode("utf-8", "replace")
    return Reply(500, body, (("Content-Type", "text/plain; charset=utf-8"),))


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
