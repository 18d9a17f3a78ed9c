"""Stream recording keeps large chunks by reference (issue 10 item 4, the recording cost).

``TCPServer(record=True)`` used to copy every chunk into ``Stream.data`` on
the reactor thread.  A chunk of at least ``_HOLD_MIN`` bytes is now kept as
received and appended to ``data`` when a thread reads it; what ``data``
holds must be the same bytes, in the same order, under the same limit.
"""

from __future__ import annotations

import socket
import threading
import time
import unittest
from collections import deque
from typing import Any

from protocols import TCPServer
from protocols._stream import _HOLD_MIN


def numbered(n: int, tag: bytes) -> bytes:
    unit = tag + b"%08d" % n
    return (unit * (64 * 1024 // len(unit) + 1))[: 64 * 1024]


class RecordingByReference(unittest.TestCase):
    def test_a_large_chunk_is_kept_as_received_until_data_is_read(self) -> None:
        chunks: list[bytes] = []
        with TCPServer(on_data=lambda c, d: chunks.append(d)) as srv:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
                c.sendall(b"L" * (4 * _HOLD_MIN))
                srv.wait_for(lambda: sum(map(len, chunks)) == 4 * _HOLD_MIN, timeout=10)
                [stream] = srv.streams
                # Not copied on the reactor thread: the very objects on_data got.
                self.assertEqual([id(h) for h in stream._held], [id(d) for d in chunks])
                self.assertEqual(stream.data, b"L" * (4 * _HOLD_MIN))  # copied now
                self.assertEqual(len(stream._held), 0)

    def test_mixed_chunk_sizes_read_midway_record_every_byte_in_order(self) -> None:
        sent = bytearray()
        with TCPServer() as srv:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for i in range(40):
                    # Large and small segments alternate (small ones are
                    # copied at once, behind the large ones still held).
                    piece = numbered(i, b"big") if i % 3 == 0 else b"<small %d>" % i
                    c.sendall(piece)
                    sent += piece
                    if i % 5 == 0:  # read data from this thread while it grows
                        srv.wait_for_data(bytes(piece), timeout=10)
                        time.sleep(0.002)
            [stream] = srv.wait_for_streams(1, timeout=10)
        self.assertEqual(stream.data, sent)
        self.assertEqual(stream.received, len(sent))
        self.assertFalse(stream.truncated)

    def test_the_limit_cuts_a_held_chunk_at_the_same_byte(self) -> None:
        payload = bytes(range(256)) * 1024  # 256 KiB
        limit = 100_000
        with TCPServer(max_recorded_bytes=limit) as srv:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
                c.sendall(payload)
                c.sendall(b"tail")
            [stream] = srv.wait_for_streams(1, timeout=10)
        self.assertEqual(stream.data, payload[:limit])
        self.assertEqual(stream.received, len(payload) + 4)
        self.assertTrue(stream.truncated)

    def test_a_thread_reading_data_while_the_reactor_records_sees_a_prefix(self) -> None:
        pieces = [numbered(i, b"r") for i in range(128)]  # 8 MiB in 64 KiB sends
        sent = b"".join(pieces)
        seen: list[int] = []
        errors: list[str] = []
        done = threading.Event()

        def reader(stream: Any) -> None:
            while not done.is_set():
                n = len(stream.data)
                if bytes(stream.data[:n]) != sent[:n]:
                    errors.append(f"data is not a prefix of what was sent at {n}")
                    return
                seen.append(n)

        def send(c: socket.socket) -> None:
            for piece in pieces:  # spread over ~0.25 s: the reader reads meanwhile
                c.sendall(piece)
                time.sleep(0.002)

        with TCPServer() as srv:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as c:
                srv.wait_for(lambda: srv.streams, timeout=10)
                t = threading.Thread(target=reader, args=(srv.streams[0],), daemon=True)
                t.start()
                sender = threading.Thread(target=send, args=(c,), daemon=True)
                sender.start()
                srv.wait_for(lambda: srv.streams[0].received == len(sent), timeout=30)
                done.set()
                t.join(10)
                sender.join(10)
            [stream] = srv.wait_for_streams(1, timeout=10)
        self.assertEqual(errors, [])
        self.assertGreater(len(set(seen)), 1)  # it saw data grow
        self.assertEqual(stream.data, sent)



class RecordingLimit(unittest.TestCase):
    """max_recorded_bytes bounds what ``data`` holds, as before ceb1515."""

    def test_bytes_a_test_removed_from_data_free_room_for_new_ones(self) -> None:
        limit = 64 * 1024
        first = numbered(0, b"a")  # exactly the limit
        small = b"<small after the test consumed data>"
        big = numbered(1, b"b")  # kept by reference, then cut at the limit
        more = numbered(2, b"c")
        with TCPServer(max_recorded_bytes=limit) as srv:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
                sent = 0

                def send(piece: bytes) -> None:
                    nonlocal sent
                    c.sendall(piece)
                    sent += len(piece)
                    srv.wait_for(lambda: srv.streams and srv.streams[0].received == sent,
                                 timeout=10)

                send(first)
                [stream] = srv.streams
                self.assertEqual(stream.data, first)
                self.assertFalse(stream.truncated)
                del stream.data[:]  # the test consumed what it read
                send(small)
                self.assertEqual(stream.data, small)  # was b"": the limit counted `first`
                self.assertFalse(stream.truncated)  # nothing was kept out
                send(big)
                self.assertEqual(stream.data, small + big[: limit - len(small)])
                self.assertTrue(stream.truncated)
                del stream.data[:1000]  # frees exactly 1000 bytes
                send(more)
                self.assertEqual(stream.data,
                                 small[1000:] + big[1000 - len(small): limit - len(small)]
                                 + more[:1000])
                self.assertEqual(len(stream.data), limit)

    def test_held_chunks_count_against_the_limit_until_they_are_read(self) -> None:
        limit = 3 * _HOLD_MIN
        with TCPServer(max_recorded_bytes=limit) as srv:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                pieces = [bytes([65 + i]) * (2 * _HOLD_MIN) for i in range(3)]
                for n, piece in enumerate(pieces, 1):
                    c.sendall(piece)
                    srv.wait_for(
                        lambda n=n: srv.streams  # type: ignore[misc]
                        and srv.streams[0].received == n * 2 * _HOLD_MIN,
                        timeout=10,
                    )
                [stream] = srv.streams
                # Nothing read yet: the first chunk and half the second are kept.
                self.assertEqual(stream.data, (pieces[0] + pieces[1])[:limit])
                self.assertTrue(stream.truncated)


class ConcurrentReaders(unittest.TestCase):
    def test_a_waiter_sees_a_chunk_another_reader_is_moving_into_data(self) -> None:
        """No lost wake-up: a chunk in flight from ``_held`` to ``data`` is never invisible.

        Another thread reading ``data`` moves the held chunks into it; a waiter
        that evaluated its predicate while a chunk had left ``_held`` but not
        yet reached ``data`` saw it nowhere, and slept until its timeout (the
        reactor had notified before).  The popleft() of that thread is held
        open here to force the interleaving.
        """
        payload = numbered(7, b"w")[: 4 * _HOLD_MIN]
        conns: list[Any] = []
        movers: list[threading.Thread] = []
        popped, release = threading.Event(), threading.Event()

        class GatedHeld(deque):  # type: ignore[type-arg]
            def popleft(self) -> Any:
                item = super().popleft()
                if threading.current_thread() in movers:
                    popped.set()
                    release.wait(10)
                return item

        with TCPServer(on_connect=conns.append) as srv:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10):
                srv.wait_for(lambda: conns, timeout=10)
                [conn] = conns
                stream = conn.stream
                stream._held = GatedHeld()
                assert srv._reactor is not None
                srv._reactor.run_sync(conn.data_received, payload, timeout=10)
                self.assertEqual(list(stream._held), [payload])  # held, not moved yet
                mover = threading.Thread(target=lambda: stream.data, daemon=True)
                movers.append(mover)
                mover.start()
                self.assertTrue(popped.wait(10), "the reader never moved the chunk")
                timer = threading.Timer(0.3, release.set)
                timer.start()
                t0 = time.monotonic()
                found = srv.wait_for_data(payload, timeout=8)
                self.assertLess(time.monotonic() - t0, 4, "the waiter slept past the move")
                self.assertIs(found, stream)
                mover.join(10)
                timer.join(10)
                self.assertEqual(stream.data, payload)


class ReceivedCountsRecordedBytes(unittest.TestCase):
    """Once ``received`` counts a chunk, ``data`` holds it (within the limit).

    Before, ``data_received`` counted the chunk in ``received`` and only then
    recorded it, so a test thread whose ``wait_for(... received == n)`` ran
    between the two (the predicate is checked at once, on the test thread)
    found ``data`` without the chunk and ``truncated`` True.  The tests of
    the recording limit wait exactly that way.
    """

    def test_a_wait_on_received_sees_the_chunk_in_data(self) -> None:
        from protocols._stream import Stream

        original = Stream._record
        recording = threading.Event()

        def slow_record(stream: Stream, chunk: bytes, limit: int) -> None:
            recording.set()
            time.sleep(0.3)  # a GIL switch at the worst moment, made long
            original(stream, chunk, limit)

        with TCPServer() as srv:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
                srv.wait_for(lambda: srv.streams, timeout=10)
                [stream] = srv.streams
                Stream._record = slow_record  # type: ignore[method-assign]
                try:
                    c.sendall(b"hello")
                    self.assertTrue(recording.wait(10))
                    srv.wait_for(lambda: stream.received == 5, timeout=10)
                    data, truncated = bytes(stream.data), stream.truncated
                finally:
                    Stream._record = original  # type: ignore[method-assign]
        self.assertEqual(data, b"hello")
        self.assertFalse(truncated)


if __name__ == "__main__":
    unittest.main()
