"""The sans-I/O HTTP/1.1 server-side machine (RFC 9112 framing, RFC 9110 semantics).

Theory of operation
-------------------

One :class:`HTTP11Machine` serves one connection.  The caller feeds it the
bytes it received (``receive_data(b"")`` meaning EOF), pulls events with
``next_event()``, gives it the response with ``send()`` or
``send_response()``, and writes whatever ``data_to_send()`` returns.  The
machine never touches a socket.

The connection is two small state machines, one per direction, whose states,
transitions and special cases are all in :mod:`protocols.http._state`:

* *their* side (the client) goes IDLE -> SEND_BODY (a :class:`Request` was
  received) -> DONE (its :class:`EndOfMessage`);
* *our* side (the server) goes IDLE -> SEND_RESPONSE (a request arrived) ->
  SEND_BODY (a :class:`Response` was sent) -> DONE (its EndOfMessage).

A side that is DONE on a connection that will not be reused goes to
MUST_CLOSE, and when both sides are DONE the machine starts the next cycle
(both IDLE) by itself.  Because the machine parses
nothing while their side is DONE (``next_event()`` returns :data:`PAUSED`),
pipelined requests stay buffered and responses leave strictly in request
order.

Errors.  Bad input raises :class:`RemoteProtocolError` from ``next_event()``
with a ``status_hint``; the machine is then in ERROR and, if no response was
started, has queued a complete error response with ``Connection: close``.
Misuse raises :class:`LocalProtocolError`.

Line endings.  RFC 9112 §2.2 lets a recipient accept a bare LF as the end of a
line and ignore a preceding CR.  This machine does so in the request line and
the header section only (``GET / HTTP/1.1\\nHost: x\\n\\n`` is accepted, as
by nginx, node and CPython's http.server).  Inside chunked framing (chunk-size
lines, the CRLF after chunk data, the trailer section) it requires CRLF and
answers a bare LF with 400: that is where lenient and strict parsers
disagree about where a body ends, which is the substance of request
smuggling.  A bare CR anywhere is invalid (400), as RFC 9112 §2.2 allows.

Buffering.  Received bytes go into one :class:`~protocols._buffer.ReceiveBuffer`
(shared with the SMTP machine): a ``bytearray`` consumed by moving an
offset, each search resuming where the previous one stopped, so feeding a
request one byte at a time costs linear time; the array is compacted when
the consumed prefix is large.

Modules.  :mod:`._events` holds the vocabulary (events, errors, limits),
:mod:`._state` the states and every transition, :mod:`._grammar` the
request grammar and header-section parser, :mod:`._readers` the body
readers (one object per framing, chunked decoding among them) and
:mod:`._framing` the response heads and chunk encoding; this module drives
them.

Speed.  A complete head is decoded once (ISO-8859-1) and checked with a few
anchored regular expressions; validated header sections and complete
response heads are memoized in small bounded dicts (parsing and framing are
pure functions of their inputs, and a test suite or a load generator repeats
the same few), so a repeated request costs a dict lookup instead of a parse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from .._buffer import ReceiveBuffer
from ._errors import OFFENDING_BYTES_LIMIT
from ._events import (
    DEFAULT_LIMITS,
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Headers,
    HTTPLimits,
    HTTPProtocolError,
    InformationalResponse,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    Response,
    Signal,
    check_reason,
)
from ._framing import (
    CHUNKED,
    CLOSE,
    LENGTH,
    NONE,
    head_bytes,
    prepare_head,
    write_chunk,
    write_last_chunk,
)
from ._grammar import (
    ABSOLUTE_FORM,
    BARE_CR,
    DIGITS,
    HEAD_END,
    PARSED_SECTION_LONGEST,
    PARSED_SECTIONS,
    REQUEST_LINE_STR,
    Summary,
    parse_section,
    reason_phrase,
)
from ._readers import CHUNKS_PER_DATA_EVENT, NO_BODY, BodyReader, make_reader
from ._state import (
    OUR_TRANSITIONS,
    THEIR_TRANSITIONS,
    RawResponse,
    State,
    process_error,
    settle,
    transition,
)

# Module-level aliases of the states: ``State.X`` is a slow attribute lookup
# on 3.11 (about 0.1 us), and the hot path names states a few dozen times.
_IDLE: Final = State.IDLE
_SEND_RESPONSE: Final = State.SEND_RESPONSE
_SEND_BODY: Final = State.SEND_BODY
_DONE: Final = State.DONE
_MUST_CLOSE: Final = State.MUST_CLOSE
_CLOSED: Final = State.CLOSED
_ERROR: Final = State.ERROR

__all__ = ["CHUNKS_PER_DATA_EVENT", "HTTP11Machine", "State"]

# Where a request without a body leaves both sides, from IDLE, before
# settle(): their Request then EndOfMessage, our Request (the tables'
# transitions, taken once here; fast_request applies them in one step).
_FAST_THEIRS: Final = transition(
    THEIR_TRANSITIONS, transition(THEIR_TRANSITIONS, _IDLE, Request), EndOfMessage
)
_FAST_OURS: Final = transition(OUR_TRANSITIONS, _IDLE, Request)
# Our side after a complete response from SEND_RESPONSE (Response, then
# EndOfMessage), before settle(): send_response's common case.
_RESPONDED: Final = transition(
    OUR_TRANSITIONS, transition(OUR_TRANSITIONS, _SEND_RESPONSE, Response), EndOfMessage
)


_CONTINUE: Final = head_bytes(100, "Continue", ())
_END: Final = EndOfMessage()  # of a request without a body (immutable: shared)

# Complete response heads by everything that decides their bytes and framing
# (status, reason, fields, body length, persistence, version, HEAD): a test
# server answers with the same few responses, so each head is built once.
# Bounded, cleared when full.
_PREPARED_HEADS: dict[tuple[object, ...], tuple[bytes, int, int, bool]] = {}
_PREPARED_HEADS_MAX: Final = 512

# Accepted request heads (the decoded text, request line included) with
# what parsing them decided: the Request event (immutable, so it is shared)
# and (HTTP/1.1?, HEAD?, framing, length, 100-continue owed, keep-alive).
# All of it is a pure function of the text and the limits, so there is one
# memo per HTTPLimits object; a repeated head then costs its decode and one
# dict lookup.  Heads over PARSED_SECTION_LONGEST are not kept; bounded,
# cleared when full.
_HeadMemo = dict[str, tuple[Request, bool, bool, int, int, bool, bool]]
_HEADS_MAX: Final = 512
_HEAD_MEMOS: dict[int, tuple[HTTPLimits, _HeadMemo]] = {}
_HEAD_MEMOS_MAX: Final = 64


def _heads_for(limits: HTTPLimits) -> _HeadMemo:
    """The head memo for *limits* (keyed by identity; it keeps *limits* alive)."""
    entry = _HEAD_MEMOS.get(id(limits))
    if entry is None or entry[0] is not limits:
        if len(_HEAD_MEMOS) >= _HEAD_MEMOS_MAX:
            _HEAD_MEMOS.clear()
        entry = (limits, {})
        _HEAD_MEMOS[id(limits)] = entry
    return entry[1]


# Body framing of a message (both directions): see _http_framing.
_NONE, _LENGTH, _CHUNKED, _CLOSE = NONE, LENGTH, CHUNKED, CLOSE


class HTTP11Machine:
    """Server side of one HTTP/1.1 connection, without I/O.

    Not thread-safe: one thread (normally the reactor's) owns the machine.

    :param limits: the buffer limits; see :class:`HTTPLimits`.
    """

    def __init__(self, *, limits: HTTPLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        #: State of the client's side.
        self.their_state = _IDLE
        #: State of the server's side.
        self.our_state = _IDLE
        #: The request being answered (the latest :class:`Request` returned).
        self.request: Request | None = None
        #: The error that put the machine in ERROR, if any.
        self.error: HTTPProtocolError | None = None
        self._heads = _heads_for(limits)
        self._heads_limits = limits
        self._rb = ReceiveBuffer()
        # Length of the request line (from the buffer's pos), once its LF
        # was seen; -1 before.  Relative, so a compaction keeps it valid.
        self._line_len = -1
        self._eof = False
        self._out = bytearray()
        self._reset_cycle()

    def _reset_cycle(self) -> None:
        self._keep_alive = True
        self._http11 = True
        self._is_head = False
        self._expect_pending = False  # a 100 Continue may still be owed
        self._reader: BodyReader = NO_BODY  # the request body's reader
        self._send_mode = _NONE
        self._send_left = 0

    # ------------------------------------------------------------------
    # Receiving
    # ------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Append received bytes; ``b""`` means the client sent EOF.

        Never parses (so never raises a protocol error); ``next_event()`` does.
        Raises :class:`LocalProtocolError` if data follows EOF.  Bytes fed
        in the ERROR state are dropped.
        """
        if self.their_state is _ERROR:
            return
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("receive_data() after EOF")
        self._rb.feed(data)

    @property
    def buffered(self) -> int:
        """Octets received and not yet consumed (e.g. pipelined requests)."""
        return len(self._rb)

    @property
    def eof_received(self) -> bool:
        """True once ``receive_data(b"")`` was called."""
        return self._eof

    def next_event(self) -> Request | Data | EndOfMessage | ConnectionClosed | Signal:
        """Return the next event from the client, :data:`NEED_DATA` or :data:`PAUSED`.

        Order per request: one :class:`Request`, zero or more :class:`Data`,
        one :class:`EndOfMessage`; then :data:`PAUSED` until the response is
        complete; then the next request.  :class:`ConnectionClosed` (again on
        every call) after a clean EOF between requests.

        If the request carries ``Expect: 100-continue``, asking for its body
        (calling this after the Request, while no response was started and
        no body octet has arrived) queues ``100 Continue`` in
        ``data_to_send()``.

        Raises :class:`RemoteProtocolError` for bad input (then the machine
        is in ERROR with the error response queued) and
        :class:`LocalProtocolError` if called in the ERROR state.
        """
        state = self.their_state
        if state is _ERROR:
            raise LocalProtocolError(f"the connection failed earlier: {self.error}")
        start = self._rb.pos
        try:
            if state is _IDLE:
                return self._read_head()
            if state is _SEND_BODY:
                return self._read_body()
        except RemoteProtocolError as exc:
            exc.offending = _offending(self._rb, start, state is _IDLE)
            self._fail(exc)
            raise
        if state is _CLOSED:
            return ConnectionClosed()
        return PAUSED  # DONE or MUST_CLOSE: waiting for (or past) our response

    def _read_head(self) -> Request | ConnectionClosed | Signal:
        rb = self._rb
        buf = rb.data
        pos = rb.pos
        end = len(buf)
        if pos >= end and not self._eof:
            return NEED_DATA  # the common case between keep-alive requests
        if pos < end and (buf[pos] == 0x0D or buf[pos] == 0x0A):
            # RFC 9112 §2.2: ignore empty lines received before the request-line.
            while pos < end:
                c = buf[pos]
                if c == 0x0A:
                    pos += 1
                elif c == 0x0D and pos + 1 < end and buf[pos + 1] == 0x0A:
                    pos += 2
                else:
                    break
            rb.pos = pos
            if rb.scan < pos:
                rb.scan = pos
        if pos >= end or (pos + 1 == end and buf[pos] == 0x0D):
            if self._eof:
                if pos >= end:
                    self._their(ConnectionClosed)
                    return ConnectionClosed()
                raise RemoteProtocolError("connection closed inside a request head")
            return NEED_DATA
        limits = self.limits
        scan = rb.scan
        if scan < pos:
            scan = pos
        if self._line_len < 0:
            lf = buf.find(b"\n", scan)
            if lf < 0 or lf - pos > limits.max_request_line + 1:
                # +1: the line may end in CR before its LF.
                if end - pos > limits.max_request_line + 1:
                    raise RemoteProtocolError("request line too long", status_hint=414)
                return self._need_head(scan, end)
            self._line_len = lf - pos
        line_end = pos + self._line_len
        m = HEAD_END.search(buf, scan if scan > line_end else line_end)
        if m is None:
            if end - line_end - 1 > limits.max_header_bytes:
                raise RemoteProtocolError("header section too large", status_hint=431)
            return self._need_head(scan, end)
        head_end = m.end()
        if head_end - line_end - 1 > limits.max_header_bytes:
            raise RemoteProtocolError("header section too large", status_hint=431)
        # One decode of the whole head; everything below is C-speed str work.
        text = buf[pos : m.start() + 1].decode("latin-1")
        rb.pos = rb.scan = head_end
        self._line_len = -1
        heads = self._heads
        if self._heads_limits is not limits:  # self.limits was replaced
            heads = self._heads = _heads_for(limits)
            self._heads_limits = limits
        hit = heads.get(text)
        if hit is not None:
            # The same head, under the same limits, was parsed and accepted
            # before: its Request (immutable) and framing are reused.
            request, self._http11, self._is_head, framing, length, self._expect_pending, \
                self._keep_alive = hit
            if framing != _NONE:
                self._reader = make_reader(framing, length, limits)
            self._their(Request)
            self._ours(Request)
            self.request = request
            return request
        nl = text.index("\n")
        fields = text[nl + 1 :]
        if fields.count("\n") > limits.max_header_fields:
            raise RemoteProtocolError("too many header fields", status_hint=431)
        line = text[:nl]
        if line[-1:] == "\r":
            line = line[:-1]
        if len(line) > limits.max_request_line:
            raise RemoteProtocolError("request line too long", status_hint=414)
        rm = REQUEST_LINE_STR.fullmatch(line)
        if rm is None:
            raise RemoteProtocolError("malformed request line")
        if rm[3] != "1":
            raise RemoteProtocolError("unsupported HTTP version", status_hint=505)
        parsed = PARSED_SECTIONS.get(fields)
        if parsed is None:
            parsed = parse_section(fields)
        version = "1.0" if rm[4] == "0" else "1.1"
        request = Request._parsed(rm[1], rm[2], version, parsed[0])
        framing, length = self._analyse(request, parsed[1])
        self._their(Request)
        self._ours(Request)
        self.request = request
        if len(text) <= PARSED_SECTION_LONGEST:
            if len(heads) >= _HEADS_MAX:
                heads.clear()
            heads[text] = (request, self._http11, self._is_head, framing, length,
                           self._expect_pending, self._keep_alive)
        return request

    def fast_request(
        self, data: bytes, pos: int, spend: Callable[[int], bool]
    ) -> tuple[Request, bytes, int] | None:
        """Take one whole request from ``data[pos:]`` without buffering it, if that is safe.

        The keep-alive fast path (see ``_HTTPConnection.data_received``).  It
        applies only at the start of a cycle (both sides IDLE, nothing
        buffered, no EOF) to a complete head that was parsed
        and accepted before under these limits (a memo hit), on a persistent
        connection, with no body or a ``Content-Length`` body that is wholly
        in ``data``.  Then ``spend(n)`` is asked for the *n* events the slow
        path would have pulled (Request, [Data,] EndOfMessage) and, if it
        allows them, the machine is left exactly where ``receive_data(data[pos:end])``
        and those ``next_event()`` calls leave it (their side DONE, ours
        SEND_RESPONSE, the request's flags set, nothing buffered).  Returns
        ``(request, body, end)``; None with the machine untouched for
        anything else (a refusing ``spend()`` has spent the budget).
        """
        if (
            self.their_state is not _IDLE
            or self.our_state is not _IDLE
            or self._eof
            or self._line_len >= 0
            or self._heads_limits is not self.limits
        ):
            return None
        rb = self._rb
        if rb.pos < len(rb.data):
            return None
        m = HEAD_END.search(data, pos)
        if m is None:
            return None
        # The text _read_head would look up: a memo key starts with a
        # method, so no empty line precedes it, and its first HEAD_END is
        # at its end (the machine would find the same one).
        hit = self._heads.get(data[pos : m.start() + 1].decode("latin-1"))
        if hit is None:
            return None
        request, http11, is_head, framing, length, _, keep_alive = hit
        end = m.end()
        # _read_head's own size check (the terminator may be 2 or 3 octets,
        # which the memo key does not say).
        if not keep_alive or end - data.find(b"\n", pos) - 1 > self.limits.max_header_bytes:
            return None
        if framing == _NONE:
            body = b""
            if not spend(2):
                return None
        elif framing == _LENGTH and end + length <= len(data):
            # The whole body is here: one Data event, then the end; no
            # 100 Continue (the body is buffered when the machine asks).
            body = data[end : end + length]
            end += length
            if not spend(3):
                return None
        else:
            return None
        self._http11 = http11
        self._is_head = is_head
        self._keep_alive = True
        self._expect_pending = False
        # Those events' transitions (from the tables, at import), then settle().
        self.their_state, self.our_state, _ = settle(_FAST_THEIRS, _FAST_OURS, True)
        self.request = request
        return request, body, end

    def _need_head(self, scan: int, end: int) -> Signal:
        # A CR not followed by LF can never be part of a valid head (RFC 9112
        # §2.2): answer at once instead of waiting for a limit.  Only the
        # octets not searched before are looked at.
        rb = self._rb
        if BARE_CR.search(rb.data, scan, end):
            raise RemoteProtocolError("bare CR in the request head")
        if self._eof:
            raise RemoteProtocolError("connection closed inside a request head")
        # A terminator may straddle the next feed: rescan the last two octets.
        rb.scan = max(rb.pos, end - 2)
        return NEED_DATA

    def _analyse(self, request: Request, summary: Summary) -> tuple[int, int]:
        """Apply RFC 9112 §6 (body framing) and §9.3 (persistence) to a head.

        Returns the body's ``(framing, length)``.
        """
        http11 = request.http_version == "1.1"
        self._http11 = http11
        self._is_head = request.method == "HEAD"
        hosts, lengths, codings, connection, expect = summary
        if request.method == "CONNECT":
            raise RemoteProtocolError("CONNECT is not implemented", status_hint=501)
        # RFC 9112 §3.2: origin-form ("/..."), absolute-form ("scheme://..."),
        # asterisk-form only for OPTIONS; authority-form is CONNECT's (501 above).
        target = request.target
        if target[0] != "/":
            if target == "*":
                if request.method != "OPTIONS":
                    raise RemoteProtocolError("asterisk-form target is only for OPTIONS")
            elif not ABSOLUTE_FORM.match(target):
                raise RemoteProtocolError("request target is not in origin or absolute form")
        # RFC 9112 §3.2: exactly one Host in an HTTP/1.1 request.
        if hosts > 1 or (http11 and hosts == 0):
            raise RemoteProtocolError("an HTTP/1.1 request needs exactly one Host field")
        if codings:
            # RFC 9112 §6.1, §6.3: a Transfer-Encoding decides the framing; with
            # a Content-Length too the message may be a smuggling attempt.
            if lengths:
                raise RemoteProtocolError("both Content-Length and Transfer-Encoding")
            if not http11:
                raise RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request")
            if codings[-1] != "chunked":
                raise RemoteProtocolError("final transfer coding is not chunked")
            if "chunked" in codings[:-1]:
                raise RemoteProtocolError("chunked transfer coding applied twice")
            if len(codings) > 1:
                raise RemoteProtocolError("unsupported transfer coding", status_hint=501)
            framing, length = _CHUNKED, 0
        elif lengths:
            # RFC 9110 §8.6: a list of identical values may be taken as one.
            if not all(DIGITS.fullmatch(v) for v in lengths) or len(set(lengths)) != 1:
                raise RemoteProtocolError("invalid or conflicting Content-Length")
            digits = lengths[0].lstrip("0") or "0"
            if len(digits) > 18 or int(digits) > self.limits.max_body_size:
                raise RemoteProtocolError("request body too large", status_hint=413)
            length = int(digits)
            framing = _LENGTH if length else _NONE
        else:
            framing, length = _NONE, 0  # RFC 9112 §6.3 item 7: no body
        for value in expect:
            if value != "100-continue":
                raise RemoteProtocolError("unsupported expectation", status_hint=417)
        # RFC 9110 §10.1.1: ignore 100-continue from HTTP/1.0 clients.
        self._expect_pending = bool(expect) and http11 and framing != _NONE
        if framing != _NONE:
            self._reader = make_reader(framing, length, self.limits)
        # RFC 9112 §9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive".
        if "close" in connection:
            self._keep_alive = False
        else:
            self._keep_alive = http11 or "keep-alive" in connection
        return framing, length

    def _read_body(self) -> Data | EndOfMessage | Signal:
        reader = self._reader
        if reader is NO_BODY:  # the common case: a request without a body
            self._their(EndOfMessage)
            self._settle()
            return _END
        if self._expect_pending:
            self._expect_pending = False
            if self.our_state is _SEND_RESPONSE and not self._rb:
                self._out += _CONTINUE
        event = reader.read(self._rb, self._eof)
        if type(event) is EndOfMessage:
            self._their(EndOfMessage)
            self._settle()
        return event

    # ------------------------------------------------------------------
    # Sending
    # ------------------------------------------------------------------

    def send(self, event: InformationalResponse | Response | Data | EndOfMessage) -> None:
        """Queue *event*, framed, for ``data_to_send()``.

        For a :class:`Response` the machine chooses the framing: a
        ``Content-Length`` the caller set is honoured (and enforced: a
        different number of body octets raises); else ``Transfer-Encoding:
        chunked`` to an HTTP/1.1 client; else the body is close-delimited
        (HTTP/1.0).  It adds ``Connection: close`` when the connection will
        not be reused and ``Connection: keep-alive`` for a persistent
        HTTP/1.0 client.  No body octet is sent for HEAD requests or 204 and
        304 responses (Data is accepted and dropped).  A ``100 Continue``
        still owed is never sent once a final response has started.

        Raises :class:`LocalProtocolError` for an event that does not fit the
        current state, or bad framing headers; the machine is then unchanged.
        """
        state = self.our_state
        etype = type(event)
        nxt = transition(OUR_TRANSITIONS, state, etype)
        if isinstance(event, Response):
            self._send_head(event)
        elif isinstance(event, Data):
            self._send_data(event.data)
        elif isinstance(event, EndOfMessage):
            self._send_end(event.trailers)
        else:
            assert isinstance(event, InformationalResponse)
            if not self._http11:
                # RFC 9110 §15.2: no 1xx to HTTP/1.0 clients.
                raise LocalProtocolError("cannot send a 1xx response to an HTTP/1.0 client")
            if event.status_code == 100:
                if not self._expect_pending:
                    return  # not expected, or already sent: nothing to say
                self._expect_pending = False
            # RFC 9110 §8.6, RFC 9112 §6.1: no framing fields in a 1xx.
            fields = tuple(
                (n, v) for n, v in event.headers
                if n.lower() not in ("content-length", "transfer-encoding")
            )
            self._out += head_bytes(event.status_code, event.reason, fields)
        self.our_state = nxt
        self._settle()

    def send_response(
        self,
        status: int,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
        *,
        reason: str = "",
    ) -> None:
        """Send a final response; with *body* also its content and end.

        With ``body`` given the response is complete, written as one piece
        (``Content-Length`` is added when absent, and must match when
        present); with ``body=None`` only the head is sent and the caller
        continues with ``send(Data(...))`` and ``send(EndOfMessage())``.
        Raises :class:`LocalProtocolError` like :meth:`send`; the machine is
        then unchanged.
        """
        if body is None:
            self.send(Response(status_code=status, headers=tuple(headers), reason=reason))
            return
        ours = self.our_state
        if ours is not _SEND_RESPONSE:
            transition(OUR_TRANSITIONS, ours, Response)  # raises: no response owed
        if type(status) is not int or not 200 <= status <= 999:
            raise LocalProtocolError(f"final status must be 200-999: {status!r}")
        if reason:
            check_reason(reason)
        if not isinstance(body, bytes):
            body = bytes(body)
        # Decided before the head is built (and memoized): the connection
        # closes when a 100 Continue is owed or the request body is unread.
        expect_close = self._expect_pending or self.their_state is _SEND_BODY
        key = None
        prepared = None
        if type(headers) is tuple:
            key = (status, reason, headers, len(body), self._keep_alive, self._http11,
                   self._is_head, expect_close)
            try:
                prepared = _PREPARED_HEADS.get(key)
            except TypeError:  # unhashable field pairs: no memo
                key = None
        if prepared is None:
            prepared = prepare_head(
                status, reason, headers, len(body), keep_alive=self._keep_alive,
                http11=self._http11, is_head=self._is_head, expect_close=expect_close,
            )
            if key is not None:
                if len(_PREPARED_HEADS) >= _PREPARED_HEADS_MAX:
                    _PREPARED_HEADS.clear()
                _PREPARED_HEADS[key] = prepared
        head, mode, left, keep_alive = prepared
        if mode == _LENGTH and len(body) != left:
            raise LocalProtocolError(f"Content-Length {left} but {len(body)} body octets")
        # Everything checked: commit.  Head and body go out as one write.
        out = self._out
        out += head
        if mode == _LENGTH or mode == _CLOSE:
            out += body
        elif mode == _CHUNKED:
            write_chunk(out, body)
            write_last_chunk(out)
        self._expect_pending = False
        self._send_mode = mode
        self._keep_alive = keep_alive  # False (and said so) if the request body is unread
        # Response then EndOfMessage from SEND_RESPONSE (the table's, see
        # _RESPONDED), then settle(), in one step.
        their, ours, new_cycle = settle(self.their_state, _RESPONDED, keep_alive)
        self.their_state = their
        self.our_state = ours
        if new_cycle:
            self.request = None
            self._reset_cycle()

    def send_raw(self, data: bytes) -> None:
        """Send *data* verbatim as the current response; the connection then closes.

        For callers that produced a whole response themselves (status line,
        headers and their own framing): the machine cannot know where it
        ends, so it treats it as close-delimited (our side goes to
        MUST_CLOSE).  Allowed while a response is owed or in progress;
        ``LocalProtocolError`` otherwise.
        """
        nxt = transition(OUR_TRANSITIONS, self.our_state, RawResponse)
        self._out += data
        self._expect_pending = False
        self._keep_alive = False
        self.our_state = nxt
        self._settle()

    def send_continue(self) -> None:
        """Queue ``100 Continue`` now if the request expects it and it is still owed."""
        if self.our_state is _SEND_RESPONSE and self._expect_pending:
            self.send(InformationalResponse(status_code=100))

    def data_to_send(self) -> bytes:
        """Return and forget every byte queued for the client."""
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def close_after_send(self) -> bool:
        """True when the caller should close the connection once ``data_to_send()`` is written."""
        ours = self.our_state
        return (
            ours is _MUST_CLOSE or ours is _ERROR or self.their_state is _ERROR
        )

    @property
    def keep_alive(self) -> bool:
        """Whether the connection is expected to be reused after this response."""
        return self._keep_alive

    @property
    def expects_continue(self) -> bool:
        """True while the current request's ``100 Continue`` is still owed."""
        return self._expect_pending

    def _send_head(self, event: Response) -> None:
        head, mode, left, keep_alive = prepare_head(
            event.status_code, event.reason, event.headers, None,
            keep_alive=self._keep_alive, http11=self._http11, is_head=self._is_head,
            expect_close=self._expect_pending or self.their_state is _SEND_BODY,
            validate=False,
        )
        self._expect_pending = False
        self._keep_alive = keep_alive
        self._send_mode = mode
        self._send_left = left
        self._out += head

    def _send_data(self, data: bytes) -> None:
        mode = self._send_mode
        if mode == _LENGTH:
            if len(data) > self._send_left:
                raise LocalProtocolError("more body octets than the Content-Length")
            self._send_left -= len(data)
            self._out += data
        elif mode == _CHUNKED:
            write_chunk(self._out, data)
        elif mode == _CLOSE:
            self._out += data
        # _NONE: HEAD, 204, 304: the body is dropped.

    def _send_end(self, trailers: Headers) -> None:
        mode = self._send_mode
        if mode == _LENGTH and self._send_left:
            raise LocalProtocolError(f"{self._send_left} body octets missing (Content-Length)")
        if mode == _CHUNKED:
            write_last_chunk(self._out, trailers)
        elif trailers:
            raise LocalProtocolError("trailers need a chunked response")
        if self.their_state is _SEND_BODY or mode == _CLOSE:
            # The request body was not read: its end is unknown; or the
            # response body ends at close.
            self._keep_alive = False

    # ------------------------------------------------------------------
    # State bookkeeping
    # ------------------------------------------------------------------

    def _their(self, etype: type[Event]) -> None:
        # The parser only emits events valid in the current state: a miss
        # here (LocalProtocolError) would be a bug in this module.
        self.their_state = transition(THEIR_TRANSITIONS, self.their_state, etype)

    def _ours(self, etype: type[Event]) -> None:
        self.our_state = transition(OUR_TRANSITIONS, self.our_state, etype)

    def _settle(self) -> None:
        their, ours, new_cycle = settle(self.their_state, self.our_state, self._keep_alive)
        self.their_state = their
        self.our_state = ours
        if new_cycle:
            self.request = None
            self._reset_cycle()

    def _fail(self, exc: HTTPProtocolError) -> None:
        self.error = exc
        self.their_state, self.our_state, send_error = process_error(
            self.their_state, self.our_state
        )
        self._keep_alive = False
        if send_error:
            status = exc.status_hint
            reason = reason_phrase(status)
            body = f"{status} {reason}: {exc}\n".encode()
            self._out += head_bytes(
                status,
                reason,
                (
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                    ("Connection", "close"),
                ),
            )
            self._out += body


def _offending(rb: ReceiveBuffer, start: int, head: bool) -> bytes:
    """The refused input a RemoteProtocolError keeps (``OFFENDING_BYTES_LIMIT`` octets).

    ``start`` is where the failing ``next_event()`` began reading: for a head
    the slice begins there (``rb.pos`` may already be past it); in a body it
    is centred on where reading stopped, not before ``start``.
    """
    if not head:
        start = max(start, rb.pos - OFFENDING_BYTES_LIMIT // 2)
    return bytes(rb.data[start : start + OFFENDING_BYTES_LIMIT])
