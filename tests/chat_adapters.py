"""Run CPython's asynchat-scripted test servers (test_poplib, test_ftplib) on ScriptedServer.

CPython's test_poplib and test_ftplib script their fake servers as
``asynchat.async_chat`` subclasses (``DummyPOP3Handler``, ``DummyFTPHandler``,
``DummyDTPHandler``...) served by ``asyncore.dispatcher`` + ``threading.Thread``
classes (``DummyPOP3Server``, ``DummyFTPServer``).  We keep the handler
classes, i.e. the scripts (every ``cmd_*`` reply, ``found_terminator``,
``push``), exactly as the running interpreter ships them, and replace what
is server machinery:

1. **The bases.**  The test module is executed with substitute ``asynchat``
   and ``asyncore`` module objects (installed in ``sys.modules`` and on
   ``test.support`` only while its source executes, then restored), so its
   ``class DummyPOP3Handler(asynchat.async_chat)`` statements build on
   :class:`async_chat` below: ``set_terminator``, ``push``,
   ``close_when_done``, ``collect_incoming_data``/``found_terminator``,
   ``recv``/``handle_read``, ``handle_close`` mapped one to one onto a
   :class:`protocols.ScriptedConnection`.  Neither asyncore nor asynchat is
   imported.  The substitute ``asyncore`` also keeps the module-level
   ``asyncore.close_all()`` the tests' ``tearDown`` calls working (a no-op:
   ``stop()`` closed everything).
2. **The servers.**  ``DummyPOP3Server``, ``DummyFTPServer`` and
   ``DummyTLS_FTPServer`` (a thread running ``asyncore.loop`` each) are
   rebound to :class:`ChatServer` subclasses: a :class:`protocols.ScriptedServer`
   on the shared reactor with the same constructor, ``host``/``port``,
   ``handler``, ``handler_instance``, ``start()``/``stop()``.
3. **The socket-level methods** of the handlers, the only ones that touch a
   socket or block: TLS (POP3 ``cmd_stls``, FTP's ``SSLConnection``:
   ``secure_connection`` becomes ``start_tls()``, the CCC shutdown
   ``stop_tls()``) and FTP's data channels (``cmd_pasv``/``cmd_epsv``
   become a child ``listen()``, ``cmd_port``/``cmd_eprt`` a non-blocking
   ``connect()``; the control connection is held until the data connection
   is up, which the originals got by blocking the whole server in
   ``accept()``/``create_connection()``).  The replacements are
   :data:`POP3_METHODS`, :data:`FTP_METHODS` and :data:`SSL_METHODS`.

Nothing in the TestCase classes is changed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import ssl
import sys
import types
import unittest
from collections.abc import Callable, Iterator
from typing import Any

import protocols
from protocols import ScriptedConnection, ScriptedServer

#: Seconds a data channel may take to be opened (the originals' TIMEOUT).
DATA_CHANNEL_TIMEOUT = 10.0


class dispatcher:  # noqa: N801 - the name the tests subclass
    """Stand-in for ``asyncore.dispatcher``: a base class, no socket map."""

    def __init__(self, sock: Any = None, map: Any = None) -> None:  # noqa: A002
        pass


class async_chat(dispatcher):  # noqa: N801
    """``asynchat.async_chat``'s script-facing methods over a ScriptedConnection.

    ``conn`` is the :class:`protocols.ScriptedConnection` the adapter server
    hands the handler class in place of a socket.
    """

    #: asynchat's class attribute (DummyFTPHandler pushes before setting its own).
    encoding = "latin-1"
    use_encoding = 0

    def __init__(self, conn: ScriptedConnection | None = None, map: Any = None) -> None:  # noqa: A002
        assert conn is not None
        self._conn = conn
        self._rx = bytearray()  # raw input for a handle_read() override's recv()
        self._closed_by_close = False
        self._handle_close_done = False
        bridge = conn.script
        assert isinstance(bridge, _Bridge)
        bridge.chat = self

    # asynchat API
    def set_terminator(self, term: bytes | int | None) -> None:
        self._conn.set_terminator(term)

    def get_terminator(self) -> Any:
        return self._conn.terminator

    def push(self, data: bytes) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be byte-ish ({type(data)!r})")
        self._conn.push(data)

    def close_when_done(self) -> None:
        self._conn.close_when_done()

    def close(self) -> None:
        self._closed_by_close = True
        self._conn.close_when_done()

    def collect_incoming_data(self, data: bytes) -> None:
        raise NotImplementedError("must be implemented in subclass")

    def found_terminator(self) -> None:
        raise NotImplementedError("must be implemented in subclass")

    def handle_read(self) -> None:
        """Overridden by raw readers (FTP's DTP); the base frames input instead."""

    def recv(self, buffer_size: int) -> bytes:
        data = bytes(self._rx[:buffer_size])
        del self._rx[:buffer_size]
        return data

    def handle_close(self) -> None:
        self.close()

    def handle_error(self) -> None:
        raise  # noqa: PLE0704 - asyncore's contract: called inside an except block

    @property
    def socket(self) -> socket.socket | None:
        return self._conn.socket

    def del_channel(self, map: Any = None) -> None:  # noqa: A002
        pass


class _Bridge:
    """The ScriptedConnection's script: forwards its events to the chat handler."""

    def __init__(
        self,
        conn: ScriptedConnection,
        make: Callable[[ScriptedConnection], async_chat],
        after: Callable[[async_chat], object] | None = None,
    ) -> None:
        self.conn = conn
        self._make = make
        self._after = after
        self.chat: async_chat | None = None

    def _guard(self, fn: Callable[..., object], *args: Any) -> None:
        # asyncore's shape: an exception goes to the handler's handle_error(),
        # which re-raises (test_poplib: recorded, connection aborted) or
        # swallows it (test_ftplib's default_error_handler).
        try:
            fn(*args)
        except Exception:
            assert self.chat is not None
            self.chat.handle_error()

    def on_connect(self) -> None:
        chat = self._make(self.conn)
        if self._after is not None:
            self._after(chat)

    def on_frame(self, frame: bytes) -> None:
        chat = self.chat
        assert chat is not None
        self._guard(chat.collect_incoming_data, frame)
        self._guard(chat.found_terminator)

    def on_data(self, chunk: bytes) -> None:
        chat = self.chat
        assert chat is not None
        if type(chat).handle_read is async_chat.handle_read:
            self._guard(chat.collect_incoming_data, chunk)
            return
        chat._rx += chunk
        while chat._rx:
            before = len(chat._rx)
            self._guard(chat.handle_read)
            if len(chat._rx) == before:
                break

    def _closed(self) -> None:
        chat = self.chat
        if chat is None or chat._handle_close_done:
            return
        chat._handle_close_done = True
        self._guard(chat.handle_close)

    def on_eof(self) -> bool:
        self._closed()
        return False

    def on_close(self) -> None:
        chat = self.chat
        if chat is not None and not chat._closed_by_close:
            self._closed()


class ChatServer:
    """Stand-in for ``DummyPOP3Server``/``DummyFTPServer`` on the shared reactor.

    ``handler`` (class attribute, settable per instance) is called as
    ``handler(conn, **handler_kwargs)`` for each connection; the last one
    is :attr:`handler_instance`.
    """

    handler: Any = None
    raise_errors = False

    def __init__(self, address: Any, af: int = socket.AF_INET, **handler_kwargs: Any) -> None:
        self._handler_kwargs = handler_kwargs
        for key, value in handler_kwargs.items():
            setattr(self, key, value)  # DummyFTPServer.encoding
        self.handler_instance: Any = None
        self.active = False
        self._server = ScriptedServer(
            address,
            self._script,
            terminator=None,
            raise_errors=self.raise_errors,
            report_errors=self.raise_errors,
        )
        self.host, self.port = self._server.server_address[:2]

    def _script(self, conn: ScriptedConnection) -> _Bridge:
        return _Bridge(conn, self._make_handler)

    def _make_handler(self, conn: ScriptedConnection) -> async_chat:
        instance: async_chat = self.handler(conn, **self._handler_kwargs)
        self.handler_instance = instance
        return instance

    def start(self) -> None:
        assert not self.active
        self._server.start()
        self.active = True

    def stop(self) -> None:
        assert self.active
        self.active = False
        self._server.stop()
        self._server.server_close()

    @property
    def errors(self) -> list[BaseException]:
        return self._server.errors


class POP3ChatServer(ChatServer):
    raise_errors = True  # DummyPOP3Handler.handle_error re-raises


# -- socket-level handler methods ----------------------------------------------------

_contexts: dict[str, ssl.SSLContext] = {}


def _server_context(certfile: str) -> ssl.SSLContext:
    ctx = _contexts.get(certfile)
    if ctx is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certfile)
        _contexts[certfile] = ctx
    return ctx


def _certfile(chat: async_chat) -> str:
    return str(sys.modules[type(chat).__module__].CERTFILE)


def _secure_connection(self: async_chat) -> None:
    self._conn.start_tls(_server_context(_certfile(self)))


def _ssl_shutdown(self: async_chat) -> None:
    if getattr(self, "_ccc", False):
        self._conn.stop_tls()  # CCC: close_notify, then plaintext on the same connection
    else:
        self.close()


class TLSMixin(dispatcher):
    """Stand-in for test_ftplib's ``SSLConnection`` (what test_poplib imports)."""

    secure_connection = _secure_connection
    _do_ssl_shutdown = _ssl_shutdown


#: SSLConnection's methods that wrapped and drove a socket, and what replaces them
#: (None: removed, so async_chat's own method is used).
SSL_METHODS: dict[str, Any] = {
    "secure_connection": _secure_connection,
    "_do_ssl_shutdown": _ssl_shutdown,
    "_do_ssl_handshake": None,
    "handle_read_event": None,
    "handle_write_event": None,
    "send": None,
    "recv": None,
    "close": None,
}


def _cmd_stls(self: Any, arg: str) -> None:
    if self.tls_active is False:
        self.push("+OK Begin TLS negotiation")
        self._conn.start_tls(_server_context(_certfile(self)))
        self.tls_active = True
        self.in_buffer = []
    else:
        self.push("-ERR Command not permitted when TLS active")


#: DummyPOP3Handler's methods that wrapped the socket in TLS.
POP3_METHODS: dict[str, Any] = {"cmd_stls": _cmd_stls}


def _dtp_script(
    self: Any, on_ready: Callable[[], object]
) -> Callable[[ScriptedConnection], _Bridge]:
    def make(child: ScriptedConnection) -> async_chat:
        dtp: async_chat = self.dtp_handler(child, baseclass=self)
        self.dtp = dtp
        return dtp

    return lambda child: _Bridge(child, make, lambda dtp: on_ready())


def _passive(self: Any, reply: Callable[[int], str], host: str | None = None) -> None:
    conn: ScriptedConnection = self._conn
    conn.hold()  # commands wait until the data connection is accepted
    listener = conn.listen(
        _dtp_script(self, conn.release),
        host=host,
        timeout=DATA_CHANNEL_TIMEOUT,
        on_timeout=conn.release,
    )
    self.push(reply(listener.port))


def _active(self: Any, address: tuple[str, int]) -> None:
    conn: ScriptedConnection = self._conn
    conn.hold()

    def ready() -> None:
        self.push("200 active data connection established")
        conn.release()

    def failed(exc: OSError) -> None:
        self.push(f"425 cannot open data connection: {exc}")
        conn.release()

    conn.connect(address, _dtp_script(self, ready), timeout=DATA_CHANNEL_TIMEOUT, on_error=failed)


def _cmd_pasv(self: Any, arg: str) -> None:
    def reply(port: int) -> str:
        ip = self.fake_pasv_server_ip.replace(".", ",")
        return f"227 entering passive mode ({ip},{port // 256},{port % 256})"

    _passive(self, reply)


def _cmd_epsv(self: Any, arg: str) -> None:
    _passive(self, lambda port: f"229 entering extended passive mode (|||{port}|)")


def _cmd_port(self: Any, arg: str) -> None:
    addr = list(map(int, arg.split(",")))
    _active(self, (".".join(map(str, addr[:4])), addr[4] * 256 + addr[5]))


def _cmd_eprt(self: Any, arg: str) -> None:
    af, ip, port = arg.split(arg[0])[1:-1]
    _active(self, (ip, int(port)))


#: DummyFTPHandler's methods that opened data sockets (blocking the loop).
FTP_METHODS: dict[str, Any] = {
    "cmd_pasv": _cmd_pasv,
    "cmd_epsv": _cmd_epsv,
    "cmd_port": _cmd_port,
    "cmd_eprt": _cmd_eprt,
}


def patch_methods(cls: type, methods: dict[str, Any]) -> None:
    for name, fn in methods.items():
        if fn is None:
            if name in cls.__dict__:
                delattr(cls, name)
        else:
            setattr(cls, name, fn)


# -- loading a CPython test module with the substitutes ----------------------------------


def substitute_modules() -> dict[str, types.ModuleType]:
    chat = types.ModuleType(
        "asynchat", "testservers stand-in for asynchat (tests/chat_adapters.py)"
    )
    chat.async_chat = async_chat  # type: ignore[attr-defined]
    core = types.ModuleType(
        "asyncore", "testservers stand-in for asyncore (tests/chat_adapters.py)"
    )
    core.dispatcher = dispatcher  # type: ignore[attr-defined]
    core.socket_map = {}  # type: ignore[attr-defined]
    core.close_all = lambda map=None, ignore_all=False: None  # type: ignore[attr-defined]
    return {"asynchat": chat, "asyncore": core}


@contextlib.contextmanager
def _installed(modules: dict[str, types.ModuleType]) -> Iterator[None]:
    import test.support

    saved_mods = {name: sys.modules.get(name) for name in modules}
    saved_attrs: dict[str, Any] = {}
    try:
        for name, mod in modules.items():
            sys.modules[name] = mod
            if name.startswith("test.support."):
                attr = name.rsplit(".", 1)[1]
                saved_attrs[attr] = test.support.__dict__.get(attr, _MISSING)
                setattr(test.support, attr, mod)
        yield
    finally:
        for name, old in saved_mods.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
        for attr, old_attr in saved_attrs.items():
            if old_attr is _MISSING:
                delattr(test.support, attr)
            else:
                setattr(test.support, attr, old_attr)


_MISSING = object()


def load_cpython_test(
    name: str, extra: dict[str, types.ModuleType] | None = None
) -> types.ModuleType:
    """Execute the running interpreter's ``test/<name>.py`` with the substitute bases.

    :raises unittest.SkipTest: CPython's test package is not installed.
    """
    spec = importlib.util.find_spec(f"test.{name}")
    if spec is None or spec.origin is None:
        raise unittest.SkipTest("CPython's test package is not installed")
    with open(spec.origin, encoding="utf-8") as f:
        source = f.read()
    subs = substitute_modules()
    modules = {
        "asynchat": subs["asynchat"],
        "asyncore": subs["asyncore"],
        "test.support.asynchat": subs["asynchat"],
        "test.support.asyncore": subs["asyncore"],
        **(extra or {}),
    }
    module = types.ModuleType(f"test._testservers_{name}")
    module.__file__ = spec.origin  # certdata/ is found beside it
    module.__package__ = "test"
    sys.modules[module.__name__] = module
    with _installed(modules):
        exec(compile(source, spec.origin, "exec"), module.__dict__)
    for mod in (subs["asynchat"], subs["asyncore"]):
        assert module.__dict__.get(mod.__name__) is mod, f"{name} did not import our {mod.__name__}"
    return module


def rebind_server(module: types.ModuleType, name: str, base: type[ChatServer]) -> None:
    """Replace the module's thread-and-asyncore server class ``name`` by a ChatServer."""
    original = getattr(module, name)
    adapter = type(name, (base,), {"handler": original.handler, "__module__": module.__name__})
    setattr(module, name, adapter)


def load_test_poplib() -> types.ModuleType:
    ftplib_stub = types.ModuleType("test.test_ftplib", "testservers stand-in: SSLConnection only")
    ftplib_stub.SSLConnection = TLSMixin  # type: ignore[attr-defined]
    mod = load_cpython_test("test_poplib", {"test.test_ftplib": ftplib_stub})
    patch_methods(mod.DummyPOP3Handler, POP3_METHODS)
    rebind_server(mod, "DummyPOP3Server", POP3ChatServer)
    return mod


def load_test_ftplib() -> types.ModuleType:
    mod = load_cpython_test("test_ftplib")
    patch_methods(mod.DummyFTPHandler, FTP_METHODS)
    if hasattr(mod, "SSLConnection"):
        patch_methods(mod.SSLConnection, SSL_METHODS)
    rebind_server(mod, "DummyFTPServer", ChatServer)
    if hasattr(mod, "DummyTLS_FTPServer"):
        rebind_server(mod, "DummyTLS_FTPServer", ChatServer)
    return mod


class ThreadCheck:
    """CPython's module set-up and its ``threading_helper`` check, under pytest too.

    The CPython modules' ``setUpModule`` registers
    ``threading_helper.threading_cleanup`` with ``unittest.addModuleCleanup``,
    which ``python -m unittest`` runs and pytest does not; ``teardown()``
    runs the module cleanups itself and fails if the check found a dangling
    thread (it sets ``test.support.environment_altered``).
    """

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module
        self.altered_before = False

    def setup(self) -> None:
        from test import support

        self.altered_before = bool(support.environment_altered)
        self.module.setUpModule()

    def teardown(self) -> None:
        from test import support

        unittest.case.doModuleCleanups()
        if support.environment_altered and not self.altered_before:
            raise AssertionError("threading_helper.threading_cleanup() found dangling threads")


__all__ = ["load_test_ftplib", "load_test_poplib", "protocols"]
