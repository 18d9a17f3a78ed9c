"""CPython's own test_poplib server tests, run on testservers.

The running interpreter's ``test/test_poplib.py`` is executed with its
asynchat/asyncore server machinery replaced by adapters on
:class:`protocols.ScriptedServer` (see ``tests/chat_adapters.py`` for what
is replaced and how); ``DummyPOP3Handler``'s script and every TestCase
run unedited: plain POP3, POP3 over implicit TLS (``POP3_SSL``) and STLS.
"""

from __future__ import annotations

import unittest

from tests import chat_adapters

_tp = chat_adapters.load_test_poplib()

#: Tests CPython's test_poplib has (3.10-3.13), the issue's target: 68 on
#: the replaced server machinery, 3 (TestTimeouts) on their own raw socket.
SERVER_TESTS = 71


_threads = chat_adapters.ThreadCheck(_tp)


def setUpModule() -> None:
    _threads.setup()  # CPython's: threading_helper.threading_setup()


def tearDownModule() -> None:
    _threads.teardown()  # threading_helper.threading_cleanup(): no dangling thread


class AdapterTest(unittest.TestCase):
    def test_machinery_replaced_script_kept(self) -> None:
        self.assertTrue(issubclass(_tp.DummyPOP3Server, chat_adapters.ChatServer))
        self.assertTrue(issubclass(_tp.DummyPOP3Handler, chat_adapters.async_chat))
        self.assertEqual(_tp.DummyPOP3Handler.__module__, _tp.__name__)  # CPython's class
        self.assertIs(_tp.DummyPOP3Handler.cmd_stls, chat_adapters.POP3_METHODS["cmd_stls"])
        self.assertIs(_tp.asynchat.async_chat, chat_adapters.async_chat)

    def test_server_test_count(self) -> None:
        loader = unittest.TestLoader()
        n = sum(
            loader.loadTestsFromTestCase(cls).countTestCases()
            for cls in (TestPOP3Class, TestPOP3_SSLClass, TestPOP3_TLSClass, TestTimeouts)
        )
        self.assertEqual(n, SERVER_TESTS)


# The unmodified CPython test classes that use a server, under their own names.
class TestPOP3Class(_tp.TestPOP3Class):
    pass


class TestPOP3_SSLClass(_tp.TestPOP3_SSLClass):  # noqa: N801
    pass


class TestPOP3_TLSClass(_tp.TestPOP3_TLSClass):  # noqa: N801
    pass


class TestTimeouts(_tp.TestTimeouts):
    pass
