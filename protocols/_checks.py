"""The end-of-test check of a server: handler errors, unexpected requests, unused expectations.

Used by the pytest plugin at teardown and by unittest users through
``self.addCleanup(check_server, server)``.  Stdlib only.
"""

from __future__ import annotations

import traceback
from typing import Any

from reactor import TestServersError

__all__ = ["ServerCheckError", "check_server", "server_report"]

#: Handler tracebacks shown per server in a report (``server.errors`` has all).
SHOWN_TRACEBACKS = 10


class ServerCheckError(TestServersError, AssertionError):
    """A server's end-of-test check failed; the message is the whole report."""


def server_report(server: Any, *, strict: bool = True) -> str | None:
    """What is wrong with ``server`` at the end of a test, or ``None``.

    Always: every handler error in ``server.errors``, each with its
    traceback.  With ``strict`` (HTTP servers only): requests no expectation
    answered (``server.unexpected``, with their near-miss reports) and
    expectations not fully used.  Safe after ``stop()``; never raises.
    """
    parts: list[str] = []
    label = _label(server)
    errors = list(getattr(server, "errors", ()))
    if errors:
        lines = [f"{label}: {len(errors)} handler error(s):"]
        for i, exc in enumerate(errors[:SHOWN_TRACEBACKS], 1):
            try:
                tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            except BaseException:  # noqa: BLE001 - report what can be reported
                tb = f"{type(exc).__name__}\n"
            lines.append(f"--- handler error {i} of {len(errors)} ---\n{tb.rstrip()}")
        if len(errors) > SHOWN_TRACEBACKS:
            lines.append(f"... and {len(errors) - SHOWN_TRACEBACKS} more (see server.errors)")
        parts.append("\n".join(lines))
    if strict and hasattr(server, "check_expectations"):
        try:
            server.check_expectations()
        except AssertionError as exc:
            parts.append(str(exc))
    return "\n\n".join(parts) if parts else None


def check_server(server: Any, *, strict: bool = True) -> None:
    """Raise :class:`ServerCheckError` with :func:`server_report` if it finds anything.

    For unittest: ``self.addCleanup(check_server, server)`` right after
    ``self.addCleanup(server.stop)`` (cleanups run last-in first-out, so the
    server is stopped first and everything it received is counted).
    """
    report = server_report(server, strict=strict)
    if report is not None:
        raise ServerCheckError(report)


def _label(server: Any) -> str:
    try:
        return str(server._label())
    except Exception:  # noqa: BLE001
        return repr(server)
