"""CPython's own test_ftplib tests, run on testservers.

The running interpreter's ``test/test_ftplib.py`` is executed with its
asynchat/asyncore server machinery replaced by adapters on
:class:`protocols.ScriptedServer` (see ``tests/chat_adapters.py``):
``DummyFTPHandler``/``DummyDTPHandler`` keep CPython's script, their data
channels open through ``ScriptedConnection.listen()`` (PASV/EPSV) and
``connect()`` (PORT/EPRT), TLS (AUTH TLS, PROT P, CCC) through
``start_tls()``/``stop_tls()``.  Every TestCase runs unedited.
"""

from __future__ import annotations

import unittest

from tests import chat_adapters

_tf = chat_adapters.load_test_ftplib()

#: Server tests CPython's test_ftplib has (3.10-3.13), the issue's target
#: (every test but MiscTestCase's ``test__all__``; TestTimeouts' 6 run on
#: their own raw socket).
SERVER_TESTS = 93


_threads = chat_adapters.ThreadCheck(_tf)


def setUpModule() -> None:
    _threads.setup()  # CPython's: threading_helper.threading_setup()


def tearDownModule() -> None:
    _threads.teardown()  # threading_helper.threading_cleanup(): no dangling thread


class AdapterTest(unittest.TestCase):
    def test_machinery_replaced_script_kept(self) -> None:
        for name in ("DummyFTPServer", "DummyTLS_FTPServer"):
            self.assertTrue(issubclass(getattr(_tf, name), chat_adapters.ChatServer))
        for name in ("DummyFTPHandler", "DummyDTPHandler", "DummyTLS_FTPHandler"):
            cls = getattr(_tf, name)
            self.assertTrue(issubclass(cls, chat_adapters.async_chat))
            self.assertEqual(cls.__module__, _tf.__name__)  # CPython's class
        self.assertIs(_tf.DummyFTPHandler.cmd_pasv, chat_adapters.FTP_METHODS["cmd_pasv"])
        self.assertIs(_tf.asyncore.dispatcher, chat_adapters.dispatcher)

    def test_test_count(self) -> None:
        loader = unittest.TestLoader()
        n = sum(loader.loadTestsFromTestCase(cls).countTestCases() for cls in SERVER_CLASSES)
        self.assertEqual(n, SERVER_TESTS)


# The unmodified CPython test classes, under their own names.
class TestFTPClass(_tf.TestFTPClass):
    pass


class TestIPv6Environment(_tf.TestIPv6Environment):
    pass


class TestTLS_FTPClassMixin(_tf.TestTLS_FTPClassMixin):  # noqa: N801
    pass


class TestTLS_FTPClass(_tf.TestTLS_FTPClass):  # noqa: N801
    pass


class TestTimeouts(_tf.TestTimeouts):
    pass


class MiscTestCase(_tf.MiscTestCase):
    pass


SERVER_CLASSES = (
    TestFTPClass,
    TestIPv6Environment,
    TestTLS_FTPClassMixin,
    TestTLS_FTPClass,
    TestTimeouts,
)
