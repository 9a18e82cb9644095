"""What only the database knows, read when scraped: the erasure queue, the webhook deliveries,
and whether it answers.

The queues are read by functions the app hands in, so this module knows no domain.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from consentry.db import Database, Reader, utcnow
from consentry.errors import ServiceUnavailable

log = logging.getLogger(__name__)

# Scrapes closer together than this share one query.
CACHE_SECONDS = 5.0
# A scrape answers within Prometheus's default timeout (10 s) even when the database hangs.
QUERY_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """The open erasure requests of one status: how many, and when the oldest was made."""

    status: str
    count: int
    oldest: datetime


# Reads the depth of each open status that has requests (one QueueDepth per such status).
QueueDepthReader = Callable[[Reader], Awaitable[Sequence[QueueDepth]]]
# Reads further metrics only the database knows (a domain's queues), as ready metric families.
ProbeReader = Callable[[Reader], Awaitable[Sequence[Metric]]]


class DatabaseProbe(Collector):
    """The erasure queue's depth and oldest open request, cached for a few seconds."""

    def __init__(
        self,
        statuses: Sequence[str],
        read_depth: QueueDepthReader,
        read_more: Sequence[ProbeReader] = (),
    ) -> None:
        # Every open status is reported, 0 when it has no request.
        self._statuses = tuple(statuses)
        self._read_depth = read_depth
        self._read_more = tuple(read_more)
        self._more: list[Metric] = []
        self._lock = asyncio.Lock()
        self._read_at: float | None = None
        self._up = False
        self._depth: dict[str, int] = {}
        self._oldest_age = 0.0

    async def refresh(self, database: Database) -> None:
        """Query the database unless the last answer is recent enough."""
        async with self._lock:
            if self._read_at is not None and time.monotonic() - self._read_at < CACHE_SECONDS:
                return
            try:
                async with asyncio.timeout(QUERY_TIMEOUT_SECONDS), database.reader() as reader:
                    rows = await self._read_depth(reader)
                    more = [metric for read in self._read_more for metric in await read(reader)]
            except (ServiceUnavailable, SQLAlchemyError, OSError, TimeoutError) as exc:
                log.warning("metrics: the database did not answer (%s)", type(exc).__name__)
                self._up = False
            else:
                now = utcnow()
                self._up = True
                self._depth = {row.status: row.count for row in rows}
                oldest = min((row.oldest for row in rows), default=None)
                self._oldest_age = (now - oldest).total_seconds() if oldest else 0.0
                self._more = more
            self._read_at = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        """The samples of the last refresh; the queue's only while the database answered."""
        yield GaugeMetricFamily(
            "consentry_database_up",
            "1 when the database answered the last scrape's query (cached for 5 s), else 0.",
            value=1 if self._up else 0,
        )
        if not self._up:
            return
        depth = GaugeMetricFamily(
            "consentry_erasure_queue_depth",
            "Erasure requests not yet completed, by status.",
            labels=("status",),
        )
        for status in self._statuses:
            depth.add_metric((status,), self._depth.get(status, 0))
        yield depth
        yield GaugeMetricFamily(
            "consentry_erasure_queue_oldest_age_seconds",
            "Age of the oldest erasure request not yet completed (0 when there is none).",
            value=self._oldest_age,
        )
        yield from self._more
