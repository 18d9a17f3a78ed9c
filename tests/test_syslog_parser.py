"""The syslog parser and stream framer, sans-I/O: the RFCs' own examples, limits, fuzz."""

from __future__ import annotations

import dataclasses
import datetime
import unittest

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.syslog import (
    MAX_MESSAGE_SIZE,
    Facility,
    Framing,
    SDElement,
    Severity,
    SyslogFormat,
    SyslogFramer,
    SyslogMessage,
    format_message,
    parse_message,
)

BOM = b"\xef\xbb\xbf"
UTC = datetime.timezone.utc


def fields(record: SyslogMessage) -> SyslogMessage:
    """The record without its raw bytes: what a round trip must keep."""
    return dataclasses.replace(record, raw=b"")


class RFC5424ExamplesTest(unittest.TestCase):
    """RFC 5424 §6.5, examples 1-4, plus the header rules."""

    def test_example_1_bom_and_nil_procid(self) -> None:
        raw = (
            b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
            + BOM
            + b"'su root' failed for lonvick on /dev/pts/8"
        )
        r = parse_message(raw)
        self.assertIsNone(r.error)
        self.assertEqual(r.format, SyslogFormat.RFC5424)
        self.assertEqual((r.facility, r.severity), (Facility.AUTH, Severity.CRIT))
        self.assertEqual(r.version, 1)
        self.assertEqual(r.timestamp, datetime.datetime(2003, 10, 11, 22, 14, 15, 3000, UTC))
        self.assertEqual(r.hostname, "mymachine.example.com")
        self.assertEqual(r.app_name, "su")
        self.assertIsNone(r.procid)
        self.assertEqual(r.msgid, "ID47")
        self.assertEqual(r.structured_data, ())
        self.assertTrue(r.bom)
        self.assertEqual(r.message, "'su root' failed for lonvick on /dev/pts/8")
        self.assertEqual(r.raw, raw)

    def test_example_2_offset_and_microseconds(self) -> None:
        r = parse_message(
            b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - "
            b"%% It's time to make the do-nuts."
        )
        self.assertIsNone(r.error)
        self.assertEqual((r.facility, r.severity), (Facility.LOCAL4, Severity.NOTICE))
        tz = datetime.timezone(-datetime.timedelta(hours=7))
        self.assertEqual(r.timestamp, datetime.datetime(2003, 8, 24, 5, 14, 15, 3, tz))
        self.assertEqual(r.timestamp.utcoffset(), datetime.timedelta(hours=-7))  # type: ignore[union-attr]
        self.assertEqual(
            (r.hostname, r.app_name, r.procid, r.msgid), ("192.0.2.1", "myproc", "8710", None)
        )
        self.assertFalse(r.bom)
        self.assertEqual(r.message, "%% It's time to make the do-nuts.")

    def test_example_3_structured_data_and_message(self) -> None:
        r = parse_message(
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
            b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] '
            + BOM
            + b"An application event log entry..."
        )
        self.assertIsNone(r.error)
        self.assertEqual(
            r.structured_data,
            (
                SDElement(
                    "exampleSDID@32473",
                    (("iut", "3"), ("eventSource", "Application"), ("eventID", "1011")),
                ),
            ),
        )
        self.assertEqual(r.sd_param("exampleSDID@32473", "eventID"), "1011")
        self.assertEqual(r.message, "An application event log entry...")
        self.assertTrue(r.bom)

    def test_example_4_two_elements_no_message(self) -> None:
        r = parse_message(
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
            b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
            b'[examplePriority@32473 class="high"]'
        )
        self.assertIsNone(r.error)
        self.assertEqual(
            [e.id for e in r.structured_data], ["exampleSDID@32473", "examplePriority@32473"]
        )
        self.assertEqual(r.sd_param("examplePriority@32473", "class"), "high")
        self.assertEqual(r.message, "")

    def test_param_value_escapes(self) -> None:
        r = parse_message(b'<14>1 - - - - - [x@1 a="q\\"b\\\\c\\]d\\ne"]')
        self.assertIsNone(r.error)
        # \" \\ \] are unescaped; a backslash before anything else stays (§6.3.3).
        self.assertEqual(r.sd_param("x@1", "a"), 'q"b\\c]d\\ne')
        self.assertIsNone(r.timestamp)

    def test_malformed_headers_are_recorded_with_the_reason(self) -> None:
        cases = {
            b"<14>1 2003-10-11 host app - - - x": "TIMESTAMP",
            b"<14>1 2003-13-11T22:14:15Z host app - - - x": "TIMESTAMP",
            b"<14>1 - host app - -": "6 space-separated fields",
            b"<14>1 - host app - - [x@1 a=3]": "PARAM-NAME",
            b'<14>1 - host app - - [x@1 a="3"': "not closed",
            b"<14>1 - host app - - nosd": "STRUCTURED-DATA",
            b"<14>1 - host " + b"a" * 49 + b" - - -": "APP-NAME longer than 48",
            b"<192>hello": "PRI <192>",
            b"<014>hello": "leading zeros",
            b"hello": "no <PRI>",
            b"": "no <PRI>",
        }
        for raw, reason in cases.items():
            with self.subTest(raw=raw):
                r = parse_message(raw)
                self.assertEqual(r.format, SyslogFormat.INVALID)
                self.assertIn(reason, r.error or "")
                self.assertEqual(r.raw, raw)
                self.assertFalse(r.ok)

    def test_max_size(self) -> None:
        r = parse_message(b"<14>" + b"x" * MAX_MESSAGE_SIZE)
        self.assertIn("exceeds max_size", r.error or "")
        self.assertEqual(len(r.raw), MAX_MESSAGE_SIZE)
        self.assertTrue(parse_message(b"<14>" + b"x" * 2044).ok)  # RFC 5424 §6.1: 2048 octets


class RFC3164ExamplesTest(unittest.TestCase):
    """RFC 3164 §5.4 examples and what real senders emit."""

    def test_example_1(self) -> None:
        r = parse_message(
            b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
            year=2026,
        )
        self.assertIsNone(r.error)
        self.assertEqual(r.format, SyslogFormat.RFC3164)
        self.assertEqual((r.facility, r.severity), (Facility.AUTH, Severity.CRIT))
        self.assertEqual(r.timestamp, datetime.datetime(2026, 10, 11, 22, 14, 15))
        self.assertEqual((r.hostname, r.app_name, r.procid), ("mymachine", "su", None))
        self.assertEqual(r.message, "'su root' failed for lonvick on /dev/pts/8")

    def test_example_2_no_pri_is_recorded_not_dropped(self) -> None:
        r = parse_message(b"Use the BFG!")
        self.assertEqual(r.format, SyslogFormat.INVALID)
        self.assertEqual(r.message, "Use the BFG!")

    def test_example_3_tag_with_pid(self) -> None:
        r = parse_message(
            b"<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: "
            b"%% It's time to make the do-nuts.",
            year=1987,
        )
        self.assertIsNone(r.error)
        self.assertEqual(r.timestamp, datetime.datetime(1987, 8, 24, 5, 34))
        self.assertIn("myproc[10]: %% It's time", r.message)

    def test_example_4_bad_timestamp_stays_in_the_message(self) -> None:
        raw = (
            b"<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 "
            b"sched[0]: That's All Folks!"
        )
        r = parse_message(raw)
        self.assertIsNone(r.error)
        self.assertEqual((r.facility, r.severity), (Facility.KERN, Severity.EMERG))
        self.assertIsNone(r.timestamp)
        self.assertEqual(r.message, raw[3:].decode())

    def test_sysloghandler_form(self) -> None:
        r = parse_message(b"<11>myapp: it broke\x00")
        self.assertIsNone(r.error)
        self.assertEqual((r.facility, r.severity), (Facility.USER, Severity.ERR))
        self.assertEqual(r.app_name, "myapp")
        self.assertEqual(r.message, "it broke")

    def test_logger_unix_socket_form_has_no_hostname(self) -> None:
        r = parse_message(b"<13>Dec  2 13:05:52 alice[42]: hi there", year=2026)
        self.assertEqual(
            (r.hostname, r.app_name, r.procid, r.message), (None, "alice", "42", "hi there")
        )
        self.assertEqual(r.timestamp, datetime.datetime(2026, 12, 2, 13, 5, 52))

    def test_rsyslog_forward_format_rfc3339_timestamp(self) -> None:
        r = parse_message(b"<11>2026-12-02T14:03:35.329349+00:00 vm app: old form")
        self.assertEqual(r.timestamp, datetime.datetime(2026, 12, 2, 14, 3, 35, 329349, UTC))
        self.assertEqual((r.hostname, r.app_name, r.message), ("vm", "app", "old form"))
        self.assertEqual(
            parse_message(format_message(r)), dataclasses.replace(r, raw=format_message(r))
        )

    def test_severity_names(self) -> None:
        self.assertEqual(Severity.from_name("error"), Severity.ERR)
        self.assertEqual(Severity.from_name("warn"), Severity.WARNING)
        self.assertEqual(Severity.from_name(6), Severity.INFO)
        with self.assertRaises(ValueError):
            Severity.from_name("loud")


def _frames(chunks: list[bytes]) -> list[tuple[bytes, str | None]]:
    f = SyslogFramer(max_size=64, max_octet_count=64)
    out: list[tuple[bytes, str | None]] = []
    for c in chunks:
        f.receive_data(c)
        out += [(fr.data, fr.error) for fr in f.frames()]
    f.receive_data(b"")
    out += [(fr.data, fr.error) for fr in f.frames()]
    return out


class FramerTest(unittest.TestCase):
    """RFC 6587 framing, detected per connection, fed whole and byte by byte."""

    def check(self, stream: bytes, expected: list[tuple[bytes, str | None]]) -> None:
        for name, chunks in (
            ("whole", [stream]),
            ("bytewise", [stream[i : i + 1] for i in range(len(stream))]),
        ):
            with self.subTest(name):
                got = _frames(chunks)
                self.assertEqual(
                    [(d, e is not None) for d, e in got], [(d, e is not None) for d, e in expected]
                )

    def test_octet_counting(self) -> None:
        self.check(b"5 <1>ab11 <1>a\nb c de", [(b"<1>ab", None), (b"<1>a\nb c de", None)])

    def test_lf_framing_with_crlf_and_unterminated_tail(self) -> None:
        self.check(
            b"<1>a\r\n\n<1>b\n<1>tail", [(b"<1>a", None), (b"<1>b", None), (b"<1>tail", None)]
        )

    def test_nul_ends_a_message_as_lf_does(self) -> None:
        # RFC 6587 §3.4.2 (NUL as TRAILER): SysLogHandler over TCP.
        frames = _frames([b"<11>a: one\x00<11>a: tw", b"o\x00\n<11>a: three\r\n\x00"])
        want = [(b"<11>a: one", None), (b"<11>a: two", None), (b"<11>a: three", None)]
        self.assertEqual(frames, want)

    def test_oversized_line_is_cut_and_recorded(self) -> None:
        got = _frames([b"<1>" + b"x" * 200 + b"\n<1>ok\n"])
        self.assertEqual(len(got), 2)
        self.assertIn("max_size", got[0][1] or "")
        self.assertEqual(len(got[0][0]), 64)
        self.assertEqual(got[1], (b"<1>ok", None))

    def test_oversized_count_is_skipped_not_buffered(self) -> None:
        got = _frames([b"100 " + b"y" * 100 + b"3 <1>"])
        self.assertIn("exceeds max_octet_count", got[0][1] or "")
        self.assertEqual(got[1], (b"<1>", None))

    def test_bad_count_breaks_the_stream(self) -> None:
        f = SyslogFramer()
        f.receive_data(b"12x <1>hello")
        f.receive_data(b" ")
        frames = f.frames()
        self.assertTrue(f.broken)
        self.assertIn("not a number", frames[0].error or "")

    def test_truncated_frame_at_eof(self) -> None:
        got = _frames([b"10 <1>ab"])
        self.assertIn("stream ended inside a frame", got[0][1] or "")

    def test_framing_is_recorded(self) -> None:
        f = SyslogFramer()
        f.receive_data(b"<1>a\n")
        self.assertEqual(f.framing, Framing.NON_TRANSPARENT)
        self.assertEqual(f.frames()[0].framing, Framing.NON_TRANSPARENT)

    def test_linear_time_on_a_long_stream(self) -> None:
        f = SyslogFramer()
        line = b"<14>app: " + b"x" * 50 + b"\n"
        data = line * 20000  # 1.2 MB fed in 1-KiB reads
        for i in range(0, len(data), 1024):
            f.receive_data(data[i : i + 1024])
        self.assertEqual(len(f.frames()), 20000)


_printable = st.text(
    st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20
).filter(lambda s: s != "-")  # "-" is the NILVALUE: it parses as None
_sd_name = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters='= ]"'),
    min_size=1,
    max_size=32,
)
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40).map(
    lambda s: s.rstrip("\x00\r\n").lstrip("\ufeff")
)
_tz = st.sampled_from(
    [
        UTC,
        datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
        datetime.timezone(-datetime.timedelta(hours=7)),
    ]
)


@st.composite
def rfc5424_records(draw: st.DrawFn) -> SyslogMessage:
    nil = lambda s: st.none() | s  # noqa: E731
    return SyslogMessage(
        raw=b"",
        format=SyslogFormat.RFC5424,
        facility=draw(st.sampled_from(list(Facility))),
        severity=draw(st.sampled_from(list(Severity))),
        version=draw(st.integers(1, 999)),
        timestamp=draw(nil(st.datetimes(timezones=_tz, min_value=datetime.datetime(1000, 1, 1)))),
        hostname=draw(nil(_printable)),
        app_name=draw(nil(_printable)),
        procid=draw(nil(_printable)),
        msgid=draw(nil(_printable)),
        structured_data=tuple(
            draw(
                st.lists(
                    st.builds(
                        SDElement,
                        _sd_name,
                        st.lists(st.tuples(_sd_name, _text), max_size=3).map(tuple),
                    ),
                    max_size=3,
                )
            )
        ),
        message=draw(_text),
        bom=draw(st.booleans()),
    )


_tag = st.text(
    st.sampled_from("abcxyzABC019_./@-"), min_size=1, max_size=48
)  # an RFC 3164 TAG as _TAG accepts it
_host_3164 = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":["),
    min_size=1,
    max_size=30,
)  # no ':' or '[': a host that is not also a TAG


@st.composite
def rfc3164_records(draw: st.DrawFn) -> SyslogMessage:
    timestamp = draw(
        st.none()
        | st.datetimes(
            datetime.datetime(2024, 1, 1), datetime.datetime(2024, 12, 31, 23, 59, 59)
        ).map(lambda t: t.replace(microsecond=0))
        | st.datetimes(timezones=_tz, min_value=datetime.datetime(1000, 1, 1))
    )
    return SyslogMessage(
        raw=b"",
        format=SyslogFormat.RFC3164,
        facility=draw(st.sampled_from(list(Facility))),
        severity=draw(st.sampled_from(list(Severity))),
        timestamp=timestamp,
        hostname=draw(st.none() | _host_3164) if timestamp is not None else None,
        app_name=draw(_tag),
        procid=draw(st.none() | st.text(st.sampled_from("0123456789abc-"), min_size=1, max_size=9)),
        message=draw(_text),
        bom=draw(st.booleans()),
    )


# What the fuzzers put in front of random octets: every branch of the parser.
_HEADS = [
    b"",
    b"<14>",
    b"<165>1 ",
    b"<13>Jan  5 01:02:03 ",
    b"<13>Feb 30 01:02:03 host ",
    b"<1>1 - - - - - [",
    b'<0>1 2003-10-11T22:14:15.003Z h a p m [x@1 a="',
    b"<13>2024-01-02T03:04:05.123456+05:30 host app[12]: ",
    b"<191>999 - - - - - - ",
    b"<192>",
    b"<014>",
]


def check_never_fails_inside(test: unittest.TestCase, r: SyslogMessage) -> None:
    # parse_message() turns an unexpected exception into "parser error: ..."
    # so that a message is never lost: the fuzzers must never reach that.
    test.assertFalse((r.error or "").startswith("parser error"), r)


class FuzzTest(unittest.TestCase):
    @settings(max_examples=400, deadline=None)
    @given(st.binary(max_size=300))
    def test_never_raises_and_accepted_messages_round_trip(self, data: bytes) -> None:
        r = parse_message(data, year=2024)
        check_never_fails_inside(self, r)
        self.assertEqual(r.raw, data)
        again = parse_message(format_message(r), year=2024)
        self.assertEqual(fields(again), fields(r))

    @settings(max_examples=1000, deadline=None)
    @given(st.sampled_from(_HEADS), st.binary(max_size=200))
    def test_prefixed_garbage_never_raises_and_round_trips(self, head: bytes, tail: bytes) -> None:
        r = parse_message(head + tail, year=2024)
        check_never_fails_inside(self, r)
        self.assertEqual(r.raw, head + tail)
        again = parse_message(format_message(r), year=2024)
        self.assertEqual(fields(again), fields(r))

    @settings(max_examples=300, deadline=None)
    @given(rfc3164_records())
    def test_formatted_rfc3164_records_parse_back(self, record: SyslogMessage) -> None:
        r = parse_message(format_message(record), year=2024)
        self.assertIsNone(r.error, format_message(record))
        self.assertEqual(fields(r), record)

    @settings(max_examples=300, deadline=None)
    @given(rfc5424_records())
    def test_formatted_records_parse_back(self, record: SyslogMessage) -> None:
        r = parse_message(format_message(record))
        self.assertIsNone(r.error, format_message(record))
        self.assertEqual(fields(r), record)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=400), st.lists(st.integers(1, 50), max_size=20))
    def test_framer_never_raises_and_is_chunking_independent(
        self, data: bytes, cuts: list[int]
    ) -> None:
        whole = _frames([data])
        chunks = []
        pos = 0
        for c in cuts:
            chunks.append(data[pos : pos + c])
            pos += c
        chunks.append(data[pos:])
        self.assertEqual(_frames([c for c in chunks if c]), whole)


if __name__ == "__main__":
    unittest.main()
