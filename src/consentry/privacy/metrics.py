"""Erasures across the systems as Prometheus metrics, read from the database when scraped."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from prometheus_client.core import GaugeMetricFamily, Metric

from consentry.db import Reader, utcnow
from consentry.privacy import fanout, repository
from consentry.systems import outbox


async def erasure_metrics(reader: Reader) -> Sequence[Metric]:
    """Overdue requests, and per system the requests waiting for it (and those overdue)."""
    now = utcnow()
    overdue = GaugeMetricFamily(
        "consentry_erasure_overdue_requests",
        "Erasure requests not finished past their due date (30 days after they were made).",
        value=await repository.count_overdue(reader, now),
    )
    waiting = await repository.waiting_entries(reader)
    keys = [(e.message_id, e.system_id) for e, _ in waiting if e.status == "pending"]
    states = await outbox.delivery_states(reader, keys)
    by_status: Counter[tuple[str, str]] = Counter()
    late: Counter[str] = Counter()
    for entry, due_by in waiting:
        status = fanout.reads(entry, states.get((entry.message_id, entry.system_id)))
        if status in fanout.DONE:
            continue
        by_status[(entry.system_id, status)] += 1
        if due_by < now:
            late[entry.system_id] += 1
    entries = GaugeMetricFamily(
        "consentry_erasure_system_waiting",
        "Erasure requests waiting for each system: `pending` (told, not yet done) or `failed` "
        "(its messages exhausted, or it is disabled, deleted or no longer told of erasures).",
        labels=("system", "status"),
    )
    for (system_id, status), count in sorted(by_status.items()):
        entries.add_metric((system_id, status), count)
    per_system = GaugeMetricFamily(
        "consentry_erasure_system_overdue",
        "Erasure requests past their due date that still wait for each system.",
        labels=("system",),
    )
    for system_id, count in sorted(late.items()):
        per_system.add_metric((system_id,), count)
    return [overdue, entries, per_system]
