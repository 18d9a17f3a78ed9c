"""One error taxonomy for protocols.smtp: every error the package raises on
its own derives from SMTPProtocolError, argument errors stay ValueError /
TypeError too, and no bare builtin error is raised for a library condition."""

from __future__ import annotations

import ast
import inspect
import ssl
import unittest

import protocols.smtp
from protocols.smtp import (
    ConnectionClosedError,
    Hello,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LocalProtocolError,
    MessageReceived,
    RemoteProtocolError,
    SMTPProtocolError,
    SMTPReject,
    SMTPServer,
    SMTPServerConnection,
    _auth,
    _compat,
    _content,
    _events,
    _machine,
    _server,
    _state,
    _syntax,
)


class TestOneBase(unittest.TestCase):
    def test_every_exported_error_derives_from_the_base(self) -> None:
        errors = [
            obj
            for name in protocols.smtp.__all__
            if isinstance(obj := getattr(protocols.smtp, name), type)
            and issubclass(obj, BaseException)
        ]
        self.assertGreaterEqual(len(errors), 7)
        for cls in errors:
            with self.subTest(cls=cls.__name__):
                self.assertTrue(issubclass(cls, SMTPProtocolError))
        for cls in (RemoteProtocolError, LocalProtocolError, ConnectionClosedError, SMTPReject):
            self.assertIn(cls, errors)

    def test_argument_errors_are_still_builtin_errors(self) -> None:
        self.assertTrue(issubclass(InvalidArgumentError, ValueError))
        self.assertTrue(issubclass(InvalidArgumentTypeError, TypeError))
        self.assertTrue(issubclass(InvalidArgumentTypeError, InvalidArgumentError))

    def test_bad_arguments_raise_invalid_argument_error(self) -> None:
        m = SMTPServerConnection()
        m.receive_data(b"EHLO x\r\nMAIL FROM:<a@b>\r\n")
        m.next_event()
        m.next_event()
        cases = [
            lambda: SMTPServerConnection(max_recipients=99),
            lambda: SMTPServerConnection(auth_mechanisms=("GSSAPI",)),
            lambda: m.reject(250),
            lambda: SMTPReject(250, "no"),
            lambda: Hello(command="HELLO", name="x"),
            lambda: MessageReceived(mail_from="", recipients=(), data=b""),
            lambda: SMTPServer(auth_required=True),
            lambda: SMTPServer(
                ssl_context=ssl.create_default_context(),
                starttls_context=ssl.create_default_context(),
            ),
            lambda: _auth.SASLExchange("GSSAPI"),
        ]
        for i, case in enumerate(cases):
            with self.subTest(case=i), self.assertRaises(InvalidArgumentError):
                case()
        self.assertIsNotNone(m.pending)  # the bad reject() changed nothing
        with self.assertRaises(InvalidArgumentTypeError):
            SMTPServerConnection(max_message_size=None)  # type: ignore[arg-type]

    def test_smtp_reject_carries_its_reply(self) -> None:
        exc = SMTPReject(550, "5.1.1 no such user")
        self.assertEqual((exc.reply_code, exc.enhanced_code, exc.text), (550, "5.1.1", exc.text))
        self.assertEqual(exc.args, (550, "5.1.1 no such user"))
        self.assertEqual(SMTPReject(451, "later").enhanced_code, "4.0.0")

    def test_no_bare_builtin_error_is_raised(self) -> None:
        for module in (_auth, _compat, _content, _events, _machine, _server, _state, _syntax):
            tree = ast.parse(inspect.getsource(module))
            for node in ast.walk(tree):
                if isinstance(node, ast.Raise) and node.exc is not None:
                    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                    name = exc.id if isinstance(exc, ast.Name) else ""
                    with self.subTest(module=module.__name__, line=node.lineno):
                        self.assertNotIn(name, {"ValueError", "TypeError", "RuntimeError"})


if __name__ == "__main__":
    unittest.main()
