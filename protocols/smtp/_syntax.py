"""Parsing and formatting helpers of the SMTP machine (pure functions).

Parsers raise :class:`RemoteProtocolError` carrying the reply the server
should send (501 syntax, 555 unknown parameter...); the machine turns the
error into that reply.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ._events import RemoteProtocolError

__all__ = [
    "MailParameters",
    "check_no_controls",
    "format_reply",
    "parse_mail_parameters",
    "parse_path",
    "split_sp",
]

_ENHANCED_RE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}(?= |$)")
_SIZE_RE = re.compile(r"[0-9]{1,20}")  # RFC 1870 §3: size-value ::= 1*20DIGIT (ASCII)


#: ASCII control characters (C0 and DEL).  No argument in RFC 5321's
#: command grammar may hold one: domains, paths, parameters and strings are
#: printable ASCII (or UTF-8 with SMTPUTF8) and SP only.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def check_no_controls(arg: str) -> None:
    """Raise :class:`RemoteProtocolError` (501) if ``arg`` holds an ASCII
    control character: a NUL that other software would cut the argument at,
    a bare CR that would forge a reply line if echoed, a TAB, ESC or DEL."""
    if _CONTROL_RE.search(arg):
        raise RemoteProtocolError("Syntax error: control character in argument", 501, "5.5.2")


def parse_path(arg: str, prefix: str) -> tuple[str, list[str]]:
    """Split ``FROM:<addr> PARAM=V ...`` (``prefix`` ``"FROM:"``/``"TO:"``)
    into ``(addr, params)``.

    A space after the colon is tolerated (many clients send one); the angle
    brackets are required (RFC 5321 §4.1.2).  A source route
    (``<@a,@b:user@c>``) is accepted and dropped (§4.1.1.3: ignore it).
    Parameters are separated by ASCII spaces only.  Raises
    :class:`RemoteProtocolError` (501) on a syntax error.
    """
    plen = len(prefix)
    head = arg[:plen]
    if not head.isascii() or head.upper() != prefix or arg[plen:].lstrip(" ")[:1] != "<":
        raise _path_error(prefix)
    rest = arg[plen:].lstrip(" ")
    if '"' not in rest:
        end = rest.find(">")
    else:
        end = _closing_bracket(rest)
    if end < 0:
        raise _path_error(prefix)
    address = rest[1:end]
    if address.startswith("@"):
        colon = address.find(":")
        if colon < 0:
            raise _path_error(prefix)
        address = address[colon + 1 :]
    if _BAD_ADDRESS_RE.search(address) and not address.startswith('"'):
        raise _path_error(prefix)
    after = rest[end + 1 :]
    if after and after[0] != " ":
        raise _path_error(prefix)
    return address, split_sp(after)


def split_sp(text: str) -> list[str]:
    """Split ``text`` on runs of ASCII spaces (RFC 5321's ``SP``) only.

    ``str.split()`` would also split on tabs and on Unicode whitespace
    (``"\x85"``, ``"\xa0"``...), letting bytes no other SMTP parser treats
    as separators delimit parameters here.
    """
    return [part for part in text.split(" ") if part]


_BAD_ADDRESS_RE = re.compile(r"[<> \t]")


def _closing_bracket(rest: str) -> int:
    """Index of the ``>`` closing ``rest[0] == "<"``, skipping quoted strings
    (and their backslash escapes); -1 if there is none."""
    i, quoted, n = 1, False, len(rest)
    while i < n:
        c = rest[i]
        if c == "\\" and quoted:
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == ">" and not quoted:
            return i
        i += 1
    return -1


def _path_error(prefix: str) -> RemoteProtocolError:
    command = "MAIL FROM" if prefix == "FROM:" else "RCPT TO"
    return RemoteProtocolError(f"Syntax: {command}:<address> [parameters]", 501, "5.5.4")


@dataclass(frozen=True, slots=True, kw_only=True)
class MailParameters:
    """The MAIL FROM parameters the machine understands."""

    size: int | None = None
    body: str | None = None
    smtputf8: bool = False


def parse_mail_parameters(params: list[str]) -> MailParameters:
    """Validate MAIL FROM parameters: SIZE= (RFC 1870), BODY=7BIT|8BITMIME
    (RFC 6152), SMTPUTF8 (RFC 6531), AUTH= (RFC 4954 §5, accepted as is).

    Keywords and values are matched in ASCII only (``"ſize"`` is not
    ``SIZE``, although ``"ſ".upper() == "S"``).  Raises
    :class:`RemoteProtocolError`: 501 for a known keyword with a bad value,
    555 for an unknown keyword (RFC 5321 §4.1.1.11).
    """
    size: int | None = None
    body: str | None = None
    smtputf8 = False
    for param in params:
        key, eq, value = param.partition("=")
        if not key.isascii():
            raise RemoteProtocolError("MAIL FROM parameter not recognized", 555, "5.5.4")
        key = key.upper()
        if key == "SIZE" and eq and _SIZE_RE.fullmatch(value):
            size = int(value)
        elif key == "BODY" and eq and value.isascii() and value.upper() in ("7BIT", "8BITMIME"):
            body = value.upper()
        elif key == "SMTPUTF8" and not eq:
            smtputf8 = True
        elif key == "AUTH" and eq and value:
            pass  # kept in the raw options; no policy here
        elif key in ("SIZE", "BODY", "SMTPUTF8", "AUTH"):
            raise RemoteProtocolError(f"Syntax error in parameter {param}", 501, "5.5.4")
        else:
            raise RemoteProtocolError(f"MAIL FROM parameter {key} not recognized", 555, "5.5.4")
    return MailParameters(size=size, body=body, smtputf8=smtputf8)


@functools.lru_cache(maxsize=512)  # replies repeat: format each once
def format_reply(code: int, enhanced: str | None, text: str, *, esmtp: bool) -> bytes:
    """Format one reply; ``text`` may span lines (``"\\n"``).

    In EHLO sessions (``esmtp``) each line of a 2xx/4xx/5xx reply starts with
    the RFC 2034/3463 enhanced code: ``enhanced``, else the one already at the
    start of the text, else ``<class>.0.0``.  CRs in ``text`` are dropped so
    a caller's text cannot inject reply lines.
    """
    lines = [part.replace("\r", "") for part in text.split("\n")]
    use_enhanced = esmtp and code >= 200 and code // 100 != 3
    if use_enhanced and enhanced is None and not _ENHANCED_RE.match(lines[0]):
        enhanced = f"{code // 100}.0.0"
    out = []
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if use_enhanced and enhanced and not _ENHANCED_RE.match(line):
            line = f"{enhanced} {line}" if line else enhanced
        out.append(f"{code}{' ' if i == last else '-'}{line}\r\n")
    return "".join(out).encode("utf-8")
