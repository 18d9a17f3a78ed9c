"""The scripted streams' framer without sockets: whole, byte by byte, with trailing data."""

from __future__ import annotations

import struct
import unittest

from hypothesis import example, given, settings
from hypothesis import strategies as st

from protocols import LengthPrefix, PeerError
from protocols._framing import MAX_FRAME_LENGTH, Framer
from reactor import InvalidArgumentError


def cut(framer: Framer, data: bytes, step: int) -> list[bytes]:
    frames: list[bytes] = []
    for i in range(0, len(data), step):
        framer.feed(data[i : i + step])
        while (frame := framer.next_frame()) is not None:
            frames.append(frame)
        framer.compact()
    return frames


class FramerTest(unittest.TestCase):
    def test_each_terminator_whole_byte_by_byte_and_with_trailing_data(self) -> None:
        cases: list[tuple[object, bytes, list[bytes], bytes]] = [
            (b"\r\n", b"a\r\nbb\r\n\r\ntail", [b"a", b"bb", b""], b"tail"),
            (b"\0", b"x\0y\0\0z", [b"x", b"y", b""], b"z"),
            (3, b"abcdefgh", [b"abc", b"def"], b"gh"),
            (
                LengthPrefix(2),
                struct.pack(">H", 2) + b"hi" + struct.pack(">H", 0) + b"\x00",
                [b"hi", b""],
                b"\x00",
            ),
            (
                LengthPrefix(4, "little"),
                struct.pack("<I", 3) + b"abc" + struct.pack("<I", 9) + b"part",
                [b"abc"],
                struct.pack("<I", 9) + b"part",
            ),
        ]
        for term, data, frames, rest in cases:
            for step in (len(data), 1, 2):
                with self.subTest(term=term, step=step):
                    f = Framer(term)  # type: ignore[arg-type]
                    self.assertEqual(cut(f, data, step), frames)
                    self.assertEqual(f.pending, rest)
                    self.assertEqual(len(f), len(rest))

    def test_raw_and_a_terminator_change_between_frames(self) -> None:
        f = Framer(b"\n")
        f.feed(b"one\nrest of it")
        self.assertEqual(f.next_frame(), b"one")
        f.terminator = None
        self.assertEqual(f.next_frame(), b"rest of it")
        self.assertIsNone(f.next_frame())

    def test_limits(self) -> None:
        f = Framer(b"\n", limit=10)
        f.feed(b"0123456789")
        self.assertIsNone(f.next_frame())  # exactly the limit: still waiting
        f.feed(b"x")
        with self.assertRaises(PeerError):
            f.next_frame()
        g = Framer(LengthPrefix(2), limit=10)
        g.feed(struct.pack(">H", 11))
        with self.assertRaises(PeerError):
            g.next_frame()
        self.assertEqual(Framer().limit, MAX_FRAME_LENGTH)

    def test_a_payload_too_long_for_its_prefix_is_refused_clearly(self) -> None:
        self.assertEqual(LengthPrefix(1).encode(b"a" * 255), b"\xff" + b"a" * 255)
        with self.assertRaisesRegex(InvalidArgumentError, "256-byte payload.*1-byte"):
            LengthPrefix(1).encode(b"a" * 256)
        with self.assertRaises(InvalidArgumentError):
            LengthPrefix(2, "little").encode(b"a" * 65536)

    def test_delimited_limit_does_not_depend_on_how_the_bytes_arrive(self) -> None:
        # A frame of exactly the limit is accepted even when its two-byte
        # delimiter arrives split; one byte more is refused even when the
        # delimiter arrives in the same read.
        for chunks in ([b"x" * 10 + b"\r", b"\n"], [b"x" * 10 + b"\r\n"]):
            f = Framer(b"\r\n", limit=10)
            for chunk in chunks:
                f.feed(chunk)
                frame = f.next_frame()
            self.assertEqual(frame, b"x" * 10, chunks)
        for chunks in ([b"x" * 11 + b"\r", b"\n"], [b"x" * 11 + b"\r\n"], [b"x" * 12]):
            f = Framer(b"\r\n", limit=10)
            with self.assertRaises(PeerError, msg=repr(chunks)):
                for chunk in chunks:
                    f.feed(chunk)
                    f.next_frame()

    def test_frames_are_cut_from_an_offset_and_compacted_once_per_batch(self) -> None:
        # No copy of the rest of the buffer per frame: 256 KiB of 2-byte
        # lines would otherwise cost 131,072 copies (quadratic time).
        data = b"x\n" * (128 * 1024)
        f = Framer(b"\n")
        f.feed(data)
        frames = []
        while (frame := f.next_frame()) is not None:
            frames.append(frame)
            self.assertEqual(len(f._buf), len(data))  # untouched while cutting
        self.assertEqual(len(frames), 128 * 1024)
        f.compact()
        self.assertEqual((len(f._buf), len(f)), (0, 0))

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.binary(max_size=20).filter(lambda b: b";;" not in b), max_size=20),
        st.integers(min_value=1, max_value=7),
    )
    @example(items=[b";"], step=1)
    def test_any_split_gives_the_same_frames(self, items: list[bytes], step: int) -> None:
        data = b"".join(i + b";;" for i in items)
        one, many = Framer(b";;"), Framer(b";;")
        whole = cut(one, data, max(1, len(data)))
        pieces = cut(many, data, step)
        self.assertEqual(pieces, whole)
        self.assertEqual(many.pending, one.pending)
        # The split is at the first ";;": an item ending in ";" (items=[b";"]
        # gives b";;;") yields b"" and leaves b";" pending, so what is pending
        # completes the round trip.
        self.assertEqual(b"".join(x + b";;" for x in whole) + one.pending, data)
