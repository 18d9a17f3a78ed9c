"""Syslog messages (RFC 5424, RFC 3164) into typed records, sans-I/O.

Theory of operation.  :func:`parse_message` takes the bytes of one message
(a datagram, or one frame cut by :class:`SyslogFramer`) and always returns a
:class:`SyslogMessage`; it never raises on any input.  The format is chosen
from what follows the PRI: ``<PRI>`` then a version number and a space is
RFC 5424 (strict: every field checked against the RFC's ABNF), anything else
is RFC 3164 (lenient, as relays must be: RFC 3164 §4.3 says a relay accepts
whatever it gets and treats an unrecognised header as part of the message).
That covers what the usual senders emit:

* ``logging.handlers.SysLogHandler``: ``<PRI>`` + the formatted record
  (``ident`` prefix if set) + a NUL byte, no timestamp or hostname;
* util-linux ``logger --rfc3164``: ``<PRI>Mmm dd hh:mm:ss host tag[pid]: msg``
  (no host when writing to a local Unix socket); ``--rfc5424``: a full
  RFC 5424 header with ``[timeQuality ...]`` structured data;
* rsyslog's forwarding templates (RFC 3164 "traditional" and RFC 5424).

A message that does not parse (no PRI, a malformed RFC 5424 header, an
oversized message) is still a record: :attr:`SyslogMessage.error` says why,
:attr:`~SyslogMessage.message` holds the bytes decoded, and
:attr:`~SyslogMessage.raw` the exact bytes, always.

The framer cuts a TCP (or TLS, RFC 5425) byte stream into messages, with the
framing detected once per connection from its first byte (RFC 6587 §3.4): a
digit means octet counting (``MSG-LEN SP SYSLOG-MSG``), anything else
non-transparent framing (messages end with LF, or NUL as SysLogHandler sends).  It works on a
:class:`protocols._buffer.ReceiveBuffer`, so every byte is searched once.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import re
from dataclasses import dataclass, field
from typing import Final

from reactor import TestServersError

from .._buffer import ReceiveBuffer

__all__ = [
    "InvalidArgumentError",
    "SyslogError",
    "MAX_MESSAGE_SIZE",
    "MAX_OCTET_COUNT",
    "Facility",
    "Frame",
    "Framing",
    "SDElement",
    "Severity",
    "SyslogFormat",
    "SyslogFramer",
    "SyslogMessage",
    "format_message",
    "invalid_message",
    "parse_message",
]

#: Longest message accepted (octets, framing excluded).  RFC 5424 §6.1 says
#: receivers MUST accept 480 octets, SHOULD accept 2048 and MAY accept more;
#: RFC 5425 §4.3.1 raises the TLS floor to 2048 and recommends 8192.  64 KiB
#: is larger than any UDP datagram (65,507 octets over IPv4), so no datagram
#: is ever refused for its size, and it is syslog-ng's default
#: ``log-msg-size``; rsyslog's default ``$MaxMessageSize`` (8 KiB) fits well
#: inside it.  A longer message is recorded (its first octets, with the
#: reason), never silently dropped.
MAX_MESSAGE_SIZE: Final = 64 * 1024

#: Largest MSG-LEN accepted in octet-counted framing (RFC 6587 §3.4.1).  The
#: same as :data:`MAX_MESSAGE_SIZE`: a larger count is recorded as an error
#: and its octets are skipped (counted, not buffered), so a hostile count
#: cannot make the server buffer it.
MAX_OCTET_COUNT: Final = MAX_MESSAGE_SIZE

#: Digits a MSG-LEN may have before the framer gives up on the stream: one
#: more than :data:`MAX_OCTET_COUNT` needs, so "too large" is told apart from
#: "not a number".
_MAX_COUNT_DIGITS: Final = len(str(MAX_OCTET_COUNT)) + 1

# RFC 5424 §6 field limits (octets of PRINTUSASCII).
_MAX_HOSTNAME: Final = 255
_MAX_APP_NAME: Final = 48
_MAX_PROCID: Final = 128
_MAX_MSGID: Final = 32
_MAX_SD_NAME: Final = 32

_DIGITS = re.compile(rb"[0-9]*")
_BOM: Final = b"\xef\xbb\xbf"
_TRAILER: Final = b"\x00\r\n"  # what senders append: NUL (SysLogHandler), CR, LF
# RFC 6587 §3.4.2: the TRAILER of non-transparent framing is LF, but NUL is
# seen too: logging.handlers.SysLogHandler over TCP ends each message with
# NUL only, so LF alone would run its messages together.
_FRAME_END = re.compile(rb"[\n\x00]")


class SyslogError(TestServersError):
    """Base of every error :mod:`protocols.syslog` raises on its own.

    A message that does not parse is never an error: it is recorded with its
    reason.  Errors are for the caller's own mistakes.
    """


class InvalidArgumentError(SyslogError, ValueError):
    """A value given to the package is invalid (an unknown severity name, a
    record that cannot be formatted).  Still a ``ValueError``, which it replaced."""


class Severity(enum.IntEnum):
    """RFC 5424 §6.2.1 severities (the low three bits of PRI)."""

    EMERG = 0  #: system is unusable
    ALERT = 1  #: action must be taken immediately
    CRIT = 2  #: critical conditions
    ERR = 3  #: error conditions
    WARNING = 4  #: warning conditions
    NOTICE = 5  #: normal but significant condition
    INFO = 6  #: informational messages
    DEBUG = 7  #: debug-level messages

    @classmethod
    def from_name(cls, value: str | int) -> Severity:
        """A severity from its number, RFC name or a usual alias (``"error"``, ``"warn"``).

        :raises InvalidArgumentError: an unknown name or a number outside 0-7
            (a ``ValueError`` too).
        """
        if isinstance(value, int):
            try:
                return cls(value)
            except ValueError:
                raise InvalidArgumentError(f"syslog severity {value!r} is not 0-7") from None
        key = value.strip().upper()
        key = _SEVERITY_ALIASES.get(key, key)
        try:
            return cls[key]
        except KeyError:
            raise InvalidArgumentError(f"unknown syslog severity {value!r}") from None


_SEVERITY_ALIASES: Final = {
    "EMERGENCY": "EMERG",
    "PANIC": "EMERG",
    "CRITICAL": "CRIT",
    "ERROR": "ERR",
    "WARN": "WARNING",
    "INFORMATIONAL": "INFO",
}


class Facility(enum.IntEnum):
    """RFC 5424 §6.2.1 facilities (PRI // 8)."""

    KERN = 0  #: kernel messages
    USER = 1  #: user-level messages
    MAIL = 2  #: mail system
    DAEMON = 3  #: system daemons
    AUTH = 4  #: security/authorization messages
    SYSLOG = 5  #: messages generated internally by syslogd
    LPR = 6  #: line printer subsystem
    NEWS = 7  #: network news subsystem
    UUCP = 8  #: UUCP subsystem
    CRON = 9  #: clock daemon
    AUTHPRIV = 10  #: security/authorization messages (private)
    FTP = 11  #: FTP daemon
    NTP = 12  #: NTP subsystem
    AUDIT = 13  #: log audit
    ALERT = 14  #: log alert
    CLOCK = 15  #: clock daemon (note 2)
    LOCAL0 = 16  #: local use 0
    LOCAL1 = 17  #: local use 1
    LOCAL2 = 18  #: local use 2
    LOCAL3 = 19  #: local use 3
    LOCAL4 = 20  #: local use 4
    LOCAL5 = 21  #: local use 5
    LOCAL6 = 22  #: local use 6
    LOCAL7 = 23  #: local use 7


class SyslogFormat(enum.Enum):
    """Which grammar a message was read with."""

    RFC5424 = "rfc5424"  #: ``<PRI>VERSION SP TIMESTAMP SP HOSTNAME ...``
    RFC3164 = "rfc3164"  #: BSD syslog: ``<PRI>`` then an optional "Mmm dd hh:mm:ss host tag:"
    INVALID = "invalid"  #: did not parse; :attr:`SyslogMessage.error` says why


class Framing(enum.Enum):
    """How a message reached the server."""

    DATAGRAM = "datagram"  #: one UDP or Unix datagram
    OCTET_COUNTING = "octet-counting"  #: RFC 6587 §3.4.1 ``MSG-LEN SP MSG``
    NON_TRANSPARENT = "non-transparent"  #: RFC 6587 §3.4.2, LF- (or NUL-) terminated


@dataclass(frozen=True, slots=True)
class SDElement:
    """One RFC 5424 SD-ELEMENT: ``[id name="value" ...]`` (values unescaped)."""

    id: str
    params: tuple[tuple[str, str], ...] = ()

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of param ``name``, or ``default``."""
        for key, value in self.params:
            if key == name:
                return value
        return default


@dataclass(frozen=True, slots=True, kw_only=True)
class SyslogMessage:
    """One received syslog message (immutable).

    Fields a message did not carry are None (RFC 5424's NILVALUE ``-`` is
    None too).  ``timestamp`` is timezone-aware for RFC 5424; an RFC 3164
    timestamp has no year and no zone, so it is naive, in the year the parser
    was given (default: the current one); an RFC 3339 timestamp in an RFC 3164
    header (rsyslog's forward format) is aware.  ``message`` is the MSG decoded as
    UTF-8 (undecodable octets replaced), without the BOM (``bom`` says one
    was there) and without trailing NUL, CR and LF octets.
    """

    #: The exact octets received (framing removed), always kept.
    raw: bytes
    format: SyslogFormat
    #: Why it did not parse (None when it did).
    error: str | None = None
    facility: Facility | None = None
    severity: Severity | None = None
    #: RFC 5424 VERSION (1 today); None for RFC 3164.
    version: int | None = None
    timestamp: datetime.datetime | None = None
    hostname: str | None = None
    app_name: str | None = None
    procid: str | None = None
    msgid: str | None = None
    structured_data: tuple[SDElement, ...] = ()
    message: str = ""
    #: True when the MSG began with a UTF-8 BOM (stripped from ``message``).
    bom: bool = False
    framing: Framing = field(default=Framing.DATAGRAM, compare=False)
    #: The sender (address as the socket reported it), set by servers.
    peer: object = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        """True when the message parsed."""
        return self.error is None

    @property
    def pri(self) -> int | None:
        """The PRI value (facility * 8 + severity), or None."""
        if self.facility is None or self.severity is None:
            return None
        return int(self.facility) * 8 + int(self.severity)

    def sd_param(self, sd_id: str, name: str) -> str | None:
        """The value of param ``name`` of the first SD-ELEMENT ``sd_id``, or None."""
        for element in self.structured_data:
            if element.id == sd_id:
                value = element.get(name)
                if value is not None:
                    return value
        return None


class _Bad(Exception):
    """Internal: the reason a message does not parse."""


_PRI = re.compile(rb"<([0-9]{1,3})>")
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,6}))?(Z|[+-][0-9]{2}:[0-9]{2})\Z"
)
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # fmt: skip
_BSD_TIME = re.compile(
    rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([ 0-9][0-9]) "
    rb"([0-9]{2}):([0-9]{2}):([0-9]{2})"
)
# An RFC 3164 TAG (what rsyslog and logger accept; RFC 3164 says up to 32
# alphanumerics, senders use more), an optional [PID], then ':'.
_TAG = re.compile(rb"([A-Za-z0-9_./@-]{1,48})(?:\[([!-Z^-~]{1,128})\])?:(?: |\Z)")
_HOSTNAME_3164 = re.compile(rb"[!-~]{1,255}")


def _printusascii(data: bytes, limit: int, what: str) -> str | None:
    if data == b"-":
        return None
    if not data:
        raise _Bad(f"empty {what}")
    if len(data) > limit:
        raise _Bad(f"{what} longer than {limit} octets")
    if any(b < 33 or b > 126 for b in data):
        raise _Bad(f"{what} has octets outside PRINTUSASCII (33-126)")
    return data.decode("ascii")


def _priority(pri: int) -> tuple[Facility, Severity]:
    facility, severity = divmod(pri, 8)  # pri <= 191: facility <= 23
    return Facility(facility), Severity(severity)


def _parse_rfc3339(text: bytes) -> datetime.datetime | None:
    if text == b"-":
        return None
    m = _RFC3339.match(text.decode("ascii", "replace"))
    if m is None:
        raise _Bad(f"TIMESTAMP {text[:40]!r} is not RFC 3339 (RFC 5424 §6.2.3)")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7), m.group(8)
    micro = int(frac.ljust(6, "0")) if frac else 0
    if zone == "Z":
        tz = datetime.timezone.utc
    else:
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise _Bad(f"TIMESTAMP offset {zone!r} out of range")
        delta = datetime.timedelta(hours=hours, minutes=minutes)
        tz = datetime.timezone(-delta if zone[0] == "-" else delta)
    try:
        return datetime.datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError as exc:  # month 13, second 60 (RFC 5424 forbids leap seconds)...
        raise _Bad(f"TIMESTAMP {text[:40]!r}: {exc}") from None


def _unescape(value: bytes) -> str:
    # RFC 5424 §6.3.3: '"', '\' and ']' are escaped with '\'; a backslash
    # before any other octet is kept as it is.
    out = bytearray()
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c == 0x5C and i + 1 < n and value[i + 1] in b'"\\]':
            out.append(value[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return out.decode("utf-8", "replace")


_SD_NAME_STOP: Final = frozenset(b'= ]"')


def _sd_name(data: bytes, i: int, what: str) -> tuple[str, int]:
    start = i
    n = len(data)
    while i < n and 33 <= data[i] <= 126 and data[i] not in _SD_NAME_STOP:
        i += 1
    if i == start:
        raise _Bad(f"empty {what} at octet {start}")
    if i - start > _MAX_SD_NAME:
        raise _Bad(f"{what} longer than {_MAX_SD_NAME} octets")
    return data[start:i].decode("ascii"), i


def _parse_sd(data: bytes, i: int) -> tuple[tuple[SDElement, ...], int]:
    """STRUCTURED-DATA at ``data[i:]``; returns the elements and where it ends."""
    n = len(data)
    if data[i : i + 1] == b"-":
        return (), i + 1
    if data[i : i + 1] != b"[":
        raise _Bad("STRUCTURED-DATA is neither '-' nor '[' (RFC 5424 §6.3)")
    elements: list[SDElement] = []
    while i < n and data[i] == 0x5B:  # '['
        sd_id, i = _sd_name(data, i + 1, "SD-ID")
        params: list[tuple[str, str]] = []
        while True:
            if i >= n:
                raise _Bad(f"SD-ELEMENT [{sd_id} not closed")
            c = data[i]
            if c == 0x5D:  # ']'
                i += 1
                break
            if c != 0x20:
                raise _Bad(f"expected ' ' or ']' in SD-ELEMENT [{sd_id} at octet {i}")
            name, i = _sd_name(data, i + 1, "PARAM-NAME")
            if data[i : i + 2] != b'="':
                raise _Bad(f'expected =" after PARAM-NAME {name!r} at octet {i}')
            i += 2
            start = i
            while i < n and data[i] != 0x22:  # '"'
                i += 2 if data[i] == 0x5C else 1  # skip the escaped octet
            if i >= n:
                raise _Bad(f"PARAM-VALUE of {name!r} not closed")
            params.append((name, _unescape(data[start:i])))
            i += 1
        elements.append(SDElement(sd_id, tuple(params)))
    return tuple(elements), i


def _message_text(data: bytes) -> tuple[str, bool]:
    body = data.rstrip(_TRAILER)
    bom = body.startswith(_BOM)
    if bom:
        body = body[len(_BOM) :]
    return body.decode("utf-8", "replace"), bom


def _parse_rfc5424(data: bytes, i: int, version: int, pri: int) -> SyslogMessage:
    # HEADER = PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID
    facility, severity = _priority(pri)
    parts = data[i:].split(b" ", 5)
    if len(parts) < 6:
        raise _Bad(f"RFC 5424 header has {len(parts)} of its 6 space-separated fields")
    ts, host, app, procid, msgid, rest = parts
    timestamp = _parse_rfc3339(ts)
    offset = i + sum(len(p) + 1 for p in parts[:5])
    sd, j = _parse_sd(data, offset)
    if j < len(data) and data[j] != 0x20:
        raise _Bad(f"expected ' ' after STRUCTURED-DATA at octet {j}")
    text, bom = _message_text(data[j + 1 :]) if j < len(data) else ("", False)
    return SyslogMessage(
        raw=data,
        format=SyslogFormat.RFC5424,
        facility=facility,
        severity=severity,
        version=version,
        timestamp=timestamp,
        hostname=_printusascii(host, _MAX_HOSTNAME, "HOSTNAME"),
        app_name=_printusascii(app, _MAX_APP_NAME, "APP-NAME"),
        procid=_printusascii(procid, _MAX_PROCID, "PROCID"),
        msgid=_printusascii(msgid, _MAX_MSGID, "MSGID"),
        structured_data=sd,
        message=text,
        bom=bom,
    )


def _bsd_timestamp(m: re.Match[bytes], year: int) -> datetime.datetime | None:
    month = _MONTHS.index(m.group(1).decode()) + 1
    try:
        return datetime.datetime(
            year, month, int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5))
        )
    except ValueError:  # "Feb 30", "25:00:00": not a timestamp; it stays in the MSG
        return None


def _parse_rfc3164(data: bytes, i: int, pri: int, year: int) -> SyslogMessage:
    # RFC 3164 §4.1: <PRI>TIMESTAMP SP HOSTNAME SP TAG CONTENT, where a relay
    # treats a missing or bad TIMESTAMP as "no header" (§4.3.2/4.3.3).  A
    # Unix-socket sender (logger, glibc syslog(3)) leaves HOSTNAME out; a
    # word ending with ':' or '[pid]:' right after the timestamp is the TAG.
    facility, severity = _priority(pri)
    timestamp = hostname = app = procid = None
    m = _BSD_TIME.match(data, i)
    end = 0
    if m is not None and data[m.end() : m.end() + 1] == b" ":
        timestamp = _bsd_timestamp(m, year)
        end = m.end()
    elif data[i : i + 1].isdigit():
        # rsyslog's RSYSLOG_ForwardFormat and syslog-ng put an RFC 3339
        # timestamp where RFC 3164 has "Mmm dd hh:mm:ss".
        sp = data.find(b" ", i, i + 40)
        if sp > i:
            try:
                timestamp = _parse_rfc3339(data[i:sp])
                end = sp
            except _Bad:
                timestamp = None
    if timestamp is not None:
        i = end + 1
        tag = _TAG.match(data, i)
        if tag is None:
            host = _HOSTNAME_3164.match(data, i)
            if host is not None and data[host.end() : host.end() + 1] == b" ":
                hostname = host.group().decode("ascii")
                i = host.end() + 1
            elif host is not None and host.end() == len(data.rstrip(_TRAILER)):
                hostname = host.group().decode("ascii")  # a host and nothing else
                i = host.end()
    tag = _TAG.match(data, i)
    if tag is not None:
        app = tag.group(1).decode("ascii")
        procid = tag.group(2).decode("ascii") if tag.group(2) else None
        i = tag.end()
    text, bom = _message_text(data[i:])
    return SyslogMessage(
        raw=data,
        format=SyslogFormat.RFC3164,
        facility=facility,
        severity=severity,
        timestamp=timestamp,
        hostname=hostname,
        app_name=app,
        procid=procid,
        message=text,
        bom=bom,
    )


def invalid_message(
    data: bytes, reason: str, *, framing: Framing = Framing.DATAGRAM
) -> SyslogMessage:
    """The record of a message that did not parse (or did not fit)."""
    facility: Facility | None = None
    severity: Severity | None = None
    m = _PRI.match(data)
    if m is not None and int(m.group(1)) <= 191:
        facility, severity = _priority(int(m.group(1)))
    text, bom = _message_text(data)
    return SyslogMessage(
        raw=data,
        format=SyslogFormat.INVALID,
        error=reason,
        facility=facility,
        severity=severity,
        message=text,
        bom=bom,
        framing=framing,
    )


def parse_message(
    data: bytes,
    *,
    year: int | None = None,
    max_size: int = MAX_MESSAGE_SIZE,
    framing: Framing = Framing.DATAGRAM,
) -> SyslogMessage:
    """Parse one syslog message.  Never raises: a bad one comes back with ``error`` set.

    :param year: the year of an RFC 3164 timestamp (which has none); default
        the current local year.
    :param max_size: a longer message is an error record holding its first
        ``max_size`` octets (see :data:`MAX_MESSAGE_SIZE`).
    """
    data = bytes(data)
    try:
        if len(data) > max_size:
            return invalid_message(
                data[:max_size],
                f"message of {len(data)} octets exceeds max_size={max_size}",
                framing=framing,
            )
        m = _PRI.match(data)
        if m is None:
            raise _Bad("no <PRI> at the start (RFC 5424 §6.2.1, RFC 3164 §4.1.1)")
        digits = m.group(1)
        pri = int(digits)
        if pri > 191 or (len(digits) > 1 and digits[0] == 0x30):
            raise _Bad(f"PRI <{digits.decode()}> is not 0-191 without leading zeros")
        i = m.end()
        j = i
        while j < len(data) and j - i < 3 and 0x30 <= data[j] <= 0x39:
            j += 1
        if j > i and data[i] != 0x30 and data[j : j + 1] == b" ":
            record = _parse_rfc5424(data, j + 1, int(data[i:j]), pri)
        else:
            if year is None:
                year = datetime.date.today().year
            record = _parse_rfc3164(data, i, pri, year)
    except _Bad as exc:
        return invalid_message(data, str(exc), framing=framing)
    except Exception as exc:  # a parser bug must not lose the message either
        return invalid_message(data, f"parser error: {exc!r}", framing=framing)
    if framing is not Framing.DATAGRAM:
        record = _with_framing(record, framing)
    return record


def _with_framing(record: SyslogMessage, framing: Framing) -> SyslogMessage:
    return dataclasses.replace(record, framing=framing)


def _escape_param(value: str) -> bytes:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]").encode("utf-8")


def _format_rfc3339(ts: datetime.datetime) -> str:
    text = ts.isoformat(timespec="microseconds" if ts.microsecond else "seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def format_message(record: SyslogMessage) -> bytes:
    """The octets of ``record`` in its format (RFC 5424 or RFC 3164).

    What :func:`parse_message` makes of them has the same fields (the
    round trip the tests check).  An INVALID record formats as its raw bytes.

    :raises InvalidArgumentError: a field the format cannot carry (RFC 5424 fields with
        spaces, a PRI-less record).
    """
    if record.format is SyslogFormat.INVALID:
        return record.raw
    pri = record.pri
    if pri is None:
        raise InvalidArgumentError("a record without facility and severity has no PRI")
    body = (_BOM if record.bom else b"") + record.message.encode("utf-8")
    if record.format is SyslogFormat.RFC3164:
        out = b"<%d>" % pri
        if record.timestamp is not None:
            ts = record.timestamp
            if ts.tzinfo is not None:  # the RFC 3339 form (see _parse_rfc3164)
                out += _format_rfc3339(ts).encode() + b" "
            else:
                out += f"{_MONTHS[ts.month - 1]} {ts.day:2d} {ts:%H:%M:%S} ".encode()
            if record.hostname is not None:
                out += record.hostname.encode("ascii") + b" "
        if record.app_name is not None:
            out += record.app_name.encode("ascii")
            if record.procid is not None:
                out += b"[" + record.procid.encode("ascii") + b"]"
            out += b": "
        return out + body

    def nil(value: str | None) -> bytes:
        if value is None:
            return b"-"
        if not value or any(not 33 <= ord(c) <= 126 for c in value):
            raise InvalidArgumentError(f"RFC 5424 header field {value!r} is not PRINTUSASCII")
        return value.encode("ascii")

    ts_text = b"-" if record.timestamp is None else _format_rfc3339(record.timestamp).encode()
    header = b"<%d>%d %s %s %s %s %s " % (
        pri,
        record.version or 1,
        ts_text,
        nil(record.hostname),
        nil(record.app_name),
        nil(record.procid),
        nil(record.msgid),
    )
    if record.structured_data:
        sd = b"".join(
            b"["
            + e.id.encode("ascii")
            + b"".join(b' %s="%s"' % (k.encode("ascii"), _escape_param(v)) for k, v in e.params)
            + b"]"
            for e in record.structured_data
        )
    else:
        sd = b"-"
    return header + sd + (b" " + body if body else b"")


@dataclass(frozen=True, slots=True)
class Frame:
    """One message cut from a stream, or the reason the stream broke."""

    data: bytes
    framing: Framing
    #: Why this is not a whole message (None when it is).
    error: str | None = None


class SyslogFramer:
    """Cuts a syslog byte stream (TCP, TLS) into messages (RFC 6587), sans-I/O.

    Feed it with :meth:`receive_data` (``b""`` means end of stream) and
    collect :class:`Frame` objects from :meth:`frames`.  The framing is
    detected from the connection's first octet (RFC 6587 §3.4): a digit is
    octet counting, anything else non-transparent (each message ends with
    LF or NUL, RFC 6587 §3.4.2; a CR before it removed).  Limits: a
    LF-framed message longer than ``max_size`` is cut there (recorded as an
    error frame with its first ``max_size`` octets; the rest up to the next
    LF or NUL is skipped); a MSG-LEN above
    ``max_octet_count`` is an error frame and its octets are skipped without
    being buffered; a MSG-LEN that is not a number breaks the stream
    (:attr:`broken`: an error frame with what was buffered, and the caller
    should close the connection, since no frame boundary can be found again).
    Memory is bounded by ``max_size`` plus one read.  Empty LF-framed lines
    carry no message and are skipped.
    """

    def __init__(
        self, *, max_size: int = MAX_MESSAGE_SIZE, max_octet_count: int = MAX_OCTET_COUNT
    ) -> None:
        self.max_size = max_size
        self.max_octet_count = max_octet_count
        #: The connection's framing, once its first octet arrived.
        self.framing: Framing | None = None
        #: Set when the stream cannot be framed any more (close it).
        self.broken = False
        self._buf = ReceiveBuffer()
        self._out: list[Frame] = []
        self._need = 0  # octet counting: octets of the current frame (0: reading MSG-LEN)
        self._skip = 0  # octets still to discard (oversized frame)
        self._skip_to_lf = False  # LF framing: discarding the rest of an oversized line
        self._eof = False

    def receive_data(self, data: bytes) -> None:
        """Take received octets (``b""``: the peer closed its side)."""
        if self.broken or self._eof:
            return
        if not data:
            self._eof = True
            self._finish()
            return
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            data = data[n:]
            if not data:
                return
        self._buf.feed(data)
        if self.framing is None:
            first = self._buf.data[self._buf.pos]
            self.framing = (
                Framing.OCTET_COUNTING if 0x31 <= first <= 0x39 else Framing.NON_TRANSPARENT
            )
        if self.framing is Framing.OCTET_COUNTING:
            self._cut_counted()
        else:
            self._cut_lines()

    def frames(self) -> list[Frame]:
        """The frames cut so far (each returned once), oldest first."""
        out, self._out = self._out, []
        return out

    def _cut_lines(self) -> None:
        buf = self._buf
        while True:
            m = buf.search(_FRAME_END, 0)
            nl = -1 if m is None else m.start()
            if nl < 0:
                if self._skip_to_lf:
                    buf.clear()
                elif len(buf) > self.max_size:
                    self._emit_oversized_line()
                return
            start = buf.pos
            if self._skip_to_lf:
                self._skip_to_lf = False
                buf.consume_to(nl + 1)
                continue
            end = nl - 1 if nl > start and buf.data[nl - 1] == 0x0D else nl
            if end - start > self.max_size:
                self._out.append(
                    Frame(
                        bytes(buf.data[start : start + self.max_size]),
                        Framing.NON_TRANSPARENT,
                        f"line of {end - start} octets exceeds max_size={self.max_size}",
                    )
                )
            elif end > start:
                self._out.append(Frame(bytes(buf.data[start:end]), Framing.NON_TRANSPARENT))
            buf.consume_to(nl + 1)

    def _emit_oversized_line(self) -> None:
        buf = self._buf
        if not self._skip_to_lf:
            self._out.append(
                Frame(
                    bytes(buf.data[buf.pos : buf.pos + self.max_size]),
                    Framing.NON_TRANSPARENT,
                    f"line longer than max_size={self.max_size} octets (cut there)",
                )
            )
            self._skip_to_lf = True
        buf.clear()

    def _cut_counted(self) -> None:
        buf = self._buf
        data = buf.data
        while True:
            if self._skip:
                n = min(self._skip, len(buf))
                buf.take(n)
                self._skip -= n
                if self._skip:
                    return
            if self._need == 0:
                # MSG-LEN = NONZERO-DIGIT *DIGIT, then SP (RFC 6587 §3.4.1).
                sp = _DIGITS.match(data, buf.pos).end()  # type: ignore[union-attr]
                digits = bytes(data[buf.pos : sp])
                if len(digits) > _MAX_COUNT_DIGITS:
                    self._break(digits[: _MAX_COUNT_DIGITS + 1], "MSG-LEN has too many digits")
                    return
                if sp == len(data):
                    return  # the count goes on in the next read
                if data[sp] != 0x20 or not digits or digits[0] == 0x30:
                    self._break(
                        bytes(data[buf.pos : sp + 1]),
                        f"MSG-LEN {bytes(data[buf.pos : sp + 1])!r} is not a number followed "
                        "by a space (RFC 6587 §3.4.1)",
                    )
                    return
                if int(digits) > self.max_octet_count:
                    self._out.append(
                        Frame(
                            b"",
                            Framing.OCTET_COUNTING,
                            f"MSG-LEN {digits.decode()} exceeds "
                            f"max_octet_count={self.max_octet_count}; its octets were skipped",
                        )
                    )
                    buf.consume_to(sp + 1)
                    self._skip = int(digits)
                    continue
                self._need = int(digits)
                buf.consume_to(sp + 1)
            if len(buf) < self._need:
                return
            self._out.append(Frame(buf.take(self._need), Framing.OCTET_COUNTING))
            self._need = 0
            if not buf:
                return

    def _break(self, head: bytes, reason: str) -> None:
        # The stream cannot be framed any more: record the offending header
        # (only it, so the record does not depend on how reads were cut).
        self.broken = True
        self._out.append(Frame(head, Framing.OCTET_COUNTING, reason))
        self._buf.clear()

    def _finish(self) -> None:
        buf = self._buf
        if self.framing is Framing.NON_TRANSPARENT:
            if buf and not self._skip_to_lf:
                tail = bytes(buf.data[buf.pos :])
                if tail.endswith(b"\r"):
                    tail = tail[:-1]
                if tail:
                    self._out.append(Frame(tail, Framing.NON_TRANSPARENT))  # unterminated last line
        elif self.framing is Framing.OCTET_COUNTING:
            if self._need:
                self._out.append(
                    Frame(
                        bytes(buf.data[buf.pos :]),
                        Framing.OCTET_COUNTING,
                        f"stream ended inside a frame ({len(buf)} of {self._need} octets)",
                    )
                )
            elif buf:
                self._out.append(
                    Frame(
                        bytes(buf.data[buf.pos :]),
                        Framing.OCTET_COUNTING,
                        "stream ended inside a MSG-LEN",
                    )
                )
        buf.clear()
