"""The HTTP/1.1 grammar, written once (RFC 9110 §5.5, §5.6.2, RFC 9112 §3, §5, §7.1).

Each rule (token, field value, request-target, request line, chunk-size
line) is written here once, as the text of a regular expression, and
compiled both for ``str`` (events, response fields, the decoded request
head) and for ``bytes`` (the receive buffer) where both are needed.  The
machine, the events, the response framing, the body readers and the compat
server all use these.  The patterns are anchored with ``fullmatch`` by their
users, so a match means every octet was checked.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Final

from ._errors import RemoteProtocolError

__all__ = [
    "ABSOLUTE_FORM",
    "BARE_CR",
    "CHUNK_LINE",
    "FORBIDDEN_TRAILERS",
    "DIGITS",
    "FIELD_BLOCK_STR",
    "FIELD_LINE",
    "FIELD_PAIRS_STR",
    "HEAD_END",
    "Headers",
    "REQUEST_LINE_STR",
    "TARGET_STR",
    "TOKEN_RE",
    "TOKEN_STR",
    "VALUE_STR",
    "field_error",
    "PARSED_SECTIONS",
    "Summary",
    "parse_fields",
    "parse_section",
    "reason_phrase",
]

#: Header fields (or trailers): ``(name, value)`` pairs in order, names in
#: their original case, values decoded as ISO-8859-1.
Headers = tuple[tuple[str, str], ...]

# The rules, as pattern text.  Octets 0x80-0xff are written as \x80-\xff,
# which means the same octets in a bytes pattern and the same ISO-8859-1
# characters in a str pattern: one text serves both.
# RFC 9110 §5.6.2: token = 1*tchar.
_TOKEN_S = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# RFC 9110 §5.5: field-value = *field-content; no CR, LF, NUL or other CTLs
# except HTAB, and no leading or trailing whitespace.
_VALUE_S = r"(?:[\x21-\x7e\x80-\xff](?:[\t \x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?"
# The request-target: any visible ASCII here; its form (RFC 9112 §3.2) is
# checked by HTTP11Machine._analyse with ABSOLUTE_FORM below.
_TARGET_S = r"[\x21-\x7e]+"

_TOKEN = _TOKEN_S.encode("latin-1")
_VALUE = _VALUE_S.encode("latin-1")
#: A token (method, field name, chunk-extension name), as str.
TOKEN_STR = re.compile(_TOKEN_S)
#: A field value (and, trimmed, a reason phrase), as str.
VALUE_STR = re.compile(_VALUE_S)
#: A request-target, as str.
TARGET_STR = re.compile(_TARGET_S)
TOKEN_RE = re.compile(_TOKEN)
# RFC 9112 §5: field-line = field-name ":" OWS field-value OWS.
FIELD_LINE = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _VALUE + rb")[ \t]*")
# RFC 9112 §7.1.1: chunk-size [ chunk-ext ], chunk-ext = *( BWS ";" BWS
# ext-name [ BWS "=" BWS ext-val ] ), ext-val = token / quoted-string.  16
# hex digits bound the size before it is compared with the body limit.
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})"
    rb"(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?)*"
)
# The same grammar over the head decoded as ISO-8859-1 (one decode per head,
# then C-speed matching): a whole header section is validated with one
# fullmatch, and its (name, value) pairs taken with one findall.  Lines end in
# LF with an optional CR (the documented bare-LF policy).
# The value class is field-content plus OWS (no NUL, CR, LF or other CTL but
# HTAB); the pairs' values still carry their OWS, which the machine strips.
# Neither pattern can backtrack more than one octet (the optional CR).
# RFC 9112 §3: method SP request-target SP HTTP-version, single spaces only.
REQUEST_LINE_STR = re.compile(rf"({_TOKEN_S}) ({_TARGET_S}) HTTP/([0-9])\.([0-9])")
FIELD_BLOCK_STR = re.compile(rf"(?:{_TOKEN_S}:[\t\x20-\x7e\x80-\xff]*\r?\n)*")
FIELD_PAIRS_STR = re.compile(rf"({_TOKEN_S}):([\t\x20-\x7e\x80-\xff]*)\r?\n")
# The end of a header section: a line end followed by an empty line.
HEAD_END = re.compile(rb"\n\r?\n")
# RFC 9112 §3.2.2: absolute-form, as "scheme://..." (RFC 3986 §3.1 scheme).
ABSOLUTE_FORM = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# A CR not followed by LF: never valid in a request head (RFC 9112 §2.2).
BARE_CR = re.compile(rb"\r[^\n]")
#: Fields refused (400) in a request's trailer section (RFC 9110 §6.5.1):
#: message framing, routing, request modifiers (controls, conditionals,
#: range), authentication, hop-by-hop connection control and content format.
FORBIDDEN_TRAILERS: Final = frozenset({
    "content-length", "transfer-encoding", "trailer", "te", "host",
    "connection", "keep-alive", "proxy-connection", "upgrade",
    "expect", "max-forwards", "cache-control", "pragma", "range",
    "if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range",
    "authorization", "proxy-authorization", "cookie",
    "content-encoding", "content-type", "content-range",
})
# RFC 9110 §8.6: Content-Length = 1*DIGIT (ASCII digits only, unlike str.isdigit).
DIGITS = re.compile(r"[0-9]+")


_REASONS = {int(s): s.phrase for s in HTTPStatus}


def reason_phrase(status: int) -> str:
    """The standard reason phrase of *status*, or ``""`` for an unregistered code."""
    return _REASONS.get(status, "")


def field_error(line: bytes | bytearray) -> RemoteProtocolError:
    """Explain why *line* is not a valid field-line (all cases are 400)."""
    if line[:1] in (b" ", b"\t"):
        return RemoteProtocolError("obsolete line folding (obs-fold) is not accepted")
    colon = line.find(b":")
    if colon < 0:
        return RemoteProtocolError("header field line without a colon")
    name = line[:colon]
    if name[-1:] in (b" ", b"\t"):
        return RemoteProtocolError("whitespace between header field name and colon")
    if not TOKEN_RE.fullmatch(name):
        return RemoteProtocolError("invalid header field name")
    return RemoteProtocolError("invalid character (NUL, CR, LF or control) in header field value")


def parse_fields(lines: list[bytearray], start: int) -> Headers:
    """Parse ``lines[start:]`` as field lines (one trailing CR each is dropped).

    Raises :class:`RemoteProtocolError` (400) naming the first invalid line's fault.
    """
    headers = []
    match = FIELD_LINE.fullmatch
    for i in range(start, len(lines)):
        raw = lines[i]
        if raw[-1:] == b"\r":
            del raw[-1:]
        m = match(raw)
        if m is None:
            raise field_error(raw)
        headers.append((m[1].decode("ascii"), m[2].decode("latin-1")))
    return tuple(headers)


# What framing needs from a header section: (Host count, Content-Length
# values, transfer codings, Connection options, expectations), all lowered.
Summary = tuple[int, tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]

# Parsed header sections by their text.  Parsing is a pure function of the
# text and clients repeat the same heads (a test suite, a load generator), so
# the validated result is reused; bounded, cleared when full.
PARSED_SECTIONS: dict[str, tuple[Headers, Summary]] = {}
PARSED_SECTIONS_MAX: Final = 512
PARSED_SECTION_LONGEST: Final = 2048  # longer sections are not kept


def parse_section(fields: str) -> tuple[Headers, Summary]:
    """Validate and split a header section (ISO-8859-1 text, each line ending in LF).

    Raises :class:`RemoteProtocolError` (400) naming the first bad line.
    """
    if not fields:
        headers: Headers = ()
    elif FIELD_BLOCK_STR.fullmatch(fields):
        headers = tuple([(n, v.strip(" \t")) for n, v in FIELD_PAIRS_STR.findall(fields)])
    else:  # say which line is wrong, and why
        lines = fields.encode("latin-1").split(b"\n")[:-1]
        parse_fields([bytearray(x) for x in lines], 0)
        raise AssertionError("unreachable: parse_fields raises")  # pragma: no cover
    lengths: list[str] = []
    codings: list[str] = []
    connection: list[str] = []
    expect: list[str] = []
    hosts = 0
    for name, value in headers:
        lname = name.lower()
        if lname == "host":
            hosts += 1
        elif lname == "content-length":
            lengths.extend(v.strip(" \t") for v in value.split(","))
        elif lname == "transfer-encoding":
            codings.extend(v.strip(" \t").lower() for v in value.split(","))
        elif lname == "connection":
            connection.extend(v.strip(" \t").lower() for v in value.split(","))
        elif lname == "expect":
            expect.append(value.strip(" \t").lower())
    result = headers, (hosts, tuple(lengths), tuple(codings), tuple(connection), tuple(expect))
    if len(fields) <= PARSED_SECTION_LONGEST:
        if len(PARSED_SECTIONS) >= PARSED_SECTIONS_MAX:
            PARSED_SECTIONS.clear()
        PARSED_SECTIONS[fields] = result
    return result
