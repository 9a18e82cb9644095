"""Recorded consent kept in memory for reads, coherent across replicas through PostgreSQL.

Every consent write notifies the channel below in its own transaction, so PostgreSQL delivers
the subject id to every listening process when, and only when, the write commits. Each process
listens on one connection of its own and drops what it heard of. While that connection is down
the cache is off and empty: a change it cannot hear about must not be served from memory.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

import asyncpg

from consentry.consent.repository import CHANGES_CHANNEL, StoredConsent
from consentry.listening import keep_listening

# How many recent changes a read that overlapped them can check itself against.
_RECENT_CHANGES = 4096


class ConsentCache:
    """Each subject's recorded consent (or the fact it has none), least recently used out."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, StoredConsent | None] = OrderedDict()
        # Counts changes heard; a read that began before a change to its subject must not fill.
        self._epoch = 0
        self._recent: deque[str] = deque(maxlen=_RECENT_CHANGES)
        self.listening = False

    @property
    def epoch(self) -> int:
        """The number of changes heard so far: take it before reading the database."""
        return self._epoch

    def get(self, subject_id: str) -> tuple[bool, StoredConsent | None]:
        """Whether the subject is cached, and its recorded consent if so."""
        if not self.listening:
            return False, None
        try:
            stored = self._entries[subject_id]
        except KeyError:
            return False, None
        self._entries.move_to_end(subject_id)
        return True, stored

    def fill(self, subject_id: str, stored: StoredConsent | None, epoch: int) -> None:
        """Keep what a read found, unless the subject changed since `epoch` or nothing listens."""
        if not self.listening or self._size == 0:
            return
        missed = self._epoch - epoch
        if missed and (
            missed > len(self._recent)
            or subject_id in itertools.islice(reversed(self._recent), missed)
        ):
            return
        self._entries[subject_id] = stored
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def forget(self, subject_id: str) -> None:
        """Drop a subject that changed."""
        self._epoch += 1
        self._recent.append(subject_id)
        self._entries.pop(subject_id, None)

    def start(self) -> None:
        """Listening now: serve from memory again, but nothing kept before, which may have
        missed a change."""
        self.stop()
        self.listening = True

    def stop(self) -> None:
        """Serve nothing from memory until listening again."""
        self.listening = False
        self._epoch += len(self._recent) + 1  # every read under way is now too old to fill
        self._entries.clear()


async def listen(connect: Callable[[], Awaitable[asyncpg.Connection]], cache: ConsentCache) -> None:
    """Keep `cache` listening for changes for as long as the task runs; reconnect when lost."""
    await keep_listening(
        connect,
        [CHANGES_CHANNEL],
        cache.forget,
        # Only once listening can no change go unheard; what was cached before may have missed some.
        listening=cache.start,
        lost=cache.stop,
        off="consent cache off",
    )
