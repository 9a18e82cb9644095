"""Streamed responses read ahead of the client, so that a slow reader holds memory, not the source.

The source (an export's database transaction) is read as fast as it delivers into a buffer of
bounded size, and the client takes the pieces from there at its own pace: a document that fits
in the buffer lets go of its source at once, whatever the client does. A larger one is read
while the client makes room, for at most a deadline; past it the source is closed and the
response cut short, so that no client, however slow, holds the source longer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class StreamAborted(Exception):
    """The source was not read to its end within the deadline: the response is incomplete."""


class _Buffer:
    """Pieces read from the source and not yet sent, at most `limit` bytes of them."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pieces: deque[bytes] = deque()
        self._size = 0
        self._done = False
        self._closed = False
        self._error: BaseException | None = None
        self._filled = asyncio.Event()
        self._drained = asyncio.Event()

    async def fill(self, source: AsyncGenerator[bytes, None], deadline: float) -> None:
        """Read the source to its end, pausing while the buffer is full; at most `deadline` s."""
        timer = asyncio.timeout(deadline)
        try:
            # The source is closed outside the deadline's scope: its transaction's rollback
            # must not be interrupted by the deadline it is ending.
            async with contextlib.aclosing(source), timer:
                async for piece in source:
                    while self._size >= self._limit and not self._closed:
                        self._drained.clear()
                        await self._drained.wait()
                    if self._closed:
                        break
                    self._pieces.append(piece)
                    self._size += len(piece)
                    self._filled.set()
        except Exception as exc:
            # Raised on the client's side, once it has sent what came before.
            self._error = (
                StreamAborted(f"the source was not read within {deadline:g} s")
                if timer.expired()
                else exc
            )
        finally:
            self._done = True
            self._filled.set()

    def close(self) -> None:
        """Stop reading the source: nobody will take what is left."""
        self._closed = True
        self._drained.set()

    async def drain(self) -> AsyncGenerator[bytes, None]:
        """The pieces in order, as they come; raises the source's error after the last one."""
        while True:
            if self._pieces:
                piece = self._pieces.popleft()
                self._size -= len(piece)
                if self._size < self._limit:
                    self._drained.set()
                yield piece
            elif self._done:
                if self._error is not None:
                    raise self._error
                return
            else:
                self._filled.clear()
                await self._filled.wait()


class ReadAheadResponse(StreamingResponse):
    """A streamed response whose source is read ahead of the client into a bounded buffer.

    `on_close` runs once the response has ended in any way: sent whole, cut short, or never
    sent at all.
    """

    def __init__(
        self,
        source: AsyncGenerator[bytes, None],
        *,
        buffer_bytes: int,
        deadline_seconds: float,
        on_close: Callable[[], None],
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        super().__init__(source, headers=headers, media_type=media_type)
        self._source = source
        self._buffer_bytes = buffer_bytes
        self._deadline = deadline_seconds
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        buffer = _Buffer(self._buffer_bytes)
        filling = asyncio.create_task(buffer.fill(self._source, self._deadline))
        pieces = buffer.drain()
        self.body_iterator = pieces
        try:
            await super().__call__(scope, receive, send)
        finally:
            # The client left, or its stream failed: the source is closed now (the database's
            # transaction rolled back), not when the buffer would have been read. Asked rather
            # than cancelled, so that a statement under way ends cleanly; the deadline bounds it.
            buffer.close()
            await pieces.aclose()
            try:
                await filling
            finally:
                self._on_close()
