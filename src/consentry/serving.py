"""The HTTP protocols of `consentry serve`: uvicorn's, with bounded heads and a send timeout.

uvicorn waits for as long as it takes for a client to take what it was sent: a client that
stops reading holds its request's task (and whatever that holds) for ever, and even a closed
connection stays open until its last buffered byte is taken. Here, any byte the kernel could
not take starts a clock; a client that takes nothing more for
`CONSENTRY_SERVER_SEND_TIMEOUT_SECONDS` is cut off (the connection reset), which ends the
response under way as a disconnect would. httptools also gets the bound on request heads that
h11 has of its own.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, cast

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from consentry.errors import PROBLEM_JSON, HeadersTooLarge, problem_body
from consentry.settings import get_settings

log = logging.getLogger(__name__)

# uvicorn's own default for h11, which `consentry serve` always overrides from its settings.
_DEFAULT_HEAD_BYTES = 16 * 1024
# An empty line ends a head; llhttp also takes a bare LF as a line's end.
_HEAD_END = re.compile(rb"\r?\n\r?\n")


class HeadLimitedHttpTools(HttpToolsProtocol):
    """httptools, refusing a request head (request line and headers) past a size with 431.

    httptools (llhttp) has no limit of its own: it gathers a header of any size in memory, and
    parsing megabytes of it holds the event loop for every other request of the process. The
    bytes of each head are counted as they arrive, before the parser sees them. A head that starts
    in the same read as the end of the request before it is counted from the next read on, so one
    read (at most 256 KiB) is the slack there.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The limit h11 applies to unfinished events, applied here to whole heads.
        self._head_limit: int = self.config.h11_max_incomplete_event_size or _DEFAULT_HEAD_BYTES
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            seen = self._tail + data
            end = _HEAD_END.search(seen)
            # Only the bytes up to the head's end count: the body may follow in the same read.
            counted = len(data) if end is None else end.end() - len(self._tail)
            self._head_bytes += counted
            if self._head_bytes > self._head_limit:
                self._refuse()
                return
            self._tail = seen[-3:] if end is None else b""
            if end is not None:
                self._in_head = False
        super().data_received(data)

    def on_headers_complete(self) -> None:
        # The parser's word is final, whatever line ends the head used.
        self._in_head = False
        self._tail = b""
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""

    def _refuse(self) -> None:
        self._refused = True
        self.logger.warning("Request head past %d bytes refused.", self._head_limit)
        body = problem_body(
            HeadersTooLarge(
                f"The request line and headers may hold at most {self._head_limit} bytes."
            )
        )
        content = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
                b"content-length: " + str(len(body)).encode() + b"\r\n",
                b"cache-control: no-store\r\n",
                b"x-content-type-options: nosniff\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()


class CoalescingTransport:
    """A transport that sends what was written to it in one turn of the event loop at once.

    uvicorn writes a response's head and its body apart: two system calls and two TCP segments
    for every response, where the first alone took a seventh of the event loop's samples under
    the consent read's load. Held until the turn ends (or the next write, or a close), they go
    out together; nothing waits longer than the turn that wrote it.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._held:
            asyncio.get_running_loop().call_soon(self._send)
        self._held.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def close(self) -> None:
        self._send()
        self._transport.close()

    def write_eof(self) -> None:
        self._send()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(b) for b in self._held)

    def __getattr__(self, name: str) -> Any:
        # Everything else (flow control, extra info, is_closing) is the transport's own.
        return getattr(self._transport, name)

    def _send(self) -> None:
        held, self._held = self._held, []
        # A connection the client closed meanwhile takes nothing: the response is dropped, as
        # a write after the close would have been.
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))


class _SendsOncePerTurn(asyncio.Protocol):
    """Gives the HTTP protocol a transport that sends once per turn (`CoalescingTransport`)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport, though they are one.
        coalescing = CoalescingTransport(cast(asyncio.Transport, transport))
        super().connection_made(coalescing)  # type: ignore[arg-type]


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


# The send timeout watches the socket's own transport; the HTTP protocol writes through the
# coalescing one.
class GuardedHttpToolsProtocol(_SendTimeout, _SendsOncePerTurn, HeadLimitedHttpTools):
    """uvicorn's httptools protocol with bounded heads, the send timeout, one send per turn."""


class GuardedH11Protocol(_SendTimeout, _SendsOncePerTurn, H11Protocol):
    """uvicorn's h11 protocol (which bounds heads itself) with the send timeout, one send per
    turn."""
