"""Listening on PostgreSQL channels for as long as a task runs, reconnecting when lost.

The consent read cache, the connection cache and the erasure worker all hear of changes this
way; what differs is only what a notice does and what listening begun or lost means to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

log = logging.getLogger(__name__)

_LOST = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
_HEALTH_CHECK_SECONDS = 5.0
_BACKOFF_SECONDS = (0.5, 30.0)


async def keep_listening(
    connect: Callable[[], Awaitable[asyncpg.Connection]],
    channels: Sequence[str],
    heard: Callable[[str, int], None],
    *,
    listening: Callable[[], None],
    lost: Callable[[], None],
    off: str,
) -> None:
    """Pass each notice's payload on `channels` to `heard`, with the process id of the database
    server process that sent it, until the task is cancelled.

    `listening` runs once no notice can go unheard; `lost` whenever the connection ends. `off`
    starts the warning logged while nothing is heard ("consent cache off").
    """
    backoff, most = _BACKOFF_SECONDS
    while True:
        try:
            connection = await _connected(connect)
        except _LOST as exc:
            log.warning("%s: cannot listen (%s)", off, type(exc).__name__)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, most)
            continue
        try:
            await _listen_on(connection, channels, heard, listening)
            backoff = _BACKOFF_SECONDS[0]
        except _LOST as exc:
            log.warning("%s: listening stopped (%s)", off, type(exc).__name__)
        finally:
            lost()
            connection.terminate()


async def _connected(connect: Callable[[], Awaitable[asyncpg.Connection]]) -> asyncpg.Connection:
    """A new connection; when cancelled, only once its handshake is over, and closed.

    The driver cancelled mid-handshake leaves a future whose error nobody reads ("unexpected
    connection_lost() call"), which an app stopped just after it started would log.
    """
    connecting = asyncio.ensure_future(connect())
    try:
        return await asyncio.shield(connecting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            (await connecting).terminate()
        raise


async def _listen_on(
    connection: asyncpg.Connection,
    channels: Sequence[str],
    heard: Callable[[str, int], None],
    listening: Callable[[], None],
) -> None:
    ended = asyncio.Event()
    connection.add_termination_listener(lambda _connection: ended.set())
    for channel in channels:
        await connection.add_listener(
            channel, lambda _connection, pid, _channel, payload: heard(payload, pid)
        )
    listening()
    while not ended.is_set():
        try:
            await asyncio.wait_for(ended.wait(), _HEALTH_CHECK_SECONDS)
        except TimeoutError:
            # A peer gone without a word leaves the socket open: ask, and give up on silence.
            await connection.fetchval("SELECT 1", timeout=_HEALTH_CHECK_SECONDS)
