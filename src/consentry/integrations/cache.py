"""Checked connections kept in memory, coherent across replicas (coherent_cache.py).

The check a connecting service makes before every exchange is read far more often than a
connection changes. Every change of a learner's connections notifies the channel below with the
learner's id in its own transaction, every change of the catalogue notifies it with EVERYONE, and
erasure notifies consent's channel with the subject id: each process listens to both.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable

import asyncpg

from consentry.coherent_cache import EVERYONE, CoherentCache, keep_coherent
from consentry.consent.repository import CHANGES_CHANNEL as CONSENT_CHANNEL
from consentry.integrations.repository import CHANGES_CHANNEL, Check
from consentry.recent import keep_recent

__all__ = ["EVERYONE", "LISTENER_NAME", "ConnectionCache", "listen"]

# How its listening connection names itself to PostgreSQL (pg_stat_activity), beside consent's.
LISTENER_NAME = "consentry-connections-listener"


class ConnectionCache(CoherentCache[dict[str, Check]]):
    """Per learner, the checks of each integration, least recently used learner out."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        # The body last answered for each check, beside the very Check object it shows: a
        # change, or a check read anew, is another object, whose body is made afresh.
        self._bodies: OrderedDict[tuple[str, str], tuple[Check, bytes]] = OrderedDict()

    def check(self, subject_id: str, integration_id: str) -> Check | None:
        """The learner's check of the integration, if kept."""
        _found, checks = self.get(subject_id)
        return None if checks is None else checks.get(integration_id)

    def fill_check(self, subject_id: str, integration_id: str, check: Check, epoch: int) -> None:
        """Keep what a read found beside the learner's other checks, as `fill` would keep it."""
        _found, checks = self.get(subject_id)
        self.fill(subject_id, {**(checks or {}), integration_id: check}, epoch)

    def body(
        self, subject_id: str, integration_id: str, check: Check, render: Callable[[], bytes]
    ) -> bytes:
        """The answer's body showing `check`, made by `render` unless made for it already."""
        key = (subject_id, integration_id)
        kept = self._bodies.get(key)
        if kept is not None and kept[0] is check:
            self._bodies.move_to_end(key)
            return kept[1]
        body = render()
        keep_recent(self._bodies, key, (check, body), self._size)
        return body


async def listen(
    connect: Callable[[], Awaitable[asyncpg.Connection]], cache: ConnectionCache
) -> None:
    """Keep `cache` listening for changes for as long as the task runs; reconnect when lost."""
    await keep_coherent(
        cache, connect, [CHANGES_CHANNEL, CONSENT_CHANNEL], off="connection cache off"
    )
