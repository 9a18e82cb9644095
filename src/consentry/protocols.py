"""uvicorn's HTTP protocols, with a bound on how long a client may leave a response unread.

uvicorn waits for as long as it takes for a client to take what it was sent: a client that
stops reading holds its request's task (and whatever that holds) for ever, and even a closed
connection stays open until its last buffered byte is taken. Here, any byte the kernel could
not take starts a clock; a client that takes nothing more for
`CONSENTRY_SERVER_SEND_TIMEOUT_SECONDS` is cut off (the connection reset), which ends the
response under way as a disconnect would.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from consentry.settings import get_settings

log = logging.getLogger(__name__)

# What `CONSENTRY_SERVER_HTTP` names, as uvicorn takes a protocol class by its import path.
PROTOCOLS = {
    "auto": "consentry.protocols:GuardedHttpToolsProtocol",
    "httptools": "consentry.protocols:GuardedHttpToolsProtocol",
    "h11": "consentry.protocols:GuardedH11Protocol",
}


class _SendTimeout(asyncio.Protocol):
    """Cuts a connection whose client has taken none of the pending bytes for too long."""

    _transport: asyncio.BaseTransport | None = None
    _stalled: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        if isinstance(transport, asyncio.WriteTransport):
            # Pause (and so start the clock) as soon as a byte waits in the process, not past
            # the default 64 KiB: a smaller unread rest would otherwise keep a closed
            # connection open for ever.
            transport.set_write_buffer_limits(high=0)
        super().connection_made(transport)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stalled is None:
            timeout = get_settings().server_send_timeout_seconds
            self._stalled = asyncio.get_running_loop().call_later(timeout, self._cut, timeout)

    def resume_writing(self) -> None:
        self._stop_clock()
        super().resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def _stop_clock(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def _cut(self, timeout: float) -> None:
        self._stalled = None
        log.warning("a client took nothing of its response for %g s; connection reset", timeout)
        if self._transport is not None:
            self._transport.abort()  # type: ignore[attr-defined]


class GuardedHttpToolsProtocol(_SendTimeout, HttpToolsProtocol):
    """uvicorn's httptools protocol with the send timeout."""


class GuardedH11Protocol(_SendTimeout, H11Protocol):
    """uvicorn's h11 protocol with the send timeout."""
