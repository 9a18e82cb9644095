"""Active API keys kept in memory, coherent across replicas (coherent_cache.py).

Every request with an API key looked the key up, a round trip that cost more than judging a
small batch. Revoking a key notifies the channel below in its own transaction; each process
then drops every key it kept (revocations are rare). Only keys found active are kept: a key
created since is simply not kept yet.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from consentry.coherent_cache import EVERYONE, CoherentCache, keep_coherent
from consentry.db import Database
from consentry.keys.repository import CHANGES_CHANNEL, ActiveKey, answer

log = logging.getLogger(__name__)

# How its listening connection names itself to PostgreSQL (pg_stat_activity), beside the others.
LISTENER_NAME = "consentry-keys-listener"

# Active keys by the hash they are looked up with.
KeyCache = CoherentCache[ActiveKey]


async def listen(database: Database, cache: KeyCache) -> None:
    """Keep `cache` listening for revocations for as long as the task runs; reconnect when lost.

    Each revocation's notice is answered once the keys are dropped: its revoker waits for every
    listening process to answer, so a revoked key is refused everywhere once revoking returns.
    """
    answering: set[asyncio.Task[None]] = set()

    def heard(notice: str, _sender: int) -> None:
        cache.forget(EVERYONE)
        task = asyncio.create_task(_answer(database, notice))
        answering.add(task)
        task.add_done_callback(answering.discard)

    listener = partial(database.listener, LISTENER_NAME)
    await keep_coherent(cache, listener, [CHANGES_CHANNEL], off="key cache off", heard=heard)


async def _answer(database: Database, notice: str) -> None:
    try:
        async with database.reader() as reader:
            await answer(reader, notice)
    except Exception as error:  # a task of its own: nothing else would log it
        # The revoker waits out its time and says so; the keys are dropped all the same.
        log.warning("key cache: could not answer a revocation (%s)", type(error).__name__)
