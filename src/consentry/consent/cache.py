"""Recorded consent kept in memory for reads, coherent across replicas (coherent_cache.py).

Every consent write notifies the channel below with the subject id in its own transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from consentry.coherent_cache import CoherentCache, keep_coherent
from consentry.consent.repository import CHANGES_CHANNEL, StoredConsent

# Each subject's recorded consent, or None for the fact that it has none.
ConsentCache = CoherentCache[StoredConsent | None]


async def listen(connect: Callable[[], Awaitable[asyncpg.Connection]], cache: ConsentCache) -> None:
    """Keep `cache` listening for changes for as long as the task runs; reconnect when lost."""
    await keep_coherent(cache, connect, [CHANGES_CHANNEL], off="consent cache off")
