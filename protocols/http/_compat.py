"""``TestHTTPServer``: the drop-in for CPython test_logging's HTTP server helper.

Its handler receives a :class:`CompatRequest` with the surface of
``http.server.BaseHTTPRequestHandler`` (which the server does not use: it
runs on the reactor like :class:`~protocols.http._server.HTTPServer`).
"""

from __future__ import annotations

import email.utils
import http.client
import io
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any

from ._errors import InvalidReplyError, RemoteProtocolError
from ._events import DEFAULT_LIMITS
from ._framing import field_lines, head_bytes, write_chunk, write_last_chunk
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
    http_date,
)

__all__ = ["CompatRequest", "TestHTTPServer"]

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
        self.native = request
        self.server = server
        self.client_address = request.client_address
        self.command = request.method
        self.path = request.target
        self.request_version = "HTTP/" + request.http_version
        self.requestline = f"{self.command} {self.path} {self.request_version}"
        self.raw_requestline = (self.requestline + "\r\n").encode("latin-1")
        self._headers: http.client.HTTPMessage | None = None
        self.rfile = io.BytesIO(request.body)
        self.wfile = io.BytesIO()
        #: As in http.server: ``"HTTP/1.0"`` (the default, taken from the
        #: server class) closes the connection after each response;
        #: ``"HTTP/1.1"`` keeps it alive (the framing is right either way).
        self.protocol_version: str = server.protocol_version
        self.close_connection = self.protocol_version < "HTTP/1.1"
        self.status: int | None = None
        self.reason = ""
        self.response_headers: list[tuple[str, str]] = []
        self._headers_ended = False
        self._body_start = 0

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
        self.response_headers.append((keyword, str(value)))
        if keyword.lower() == "connection":
            v = str(value).lower()
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
        return f"{self.server_version} {self.sys_version}"

    def date_time_string(self, timestamp: float | None = None) -> str:
        if timestamp is None:
            return http_date()
        return email.utils.formatdate(timestamp, usegmt=True)

    def log_date_time_string(self) -> str:
        return time.strftime("%d/%b/%Y %H:%M:%S", time.localtime())

    # -- turning what the handler did into bytes ------------------------------------------

    def _reply(self) -> Reply | bytes:
        """A Reply to frame, or raw bytes when the handler wrote its own response."""
        written = self.wfile.getvalue()
        if self.status is None:
            if written:
                return written  # a hand-made status line and headers: send verbatim
            raise NoResponseError(
                f"handler sent no response for {self.command} {self.path} "
                "(call send_response() or send_error())"
            )
        headers = self.response_headers
        status = self.status
        no_body = self.command == "HEAD" or status in (204, 304) or status < 200
        if any(n.lower() == "transfer-encoding" for n, _ in headers):
            # The handler framed its own body (which it may have done for
            # HEAD too): decode it, then send it re-framed, and close.
            return self._self_framed(status, headers, written[self._body_start :], no_body)
        body = written[self._body_start :] if self._headers_ended else written
        # Content-Length: the length of the body the handler wrote, for HEAD
        # as for GET (a HEAD handler that wrote nothing keeps the length it
        # declared: that of the GET body); 304 keeps the declared one; a 204
        # (or 1xx) never has one (RFC 9110 §8.6).
        if status == 304 or (self.command == "HEAD" and not body):
            keep = list(headers)
        else:
            keep = [(n, v) for n, v in headers if n.lower() != "content-length"]
        if self.close_connection and not any(n.lower() == "connection" for n, _ in keep):
            keep.append(("Connection", "close"))
        # Connection fields are merged into one by the machine, which says
        # "close" whenever the connection will not be reused.
        return Reply(status, body, keep, self.reason)

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
        for name, value in headers:
            if not TOKEN_STR.fullmatch(name) or not VALUE_STR.fullmatch(value):
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


class TestHTTPServer(HTTPServer):
    """Drop-in for CPython test_logging's ``TestHTTPServer``.

    ``handler(request)`` gets a :class:`CompatRequest` (the
    ``BaseHTTPRequestHandler`` attributes and methods) for every method
    (GET, POST, HEAD...), on the reactor thread.  ``log`` turns on
    http.server-style request logging on stderr; ``sslctx`` serves HTTPS.
    """

    __test__ = False

    #: ``"HTTP/1.0"`` like ``BaseHTTPRequestHandler``: one request per
    #: connection, which is what clients such as ``logging.handlers.HTTPHandler``
    #: (which never closes its connection) rely on.  Set ``"HTTP/1.1"`` on the
    #: class or instance for persistent connections.
    protocol_version = "HTTP/1.0"

    def __init__(
        self,
        addr: Any,
        handler: Callable[[CompatRequest], object],
        poll_interval: float = 0.5,
        log: bool = False,
        sslctx: ssl.SSLContext | None = None,
    ) -> None:
        self.compat_handler = handler
        self.log = log
        self.sslctx = sslctx
        super().__init__(addr, None, ssl_context=sslctx, poll_interval=poll_interval)

    @property
    def server_port(self) -> int | None:
        """The bound port (socketserver's name for it)."""
        return self.port

    def _run_handler(self, conn: _HTTPConnection, request: HTTPRequest) -> None:
        compat = CompatRequest(request, self)
        try:
            self.compat_handler(compat)
            result = compat._reply()
        except Exception as exc:
            self.handle_error(exc, f"handler for {request.method} {request.target}")
            result = _error_reply(exc)
        conn.respond_now(result)

