"""The reactor: one background thread running a hand-written selectors loop.

Every server of every kind registers its sockets on one shared
:class:`Reactor`; its thread starts with the first ``start()`` and is joined
when the last server stops.  See ``_loop.py`` for the theory of operation.
"""

from ._connect import CONNECT_TIMEOUT, Connector, open_listener
from ._errors import (
    HandlerErrors,
    HandlerTimeout,
    InvalidArgumentError,
    PeerError,
    ReactorDied,
    ReactorError,
    ReactorExited,
    ServerBusyError,
    ServerClosedError,
    ServerStoppedError,
    TestServersError,
    UsageError,
    WaitTimeout,
    safe_repr,
)
from ._loop import THREAD_NAME, Reactor, TimerHandle, acquire, current_reactor, release
from ._pacing import EVENTS_PER_PASS, PASS_TIME_BUDGET, PassBudget
from ._server import (
    DEFAULT_STOP_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    UDP_RCVBUF,
    BaseServer,
    DatagramServerBase,
    StreamServerBase,
)
from ._threaded import StreamRequest, ThreadedStreamServerBase
from ._transport import (
    ACCEPT_RETRY_DELAY,
    READ_CHUNK,
    TLS_HANDSHAKE_TIMEOUT,
    WRITE_HIGH_WATER,
    WRITE_LOW_WATER,
    DatagramProtocol,
    DatagramTransport,
    ErrorSink,
    Listener,
    StreamProtocol,
    StreamTransport,
)

__all__ = [
    "CONNECT_TIMEOUT",
    "Connector",
    "open_listener",
    "InvalidArgumentError",
    "EVENTS_PER_PASS",
    "PASS_TIME_BUDGET",
    "PassBudget",
    "safe_repr",
    "ACCEPT_RETRY_DELAY",
    "DEFAULT_STOP_TIMEOUT",
    "DEFAULT_WAIT_TIMEOUT",
    "READ_CHUNK",
    "THREAD_NAME",
    "TLS_HANDSHAKE_TIMEOUT",
    "UDP_RCVBUF",
    "WRITE_HIGH_WATER",
    "WRITE_LOW_WATER",
    "BaseServer",
    "WaitTimeout",
    "UsageError",
    "TestServersError",
    "ServerStoppedError",
    "ServerBusyError",
    "ReactorExited",
    "PeerError",
    "DatagramProtocol",
    "DatagramServerBase",
    "DatagramTransport",
    "ErrorSink",
    "HandlerErrors",
    "HandlerTimeout",
    "Listener",
    "Reactor",
    "ReactorDied",
    "ReactorError",
    "ServerClosedError",
    "StreamProtocol",
    "StreamRequest",
    "StreamServerBase",
    "ThreadedStreamServerBase",
    "StreamTransport",
    "TimerHandle",
    "acquire",
    "current_reactor",
    "release",
]
