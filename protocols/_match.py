"""Matchers shared by HTTP expectations, the ``wait_for_*`` helpers and the ``find_*`` queries.

One rule for every keyword matcher (``path=``, ``sender=``, ``data=``...),
whatever the server:

* ``None`` (the default): not checked;
* a plain value: equal (``==``), except where a keyword says otherwise
  (``query=``/``headers=`` dicts are subsets, SMTP ``body=`` is a substring);
* a compiled regex (``re.compile(...)``): ``search()`` must find it (anchor
  it with ``^``/``$`` or ``\\A``/``\\Z`` for a whole match); a ``str``
  pattern against bytes decodes them as UTF-8 first, and the other way round;
* :class:`Prefix`, :class:`Contains`, :class:`Exact`, :class:`Subset`: what
  their names say;
* a callable: ``callable(value)`` must be truthy.

A :class:`Criteria` is an ordered set of such checks over one kind of record;
it tells not only *whether* a record matches but *why not* (one reason per
failed check), which is what the near-miss reports of strict HTTP servers and
of every wait's ``TimeoutError`` print.

Pure: no I/O, no threads; safe on any thread.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

__all__ = [
    "Contains",
    "Criteria",
    "Exact",
    "Matcher",
    "Prefix",
    "Subset",
    "check",
]

T = TypeVar("T")

#: Records summarized at the end of a wait's ``TimeoutError`` (the newest ones).
SHOWN_ON_TIMEOUT = 5
#: Characters of a value shown in a summary or a mismatch reason.
SHOWN_CHARS = 60
#: Bytes of a datagram or stream shown in a summary.
SHOWN_BYTES = 40

_MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "<missing>"})()


def short(value: object, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters (never raises)."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not break a report
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Matcher:
    """Base of the value matchers: :meth:`mismatch` says why a value does not match."""

    def mismatch(self, value: Any) -> str | None:
        """``None`` when ``value`` matches, else a short reason."""
        raise NotImplementedError

    def __call__(self, value: Any) -> bool:
        return self.mismatch(value) is None


class Exact(Matcher):
    """Equal to ``expected``; for a mapping: the same keys, each value checked with :func:`check`.

    ``query=Exact({"a": "1"})`` refuses a request with any other query field.
    """

    def __init__(self, expected: Any) -> None:
        self.expected = expected

    def mismatch(self, value: Any) -> str | None:
        want = self.expected
        if isinstance(want, Mapping):
            if not isinstance(value, Mapping):
                return f"got {short(value)}, want a mapping {short(dict(want))}"
            extra = [k for k in value if k not in want]
            if extra:
                return f"unexpected {', '.join(map(repr, extra))}"
            return _subset(want, value, "")
        return None if value == want else f"got {short(value)}, want {short(want)}"

    def __repr__(self) -> str:
        return f"Exact({self.expected!r})"


class Prefix(Matcher):
    """A ``str`` or ``bytes`` value starting with ``prefix`` (``path=Prefix("/api/")``)."""

    def __init__(self, prefix: str | bytes) -> None:
        self.prefix = prefix

    def mismatch(self, value: Any) -> str | None:
        try:
            ok = _coerce_like(value, self.prefix).startswith(self.prefix)
        except (TypeError, AttributeError):
            ok = False
        return None if ok else f"got {short(value)}, want a prefix {self.prefix!r}"

    def __repr__(self) -> str:
        return f"Prefix({self.prefix!r})"


class Contains(Matcher):
    """A ``str``/``bytes`` value containing ``part``, or a collection holding it."""

    def __init__(self, part: Any) -> None:
        self.part = part

    def mismatch(self, value: Any) -> str | None:
        try:
            if isinstance(self.part, (str, bytes)) and isinstance(value, (str, bytes, bytearray)):
                ok = self.part in _coerce_like(value, self.part)
            else:
                ok = self.part in value
        except TypeError:
            ok = False
        return None if ok else f"{short(value)} does not contain {short(self.part)}"

    def __repr__(self) -> str:
        return f"Contains({self.part!r})"


class Subset(Matcher):
    """Every key of ``expected`` present with a matching value; nested dicts are subsets too.

    Meant for JSON (``json=Subset({"user": {"id": 1}})``); lists compare item
    by item (same length), each item as a subset.
    """

    def __init__(self, expected: Any) -> None:
        self.expected = expected

    def mismatch(self, value: Any) -> str | None:
        return _deep_subset(self.expected, value, "")

    def __repr__(self) -> str:
        return f"Subset({self.expected!r})"


def _coerce_like(value: Any, like: str | bytes) -> Any:
    """``value`` as the same type as ``like`` (str <-> bytes as UTF-8)."""
    if isinstance(like, str) and isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(like, bytes) and isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytearray):
        return bytes(value)
    return value


def check(want: Any, value: Any) -> str | None:
    """Check ``value`` against one matcher ``want`` (module doc); ``None`` if it matches."""
    if want is None:
        return None
    if value is _MISSING:
        return "missing"
    if isinstance(want, Matcher):
        return want.mismatch(value)
    if isinstance(want, re.Pattern):
        try:
            found = want.search(_coerce_like(value, want.pattern))
        except TypeError:
            found = None
        return None if found else f"{short(value)} does not match /{want.pattern!r:.60}/"
    if callable(want) and not isinstance(want, type):
        try:
            ok = bool(want(value))
        except Exception as exc:  # noqa: BLE001 - a failing predicate is a mismatch
            return f"predicate raised {type(exc).__name__}: {exc}"
        return None if ok else f"predicate {getattr(want, '__name__', 'callable')} was false"
    if isinstance(value, bytearray):
        value = bytes(value)
    if isinstance(want, str) and isinstance(value, bytes):
        want = want.encode("utf-8")
    return None if value == want else f"got {short(value)}, want {short(want)}"


def _subset(want: Mapping[Any, Any], value: Mapping[Any, Any], where: str) -> str | None:
    """Every key of ``want`` in ``value``, values checked with :func:`check`."""
    for key, spec in want.items():
        if key not in value:
            return f"{where}[{key!r}] missing"
        why = check(spec, value[key])
        if why is not None:
            return f"{where}[{key!r}]: {why}"
    return None


def _deep_subset(want: Any, value: Any, where: str) -> str | None:
    if isinstance(want, Mapping) and not isinstance(want, Matcher):
        if not isinstance(value, Mapping):
            return f"{where or 'value'}: got {short(value)}, want an object"
        for key, spec in want.items():
            if key not in value:
                return f"{where}[{key!r}] missing"
            why = _deep_subset(spec, value[key], f"{where}[{key!r}]")
            if why is not None:
                return why
        return None
    if isinstance(want, list):
        if not isinstance(value, list) or len(value) != len(want):
            return f"{where or 'value'}: got {short(value)}, want {short(want)}"
        for i, (w, v) in enumerate(zip(want, value, strict=True)):
            why = _deep_subset(w, v, f"{where}[{i}]")
            if why is not None:
                return why
        return None
    why = check(want, value)
    return None if why is None else f"{where}: {why}" if where else why


# --------------------------------------------------------------------------
# Criteria: named checks over one kind of record
# --------------------------------------------------------------------------

#: A field check: ``(keyword, matcher, test(record, matcher) -> reason | None)``.
FieldCheck = tuple[str, Any, Callable[[Any, Any], "str | None"]]


class Criteria:
    """Named checks over one kind of record, all of which must hold.

    Built by each server from its keyword matchers; :meth:`mismatches`
    returns one reason per failed check (empty: the record matches).
    """

    def __init__(self, checks: Sequence[FieldCheck]) -> None:
        self.checks = [c for c in checks if c[1] is not None]

    def __bool__(self) -> bool:
        return bool(self.checks)

    def mismatches(self, record: Any) -> list[str]:
        reasons = []
        for name, want, test in self.checks:
            try:
                why = test(record, want)
            except Exception as exc:  # noqa: BLE001 - a broken record or matcher
                why = f"{type(exc).__name__}: {exc}"
            if why is not None:
                reasons.append(f"{name}: {why}")
        return reasons

    def matches(self, record: Any) -> bool:
        return not self.mismatches(record)

    def select(self, records: Iterable[T]) -> list[T]:
        """The records that match, in order: what every server's ``find_*()`` returns.

        ``records`` is copied first (``list(records)``), so a recording the
        reactor thread appends to meanwhile yields a consistent snapshot.
        """
        return [r for r in list(records) if self.matches(r)]

    def describe(self) -> str:
        """``"method='GET', path=Prefix('/a')"``: the keywords as given."""
        return ", ".join(f"{name}={_describe_want(want)}" for name, want, _ in self.checks)


def _describe_want(want: Any) -> str:
    if isinstance(want, re.Pattern):
        return f"re.compile({want.pattern!r})"
    if callable(want) and not isinstance(want, (type, Matcher)):
        return getattr(want, "__name__", "<callable>")
    return short(want, 80)


def field(name: str, get: Callable[[Any], Any], want: Any, default: str = "equal") -> FieldCheck:
    """A check of ``get(record)`` against ``want``.

    ``default`` says what a plain ``str``/``bytes`` ``want`` means:
    ``"equal"`` or ``"contains"`` (substring).
    """
    if default == "contains" and isinstance(want, (str, bytes)):
        want = Contains(want)
    return (name, want, lambda record, w: check(w, get(record)))


def predicate_field(want: Callable[[Any], object] | None) -> FieldCheck:
    """``predicate=``: ``want(record)`` must be truthy."""

    def test(record: Any, w: Callable[[Any], object]) -> str | None:
        return None if w(record) else f"{getattr(w, '__name__', 'predicate')}(record) was false"

    return ("predicate", want, test)


# --------------------------------------------------------------------------
# Waiting and reporting
# --------------------------------------------------------------------------


def arrival_report(
    items: Sequence[Any],
    describe: Callable[[Any], str],
    criteria: Criteria | None = None,
    shown: int = SHOWN_ON_TIMEOUT,
) -> str:
    """``"3 arrived (1 matching); the last 3: ...; nearest miss: ..."`` for a TimeoutError."""
    n = len(items)
    text = f"{n} arrived"
    if criteria:
        matching = sum(1 for i in items if criteria.matches(i))
        text += f" ({matching} matching)"
    if not n:
        return text
    last = items[-shown:]
    label = f"the last {len(last)}" if n > len(last) else "they were"
    text += f"; {label}:" + "".join(f"\n  {_safe(describe, i)}" for i in last)
    if criteria:
        near = nearest(items, criteria)
        if near is not None:
            item, reasons = near
            text += f"\nnearest miss: {_safe(describe, item)}\n  " + "\n  ".join(reasons)
    return text


def nearest(items: Sequence[Any], criteria: Criteria) -> tuple[Any, list[str]] | None:
    """The non-matching item with the fewest failed checks (the newest on a tie)."""
    best: tuple[Any, list[str]] | None = None
    for item in items:
        reasons = criteria.mismatches(item)
        if reasons and (best is None or len(reasons) <= len(best[1])):
            best = (item, reasons)
    return best


def _safe(describe: Callable[[Any], str], item: Any) -> str:
    try:
        return describe(item)
    except Exception:  # noqa: BLE001
        return short(item, 120)


def wait_matching(
    server: Any,
    records: Callable[[], Sequence[T]],
    count: int,
    timeout: float | None,
    what: str,
    criteria: Criteria | None,
    describe: Callable[[Any], str],
    extra: Callable[[T], bool] | None = None,
) -> list[T]:
    """Wait on ``server`` until ``count`` records match; return the first ``count`` of them.

    ``extra`` is one more condition that is not a keyword matcher (e.g. a
    stream being closed).  The ``TimeoutError`` names what was awaited and
    what arrived (:func:`arrival_report`).
    """

    def ok(item: T) -> bool:
        return (criteria is None or criteria.matches(item)) and (extra is None or extra(item))

    def found() -> list[T] | None:
        got = [i for i in list(records()) if ok(i)]
        return got[:count] if len(got) >= count else None

    wanted = f"{count} {what}"
    if criteria:
        wanted += f" matching {criteria.describe()}"
    return server.wait_for(  # type: ignore[no-any-return]
        found, timeout, wanted, report=lambda: arrival_report(list(records()), describe, criteria)
    )


# --------------------------------------------------------------------------
# One-line summaries of each kind of record
# --------------------------------------------------------------------------


def describe_request(r: Any) -> str:
    """``GET /a?b=1 HTTP/1.1 (12-byte body)``."""
    text = f"{r.method} {r.target} HTTP/{r.http_version}"
    if r.body:
        text += f" ({len(r.body)}-byte body {short(bytes(r.body[:SHOWN_BYTES]), 50)})"
    return text


def describe_envelope(e: Any) -> str:
    """``from 'a@x' to ['b@y'] subject 'hi' (120 bytes, TLS, auth 'u')``."""
    try:
        subject = e.message["Subject"]
    except Exception:  # noqa: BLE001
        subject = None
    flags = [f"{len(e.data)} bytes"]
    if getattr(e, "tls", False):
        flags.append("TLS")
    if getattr(e, "auth_user", None):
        flags.append(f"auth {e.auth_user!r}")
    return (
        f"from {e.mail_from!r} to {list(e.rcpt_tos)!r} subject {short(subject)} "
        f"({', '.join(flags)})"
    )


def describe_datagram(d: Any) -> str:
    """``12 bytes from ('127.0.0.1', 5000): b'<11>disk full'``."""
    return f"{len(d.data)} bytes from {d.peer!r}: {short(bytes(d.data[:SHOWN_BYTES]), 60)}"


def describe_stream(s: Any) -> str:
    """``('127.0.0.1', 5000): 12 bytes, closed: b'hello'``."""
    state = "closed" if s.closed else "open"
    return f"{s.peer!r}: {s.received} bytes, {state}: {short(bytes(s.data[:SHOWN_BYTES]), 60)}"


def describe_generic(item: Any) -> str:
    return short(item, 120)


# --------------------------------------------------------------------------
# Criteria for the other recordings
# --------------------------------------------------------------------------


def _any_recipient(envelope: Any, want: Any) -> str | None:
    rcpts = list(envelope.rcpt_tos)
    if any(check(want, r) is None for r in rcpts):
        return None
    return f"none of {short(rcpts)} matches {_describe_want(want)}"


def _envelope_headers(envelope: Any, want: Any) -> str | None:
    msg = envelope.message
    if isinstance(want, str):
        want = {want: lambda v: True}
    for name, spec in dict(want).items():
        values = msg.get_all(name)
        if not values:
            return f"{name}: missing"
        whys = [check(spec, str(v)) for v in values]
        if all(w is not None for w in whys):
            return f"{name}: {whys[0]}"
    return None


def _envelope_body(envelope: Any) -> str:
    """The content after the header section, as text (CRLF kept)."""
    text: str = envelope.text
    head, sep, rest = text.partition("\r\n\r\n")
    return rest if sep else ""


def envelope_criteria(
    sender: Any = None,
    recipient: Any = None,
    subject: Any = None,
    headers: Any = None,
    body: Any = None,
    tls: bool | None = None,
    auth_user: Any = None,
    predicate: Callable[[Any], object] | None = None,
) -> Criteria:
    """Criteria over SMTP :class:`Envelope` records.

    ``sender`` the MAIL FROM address; ``recipient`` any one RCPT TO address;
    ``subject`` the decoded Subject; ``headers`` a dict of field matchers
    (or one field name that must be present); ``body`` the text after the
    header section (a plain ``str`` is a **substring**); ``tls`` True/False;
    ``auth_user`` the AUTH username.
    """
    return Criteria(
        [
            field("sender", lambda e: e.mail_from, sender),
            ("recipient", recipient, _any_recipient),
            field(
                "subject",
                lambda e: _MISSING if e.message["Subject"] is None else str(e.message["Subject"]),
                subject,
            ),
            ("headers", headers, _envelope_headers),
            field("body", _envelope_body, body, default="contains"),
            field("tls", lambda e: e.tls, tls),
            field("auth_user", lambda e: e.auth_user, auth_user),
            predicate_field(predicate),
        ]
    )


def datagram_criteria(
    data: Any = None, peer: Any = None, predicate: Callable[[Any], object] | None = None
) -> Criteria:
    """Criteria over :class:`Datagram` records: ``data`` (bytes equal, regex,
    :class:`Contains`, :class:`Prefix`...) and ``peer`` (the sender's address)."""
    return Criteria(
        [
            field("data", lambda d: bytes(d.data), data),
            field("peer", lambda d: d.peer, peer),
            predicate_field(predicate),
        ]
    )


def stream_criteria(
    data: Any = None, peer: Any = None, predicate: Callable[[Any], object] | None = None
) -> Criteria:
    """Criteria over :class:`Stream` records: ``data`` (everything received so
    far: bytes equal, regex, :class:`Contains`...) and ``peer``."""
    return Criteria(
        [
            field("data", lambda s: bytes(s.data), data),
            field("peer", lambda s: s.peer, peer),
            predicate_field(predicate),
        ]
    )
