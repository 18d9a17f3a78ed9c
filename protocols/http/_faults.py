"""HTTP faults: responses that arrive late, cut, malformed, or not at all.

``server.faults.add(fault, path=..., method=..., first=, every=, when=,
probability=, seed=)`` on an :class:`~protocols.http.HTTPServer` installs an
:class:`HTTPFault` for the requests it selects (the transport faults of
:mod:`reactor._faults` are added the same way).  Requests are numbered per
rule, from 1, among those that match ``path`` and ``method``; the first
rule that picks a request applies (one HTTP fault per request).

A handler (or an expectation's responder) can also put a fault on the
request it is answering: ``request.apply_fault(fault)``; the reply it
returns then goes out through the fault.

Each fault applied is recorded in ``server.faults.records`` (a
:class:`reactor.FaultRecord`; ``connection`` is the request's number for
its rule, ``detail`` names the request).  Reactor thread only, except
``add()``/``remove()``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from reactor import (
    DOWNSTREAM,
    FaultRecord,
    FaultRule,
    InvalidArgumentError,
    Selection,
    TransportFault,
    TransportFaults,
    reset_transport,
)

if TYPE_CHECKING:
    from ._server import HTTPRequest, Reply, _HTTPConnection

__all__ = [
    "HTTPFault",
    "HTTPFaults",
    "DelayHead",
    "DelayBody",
    "TruncateBody",
    "ResetMidBody",
    "MalformedChunk",
    "Garbage",
    "CloseWithoutResponse",
    "FailFirst",
    "RESET_GRACE",
]

#: Seconds between the last byte a :class:`ResetMidBody` sends and the RST,
#: so the partial response leaves the socket before the reset drops it.
RESET_GRACE = 0.02


def _check_seconds(name: str, value: object) -> None:
    if type(value) not in (int, float) or not 0 <= value < float("inf"):  # type: ignore[operator]
        raise InvalidArgumentError(f"{name} must be a finite number of seconds >= 0, not {value!r}")


def _check_keep(name: str, value: object) -> None:
    if value is not None and (type(value) is not int or value < 0):
        raise InvalidArgumentError(f"{name} must be None or an int >= 0, not {value!r}")


class HTTPFault:
    """Base of the HTTP faults.

    Subclasses implement :meth:`on_reply`; ``skips_handler()`` says whether
    the handler is called at all for a request the fault applies to.
    """

    name: ClassVar[str] = "http-fault"

    def skips_handler(self) -> bool:
        return False

    def on_reply(
        self, conn: _HTTPConnection, token: object, reply: Reply | None, record: FaultRecord
    ) -> bool:
        """Send ``reply`` (None: the handler was skipped) through the fault.

        Returns True if the fault took over the response, False to let it
        go out normally.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def _serialized(conn: _HTTPConnection, reply: Reply | None) -> tuple[bytes, bytes]:
    """The response's head and body bytes, as the machine frames them."""
    from ._server import Reply, _checked_reply, _serialize_reply

    server = conn.server
    reply = _checked_reply(reply if reply is not None else Reply(200), server)
    if reply.delay:
        reply = reply._replace(delay=None)
    _serialize_reply(conn.machine, reply, server)
    raw = conn.machine.data_to_send()
    head, sep, body = raw.partition(b"\r\n\r\n")
    return head + sep, body


def _finish(conn: _HTTPConnection, token: object) -> None:
    """The response went out: let the connection carry on (reactor thread)."""
    if conn._closed or conn._pending is not token:
        return
    conn._timer = None
    conn._pending = None
    conn._forget_request()
    if conn.machine.close_after_send:
        conn._flush()
    if conn._paused:
        conn._paused = False
        conn._update_reading()
    if not conn._in_process:
        conn._process()


def _end(conn: _HTTPConnection, data: bytes, *, reset: bool = False) -> None:
    """Write ``data``, then close (or reset) the connection."""
    t = conn.transport
    assert t is not None
    conn._pending = None
    conn._forget_request()
    if data:
        t.write(data)
    if reset:
        t._flush()
        t.pause_reading()
        t.reactor.call_later(RESET_GRACE, reset_transport, t)
    else:
        t.close()


class DelayHead(HTTPFault):
    """Send the response ``seconds`` late (nothing before it)."""

    name = "delay-head"

    def __init__(self, seconds: float) -> None:
        _check_seconds("DelayHead seconds", seconds)
        self.seconds = seconds

    def on_reply(
        self, conn: _HTTPConnection, token: object, reply: Reply | None, record: FaultRecord
    ) -> bool:
        from ._server import Reply

        t = conn.transport
        assert t is not None
        reply = reply if reply is not None else Reply(200)
        delay = (reply.delay or 0) + self.seconds
        conn._timer = t.reactor.call_later(delay, self._send, conn, token, reply, record)
        return True

    def _send(
        self, conn: _HTTPConnection, token: object, reply: Reply, record: FaultRecord
    ) -> None:
        if conn._closed or conn._pending is not token:
            return
        head, body = _serialized(conn, reply)
        record.bytes = len(head) + len(body)
        assert conn.transport is not None
        conn.transport.write(head + body)
        _finish(conn, token)


class DelayBody(HTTPFault):
    """Send the head now and the body ``seconds`` later."""

    name = "delay-body"

    def __init__(self, seconds: float) -> None:
        _check_seconds("DelayBody seconds", seconds)
        self.seconds = seconds

    def on_reply(
        self, conn: _HTTPConnection, token: object, reply: Reply | None, record: FaultRecord
    ) -> bool:
        head, body = _serialized(conn, reply)
        t = conn.transport
        assert t is not None
        t.write(head)
        record.bytes = len(body)
        # The body goes out when the timer fires, or at once if stop() comes
        # first (stop() answers what is owed: here, the rest of this response).
        conn._fault = (_SendBody(body), record)
        conn._timer = t.reactor.call_later(self.seconds, conn.respond, token, None)
        return True


class _SendBody(HTTPFault):
    """The second half of a :class:`DelayBody`: the body, whatever the reply."""

    name = "delay-body"

    def __init__(self, body: bytes) -> None:
        self._body = body

    def on_reply(
        self, conn: _HTTPConnection, token: object, reply: Reply | None, record: FaultRecord
    ) -> bool:
        assert conn.transport is not None
        conn.transport.write(self._body)
        _finish(conn, token)
        return True


class TruncateBody(HTTPFault):
    """Send the head (with the full ``Content-Length``) and only ``keep`` body
    bytes (default: half of it), then close cleanly."""

    name = "truncate-body"
    reset = False

    def __init__(self, keep: int | None = None) -> None:
        _check_keep(f"{type(self).__name__} keep", keep)
        self.keep = keep

    def on_reply(
        self, conn: _HTTPConnection, token: object, reply: Reply | None, record: FaultRecord
    ) -> bool:
        head, body = _serialized(conn, reply)
        keep = len(body) // 2 if self.keep is None else min(self.keep, max(0, len(body) - 1))
        record.bytes = len(body) - keep
        record.detail += f"; {keep} of {len(body)} body bytes sent"
        _end(conn, head + body[:keep], reset=self.reset)
        return True


class ResetMidBody(TruncateBody):
    """Like :class:`TruncateBody`, but end with a TCP reset instead of a close."""

    name = "reset-mid-body"
    reset = True


class MalformedChunk(HTTPFault):
    """Send the response chunked, with a valid first chunk (half the body) and
    then a chunk-size line that is not hexadecimal, then close."""

    name = "malformed-chunk"

    def on_reply(
        self, conn: _HTTPConnection, token: object, reply: Reply | None, record: FaultRecord
    ) -> bool:
        head, body = _serialized(conn, reply)
        lines = head[:-4].split(b"\r\n")
        kept = [ln for ln in lines if not ln.lower().startswith(b"content-length:")]
        kept.append(b"Transfer-Encoding: chunked")
        half = body[: len(body) // 2]
        out = b"\r\n".join(kept) + b"\r\n\r\n"
        if half:
            out += b"%x\r\n%s\r\n" % (len(half), half)
        out += b"zz;not-a-size\r\n" + body[len(half) :]
        record.bytes = len(out)
        _end(conn, out)
        return True


class Garbage(HTTPFault):
    """Answer ``data`` (not HTTP) instead of a response, then close."""

    name = "garbage"

    def __init__(self, data: bytes = b"\x00\xffnot http at all\r\n\r\n") -> None:
        if not isinstance(data, bytes):
            raise InvalidArgumentError(f"Garbage data must be bytes, not {type(data).__name__}")
        self.data = data

    def skips_handler(self) -> bool:
        return True

    def on_reply(
        self, conn: _HTTPConnection, token: object, reply: Reply | None, record: FaultRecord
    ) -> bool:
        record.bytes = len(self.data)
        _end(conn, self.data)
        return True


class CloseWithoutResponse(HTTPFault):
    """Close the connection without answering."""

    name = "close-without-response"

    def skips_handler(self) -> bool:
        return True

    def on_reply(
        self, conn: _HTTPConnection, token: object, reply: Reply | None, record: FaultRecord
    ) -> bool:
        _end(conn, b"")
        return True


class FailFirst(HTTPFault):
    """Answer the first ``n`` requests it is applied to with ``status`` (default
    503, the handler is not called), then let every later one through.

    The count is this object's own (shared by every rule and request that
    uses it); :attr:`failed` says how many it failed so far.
    """

    name = "fail-first"

    def __init__(
        self,
        n: int,
        status: int = 503,
        body: bytes | str = b"",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        if type(n) is not int or n < 0:
            raise InvalidArgumentError(f"FailFirst n must be an int >= 0, not {n!r}")
        if type(status) is not int or not 200 <= status <= 999:
            raise InvalidArgumentError(f"FailFirst status must be 200..999, not {status!r}")
        if not isinstance(body, (bytes, str)):
            raise InvalidArgumentError(f"FailFirst body must be bytes or str, not {body!r}")
        try:
            headers = tuple(headers)
        except TypeError:
            raise InvalidArgumentError(
                f"FailFirst headers must be (name, value) pairs, not {headers!r}"
            ) from None
        for pair in headers:
            if not (
                isinstance(pair, tuple) and len(pair) == 2
                and all(isinstance(x, str) for x in pair)
            ):
                raise InvalidArgumentError(
                    f"FailFirst header must be a (str, str) pair, not {pair!r}"
                )
        self.n = n
        self.status = status
        self.body = body
        self.headers = headers
        self.failed = 0

    def skips_handler(self) -> bool:
        return self.failed < self.n

    def on_reply(
        self, conn: _HTTPConnection, token: object, reply: Reply | None, record: FaultRecord
    ) -> bool:
        from ._server import Reply

        if self.failed >= self.n:
            record.action = "passed"
            return False
        self.failed += 1
        record.action = f"status {self.status}"
        record.action_at = time.monotonic()
        conn.respond(token, Reply(self.status, self.body, self.headers))
        return True


# -- the server's fault set -----------------------------------------------------


PathMatcher = str | re.Pattern[str] | Callable[[str], object] | None


def _path_matches(want: PathMatcher, path: str) -> bool:
    if want is None:
        return True
    if isinstance(want, str):
        return path == want
    if isinstance(want, re.Pattern):
        return want.search(path) is not None
    return bool(want(path))


class _HTTPRule(FaultRule):
    def __init__(
        self,
        owner: TransportFaults,
        fault: HTTPFault,
        selection: Selection,
        path: PathMatcher,
        method: str | None,
    ) -> None:
        super().__init__(owner, fault, DOWNSTREAM, selection)
        self.path = path
        self.method = method

    def matches(self, request: HTTPRequest) -> bool:
        if self.method is not None and request.method != self.method:
            return False
        return _path_matches(self.path, request.path)


class HTTPFaults(TransportFaults):
    """An HTTP server's ``faults``: transport faults and :class:`HTTPFault` s."""

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.http_rules: list[_HTTPRule] = []

    def add(
        self,
        fault: TransportFault | HTTPFault,
        *,
        path: PathMatcher = None,
        method: str | None = None,
        **kwargs: Any,
    ) -> FaultRule:
        """Install a transport fault (see :class:`reactor.TransportFaults`) or an
        HTTP fault for the requests to ``path`` (a ``str``: equal to the
        request's path; a compiled regex: searched; a callable: a
        predicate) with ``method``, picked by the selection keywords
        (``first``, ``every``, ``when(request)``, ``probability``, ``seed``).

        :raises InvalidArgumentError: ``path``/``method`` with a transport
            fault, a ``direction`` with an HTTP fault, or a bad value.
        """
        if not isinstance(fault, HTTPFault):
            if path is not None or method is not None:
                raise InvalidArgumentError("path= and method= select HTTP faults only")
            return super().add(fault, **kwargs)
        if "direction" in kwargs:
            raise InvalidArgumentError("HTTP faults act on the response: no direction=")
        if path is not None and not (isinstance(path, (str, re.Pattern)) or callable(path)):
            raise InvalidArgumentError(f"path must be a str, a regex or a callable, not {path!r}")
        if method is not None and not isinstance(method, str):
            raise InvalidArgumentError(f"method must be a str, not {method!r}")
        unknown = sorted(set(kwargs) - {"first", "every", "when", "probability", "seed"})
        if unknown:
            raise InvalidArgumentError(f"unexpected keyword(s) {unknown} for {fault!r}")
        selection = Selection(**kwargs)
        rule = _HTTPRule(self, fault, selection, path, method)
        self._on_reactor(self.http_rules.append, rule)
        return rule

    def _remove_rule(self, rule: FaultRule) -> None:
        if isinstance(rule, _HTTPRule):
            rule.active = False
            if rule in self.http_rules:
                self.http_rules.remove(rule)
            return
        super()._remove_rule(rule)

    def clear(self) -> None:
        for rule in list(self.http_rules):
            self.remove(rule)
        super().clear()

    def pick(self, request: HTTPRequest) -> tuple[HTTPFault, FaultRecord] | None:
        """The HTTP fault for ``request``, if a rule picks it (reactor thread)."""
        for rule in self.http_rules:
            if not rule.matches(request):
                continue
            try:
                n = rule.selection.pick(lambda i: request)
            except Exception as exc:
                self._server.handle_error(exc, f"fault rule {rule!r}: when=")
                continue
            if n is not None:
                assert isinstance(rule.fault, HTTPFault)
                return rule.fault, self.make_record(rule.fault, request, n, rule)
        return None

    def make_record(
        self, fault: HTTPFault, request: HTTPRequest, n: int, rule: FaultRule | None
    ) -> FaultRecord:
        rec = FaultRecord(
            fault, fault.name, DOWNSTREAM, n, request.client_address,
            detail=f"{request.method} {request.target}", rule=rule,
        )
        self._record(rec)
        return rec


def apply_fault(request: HTTPRequest, fault: HTTPFault) -> None:
    """Send the reply to ``request`` through ``fault`` (in a handler; reactor thread).

    :raises InvalidArgumentError: ``fault`` is not an :class:`HTTPFault`.
    """
    if not isinstance(fault, HTTPFault):
        raise InvalidArgumentError(f"not an HTTP fault: {fault!r}")
    conn = request._conn
    if conn is None:
        return  # answered already, or answered from the head
    faults = request.server.faults
    assert isinstance(faults, HTTPFaults)
    conn._fault = (fault, faults.make_record(fault, request, 1, None))
