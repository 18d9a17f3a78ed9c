"""CPython's own test_smtplib server tests, run on testservers.

The running interpreter's ``test/test_smtplib.py`` is executed with stand-in
``smtpd``/``asyncore`` modules (so its module-level class statements run;
neither real module is imported), then its smtpd/asyncore machinery is
replaced by the adapters below, built on the public SMTP API only:
``SimSMTPServer``/``SimSMTPChannel`` (and the classes the module derives
from them), the ``smtpd.DebuggingServer`` use and ``debugging_server``, the
asyncore loop thread body.  Every TestCase runs unedited.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import threading
import types
import unittest
from collections.abc import Iterator
from typing import Any

from protocols import SMTPReject, SMTPServer
from protocols.smtp import Envelope, Reply

#: Server-using tests per interpreter (the issue's target): 54 on 3.13, 53 before.
SERVER_TESTS = 54 if sys.version_info >= (3, 13) else 53
SERVER_CLASSES = (
    "DebuggingServerTests",
    "SMTPSimTests",
    "SMTPUTF8SimTests",
    "SMTPAUTHInitialResponseSimTests",
    "TooLongLineTests",
)

# ---------------------------------------------------------------- adapters


def _reply(line: str, close: bool = False) -> Reply:
    code, _, text = line.partition(" ")
    return Reply(int(code), text, close)


def _smtpd_data(envelope: Envelope, decode: bool) -> Any:
    """The content as smtpd handed it over: lines joined by LF, no final newline."""
    data = envelope.data[:-2] if envelope.data.endswith(b"\r\n") else envelope.data
    data = data.replace(b"\r\n", b"\n")
    return data.decode("utf-8") if decode else data


class SimServerBase:
    """What the tests use of an smtpd server: ``socket``, ``close()``, the
    ``channel_class`` made per connection and ``process_message()``."""

    channel_class: type = type(None)
    options: dict[str, Any] = {}

    def __init__(self, localaddr: Any, remoteaddr: Any, decode_data: bool = False, **kw: Any):
        self._decode_data = decode_data
        self.enable_SMTPUTF8 = kw.get("enable_SMTPUTF8", False)
        self._channels: dict[Any, Any] = {}
        self.server = SMTPServer(
            localaddr,
            self._deliver,
            on_command=self._on_command,
            enhanced_status_codes=False,
            **self.options,
        )
        self.server.start()
        self.socket = self.server.socket

    def channel(self, session: Any) -> Any:
        if session.peer not in self._channels:  # smtpd's handle_accepted, on the first command
            self.handle_accepted(session, session.peer)
            self._channels[session.peer] = self._SMTPchannel
        return self._channels[session.peer]

    def handle_accepted(self, conn: Any, addr: Any) -> None:
        self._SMTPchannel = self.channel_class(
            getattr(self, "_extra_features", []), self, conn, addr
        )

    def _on_command(self, session: Any, verb: str, arg: str) -> Reply | None:
        return self.channel(session).command(verb, arg)

    def _deliver(self, envelope: Envelope) -> None:
        data = _smtpd_data(envelope, self._decode_data)
        args = (envelope.peer, envelope.mail_from, list(envelope.rcpt_tos), data)
        self._channels[envelope.peer].end_of_data()
        if self._decode_data:
            self.process_message(*args)
        else:
            rcpt_options = [o for opts in envelope.rcpt_options for o in opts]
            self.process_message(
                *args, mail_options=list(envelope.mail_options), rcpt_options=rcpt_options
            )

    def process_message(self, *args: Any, **kw: Any) -> None:
        pass

    def close(self) -> None:
        self.server.stop()


class SimSMTPChannel:
    """SimSMTPChannel's knobs (``*_response``, counters, received lines),
    answered through ``on_command`` on the server's native dialogue."""

    COMMAND, DATA = 0, 1
    quit_response = mail_response = rcpt_response = data_response = None
    rcpt_count = rset_count = disconnect = 0

    def __init__(self, extra_features: list[str], server: Any, conn: Any, addr: Any, **kw: Any):
        self.server, self.peer, self.smtp_state, self.pushed = server, addr, self.COMMAND, []

    @property
    def all_received_lines(self) -> list[list[str]]:
        cmds = self.server.server.find_commands(predicate=lambda c: c.peer == self.peer)
        return [[c.line.decode("utf-8", "replace")] for c in cmds]

    def push(self, line: str) -> None:
        self.pushed.append(line)

    def found_terminator(self) -> None:
        """Overridden by tests; what they push at the end of data is the reply."""

    def end_of_data(self) -> None:
        self.smtp_state, self.pushed = self.DATA, []
        self.found_terminator()
        self.smtp_state = self.COMMAND
        if self.pushed:
            code, _, text = self.pushed[0].partition(" ")
            raise SMTPReject(int(code), text)

    def command(self, verb: str, arg: str) -> Reply | None:
        mod = _ts
        if verb == "VRFY":
            if arg in mod.sim_users:
                return Reply(250, f"{mod.sim_users[arg]} {mod.smtplib.quoteaddr(arg)}")
            return Reply(550, f"No such user: {arg}")
        if verb == "EXPN":
            members = mod.sim_lists.get(arg.lower())
            if members is None:
                return Reply(550, "No access for you!")
            return Reply(
                250, "\n".join(f"{mod.sim_users[m]} {mod.smtplib.quoteaddr(m)}" for m in members)
            )
        if verb == "QUIT" and self.quit_response is not None:
            return _reply(self.quit_response, close=True)
        if verb == "MAIL" and self.mail_response is not None:
            return _reply(self.mail_response, close=bool(self.disconnect))
        if verb == "RCPT" and self.rcpt_response is not None:
            self.rcpt_count += 1
            return _reply(self.rcpt_response[self.rcpt_count - 1])
        if verb == "DATA" and self.data_response is not None:
            return _reply(self.data_response)
        if verb == "RSET":
            self.rset_count += 1
        return None


def _sim_keywords(server: Any) -> Any:
    base = ["EXPN", "SIZE 20000000", "STARTTLS", "DELIVERBY"]
    return lambda default: [*base, *server._extra_features, "HELP"]


def _buggy(initial: bytes | None) -> Any:
    """``AUTH BUGGY``: a challenge loop that never ends (smtplib detects it)."""
    while True:
        yield b"BuGgYbUgGy"


class SimSMTPServer(SimServerBase):
    channel_class = SimSMTPChannel

    def __init__(self, *args: Any, **kw: Any) -> None:
        self._extra_features: list[str] = []
        self._addresses: dict[str, Any] = {}
        self.init(*args, **kw)

    def init(self, *args: Any, **kw: Any) -> None:
        self.options = {
            "replies": {
                "EHLO": (250, "testhost"),
                "AUTH": (235, "Authentication Succeeded"),
                "message": (250, "OK"),
            },
            "ehlo_keywords": _sim_keywords(self),
            "auth": {_ts.sim_auth[0]: _ts.sim_auth[1]},
            "auth_mechanisms": ("PLAIN", "LOGIN", "CRAM-MD5"),
            "sasl_mechanisms": {"BUGGY": _buggy},
            "auth_over_plaintext": True,
        }
        SimServerBase.__init__(self, *args, **kw)

    def add_feature(self, feature: str) -> None:
        self._extra_features.append(feature)

    def process_message(self, peer: Any, mailfrom: str, rcpttos: list[str], data: Any) -> None:
        self._addresses["from"], self._addresses["tos"] = mailfrom, rcpttos


class SimSMTPAUTHInitialResponseServer(SimSMTPServer):
    """AUTH PLAIN is accepted only with the expected inline initial response."""

    def _on_command(self, session: Any, verb: str, arg: str) -> Reply | None:
        if verb == "AUTH":
            ok = arg.split() == ["PLAIN", _ts.EXPECTED_RESPONSE]
            return Reply(235, "Ok") if ok else Reply(571, "Bad authentication")
        return super()._on_command(session, verb, arg)


class DebuggingServer(SimServerBase):
    """smtpd.DebuggingServer: prints each message to sys.stdout, the envelope to DEBUGSTREAM."""

    options = {
        "replies": {
            "EHLO": (250, ""),
            "HELP": (250, "Supported commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY"),
            "message": (250, "OK"),
        },
        "ehlo_keywords": ["SIZE 33554432", "HELP"],
        "allow_repeated_helo": False,
    }

    def handle_accepted(self, conn: Any, addr: Any) -> None:
        self._SMTPchannel = self

    def command(self, verb: str, arg: str) -> Reply | None:
        if verb == "EXPN":
            return Reply(502, "EXPN not implemented")
        return None

    def end_of_data(self) -> None:
        pass

    def _deliver(self, envelope: Envelope) -> None:
        debug = _stub.DEBUGSTREAM
        print("sender:", envelope.mail_from or "<>", file=debug)
        print("recips:", list(envelope.rcpt_tos), file=debug)
        print("---------- MESSAGE FOLLOWS ----------")
        inheaders = True
        for line in _smtpd_data(envelope, True).splitlines():
            if inheaders and not line:
                print("X-Peer:", envelope.peer[0])
                inheaders = False
            print(line)
        print("------------ END MESSAGE ------------")


def debugging_server(
    serv: SimServerBase, serv_evt: threading.Event, client_evt: threading.Event
) -> None:
    """The asyncore loop thread body: serve (on the reactor) until the client is done."""
    serv_evt.set()
    client_evt.wait()
    serv.close()
    serv_evt.set()


# ----------------------------------------------------------------- loading


def _stub_modules() -> tuple[types.ModuleType, types.ModuleType]:
    smtpd = types.ModuleType("smtpd", "testservers stand-in (tests/test_smtplib_compat.py)")
    smtpd.SMTPChannel = type("SMTPChannel", (), {})  # type: ignore[attr-defined]
    smtpd.SMTPServer = type("SMTPServer", (), {})  # type: ignore[attr-defined]
    smtpd.DebuggingServer = DebuggingServer  # type: ignore[attr-defined]
    smtpd.DEBUGSTREAM = io.StringIO()  # type: ignore[attr-defined]
    core = types.ModuleType("asyncore", "testservers stand-in (tests/test_smtplib_compat.py)")
    core.socket_map = {}  # type: ignore[attr-defined]
    core.close_all = lambda map=None, ignore_all=False: None  # type: ignore[attr-defined]
    return smtpd, core


@contextlib.contextmanager
def _substituted(smtpd: types.ModuleType, core: types.ModuleType) -> Iterator[None]:
    import test
    import test.support

    names = {
        "smtpd": smtpd,
        "asyncore": core,
        "test.smtpd": smtpd,
        "test.support.smtpd": smtpd,
        "test.support.asyncore": core,
    }
    saved = {n: sys.modules.get(n) for n in names}
    attrs = [(test, "smtpd"), (test.support, "smtpd"), (test.support, "asyncore")]
    saved_attrs = [(o, a, o.__dict__.get(a)) for o, a in attrs]
    try:
        sys.modules.update(names)
        for o, a in attrs:
            setattr(o, a, names[f"{o.__name__}.{a}"])
        yield
    finally:
        for n, m in saved.items():
            sys.modules.pop(n) if m is None else sys.modules.__setitem__(n, m)
        for o, a, old in saved_attrs:
            delattr(o, a) if old is None else setattr(o, a, old)


def load_test_smtplib() -> types.ModuleType:
    spec = importlib.util.find_spec("test.test_smtplib")
    if spec is None or spec.origin is None:
        raise unittest.SkipTest("CPython's test package is not installed")
    with open(spec.origin, encoding="utf-8") as f:
        source = f.read()
    module = types.ModuleType("test._testservers_test_smtplib")
    module.__file__, module.__package__ = spec.origin, "test"
    sys.modules[module.__name__] = module
    with _substituted(_stub, _core):
        exec(compile(source, spec.origin, "exec"), module.__dict__)
    module.debugging_server = debugging_server
    module.SimSMTPChannel = SimSMTPChannel
    module.SimSMTPServer = SimSMTPServer
    module.SimSMTPAUTHInitialResponseServer = SimSMTPAUTHInitialResponseServer
    # SimSMTPUTF8Server keeps its own __init__/process_message on our base;
    # its `smtpd.SMTPServer.__init__(self, ...)` call lands in SimServerBase.
    module.SimSMTPUTF8Server.__bases__ = (SimSMTPServer,)
    _stub.SMTPServer = type("SMTPServer", (), {"__init__": SimSMTPServer.init})  # type: ignore[attr-defined]
    return module


_stub, _core = _stub_modules()
_ts = load_test_smtplib()


class AdapterTest(unittest.TestCase):
    def test_server_test_count(self) -> None:
        loader = unittest.TestLoader()
        n = sum(
            loader.loadTestsFromTestCase(getattr(_ts, c)).countTestCases() for c in SERVER_CLASSES
        )
        self.assertEqual(n, SERVER_TESTS)

    def test_smtpd_and_asyncore_are_the_stand_ins(self) -> None:
        self.assertIs(_ts.smtpd, _stub)
        self.assertIs(_ts.asyncore, _core)
        self.assertIs(_ts.SimSMTPUTF8Server.__mro__[1], SimSMTPServer)


class DebuggingServerTests(_ts.DebuggingServerTests):
    pass


class SMTPSimTests(_ts.SMTPSimTests):
    pass


class SMTPUTF8SimTests(_ts.SMTPUTF8SimTests):
    pass


class SMTPAUTHInitialResponseSimTests(_ts.SMTPAUTHInitialResponseSimTests):
    pass


class TooLongLineTests(_ts.TooLongLineTests):
    pass
