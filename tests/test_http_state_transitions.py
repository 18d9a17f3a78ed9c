"""Every HTTP machine state change goes through the tables of protocols/http/_state.py.

Error and raw transitions included; a miss is a LocalProtocolError, never a
KeyError or a silent write.  Also the body readers chosen from their table.
"""

from __future__ import annotations

import ast
import inspect
import re
import unittest
from pathlib import Path

from protocols._buffer import ReceiveBuffer
from protocols.http import (
    NEED_DATA,
    AlreadyAnsweredError,
    Data,
    EndOfMessage,
    HTTP11Machine,
    HTTPLimits,
    HTTPProtocolError,
    InvalidArgumentError,
    InvalidReplyError,
    LocalProtocolError,
    NoResponseError,
    RemoteProtocolError,
    Response,
    State,
    _machine,
    _state,
)
from protocols.http._events import DEFAULT_LIMITS
from protocols.http._framing import CHUNKED, LENGTH, NONE
from protocols.http._readers import (
    NO_BODY,
    READERS,
    ChunkedReader,
    ContentLengthReader,
    decode_chunked,
    make_reader,
)

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
POST_CHUNKED = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


class StateWritesTests(unittest.TestCase):
    def test_machine_writes_states_only_from_the_state_module(self) -> None:
        # Outside __init__ (the initial IDLE), every assignment to
        # their_state/our_state takes its value from transition(),
        # process_error() or settle(), directly or through a local name
        # bound from one of them.
        tree = ast.parse(inspect.getsource(_machine))
        allowed_calls = {"transition", "process_error", "settle"}
        offenders = []
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef) or func.name == "__init__":
                continue
            bound = set()
            for node in ast.walk(func):
                if isinstance(node, ast.Assign):
                    value = node.value
                    from_table = (
                        isinstance(value, ast.Call)
                        and isinstance(value.func, ast.Name)
                        and value.func.id in allowed_calls
                    )
                    targets = []
                    for t in node.targets:
                        targets += t.elts if isinstance(t, ast.Tuple) else [t]
                    for t in targets:
                        if isinstance(t, ast.Name) and from_table:
                            bound.add(t.id)
            for node in ast.walk(func):
                if not isinstance(node, ast.Assign):
                    continue
                targets = []
                for t in node.targets:
                    targets += t.elts if isinstance(t, ast.Tuple) else [t]
                for t in targets:
                    if isinstance(t, ast.Attribute) and t.attr in ("their_state", "our_state"):
                        value = node.value
                        ok = (
                            isinstance(value, ast.Call)
                            and isinstance(value.func, ast.Name)
                            and value.func.id in allowed_calls
                        ) or (isinstance(value, ast.Name) and value.id in bound)
                        if not ok:
                            offenders.append(f"{func.name}:{node.lineno}")
        self.assertEqual(offenders, [])

    def test_a_miss_is_a_local_protocol_error(self) -> None:
        with self.assertRaises(LocalProtocolError):
            _state.transition(_state.OUR_TRANSITIONS, State.IDLE, Response)
        with self.assertRaises(LocalProtocolError):
            _state.process_error(State.DONE, State.IDLE)  # their side parses nothing


class ErrorTransitionTests(unittest.TestCase):
    def test_failure_before_a_response_queues_the_error_and_must_close(self) -> None:
        m = HTTP11Machine()
        m.receive_data(b"GET / HTTP/1.1\r\n\r\n")  # no Host
        with self.assertRaises(RemoteProtocolError):
            m.next_event()
        self.assertIs(m.their_state, State.ERROR)
        self.assertIs(m.our_state, State.MUST_CLOSE)
        self.assertTrue(m.data_to_send().startswith(b"HTTP/1.1 400 "))
        self.assertTrue(m.close_after_send)

    def test_failure_during_our_response_body_is_error_on_both_sides(self) -> None:
        m = HTTP11Machine()
        m.receive_data(POST_CHUNKED)
        m.next_event()
        m.send(Response(status_code=200))
        m.data_to_send()
        self.assertIs(m.our_state, State.SEND_BODY)
        m.receive_data(b"zz\r\n")  # not a chunk size
        with self.assertRaises(RemoteProtocolError):
            m.next_event()
        self.assertEqual((m.their_state, m.our_state), (State.ERROR, State.ERROR))
        self.assertEqual(m.data_to_send(), b"")  # no second head inside a body
        with self.assertRaises(LocalProtocolError):
            m.next_event()

    def test_raw_response_goes_through_the_table(self) -> None:
        m = HTTP11Machine()
        with self.assertRaises(LocalProtocolError):
            m.send_raw(b"HTTP/1.1 200 OK\r\n\r\n")  # nothing to answer
        self.assertIs(m.our_state, State.IDLE)
        m.receive_data(GET)
        m.next_event()
        m.next_event()
        m.send_raw(b"HTTP/1.1 200 OK\r\n\r\n")
        self.assertIs(m.our_state, State.MUST_CLOSE)
        with self.assertRaises(LocalProtocolError):
            m.send_raw(b"again")


class BodyReaderTests(unittest.TestCase):
    def test_readers_come_from_the_table(self) -> None:
        self.assertEqual(set(READERS), {NONE, LENGTH, CHUNKED})
        self.assertIs(make_reader(NONE, 0, DEFAULT_LIMITS), NO_BODY)
        self.assertIsInstance(make_reader(LENGTH, 5, DEFAULT_LIMITS), ContentLengthReader)
        self.assertIsInstance(make_reader(CHUNKED, 0, DEFAULT_LIMITS), ChunkedReader)

    def test_chunked_reader_byte_at_a_time(self) -> None:
        body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n"
        buf = ReceiveBuffer()
        reader = ChunkedReader(0, DEFAULT_LIMITS)
        got = b""
        end = None
        for i in range(len(body)):
            buf.feed(body[i : i + 1])
            ev = reader.read(buf, False)
            if isinstance(ev, Data):
                got += ev.data
            elif isinstance(ev, EndOfMessage):
                end = ev
            else:
                self.assertIs(ev, NEED_DATA)
        self.assertEqual(got, b"hello world")
        self.assertEqual(end, EndOfMessage(trailers=(("X-T", "1"),)))

    def test_decode_chunked_is_the_same_grammar(self) -> None:
        self.assertEqual(decode_chunked(b"3\r\nabc\r\n0\r\n\r\n", DEFAULT_LIMITS), (b"abc", True))
        self.assertEqual(decode_chunked(b"3\r\nabc\r\n0\r\n", DEFAULT_LIMITS), (b"abc", False))
        for bad in (b"3\nabc\r\n0\r\n\r\n", b"3\r\nabcd\r\n0\r\n\r\n", b"x\r\n", b"3\r\nab"):
            with self.subTest(bad=bad), self.assertRaises(RemoteProtocolError):
                decode_chunked(bad, DEFAULT_LIMITS)


class ErrorTaxonomyTests(unittest.TestCase):
    def test_one_base_and_old_catches_still_work(self) -> None:
        for cls in (RemoteProtocolError, LocalProtocolError, InvalidReplyError,
                    NoResponseError, AlreadyAnsweredError):
            with self.subTest(cls=cls.__name__):
                self.assertTrue(issubclass(cls, HTTPProtocolError))
        self.assertTrue(issubclass(NoResponseError, RuntimeError))
        self.assertTrue(issubclass(AlreadyAnsweredError, RuntimeError))
        self.assertEqual(NoResponseError("x").status_hint, 500)
        self.assertEqual(InvalidReplyError("x").status_hint, 500)

    def test_bad_limits_are_an_http_error_and_a_value_error(self) -> None:
        with self.assertRaises(InvalidArgumentError) as cm:
            HTTPLimits(max_body_size=0)
        self.assertIsInstance(cm.exception, ValueError)
        self.assertIsInstance(cm.exception, HTTPProtocolError)

    def test_no_bare_builtin_error_is_raised_in_the_package(self) -> None:
        # Library conditions raise the package's own classes.
        package = Path(_machine.__file__).parent
        bare = re.compile(r"raise (RuntimeError|ValueError|TypeError|KeyError)\b")
        found = [
            f"{path.name}:{n}"
            for path in sorted(package.glob("*.py"))
            for n, line in enumerate(path.read_text().splitlines(), 1)
            if bare.search(line)
        ]
        self.assertEqual(found, [])


if __name__ == "__main__":
    unittest.main()
