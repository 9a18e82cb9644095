"""Active API keys kept in memory, coherent across replicas through PostgreSQL.

Every request with an API key looked the key up, a round trip that cost more than judging a
small batch. Revoking a key notifies the channel below in its own transaction, so PostgreSQL
tells every listening process when, and only when, the revocation commits; each process listens
on one connection of its own and then drops every key it kept (revocations are rare). Only keys
found active are kept: a key created since is simply not kept yet. While that connection is
down the cache is off and empty, as consent's is (consent/cache.py): a revocation it cannot hear
about must not leave a key served from memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from functools import partial

from consentry.db import Database
from consentry.keys.repository import CHANGES_CHANNEL, ActiveKey, answer
from consentry.listening import keep_listening

log = logging.getLogger(__name__)

# How its listening connection names itself to PostgreSQL (pg_stat_activity), beside the others.
LISTENER_NAME = "consentry-keys-listener"


class KeyCache:
    """Active keys by the hash they are looked up with, least recently used out."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, ActiveKey] = OrderedDict()
        # Counts revocations heard; a lookup that began before one must not fill.
        self._epoch = 0
        self.listening = False

    @property
    def epoch(self) -> int:
        """The number of revocations heard so far: take it before reading the database."""
        return self._epoch

    def get(self, key_hash: str) -> ActiveKey | None:
        """The active key with this hash, if kept."""
        if not self.listening:
            return None
        found = self._entries.get(key_hash)
        if found is not None:
            self._entries.move_to_end(key_hash)
        return found

    def fill(self, key_hash: str, key: ActiveKey, epoch: int) -> None:
        """Keep a key a lookup found active, unless a revocation was heard since `epoch`."""
        if not self.listening or self._size == 0 or epoch != self._epoch:
            return
        self._entries[key_hash] = key
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def forget(self, _payload: str = "") -> None:
        """Drop every key: one was revoked."""
        self._epoch += 1
        self._entries.clear()

    def start(self) -> None:
        """Listening now: serve from memory again, but nothing kept before, which may have
        missed a revocation."""
        self.stop()
        self.listening = True

    def stop(self) -> None:
        """Serve nothing from memory until listening again."""
        self.listening = False
        self.forget()


async def listen(database: Database, cache: KeyCache) -> None:
    """Keep `cache` listening for revocations for as long as the task runs; reconnect when lost.

    Each revocation's notice is answered once the keys are dropped: its revoker waits for every
    listening process to answer, so a revoked key is refused everywhere once revoking returns.
    """
    answering: set[asyncio.Task[None]] = set()

    def heard(notice: str) -> None:
        cache.forget()
        task = asyncio.create_task(_answer(database, notice))
        answering.add(task)
        task.add_done_callback(answering.discard)

    await keep_listening(
        partial(database.listener, LISTENER_NAME),
        [CHANGES_CHANNEL],
        heard,
        # Only once listening can no revocation go unheard; what was kept may have missed one.
        listening=cache.start,
        lost=cache.stop,
        off="key cache off",
    )


async def _answer(database: Database, notice: str) -> None:
    try:
        async with database.reader() as reader:
            await answer(reader, notice)
    except Exception as error:  # a task of its own: nothing else would log it
        # The revoker waits out its time and says so; the keys are dropped all the same.
        log.warning("key cache: could not answer a revocation (%s)", type(error).__name__)
