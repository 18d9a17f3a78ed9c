"""The shared receive buffer: whole feeds, byte-at-a-time feeds, trailing data, compaction."""

from __future__ import annotations

import re
import unittest

from protocols._buffer import COMPACT_AT, ReceiveBuffer


def lines(buf: ReceiveBuffer) -> list[bytes]:
    """Every complete CRLF line buffered, consumed."""
    out = []
    while True:
        i = buf.find(b"\r\n")
        if i < 0:
            return out
        out.append(bytes(buf.data[buf.pos : i]))
        buf.consume_to(i + 2)


class WholeFeedTests(unittest.TestCase):
    def test_lines_of_one_feed(self) -> None:
        buf = ReceiveBuffer()
        buf.feed(b"one\r\ntwo\r\n\r\n")
        self.assertEqual(lines(buf), [b"one", b"two", b""])
        self.assertEqual(len(buf), 0)
        self.assertFalse(buf)

    def test_take_returns_at_most_what_is_there(self) -> None:
        buf = ReceiveBuffer()
        buf.feed(b"abcdef")
        self.assertEqual(buf.take(2), b"ab")
        self.assertEqual(len(buf), 4)
        self.assertEqual(buf.take(100), b"cdef")
        self.assertEqual(buf.take(5), b"")
        buf.feed(b"xyz")  # everything was consumed: the array starts over
        self.assertEqual(buf.pos, 0)
        self.assertEqual(buf.take(3), b"xyz")
        self.assertEqual(len(buf.data), 0)  # whole-array take empties it

    def test_search_with_a_pattern(self) -> None:
        buf = ReceiveBuffer()
        buf.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest")
        m = buf.search(re.compile(rb"\n\r?\n"), 2)
        assert m is not None
        self.assertEqual(buf.data[m.end() :], b"rest")


class ByteAtATimeTests(unittest.TestCase):
    def test_terminator_split_across_feeds_is_found(self) -> None:
        buf = ReceiveBuffer()
        for b in b"abc\r":
            buf.feed(bytes([b]))
            self.assertEqual(buf.find(b"\r\n"), -1)
        buf.feed(b"\n")
        self.assertEqual(buf.find(b"\r\n"), 3)

    def test_no_byte_is_searched_twice(self) -> None:
        # After a miss, the search resumes where a terminator could still
        # start: feeding n bytes one at a time costs O(n), not O(n^2).
        buf = ReceiveBuffer()
        sep = b"\r\n\r\n"
        data = b"x" * 5000 + sep
        for i, b in enumerate(data[:-1]):
            buf.feed(bytes([b]))
            self.assertEqual(buf.find(sep), -1)
            self.assertEqual(buf.scan, max(0, i + 1 - len(sep) + 1))
        buf.feed(data[-1:])
        self.assertEqual(buf.find(sep), 5000)

    def test_pattern_search_resumes_with_overlap(self) -> None:
        buf = ReceiveBuffer()
        pat = re.compile(rb"\n\r?\n")
        for b in b"Host: x\r\n\r":
            buf.feed(bytes([b]))
            self.assertIsNone(buf.search(pat, 2))
            self.assertGreaterEqual(buf.scan, len(buf.data) - 2)
        buf.feed(b"\n")
        m = buf.search(pat, 2)
        assert m is not None
        self.assertEqual(m.start(), 8)


class TrailingDataTests(unittest.TestCase):
    def test_bytes_after_a_message_stay_for_the_next(self) -> None:
        buf = ReceiveBuffer()
        buf.feed(b"first\r\nsec")
        self.assertEqual(lines(buf), [b"first"])
        self.assertEqual(len(buf), 3)
        buf.feed(b"ond\r\nthi")
        self.assertEqual(lines(buf), [b"second"])
        self.assertEqual(bytes(buf.data[buf.pos :]), b"thi")

    def test_compaction_keeps_the_unconsumed_tail_and_bounds_the_array(self) -> None:
        buf = ReceiveBuffer()
        line = b"y" * 1000 + b"\r\n"
        sent = 0
        got = []
        for _ in range(10 * COMPACT_AT // len(line)):
            buf.feed(line[:500])
            buf.feed(line[500:])
            sent += 1
            got += lines(buf)
            buf.feed(b"partial")  # a trailing partial line kept across compactions
            self.assertEqual(bytes(buf.data[buf.pos :]), b"partial")
            buf.consume_to(len(buf.data))
            self.assertLess(len(buf.data), 2 * COMPACT_AT + 2 * len(line))
        self.assertEqual(len(got), sent)
        self.assertTrue(all(x == line[:-2] for x in got))

    def test_scan_survives_compaction(self) -> None:
        buf = ReceiveBuffer()
        buf.feed(b"z" * (COMPACT_AT + 10))
        buf.consume_to(COMPACT_AT)  # 10 unconsumed
        self.assertEqual(buf.find(b"\n"), -1)
        buf.feed(b"\n")  # compacts: the consumed prefix is dropped
        self.assertEqual(buf.pos, 0)
        self.assertEqual(buf.find(b"\n"), 10)

    def test_clear_drops_everything(self) -> None:
        buf = ReceiveBuffer()
        buf.feed(b"abc")
        buf.take(1)
        buf.clear()
        self.assertEqual((len(buf), buf.pos, buf.scan, bytes(buf.data)), (0, 0, 0, b""))


if __name__ == "__main__":
    unittest.main()
