"""``TestHTTPServer``: the drop-in for CPython test_logging's HTTP server helper.

Its handler receives a :class:`CompatRequest` with the surface of
``http.server.BaseHTTPRequestHandler`` (which the server does not use: it
runs on the reactor like :class:`~protocols.http._server.HTTPServer`).

It also runs ``http.server.BaseHTTPRequestHandler`` subclasses themselves
(``handler_class=``, or a class as ``handler``): the request, parsed by the
server's machine, is handed to ``RequestHandlerClass(request,
client_address, server)`` as bytes to read from its ``rfile``; what the
class writes to its ``wfile`` is parsed back (status line, header lines,
body) and answered like a :class:`CompatRequest` response, so the
:class:`ReplyMode` rules apply to both.
"""

from __future__ import annotations

import email.utils
import enum
import http.client
import io
import re
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar, overload

from reactor import InvalidArgumentError

from ._errors import InvalidReplyError, LocalProtocolError, RemoteProtocolError
from ._events import DEFAULT_LIMITS
from ._framing import (
    CHUNKED,
    NONE,
    field_lines,
    head_bytes,
    prepare_head,
    write_chunk,
    write_last_chunk,
)
from ._grammar import TOKEN_STR, VALUE_STR, reason_phrase
from ._readers import decode_chunked
from ._server import (
    SERVER_SOFTWARE,
    HTTPRequest,
    HTTPServer,
    NoResponseError,
    Reply,
    _error_reply,
    _HTTPConnection,
    date_field,
)

__all__ = ["CompatRequest", "ReplyMode", "TestHTTPServer"]


class ReplyMode(str, enum.Enum):
    """How strictly :class:`TestHTTPServer` sends what a compat handler wrote.

    In every mode a reply the mode does not allow is never sent as if the
    handler meant it: it is an :class:`InvalidReplyError` in the server's
    ``errors`` (raised by ``stop(raise_errors=True)``) and the client gets
    a 500.
    """

    #: The default: header fields must match RFC 9110's grammar (no
    #: leading or trailing whitespace in a value); the server frames the body.
    STRICT = "strict"
    #: Header values are sent as the handler wrote them, trailing
    #: whitespace included (CPython's test_urllib2_localnet digest helper
    #: writes one); CR, LF and other controls are still refused.  The server
    #: still frames the body; a response with such a value closes its
    #: connection (the machine frames only fields it can validate).
    AS_WRITTEN = "as-written"
    #: What the handler wrote goes out byte for byte (its own status line
    #: and framing; ``send_response()``/``send_header()`` output as given),
    #: and the connection closes after it.  Only a header value with CR or
    #: LF (a second field smuggled into one) is refused.
    VERBATIM = "verbatim"


# Module-level aliases: an Enum member read from its class is slow (a
# descriptor call on 3.11), and _reply() runs once per request.
_VERBATIM: Final = ReplyMode.VERBATIM
_AS_WRITTEN: Final = ReplyMode.AS_WRITTEN

#: A header value as written: any field content with surrounding spaces and
#: tabs (RFC 9110 §5.5 minus the OWS trimming), never CR, LF or NUL.
_LENIENT_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")

# (name, value) pairs of str that passed the check in _reply(): handlers send
# the same few fields again and again.  Bounded, cleared when full.
_CHECKED_FIELDS: set[tuple[str, str]] = set()
_CHECKED_FIELDS_MAX = 1024
# The last decision _reply() made for each status: (the fields as sent (a
# copy), empty body?, HEAD?, keep-alive?, AS_WRITTEN?, the Reply's fields),
# a pure function of the first five (exact-str fields only).  Bounded.
_LAST_REPLY: dict[int, tuple[Any, ...]] = {}
_LAST_REPLY_MAX: Final = 64
_new_tuple = tuple.__new__  # builds a Reply without NamedTuple's Python-level __new__
# version_string()'s last (server_version, sys_version, result).
_version: tuple[object, object, str] = (None, None, "")
_STATUS_LINE = re.compile(r"HTTP/([0-9])\.([0-9]) ([0-9]{3})(?: (.*))?")


def _split_written(data: bytes) -> tuple[str, int, str, list[tuple[str, str]], bytes]:
    """The final response a handler wrote by hand: ``(version, status, reason, fields, body)``.

    Interim (1xx) heads before it are skipped (the server sends its own
    ``100 Continue``).  Field values lose the whitespace after the colon,
    nothing else.  :raises InvalidReplyError: no complete head, a bad status
    line or a header line that is not ``name: value`` ending in CRLF.
    """
    pos = 0
    while True:
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            raise InvalidReplyError(
                f"what the handler wrote has no end of head (CRLF CRLF): {data[pos : pos + 80]!r}"
            )
        lines = data[pos:end].decode("latin-1").split("\r\n")
        m = _STATUS_LINE.fullmatch(lines[0])
        if m is None:
            raise InvalidReplyError(f"the handler wrote an invalid status line {lines[0]!r:.80}")
        fields = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not TOKEN_STR.fullmatch(name) or not _LENIENT_VALUE.fullmatch(value):
                raise InvalidReplyError(f"the handler wrote an invalid header line {line!r:.80}")
            fields.append((name, value.lstrip(" \t")))
        pos = end + 4
        if int(m[3]) >= 200:
            return f"HTTP/{m[1]}.{m[2]}", int(m[3]), m[4] or "", fields, data[pos:]


class _HandlerSocket:
    """The ``request`` a socketserver-style handler class gets (reactor thread).

    Reading gives the request as the server parsed it; whatever is written
    or sent is kept in :attr:`written`.  Timeouts and options are no-ops.
    """

    def __init__(self, data: bytes, peer: Any, local: Any) -> None:
        self._reader = io.BytesIO(data)
        self.written = bytearray()
        self._peer, self._local = peer, local

    def makefile(self, mode: str = "r", buffering: int | None = None, **kwargs: Any) -> Any:
        if "w" in mode:
            return _HandlerWriter(self)
        return io.BytesIO(self._reader.read())

    def sendall(self, data: Any) -> None:
        self.written += data

    def send(self, data: Any) -> int:
        self.written += data
        return len(data)

    def recv(self, n: int) -> bytes:
        return self._reader.read(n)

    def getpeername(self) -> Any:
        return self._peer

    def getsockname(self) -> Any:
        return self._local

    def settimeout(self, timeout: float | None) -> None:
        pass

    def setsockopt(self, *args: Any) -> None:
        pass

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        pass


class _HandlerWriter(io.RawIOBase):
    def __init__(self, sock: _HandlerSocket) -> None:
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._sock.written += b
        with memoryview(b) as view:
            return view.nbytes


_T = TypeVar("_T")


class _lazy(Generic[_T]):  # noqa: N801 (used as a decorator, like property)
    """A computed attribute, made on first read and then kept as an instance attribute.

    A non-data descriptor: once made (or assigned by the handler), the
    instance attribute is found first and the function never runs again.
    """

    def __init__(self, make: Callable[[Any], _T]) -> None:
        self._make = make
        self._name = make.__name__
        self.__doc__ = make.__doc__

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _lazy[_T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> _T: ...
    def __get__(self, obj: object, owner: type | None = None) -> _lazy[_T] | _T:
        if obj is None:
            return self
        value = self._make(obj)
        # setattr(), not __dict__: on 3.11+ reading __dict__ turns the
        # instance's compact attribute storage into a dict (slower after).
        setattr(obj, self._name, value)
        return value


_ERROR_PAGE = """\
<!DOCTYPE HTML>
<html lang="en">
    <head>
        <meta charset="utf-8">
        <title>Error response</title>
    </head>
    <body>
        <h1>Error response</h1>
        <p>Error code: {code}</p>
        <p>Message: {message}.</p>
        <p>Error code explanation: {code} - {explain}.</p>
    </body>
</html>
"""


def _html_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


class CompatRequest:
    """What a :class:`TestHTTPServer` handler receives: ``BaseHTTPRequestHandler``'s surface.

    ``rfile`` holds the whole decoded body; whatever the handler writes to
    ``wfile`` after ``end_headers()`` is buffered and sent when it returns,
    framed by the server (a missing or wrong ``Content-Length`` is replaced
    by the real length, for HEAD as for GET; a HEAD handler that writes no
    body keeps the length it declared; a 204 gets none), so the connection
    can stay alive.  A handler that writes its own ``Transfer-Encoding:
    chunked`` body has it decoded and re-framed (close-delimited for an
    HTTP/1.0 client), and the connection closes after it.  Runs on the
    reactor thread.
    """

    server_version = SERVER_SOFTWARE
    sys_version = "Python/" + sys.version.split()[0]
    default_request_version = "HTTP/0.9"
    error_message_format = _ERROR_PAGE
    error_content_type = "text/html;charset=utf-8"

    def __init__(self, request: HTTPRequest, server: TestHTTPServer) -> None:
        head = request.head
        self.native = request
        self.server = server
        self.client_address = request.client_address
        self.command = head.method
        self.path = head.target
        version = head.http_version
        self.request_version = "HTTP/1.1" if version == "1.1" else "HTTP/" + version
        #: As in http.server: ``"HTTP/1.0"`` (the default, taken from the
        #: server class) closes the connection after each response;
        #: ``"HTTP/1.1"`` keeps it alive (the framing is right either way).
        self.protocol_version: str = server.protocol_version
        self.close_connection = self.protocol_version < "HTTP/1.1"
        self.wfile = io.BytesIO()
        self.response_headers: list[tuple[str, str]] = []
        self.status: int | None = None
        self.reason = ""
        self._headers: http.client.HTTPMessage | None = None
        self._headers_ended = False
        self._body_start = 0
        #: False once a field name or value that is not exactly ``str`` was
        #: sent: such a reply is checked field by field and never memoized.
        self._plain = True

    # Built on first use (most handlers never look at them); each becomes a
    # plain instance attribute then, which the handler may also assign.
    @_lazy
    def requestline(self) -> str:
        """``"<command> <path> <request_version>"`` as in http.server."""
        return f"{self.command} {self.path} {self.request_version}"

    @_lazy
    def raw_requestline(self) -> bytes:
        """The request line as received, CRLF included (rebuilt from the parsed one)."""
        return (self.requestline + "\r\n").encode("latin-1")

    @_lazy
    def rfile(self) -> io.BytesIO:
        """The whole decoded request body, as a ``BytesIO`` positioned at its start."""
        return io.BytesIO(self.native.body)

    @property
    def headers(self) -> http.client.HTTPMessage:
        """The request's header fields as an ``http.client.HTTPMessage`` (built on first use)."""
        if self._headers is None:
            raw = field_lines(self.native.headers) + "\r\n"
            self._headers = http.client.parse_headers(io.BytesIO(raw.encode("latin-1")))
        return self._headers

    @headers.setter
    def headers(self, value: http.client.HTTPMessage) -> None:
        self._headers = value

    # -- the response ---------------------------------------------------------------

    def send_response(self, code: int, message: str | None = None) -> None:
        """Start the response; adds ``Server`` and ``Date`` like http.server."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())
        self.send_header("Date", self.date_time_string())

    def send_response_only(self, code: int, message: str | None = None) -> None:
        if 100 <= code < 200:
            return  # interim responses are the server's business (100-continue)
        self.status = code
        self.reason = message if message is not None else reason_phrase(code)
        self.response_headers = []
        self._headers_ended = False

    def send_header(self, keyword: str, value: str) -> None:
        if type(value) is not str:
            value = str(value)
            if type(value) is not str:
                self._plain = False
        self.response_headers.append((keyword, value))
        if type(keyword) is str:
            # len() first: most fields are not Connection, and lower() costs more.
            if len(keyword) != 10 or keyword.lower() != "connection":
                return
        else:
            self._plain = False
            if keyword.lower() != "connection":
                return
        v = value.lower()
        if v == "close":
            self.close_connection = True
        elif v == "keep-alive":
            self.close_connection = False

    def end_headers(self) -> None:
        self._headers_ended = True
        self._body_start = self.wfile.tell()

    def flush_headers(self) -> None:
        pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Send an error page like ``BaseHTTPRequestHandler.send_error``."""
        short = reason_phrase(code) or "???"
        if message is None:
            message = short
        if explain is None:
            explain = short
        self.log_error("code %d, message %s", code, message)
        self.send_response(code, message)
        self.send_header("Connection", "close")
        body = b""
        if code >= 200 and code not in (204, 205, 304):
            content = self.error_message_format.format(
                code=code, message=_html_escape(message), explain=_html_escape(explain)
            )
            body = content.encode("UTF-8", "replace")
            self.send_header("Content-Type", self.error_content_type)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    # -- logging (honours the server's ``log`` flag) ------------------------------------

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if not self.server.log and getattr(self.log_message, "__func__", None) is _LOG_MESSAGE:
            return  # log_message() would print nothing: skip building its arguments
        self.log_message('"%s" %s %s', self.requestline, str(code), str(size))

    def log_error(self, format: str, *args: Any) -> None:
        self.log_message(format, *args)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log:
            message = format % args
            sys.stderr.write(
                f"{self.address_string()} - - [{self.log_date_time_string()}] {message}\n"
            )

    def address_string(self) -> str:
        return str(self.client_address[0]) if self.client_address else "-"

    def version_string(self) -> str:
        global _version
        server_version, sys_version = self.server_version, self.sys_version
        last = _version
        if server_version is last[0] and sys_version is last[1]:
            return last[2]  # the same string object: its hash is computed once
        version = f"{server_version} {sys_version}"
        if type(server_version) is str and type(sys_version) is str:
            _version = (server_version, sys_version, version)
        return version

    def date_time_string(self, timestamp: float | None = None) -> str:
        if timestamp is None:
            return date_field()[1]
        return email.utils.formatdate(timestamp, usegmt=True)

    def log_date_time_string(self) -> str:
        return time.strftime("%d/%b/%Y %H:%M:%S", time.localtime())

    # -- turning what the handler did into bytes ------------------------------------------

    def _reply(self) -> Reply | bytes:
        """A Reply to frame, or raw bytes when the handler wrote its own response."""
        written = self.wfile.getvalue()
        mode = self.server.reply_mode
        if self.status is None:
            if not written:
                raise NoResponseError(
                    f"handler sent no response for {self.command} {self.path} "
                    "(call send_response() or send_error())"
                )
            if mode is _VERBATIM:
                return written
            self._take_written(written)
            written = self.wfile.getvalue()
        status = self.status
        assert status is not None  # _take_written() set it
        headers = self.response_headers
        memo: tuple[Any, ...] | None = None
        if self._plain and mode is not _VERBATIM and type(status) is int:
            # Handlers send the same fields again and again (Date changes once
            # a second): the last decision of the checks and rules below is
            # kept per status and reused when everything it depends on is
            # equal (a list comparison: no hashing).
            body = written[self._body_start :] if self._headers_ended else written
            memo = (headers, not body, self.command == "HEAD", not self.close_connection,
                    mode is _AS_WRITTEN)
            last = _LAST_REPLY.get(status)
            if (
                last is not None
                and last[0] == headers
                and last[1] is memo[1]
                and last[2] is memo[2]
                and last[3] is memo[3]
                and last[4] is memo[4]
            ):
                return _new_tuple(Reply, (status, body, last[5], self.reason, None))
        checked = _CHECKED_FIELDS
        for pair in headers:
            if type(pair[0]) is str and type(pair[1]) is str and pair in checked:
                continue  # the same field was checked before
            name, value = pair
            if not TOKEN_STR.fullmatch(name) or not _LENIENT_VALUE.fullmatch(value):
                raise InvalidReplyError(f"invalid header field {name!r}: {value!r}")
            if len(checked) >= _CHECKED_FIELDS_MAX:
                checked.clear()
            checked.add((name, value))
        if mode is _VERBATIM:
            head = head_bytes(status, self.reason, tuple(headers))
            return head + written[self._body_start :]
        headers = self.response_headers
        no_body = self.command == "HEAD" or status in (204, 304) or status < 200
        lowered = [n.lower() for n, _ in headers]  # one pass for the checks below
        if "transfer-encoding" in lowered:
            # The handler framed its own body (which it may have done for
            # HEAD too): decode it, then send it re-framed, and close.
            return self._self_framed(status, headers, written[self._body_start :], no_body)
        body = written[self._body_start :] if self._headers_ended else written
        # Content-Length: the length of the body the handler wrote, for HEAD
        # as for GET (a HEAD handler that wrote nothing keeps the length it
        # declared: that of the GET body); 304 keeps the declared one; a 204
        # (or 1xx) never has one (RFC 9110 §8.6).
        if status == 304 or (self.command == "HEAD" and not body) or (
            "content-length" not in lowered
        ):
            keep = list(headers)
        else:
            keep = [(n, v) for n, v in headers if n.lower() != "content-length"]
        if self.close_connection and "connection" not in lowered:
            keep.append(("Connection", "close"))
        # Connection fields are merged into one by the machine, which says
        # "close" whenever the connection will not be reused.
        if mode is _AS_WRITTEN and not all(VALUE_STR.fullmatch(v) for _, v in keep):
            return self._as_written(status, keep, body)
        # A tuple: the server's memos of well-formed header tuples then apply.
        reply = Reply(status, body, tuple(keep), self.reason)
        if memo is not None and all(type(pair) is tuple for pair in headers):
            if len(_LAST_REPLY) >= _LAST_REPLY_MAX:
                _LAST_REPLY.clear()
            _LAST_REPLY[status] = (list(headers), *memo[1:], reply.headers)
        return reply

    def _take_written(self, written: bytes) -> None:
        """Turn a response the handler wrote by hand into send_response()/send_header() calls."""
        version, status, reason, fields, body = _split_written(written)
        self.close_connection = version < "HTTP/1.1"
        self.send_response_only(status, reason)
        for name, value in fields:
            self.send_header(name, value)
        self.end_headers()
        self.wfile = io.BytesIO(body)
        self._body_start = 0

    def _as_written(self, status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
        """A whole response whose field values keep their whitespace, then close."""
        try:
            head, framing, _, _ = prepare_head(
                status,
                self.reason,
                headers,
                len(body),
                keep_alive=False,
                http11=self.request_version == "HTTP/1.1",
                is_head=self.command == "HEAD",
                expect_close=True,
                validate=False,
            )
        except LocalProtocolError as exc:
            raise InvalidReplyError(f"invalid reply: {exc}") from exc
        if framing == NONE:
            return head
        if framing == CHUNKED:
            out = bytearray(head)
            write_chunk(out, body)
            write_last_chunk(out)
            return bytes(out)
        return head + body

    def _self_framed(
        self, status: int, headers: list[tuple[str, str]], raw: bytes, no_body: bool
    ) -> bytes:
        """A whole response from a handler that wrote its own chunked body.

        The body is decoded by the machine's own
        :class:`~protocols.http._readers.ChunkedReader`
        (:class:`InvalidReplyError` if it is not valid chunked framing: the
        server answers 500; a writer that stopped after the last chunk,
        before the empty line, is accepted) and sent close-delimited without
        Transfer-Encoding to an HTTP/1.0 client (RFC 9112 §6.1), as one
        chunk to an HTTP/1.1 client; no body octets for HEAD, 1xx, 204 and
        304; one ``Connection: close`` field; header fields are checked
        (:class:`InvalidReplyError`).  Trailers are dropped.
        """
        strict = self.server.reply_mode is ReplyMode.STRICT
        for name, value in headers:
            if strict and not VALUE_STR.fullmatch(value):
                raise InvalidReplyError(f"invalid header field {name!r}: {value!r}")
        http11 = self.request_version == "HTTP/1.1"
        chunked = http11 and not (status < 200 or status == 204)
        body = b""
        if not no_body:
            try:
                body, _ = decode_chunked(raw, DEFAULT_LIMITS)
            except RemoteProtocolError as exc:
                raise InvalidReplyError(f"handler's chunked body: {exc}") from exc
        drop = {"connection", "content-length", "transfer-encoding"}
        fields = [(n, v) for n, v in headers if n.lower() not in drop]
        if chunked:
            fields.append(("Transfer-Encoding", "chunked"))
        fields.append(("Connection", "close"))
        out = bytearray(head_bytes(status, self.reason, tuple(fields)))
        if no_body:
            return bytes(out)
        if not chunked:
            return bytes(out) + body
        write_chunk(out, body)
        write_last_chunk(out)
        return bytes(out)


_LOG_MESSAGE = CompatRequest.log_message


class TestHTTPServer(HTTPServer):
    """Drop-in for CPython test_logging's ``TestHTTPServer``.

    ``handler(request)`` gets a :class:`CompatRequest` (the
    ``BaseHTTPRequestHandler`` attributes and methods) for every method
    (GET, POST, HEAD...), on the reactor thread.  ``log`` turns on
    http.server-style request logging on stderr; ``sslctx`` serves HTTPS.

    :param handler_class: instead of ``handler``, an
        ``http.server.BaseHTTPRequestHandler`` subclass (or a factory called
        like one, ``(request, client_address, server)``); a class passed as
        ``handler`` is taken as this.  Its ``do_GET``/``do_POST``... run on
        the reactor thread, once per request (see the module docstring);
        they must not block.  ``RequestHandlerClass`` names it.
    :param reply_mode: a :class:`ReplyMode` (or its value), default
        :attr:`ReplyMode.STRICT`; also settable on the class.
    :param raise_errors: default of ``stop(raise_errors=...)``: with it, a
        handler error (an invalid reply included) fails the test.
    """

    __test__ = False

    #: ``"HTTP/1.0"`` like ``BaseHTTPRequestHandler``: one request per
    #: connection, which is what clients such as ``logging.handlers.HTTPHandler``
    #: (which never closes its connection) rely on.  Set ``"HTTP/1.1"`` on the
    #: class or instance for persistent connections.
    protocol_version = "HTTP/1.0"
    reply_mode: ReplyMode = ReplyMode.STRICT

    def __init__(
        self,
        addr: Any,
        handler: Callable[[CompatRequest], object] | None = None,
        poll_interval: float = 0.5,
        log: bool = False,
        sslctx: ssl.SSLContext | None = None,
        *,
        handler_class: Callable[..., object] | None = None,
        reply_mode: ReplyMode | str | None = None,
        raise_errors: bool = False,
    ) -> None:
        if isinstance(handler, type):
            handler, handler_class = None, handler
        if (handler is None) == (handler_class is None):
            raise InvalidArgumentError("give either a handler function or a request handler class")
        self.compat_handler = handler
        self.RequestHandlerClass = handler_class
        if reply_mode is not None:
            self.reply_mode = ReplyMode(reply_mode)
        self.log = log
        self.sslctx = sslctx
        super().__init__(
            addr, None, ssl_context=sslctx, poll_interval=poll_interval, raise_errors=raise_errors
        )

    @property
    def server_port(self) -> int | None:
        """The bound port (socketserver's name for it)."""
        return self.port

    def _run_handler(self, conn: _HTTPConnection, request: HTTPRequest) -> None:
        compat = CompatRequest(request, self)
        try:
            result: Reply | bytes
            if self.compat_handler is not None:
                self.compat_handler(compat)
                result = compat._reply()
            else:
                written = self._run_handler_class(request)
                if self.reply_mode is _VERBATIM:
                    result = written  # the class's own bytes, byte for byte
                else:
                    compat._take_written(written)
                    result = compat._reply()
        except Exception as exc:
            self.handle_error(exc, f"handler for {request.method} {request.target}")
            result = _error_reply(exc)
        conn.respond_now(result)

    def _run_handler_class(self, request: HTTPRequest) -> bytes:
        """Run the handler class on ``request``; return what it wrote (or NoResponseError)."""
        assert self.RequestHandlerClass is not None
        fields = request.headers
        if any(n.lower() == "transfer-encoding" for n, _ in fields):
            # The body is whole and decoded: hand it over Content-Length framed.
            drop = {"transfer-encoding", "content-length"}
            fields = (
                *((n, v) for n, v in fields if n.lower() not in drop),
                ("Content-Length", str(len(request.body))),
            )
        head = f"{request.method} {request.target} HTTP/{request.http_version}\r\n"
        data = (head + field_lines(fields) + "\r\n").encode("latin-1") + request.body
        sock = _HandlerSocket(data, request.client_address, self.server_address)
        self.RequestHandlerClass(sock, request.client_address, self)
        if not sock.written:
            raise NoResponseError(
                f"handler class wrote no response for {request.method} {request.target}"
            )
        return bytes(sock.written)
