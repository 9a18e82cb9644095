"""The service's Prometheus metrics, and their rendering for `GET /metrics`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess

from consentry.db import Database
from consentry.group_commit import GroupCommit
from consentry.observability import multiprocess
from consentry.observability.queue import DatabaseProbe, ProbeReader, QueueDepthReader

# Methods outside this set share one label, so that no client can invent new series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The consent read takes a millisecond or two; the export of a large history, seconds.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The label of the one pool's gauges (the label is kept so dashboards need no change).
POOL = "database"
# How often each process writes its gauges for the process that answers the scrape.
GAUGE_SAMPLE_SECONDS = 1.0
# The directory the workers share, as prometheus-client saw it when imported (just above):
# it keeps this process's values in memory or in that directory's files from then on.
SHARED_DIRECTORY = multiprocess.shared_directory()


class Metrics:
    """The metrics of one process (shared with its sibling workers through prometheus files)."""

    def __init__(
        self,
        erasure_statuses: Sequence[str],
        erasure_queue: QueueDepthReader,
        read_more: Sequence[ProbeReader] = (),
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "consentry_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "consentry_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response.",
            ("method", "route", "status"),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.events = Counter(
            "consentry_events",
            "Events judged, by status and, for rejected ones, reason.",
            ("status", "reason"),
            registry=self.registry,
        )
        # Per process ("liveall": one sample per live worker, labelled with its pid).
        self.pool_in_use = Gauge(
            "consentry_database_connections_in_use",
            "Pooled database connections lent out now, per process and pool.",
            ("pool",),
            multiprocess_mode="liveall",
            registry=self.registry,
        )
        self.pool_max = Gauge(
            "consentry_database_connections_max",
            "The connections a process's pool keeps (its configured size), per process and pool.",
            ("pool",),
            multiprocess_mode="liveall",
            registry=self.registry,
        )
        self.event_batches = Gauge(
            "consentry_event_batches_pending",
            "Event batches a process holds that are not yet committed: waiting for one of its"
            " writers, or in a writer's transaction.",
            multiprocess_mode="liveall",
            registry=self.registry,
        )
        self.probe = DatabaseProbe(erasure_statuses, erasure_queue, read_more)
        self._probe_registry = CollectorRegistry(auto_describe=True)
        self._probe_registry.register(self.probe)
        # (method, route, status) -> the counter's and the histogram's children: labels() takes
        # a lock and builds a key on every call, the hot paths cannot afford that.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its duration; `method` is one of METHODS or "other"."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def sample_gauges(self, database: Database, writer: GroupCommit[Any, Any]) -> None:
        """Set this process's gauges: the pool's own counts, and the event writer's batches."""
        in_use, most = database.connections()
        self.pool_in_use.labels(POOL).set(in_use)
        self.pool_max.labels(POOL).set(most)
        self.event_batches.set(writer.pending)

    async def render(self, database: Database, writer: GroupCommit[Any, Any]) -> bytes:
        """The Prometheus text of every metric, summed over the server's workers."""
        self.sample_gauges(database, writer)
        await self.probe.refresh(database)
        body = await asyncio.to_thread(self._render_shared)
        return body + generate_latest(self._probe_registry)

    def _render_shared(self) -> bytes:
        directory = SHARED_DIRECTORY
        if directory is None:
            return generate_latest(self.registry)
        for pid in multiprocess.dead_pids(directory):
            prometheus_multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry, directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def retire(self) -> None:
        """Drop this process's per-process gauges as it stops."""
        if (directory := SHARED_DIRECTORY) is not None:
            prometheus_multiprocess.mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


async def sample_gauges_forever(
    metrics: Metrics, database: Database, writer: GroupCommit[Any, Any]
) -> None:
    """Keep this process's gauges current for whichever worker answers the scrape."""
    while True:
        metrics.sample_gauges(database, writer)
        await asyncio.sleep(GAUGE_SAMPLE_SECONDS)
