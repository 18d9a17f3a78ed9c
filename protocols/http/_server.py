"""HTTP/1.1 and HTTPS servers on the shared reactor.

:class:`HTTPServer` is the native server; ``TestHTTPServer`` (in
:mod:`protocols.http._compat`) is the drop-in for CPython test_logging's
helper.  Both run every connection on the reactor thread through an
:class:`~protocols.http._machine.HTTP11Machine`: no thread per connection or per
server.

Handlers run on the reactor thread, one request at a time per connection and
in request order, after the whole request body has been received (an
optional ``on_head`` hook sees the head first and may answer without reading
the body, so no ``100 Continue`` is sent for refused uploads).  They must
not block: a handler that needs time answers later, either by returning a
:class:`Reply` with ``delay=`` (sent by a reactor timer) or by calling
``request.respond_later()`` and completing the returned :class:`Responder`
from any thread.  Meanwhile every other connection and server goes on.

What a request gets when things go wrong:

* the handler raises: ``500 Internal Server Error`` naming the exception; the
  exception is recorded in ``server.errors`` (and re-raised by
  ``stop(raise_errors=True)``);
* the handler returns nothing (native: ``None`` without ``respond_later()``;
  compat: no ``send_response()``/``send_error()`` and nothing written): 500,
  and a :class:`NoResponseError` in ``server.errors``;
* the client sends malformed or oversize input: the machine's 4xx/5xx
  (400, 413, 414, 417, 431, 501, 505) with ``Connection: close``; the error is
  recorded in ``server.protocol_errors`` (it is the client's fault, not the
  handler's), and the connection is closed gracefully (write side first,
  so the client reads the error before the close).
"""

from __future__ import annotations

import email.utils
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, NamedTuple

from reactor import (
    DEFAULT_WAIT_TIMEOUT,
    EVENTS_PER_PASS,
    PASS_TIME_BUDGET,
    PassBudget,
    ReactorDied,
    ReactorExited,
    StreamServerBase,
    StreamTransport,
    TimerHandle,
    safe_repr,
)

from ._errors import AlreadyAnsweredError, InvalidReplyError, NoResponseError
from ._events import (
    DEFAULT_LIMITS,
    NEED_DATA,
    PAUSED,
    Data,
    EndOfMessage,
    Headers,
    HTTPLimits,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
)
from ._expect import ExpectingServer
from ._machine import HTTP11Machine
from ._state import State

_IDLE: Final = State.IDLE

__all__ = [
    "HTTPRequest",
    "HTTPServer",
    "NoResponseError",
    "Reply",
    "Responder",
]

#: While a response is pending, reading from its connection pauses once this
#: many bytes of further (pipelined) requests are buffered.
PIPELINE_BUFFER_LIMIT: Final = 1024 * 1024

# EVENTS_PER_PASS and PASS_TIME_BUDGET (the per-pass budget) live in
# reactor._pacing; they stay importable from here.

#: After an error response the server stops writing, keeps reading and
#: discarding for up to this many seconds so the client can read the error
#: (closing with unread input would reset the connection and lose it), then
#: closes.
LINGER_SECONDS: Final = 2.0

SERVER_SOFTWARE: Final = "testservers"

_TEXT_PLAIN: Final = ("Content-Type", "text/plain; charset=utf-8")

# Lowered field names of the handlers' header tuples (handlers return the
# same few tuples again and again); bounded.
_FIELD_NAMES: dict[tuple[tuple[str, str], ...], frozenset[str]] = {}
_FIELD_NAMES_MAX: Final = 256


# A handler's header tuple -> (the Date field it was completed with, the
# completed tuple) for bytes bodies: reused while date_field() returns that
# same field object (within the second).  Bounded like _FIELD_NAMES.
_DATED: dict[tuple[tuple[str, str], ...], tuple[tuple[str, str], Headers]] = {}

_date_second = -1
_date_field: tuple[str, str] = ("Date", "")


def date_field() -> tuple[str, str]:
    """The ``("Date", IMF-fixdate)`` field for now (RFC 9110 §6.6.1), cached per second."""
    global _date_second, _date_field
    now = int(time.time())
    if now != _date_second:
        _date_field = ("Date", email.utils.formatdate(now, usegmt=True))
        _date_second = now
    return _date_field


def http_date() -> str:
    """The current time as an RFC 9110 §5.6.7 IMF-fixdate (cached per second)."""
    return date_field()[1]


# --------------------------------------------------------------------------
# What handlers receive and return (native API)
# --------------------------------------------------------------------------


class Reply(NamedTuple):
    """A response a native handler returns (immutable).

    ``body`` may be ``str`` (sent as UTF-8 with ``Content-Type: text/plain;
    charset=utf-8`` unless a Content-Type is given).  ``Content-Length`` is
    added from the body, and ``Date`` when absent.  ``delay`` (seconds) sends
    it later from a reactor timer, without blocking anything.
    """

    status: int = 200
    body: bytes | str = b""
    headers: Iterable[tuple[str, str]] = ()
    reason: str = ""
    delay: float | None = None


class HTTPRequest:
    """A complete request, as recorded by the server and given to handlers.

    Created on the reactor thread; immutable afterwards except for the
    ``respond_later()`` bookkeeping.
    """

    __slots__ = (
        "head",
        "body",
        "trailers",
        "client_address",
        "server",
        "received_at",
        "complete",
        "_conn",
        "_responder",
    )

    def __init__(
        self,
        head: Request,
        body: bytes,
        trailers: Headers,
        client_address: Any,
        server: HTTPServer,
        conn: _HTTPConnection | None,
    ) -> None:
        #: The parsed request head (the machine's :class:`Request` event).
        self.head = head
        #: The decoded body (chunked framing removed).
        self.body: bytes = body
        self.trailers: Headers = trailers
        self.client_address = client_address
        self.server = server
        #: ``time.monotonic()`` when the request was complete.
        self.received_at = time.monotonic()
        #: False for a request answered from its head by ``on_head`` (its
        #: body, if any, was not read: ``body`` is empty).
        self.complete = True
        self._conn = conn
        self._responder: Responder | None = None

    @property
    def method(self) -> str:
        return self.head.method

    @property
    def target(self) -> str:
        """The request-target exactly as sent (path and query)."""
        return self.head.target

    @property
    def path(self) -> str:
        """The target up to ``?``."""
        return self.head.target.partition("?")[0]

    @property
    def query(self) -> str:
        """The target after ``?`` (``""`` if none)."""
        return self.head.target.partition("?")[2]

    @property
    def http_version(self) -> str:
        """``"1.0"`` or ``"1.1"``."""
        return self.head.http_version

    @property
    def headers(self) -> Headers:
        """``(name, value)`` pairs in arrival order, names in their original case."""
        return self.head.headers

    def header(self, name: str, default: str | None = None) -> str | None:
        """Value of header field *name* (case-insensitive; repeated fields joined by ``", "``)."""
        lname = name.lower()
        found = [v for n, v in self.headers if n.lower() == lname]
        return ", ".join(found) if found else default

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` if it is not)."""
        import json

        return json.loads(self.body)

    def respond_later(self) -> Responder:
        """Answer this request later: return a :class:`Responder` to complete.

        Call it from the handler (reactor thread), return ``None`` (or the
        responder), and call ``responder.send(...)`` from any thread when
        ready.  Until then the connection waits (pipelined requests behind it
        wait too: HTTP/1.1 answers in order); other connections do not.
        """
        if self._responder is None:
            self._responder = Responder(self)
            if self._conn is not None:
                self._conn._pending = self._responder
        return self._responder

    def apply_fault(self, fault: Any) -> None:
        """Send the reply to this request through an HTTP fault (``protocols.http``'s
        ``DelayHead``, ``TruncateBody``, ``FailFirst``...).  Call it from the
        handler, or an expectation's responder, on the reactor thread.
        """
        from ._faults import apply_fault

        apply_fault(self, fault)

    def __repr__(self) -> str:
        return f"<HTTPRequest {self.method} {self.target} HTTP/{self.http_version}>"


class Responder:
    """Completes a request answered with :meth:`HTTPRequest.respond_later`.

    :meth:`send` may be called from any thread, once.
    """

    def __init__(self, request: HTTPRequest) -> None:
        self.request = request
        self._lock = threading.Lock()
        self._sent = False

    @property
    def sent(self) -> bool:
        return self._sent

    def send(
        self,
        reply: Reply | int = 200,
        body: bytes | str = b"",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Send the response: a :class:`Reply`, or a status with body and headers.

        :raises AlreadyAnsweredError: if this responder already sent (also a
            ``RuntimeError``).
        A connection that closed meanwhile silently drops the response.
        """
        if not isinstance(reply, Reply):
            reply = Reply(reply, body, tuple(headers))
        with self._lock:
            if self._sent:
                raise AlreadyAnsweredError(f"{self.request!r} was already answered")
            self._sent = True
        conn = self.request._conn
        if conn is not None:
            conn.call_on_reactor(conn.respond, self, reply)

    __call__ = send


HandlerResult = Reply | Responder | int | bytes | str | tuple[Any, ...] | None


# --------------------------------------------------------------------------
# One connection
# --------------------------------------------------------------------------


class _HTTPConnection:
    """Glue between one transport and its HTTP11Machine (reactor thread)."""

    def __init__(self, server: HTTPServer, addr: Any) -> None:
        self.server = server
        self.client_address = addr
        self.machine = HTTP11Machine(limits=server.limits)
        self.transport: StreamTransport | None = None
        self._head: Request | None = None
        self._body: bytearray | None = None  # made by the first Data event
        self._pending: object | None = None  # who must answer the current request
        self._request: HTTPRequest | None = None  # the request being answered
        self._in_process = False
        self._skip_body = False
        self._closed = False
        self._lingering = False
        self._paused = False  # reading paused: too many pipelined bytes
        self._yielded = False  # reading paused: turn given to other sockets
        self._write_paused = False  # replies wait for the client to read
        self._timer: TimerHandle | None = None
        self._budget = PassBudget(EVENTS_PER_PASS, PASS_TIME_BUDGET)
        self._fault: Any = None  # (HTTPFault, FaultRecord) for the current request

    # -- StreamProtocol --------------------------------------------------------

    def connection_made(self, transport: StreamTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # discarded: the connection is ending after an error
        if (
            self._pending is None
            and not self._in_process
            and not self._paused
            and not self._yielded
            and not self._write_paused
        ):
            srv = self.server
            if (
                srv._fast_path
                and srv.on_head is None
                and (srv._fault_set is None or not srv._fault_set.http_rules)
            ):
                self._fast(data)
                return
        self.machine.receive_data(data)
        self._process()

    def _fast(self, data: bytes) -> None:
        """The keep-alive fast path: answer whole memoized requests straight from *data*.

        Does what ``receive_data(data)`` and :meth:`_process_events` do, in
        the same order and with the same budget, for each leading request
        that :meth:`HTTP11Machine.fast_request` can take (a complete head
        accepted before, no body or a whole ``Content-Length`` body, on a
        persistent connection): the same dispatch (records, expectations,
        handler, errors, reply checks, serialization), without buffering the
        bytes or pulling events one call at a time.  The first request it
        cannot take, and everything after it, go to the machine and the
        full loop (:meth:`_process_events`, same budget), as does any state
        the fast path does not model (a response owed, write back-pressure,
        output waiting).  The replies go to the transport in one
        ``write_now()``: sent at once if nothing is queued before them.
        """
        m = self.machine
        t = self.transport
        assert t is not None
        srv = self.server
        draining = srv._draining
        budget = self._budget
        if draining:
            budget.unlimited()
        else:
            budget.start()
        spend = budget.spend_many
        backlog = t.get_write_buffer_size() - t.high_water
        fast_request = m.fast_request
        dispatch = srv._dispatch
        pos = 0
        n = len(data)
        self._in_process = True
        try:
            while True:
                # _process_events's loop conditions, in its order.
                if (
                    self._pending is not None
                    or self._closed
                    or (not draining and (self._write_paused or len(m._out) + backlog > 0))
                ):
                    break
                if pos >= n and m.their_state is _IDLE and m.our_state is _IDLE:
                    # All answered, the connection kept: NEED_DATA, then _flush.
                    if m._out:
                        t.write_now(m.data_to_send())
                    return
                got = fast_request(data, pos, spend)
                if got is None:
                    break
                request, body, pos = got
                self._head = None
                self._body = None
                self._pending = self  # a response is owed from now on
                dispatch(self, request, body, ())
            # The full machine from here, with this pass's budget.
            if pos < n:
                m.receive_data(data[pos:] if pos else data)
            self._process_events(fresh_budget=False)
        finally:
            self._in_process = False

    def eof_received(self) -> bool | None:
        if self._lingering:
            return None  # the client read the error and closed: close too
        self.machine.receive_data(b"")
        self._process()
        return True  # keep writing: a response may still be owed

    def connection_lost(self, exc: BaseException | None) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- cross-thread entry ------------------------------------------------------

    def call_on_reactor(self, fn: Callable[..., None], *args: Any) -> None:
        t = self.transport
        if t is None or self._closed:
            return
        try:
            t.reactor.call_on_reactor(fn, *args)
        except (ReactorDied, ReactorExited):
            pass  # stopped meanwhile: the response is dropped, as documented

    # -- write back-pressure (called by the transport) -------------------------

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        if self._write_paused:
            self._write_paused = False
            if not self._in_process:
                self._process()

    def _update_reading(self) -> None:
        t = self.transport
        if t is None or self._closed or self._lingering:
            return
        if self._paused or self._yielded:
            t.pause_reading()
        else:
            t.resume_reading()

    def _yield_turn(self) -> None:
        """Let the other sockets have this pass; carry on in the next one."""
        t = self.transport
        assert t is not None
        if not self._yielded:
            self._yielded = True
            self._update_reading()
        t.reactor.call_soon(self._resume_turn)

    def _resume_turn(self) -> None:
        if not self._closed and not self._in_process:
            self._process()

    # -- the request loop ----------------------------------------------------------

    def _process(self) -> None:
        """Pull events until the machine needs data or a response is owed."""
        if self._in_process:
            return
        self._in_process = True
        try:
            self._process_events()
        finally:
            self._in_process = False

    def _process_events(self, fresh_budget: bool = True) -> None:
        m = self.machine
        t = self.transport
        assert t is not None
        next_event = m.next_event
        draining = self.server._draining
        budget = self._budget
        if not fresh_budget:
            pass  # carrying on in the pass _fast began
        elif draining:
            budget.unlimited()
        else:
            budget.start()
        if self._pending is not None and not self._paused and m.buffered > PIPELINE_BUFFER_LIMIT:
            # A response is owed (respond_later(), Reply(delay=)...) while the
            # client keeps pipelining: read no more until it is answered.
            self._paused = True
            self._update_reading()
        # The transport's backlog cannot change inside this loop (responses
        # are queued in the machine and handed over by _flush at its end).
        backlog = t.get_write_buffer_size() - t.high_water
        rb = m._rb
        while self._pending is None and not self._closed:
            if self._write_paused and not draining:
                break  # resume_writing() carries on once the client reads
            if not draining and len(m._out) + backlog > 0:
                # Replies pile up faster than the client reads them: hand
                # them to the transport (which pauses writing once they
                # pass its high-water mark: resume_writing() carries on, no
                # rescheduling every pass) and otherwise look again in the
                # next pass, before answering any more pipelined requests.
                self._flush()
                if not self._write_paused:
                    self._yield_turn()
                return
            if rb.pos >= len(rb.data) and m.their_state is _IDLE and not m._eof:
                ev: object = NEED_DATA  # between requests, nothing buffered: no parse
            else:
                if not budget.spend():
                    self._yield_turn()
                    break
                try:
                    ev = next_event()
                except RemoteProtocolError as exc:
                    self.server._protocol_error(exc, self.client_address)
                    self._linger()
                    return
            etype = type(ev)
            if etype is Request:
                assert isinstance(ev, Request)
                self._head = ev
                self._body = None
                if self.server.on_head is not None and self.server._check_head(self, ev):
                    self._skip_body = True  # answered from the head
            elif etype is EndOfMessage:
                assert isinstance(ev, EndOfMessage)
                head, self._head = self._head, None
                if self._skip_body:  # answered from the head already
                    self._skip_body = False
                    continue
                assert head is not None
                body = bytes(self._body) if self._body else b""
                self._pending = self  # a response is owed from now on
                self.server._dispatch(self, head, body, ev.trailers)
            elif etype is Data:
                assert isinstance(ev, Data)
                if not self._skip_body:
                    if self._body is None:
                        self._body = bytearray(ev.data)
                    else:
                        self._body += ev.data
            elif ev is NEED_DATA:
                if self._yielded:  # all caught up: read again
                    self._yielded = False
                    self._update_reading()
                break
            elif ev is PAUSED:
                if m.buffered > PIPELINE_BUFFER_LIMIT and not self._paused:
                    self._paused = True
                    self._update_reading()
                break
            else:  # ConnectionClosed
                self._flush()
                t.close()
                return
        self._flush()

    def _flush(self) -> None:
        """Hand what the machine queued to the transport (one write per pass)."""
        t = self.transport
        assert t is not None
        m = self.machine
        if m.close_after_send:
            if m.their_state is State.SEND_BODY and not m.eof_received:
                self._linger()  # the request body is still coming: drain it
            else:
                if m._out:
                    t.write(m.data_to_send())
                t.close()
        elif m._out:
            t.write(m.data_to_send())

    def _linger(self) -> None:
        """Send the queued error, half-close, drain input a while, then close."""
        t = self.transport
        assert t is not None
        if self._lingering:
            return
        self._lingering = True
        data = self.machine.data_to_send()
        if data:
            t.write(data)
        if self.machine.eof_received:
            t.close()  # the client has finished sending: nothing to drain
            return
        t.write_eof()
        reactor = t.reactor
        self._timer = reactor.call_later(LINGER_SECONDS, t.close)

    def respond_now(self, reply: Reply | bytes) -> None:
        """Answer the pending request with *reply* (raw bytes: verbatim, then close)."""
        if isinstance(reply, bytes):
            self.respond_raw(self._pending, reply)
        else:
            self.respond(self._pending, reply)

    def respond(self, token: object, reply: Reply) -> None:
        """Send *reply* for the pending request if *token* owns it (reactor thread)."""
        if self._closed or self._pending is not token:
            return
        if self._fault is not None:  # an HTTP fault sends this one (see _faults.py)
            (fault, record), self._fault = self._fault, None
            if fault.on_reply(self, token, reply, record):
                return
        reply = _checked_reply(reply, self.server)
        if reply.delay is not None and reply.delay > 0:
            t = self.transport
            assert t is not None
            now = Reply(reply.status, reply.body, reply.headers, reply.reason)
            self._timer = t.reactor.call_later(reply.delay, self.respond, token, now)
            return
        self._timer = None
        self._pending = None
        request, self._request = self._request, None
        if request is not None:
            request._conn = None  # see _forget_request
        _serialize_reply(self.machine, reply, self.server)
        if not self._in_process:
            self._flush()  # else _process_events flushes once at its end
        if self._paused:
            self._paused = False
            self._update_reading()
        if not self._in_process:
            self._process()

    def answer_pending_at_stop(self) -> None:
        """At ``stop()``: a response still owed becomes a 503 (reactor thread)."""
        token, request = self._pending, self._request
        if token is None or self._closed:
            return
        if self._timer is not None:  # a Reply(delay=) that will never fire
            self._timer.cancel()
            self._timer = None
        if request is not None:
            self.server._record(self.server.unanswered, request)
        # A Responder's later send() finds the request answered and the
        # connection closed: it is dropped, as documented.
        self.respond(
            token,
            Reply(503, "503 Service Unavailable: the server stopped before the handler "
                  "answered\n", (("Connection", "close"),)),
        )
        if self._in_process:
            # stop() called by the handler itself (issue 9 item 1): the 503
            # must reach the transport before stop() closes it, since this
            # connection's own flush at the end of its pass never comes.
            self._flush()

    def respond_raw(self, token: object, data: bytes) -> None:
        """Send a handler-made response verbatim, then close (reactor thread)."""
        if self._closed or self._pending is not token:
            return
        self._pending = None
        self._forget_request()
        self.machine.send_raw(data)
        self._flush()

    def _forget_request(self) -> None:
        # A recorded request must not keep its (possibly long gone)
        # connection alive once it has been answered.
        request, self._request = self._request, None
        if request is not None:
            request._conn = None

    def _send_reply(self, reply: Reply) -> None:
        _serialize_reply(self.machine, reply, self.server)
        if not self._in_process:
            self._flush()  # else _process_events flushes once at its end


# --------------------------------------------------------------------------
# The native server
# --------------------------------------------------------------------------

Handler = Callable[[HTTPRequest], HandlerResult]


class HTTPServer(ExpectingServer, StreamServerBase):
    """An HTTP/1.1 server (HTTPS with ``ssl_context``) on the shared reactor.

    :param addr: ``(host, port)``; default ``("127.0.0.1", 0)``.
    :param handler: ``handler(request: HTTPRequest)`` on the reactor thread,
        returning a :class:`Reply`, a status ``int``, a body (``bytes`` or
        ``str``, status 200), a tuple ``(status, body)`` or ``(status,
        headers, body)``, or ``None`` after ``request.respond_later()``.
        Default: every request gets ``200`` with an empty body.
    :param ssl_context: serve HTTPS (see :func:`protocols._tls.localhost_contexts`).
    :param limits: per-connection :class:`HTTPLimits` (request line, header
        section, body size).
    :param record: keep every request in :attr:`requests` and every refused
        one in :attr:`protocol_errors` (default True); with False the server
        keeps neither (``on_protocol_error`` is still called), so a
        long-running sink holds nothing it has answered.
    :param on_head: ``on_head(head: Request)`` on the reactor thread when a
        request head has arrived, before its body is read.  Return ``None``
        to go on (the body is read; a ``100 Continue`` is sent if the client
        expects one), or a response (same shapes as ``handler``) to answer
        now without reading the body: no ``100 Continue`` is ever sent for
        it, the request is recorded with ``complete=False``, and the
        connection closes after the response.
    :param on_protocol_error: ``on_protocol_error(error, peer)`` on the
        reactor thread for each malformed or hostile request refused, after
        it was recorded in :attr:`protocol_errors`: ``error`` is the
        :class:`RemoteProtocolError` (``str(error)`` the reason,
        ``status_hint`` the status answered, ``offending`` the refused
        input), ``peer`` the client's address.  Exceptions go to ``errors``.
    :param strict: answer requests no expectation (``expect()``) and no
        handler answers with a 500 naming the nearest expectations, and
        record them in :attr:`unexpected` (see :mod:`protocols.http._expect`).

    Other keywords are :class:`reactor.BaseServer`'s (``poll_interval``,
    ``idle_timeout``, ``raise_errors``...).  Usable as a context manager::

        with HTTPServer(handler=lambda r: Reply(201, b"made")) as srv:
            urllib.request.urlopen(srv.url + "/x", data=b"...")
            [req] = srv.wait_for_requests(1)
    """

    def __init__(
        self,
        addr: Any = None,
        handler: Handler | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limits: HTTPLimits = DEFAULT_LIMITS,
        record: bool = True,
        on_head: Callable[[Request], HandlerResult] | None = None,
        on_protocol_error: Callable[[RemoteProtocolError, Any], object] | None = None,
        strict: bool = False,
        **kwargs: Any,
    ) -> None:
        self.handler = handler
        self.strict = strict
        self.on_head = on_head
        self.on_protocol_error = on_protocol_error
        self.limits = limits
        self.record = record
        #: Every complete request, in arrival order (if ``record``).
        self.requests: list[HTTPRequest] = []
        #: Malformed or hostile requests that were refused (4xx/5xx sent):
        #: each a :class:`RemoteProtocolError` with the reason (``str()``),
        #: ``status_hint`` and the ``offending`` input octets.
        self.protocol_errors: list[RemoteProtocolError] = []
        #: Requests still waiting for a late response (``respond_later()``,
        #: ``Reply(delay=...)``) when ``stop()`` ran: each client got a 503.
        self.unanswered: list[HTTPRequest] = []
        super().__init__(addr, ssl_context=ssl_context, **kwargs)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8080`` (``https`` with TLS; IPv6 in brackets)."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.url_host}:{self.port}"

    def make_protocol(self, addr: Any) -> _HTTPConnection:
        return _HTTPConnection(self, addr)

    def _make_faults(self) -> Any:
        from ._faults import HTTPFaults

        return HTTPFaults(self)

    _draining = False  # inside stop(): no per-pass budget, handle it all

    # The keep-alive fast path (_HTTPConnection._fast); False sends every
    # request through the full machine loop (the equivalence tests compare).
    _fast_path = True

    def _detach(self) -> None:
        self._draining = True
        try:
            super()._detach()
        finally:
            self._draining = False

    def _before_close(self) -> None:
        # stop(): requests that arrived are handled now, even those a
        # connection had put off to give others their turn (G3).  A response
        # still owed after that (answered later, or delayed) never will be:
        # say so to the client and record it, instead of closing in silence.
        for t in list(self._transports):
            conn = t.protocol
            if isinstance(conn, _HTTPConnection):
                if conn._yielded and not conn._in_process:
                    conn._process()
                conn.answer_pending_at_stop()

    # -- reactor side -------------------------------------------------------------

    def _dispatch(
        self, conn: _HTTPConnection, head: Request, body: bytes, trailers: Headers
    ) -> None:
        request = HTTPRequest(head, body, trailers, conn.client_address, self, conn)
        conn._request = request
        if self.record:
            self._record(self.requests, request)
        if self._fault_set is not None and self._fault_set.http_rules:
            conn._fault = self._fault_set.pick(request)  # an HTTP fault, or None
            if conn._fault is not None and conn._fault[0].skips_handler():
                (fault, record), conn._fault = conn._fault, None
                fault.on_reply(conn, conn, None, record)
                return
        self._run_handler(conn, request)

    def _run_handler(self, conn: _HTTPConnection, request: HTTPRequest) -> None:
        """Call the native handler and send (or schedule) what it returns."""
        try:
            if self._expectation_list is None and not self.strict:
                handler = self.handler  # what _route() returns then, without the call
            else:
                handler = self._route(request)  # an expectation's, the handler, or strict's 500
        except BaseException as exc:  # a matcher's pytest.fail() too: never the reactor's death
            self.handle_error(exc, f"matching {request.method} {request.target}")
            conn.respond_now(_error_reply(exc))
            return
        if handler is None:
            conn.respond_now(Reply(200))
            return
        try:
            result = handler(request)
            if type(result) is Reply and result.delay is None and request._responder is None:
                reply: Reply | None = result  # the common case: skip the coercions
            else:
                reply = self._coerce(result, request)
        except BaseException as exc:  # pytest.fail() in a handler is a handler error (G5)
            self.handle_error(exc, f"handler for {request.method} {request.target}")
            conn.respond_now(_error_reply(exc))
            return
        if reply is not None:  # else respond_later(): the Responder answers
            conn.respond(conn._pending, reply)

    def _coerce(self, result: HandlerResult, request: HTTPRequest) -> Reply | None:
        if isinstance(result, Reply):
            if request._responder is not None:
                request._responder._sent = True  # the returned reply wins
            return result
        if result is None or result is request._responder:
            if request._responder is None:
                raise NoResponseError(
                    f"handler returned None for {request.method} {request.target} "
                    "(return a Reply, or call request.respond_later())"
                )
            return None
        if isinstance(result, bool):
            raise InvalidReplyError(f"handler returned {result!r}, not a response")
        if isinstance(result, int):
            return Reply(result)
        if isinstance(result, (bytes, str)):
            return Reply(200, result)
        if isinstance(result, tuple):
            if len(result) == 2:
                return Reply(result[0], result[1])
            if len(result) == 3:
                return Reply(result[0], result[2], result[1])  # checked when sent
        raise InvalidReplyError(f"handler returned {type(result).__name__}, not a response")

    def _check_head(self, conn: _HTTPConnection, head: Request) -> bool:
        """Run ``on_head``; True if it answered (reactor thread)."""
        assert self.on_head is not None
        request = HTTPRequest(head, b"", (), conn.client_address, self, None)
        request.complete = False
        try:
            result = self.on_head(head)
            if result is None:
                return False
            reply = self._coerce(result, request)
        except Exception as exc:
            self.handle_error(exc, f"on_head for {head.method} {head.target}")
            reply = _error_reply(exc)
        if self.record:
            self._record(self.requests, request)
        assert reply is not None
        conn._pending = conn
        conn.respond_now(reply)
        return True

    def _protocol_error(self, exc: RemoteProtocolError, peer: Any) -> None:
        if self.record:
            self._record(self.protocol_errors, exc)
        if self.on_protocol_error is not None:
            try:
                self.on_protocol_error(exc, peer)
            except Exception as cb_exc:
                self.handle_error(cb_exc, f"on_protocol_error for {safe_repr(exc)}")

    # -- waiting (any thread) -------------------------------------------------------

    def wait_for_requests(
        self, count: int = 1, timeout: float | None = DEFAULT_WAIT_TIMEOUT, **matchers: Any
    ) -> list[HTTPRequest]:
        """Wait until ``count`` requests (matching ``expect()``'s keywords, if given)
        were received; return the first ``count``.

        :raises TimeoutError: naming what arrived, and the nearest miss.
        """
        return self._wait_requests(count, timeout, matchers)

    def wait_for_request(
        self,
        predicate: Callable[[HTTPRequest], bool] | None = None,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    ) -> HTTPRequest:
        """Wait for the first request matching *predicate* (any request if None)."""

        def found() -> HTTPRequest | None:
            for r in self.requests:
                if predicate is None or predicate(r):
                    return r
            return None

        from .._match import arrival_report, describe_request

        return self.wait_for(
            found,
            timeout,
            "a matching HTTP request",
            report=lambda: arrival_report(list(self.requests), describe_request),
        )


# --------------------------------------------------------------------------
# Reply validation and serialization
# --------------------------------------------------------------------------


def _checked_reply(reply: Reply, server: HTTPServer) -> Reply:
    """*reply* with its headers as a tuple, or the 500 that replaces an invalid one.

    An invalid reply (see :class:`InvalidReplyError`) is recorded with
    ``server.handle_error`` and answered ``500`` now (never delayed).  The
    field contents (token names, no CR/LF in values) are checked by the
    machine when the reply is serialized (:func:`_serialize_reply`).
    """
    status, body, headers, reason, delay = reply
    if (
        type(status) is int
        and 200 <= status <= 999
        and type(body) is bytes
        and type(headers) is tuple
        and delay is None
        and (not headers or headers in _FIELD_NAMES)
    ):
        return reply  # the common case: nothing to convert
    try:
        if type(status) is not int or not 200 <= status <= 999:
            raise InvalidReplyError(f"Reply status must be an int from 200 to 999, not {status!r}")
        if not isinstance(body, (bytes, str, bytearray, memoryview)):
            raise InvalidReplyError(
                f"Reply body must be bytes or str, not {type(body).__name__}: {body!r:.60}"
            )
        if not isinstance(reason, str):
            raise InvalidReplyError(f"Reply reason must be a str, not {type(reason).__name__}")
        if delay is not None and (
            type(delay) not in (int, float) or not 0 <= delay < float("inf")
        ):
            raise InvalidReplyError(
                f"Reply delay must be None or a finite number of seconds >= 0, not {delay!r}"
            )
        fields, _ = _reply_fields(headers)
    except InvalidReplyError as exc:
        server.handle_error(exc, "checking the handler's reply")
        return _invalid_reply(exc)
    if type(body) is not bytes and not isinstance(body, str):
        body = bytes(body)
    return Reply(status, body, fields, reason, delay)


def _reply_fields(given: object) -> tuple[Headers, frozenset[str]]:
    """A reply's fields as a tuple of pairs, and their lowered names (memoized).

    :raises InvalidReplyError: *given* is not an iterable of ``(name,
        value)`` pairs (tuples or lists) of ``str``.
    """
    if isinstance(given, (str, bytes, bytearray, memoryview)):
        raise InvalidReplyError(
            f"Reply headers must be (name, value) pairs, not {type(given).__name__} {given!r:.60}"
        )
    try:
        headers: Headers = tuple(given)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidReplyError(
            f"Reply headers must be (name, value) pairs, not {type(given).__name__}"
        ) from None
    try:
        names = _FIELD_NAMES.get(headers)
        hashable = True
    except TypeError:  # list pairs: checked every time
        names, hashable = None, False
    if names is None:
        for pair in headers:
            if (
                type(pair) not in (tuple, list)
                or len(pair) != 2
                or not isinstance(pair[0], str)
                or not isinstance(pair[1], str)
            ):
                raise InvalidReplyError(
                    f"Reply headers must be (name, value) pairs of str, not {pair!r:.60}"
                )
        names = frozenset(p[0].lower() for p in headers)
        if hashable:
            # Only well-shaped tuples are remembered; their contents are
            # still checked by the machine on every send (and its own memo).
            if len(_FIELD_NAMES) >= _FIELD_NAMES_MAX:
                _FIELD_NAMES.clear()
            _FIELD_NAMES[headers] = names
    return headers, names


def _serialize_reply(m: HTTP11Machine, reply: Reply, server: HTTPServer) -> None:
    """Queue *reply* (checked by :func:`_checked_reply`) in machine *m*.

    Adds ``Date`` when absent, and ``Content-Type: text/plain; charset=utf-8``
    for a ``str`` body without one.  A reply the machine refuses (an invalid
    field name or value, a wrong Content-Length...) becomes an
    :class:`InvalidReplyError` in ``server.errors`` and a 500: the machine is
    unchanged by the refusal, so the 500 goes out cleanly.
    """
    status, body, given, reason, _ = reply
    # date_field(), without the call within the second.
    date = _date_field if int(time.time()) == _date_second else date_field()
    headers = None
    raw: bytes
    if type(given) is tuple and type(body) is bytes:
        # The common case: the same few header tuples again and again.
        raw = body
        try:
            cached = _DATED.get(given)
        except TypeError:  # list pairs: no memo
            cached = None
        if cached is not None and cached[0] is date:
            headers = cached[1]
    if headers is None:
        headers, names = _reply_fields(given)
        if "date" not in names:
            headers += (date,)
        if isinstance(body, str):
            raw = body.encode("utf-8")
            if "content-type" not in names:
                headers += (_TEXT_PLAIN,)
        else:
            raw = body
            if type(given) is tuple:
                try:
                    known = given in _FIELD_NAMES  # hashable and well-shaped
                except TypeError:
                    known = False
                if known:
                    if len(_DATED) >= _FIELD_NAMES_MAX:
                        _DATED.clear()
                    _DATED[given] = (date, headers)
    try:
        m.send_response(status, headers, raw, reason=reason)
    except LocalProtocolError as exc:
        err = InvalidReplyError(f"invalid reply: {exc}")
        err.__cause__ = exc
        server.handle_error(err, "sending the handler's reply")
        m.send_response(500, [_TEXT_PLAIN, date_field()], _invalid_body(err))


def _invalid_body(exc: InvalidReplyError) -> bytes:
    return f"500 Internal Server Error: {exc}\n".encode("utf-8", "replace")


def _invalid_reply(exc: InvalidReplyError) -> Reply:
    return Reply(500, _invalid_body(exc), (_TEXT_PLAIN,))


def _error_reply(exc: BaseException) -> Reply:
    text = f"500 Internal Server Error: {safe_repr(exc)}\n"
    headers = (("Content-Type", "text/plain; charset=utf-8"),)
    return Reply(500, text.encode("utf-8", "replace"), headers)
