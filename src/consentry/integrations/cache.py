"""Checked connections kept in memory, coherent across replicas through PostgreSQL.

The check a connecting service makes before every exchange is read far more often than a
connection changes. Every change of a learner's connections notifies the channel below in its
own transaction, every change of the catalogue notifies it with an empty id (everything), and
erasure notifies consent's channel with the subject id: each process listens to both on one
connection of its own and drops what it hears of. While that connection is down the cache is off
and empty, as consent's is (consent/cache.py): a change it cannot hear about is never served.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

import asyncpg

from consentry.consent.repository import CHANGES_CHANNEL as CONSENT_CHANNEL
from consentry.integrations.repository import CHANGES_CHANNEL, Check
from consentry.listening import keep_listening

_RECENT_CHANGES = 4096
# What a notice names to drop every learner: a catalogue change.
EVERYONE = ""
# How its listening connection names itself to PostgreSQL (pg_stat_activity), beside consent's.
LISTENER_NAME = "consentry-connections-listener"


class ConnectionCache:
    """Per learner, the checks of each integration, least recently used learner out."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, dict[str, Check]] = OrderedDict()
        # Counts changes heard; a read that began before a change to its learner must not fill.
        self._epoch = 0
        self._recent: deque[str] = deque(maxlen=_RECENT_CHANGES)
        self.listening = False

    @property
    def epoch(self) -> int:
        """The number of changes heard so far: take it before reading the database."""
        return self._epoch

    def get(self, subject_id: str, integration_id: str) -> Check | None:
        """The learner's check of the integration, if kept."""
        if not self.listening:
            return None
        checks = self._entries.get(subject_id)
        if checks is None:
            return None
        self._entries.move_to_end(subject_id)
        return checks.get(integration_id)

    def fill(self, subject_id: str, integration_id: str, check: Check, epoch: int) -> None:
        """Keep what a read found, unless the learner changed since `epoch` or nothing listens."""
        if not self.listening or self._size == 0:
            return
        missed = self._epoch - epoch
        if missed and (
            missed > len(self._recent)
            or subject_id in itertools.islice(reversed(self._recent), missed)
            or EVERYONE in itertools.islice(reversed(self._recent), missed)
        ):
            return
        self._entries.setdefault(subject_id, {})[integration_id] = check
        self._entries.move_to_end(subject_id)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def forget(self, subject_id: str) -> None:
        """Drop a learner whose connections changed, or everyone (EVERYONE)."""
        self._epoch += 1
        self._recent.append(subject_id)
        if subject_id == EVERYONE:
            self._entries.clear()
        else:
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


async def listen(
    connect: Callable[[], Awaitable[asyncpg.Connection]], cache: ConnectionCache
) -> None:
    """Keep `cache` listening for changes for as long as the task runs; reconnect when lost."""
    await keep_listening(
        connect,
        [CHANGES_CHANNEL, CONSENT_CHANNEL],
        cache.forget,
        # Only once listening can no change go unheard; what was kept before may have missed some.
        listening=cache.start,
        lost=cache.stop,
        off="connection cache off",
    )
