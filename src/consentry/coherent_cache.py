"""What a process keeps in memory of the database, coherent across replicas through PostgreSQL.

Every change of something kept notifies a channel in its own transaction, so PostgreSQL tells
every listening process when, and only when, the change commits; each process listens on one
connection of its own and drops what it heard of. While that connection is down the cache is off
and empty: a change it cannot hear about must never be served from memory. Recorded consent,
learners' connections and active API keys are kept this way.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import asyncpg

from consentry.listening import keep_listening

V = TypeVar("V")

# What a notice names to drop every entry (a catalogue change, a revoked key).
EVERYONE = ""
# How many recent changes a read that overlapped them can check itself against.
_RECENT_CHANGES = 4096


class CoherentCache(Generic[V]):
    """Values by key, least recently used out, kept only while every change can be heard."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, V] = OrderedDict()
        # Counts changes heard; a read that began before a change to its key must not fill.
        self._epoch = 0
        self._recent: deque[str] = deque(maxlen=_RECENT_CHANGES)
        self.listening = False

    @property
    def epoch(self) -> int:
        """The number of changes heard so far: take it before reading the database."""
        return self._epoch

    def get(self, key: str) -> tuple[bool, V | None]:
        """Whether `key` is kept, and its value if so (a kept value may itself be None)."""
        if not self.listening:
            return False, None
        try:
            value = self._entries[key]
        except KeyError:
            return False, None
        self._entries.move_to_end(key)
        return True, value

    def fill(self, key: str, value: V, epoch: int) -> None:
        """Keep what a read found, unless `key` changed since `epoch` or nothing listens."""
        if not self.listening or self._size == 0:
            return
        missed = self._epoch - epoch
        if missed and (missed > len(self._recent) or self._changed(key, missed)):
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def _changed(self, key: str, missed: int) -> bool:
        """Whether one of the last `missed` changes heard was to `key`, or to every key."""
        heard = list(itertools.islice(reversed(self._recent), missed))
        return key in heard or EVERYONE in heard

    def forget(self, key: str) -> None:
        """Drop a key that changed, or every key (EVERYONE)."""
        self._epoch += 1
        self._recent.append(key)
        if key == EVERYONE:
            self._entries.clear()
        else:
            self._entries.pop(key, None)

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


async def keep_coherent(
    cache: CoherentCache[V],
    connect: Callable[[], Awaitable[asyncpg.Connection]],
    channels: Sequence[str],
    *,
    off: str,
    heard: Callable[[str], None] | None = None,
) -> None:
    """Keep `cache` listening on `channels` for as long as the task runs; reconnect when lost.

    Each notice's payload is the key to forget, unless `heard` says what a notice does.
    """
    await keep_listening(
        connect,
        channels,
        cache.forget if heard is None else heard,
        # Only once listening can no change go unheard; what was kept before may have missed some.
        listening=cache.start,
        lost=cache.stop,
        off=off,
    )
