"""The webhook deliveries as Prometheus metrics, read from the database when scraped."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.core import GaugeMetricFamily, Metric

from consentry.db import Reader, utcnow
from consentry.systems import repository

_STATUSES = ("pending", "failed", "exhausted")


async def delivery_metrics(reader: Reader) -> Sequence[Metric]:
    """Per system: deliveries waiting, failing and exhausted, the oldest waiting, and disabled."""
    depth = await repository.depth_by_system(reader)
    disabled = set(await repository.disabled_systems(reader))
    now = utcnow()
    counts = GaugeMetricFamily(
        "consentry_webhook_deliveries",
        "Messages not yet delivered to each system: `pending` (not yet attempted), `failed` (an "
        "attempt failed, another is scheduled) and `exhausted` (no attempt left).",
        labels=("system", "status"),
    )
    oldest = GaugeMetricFamily(
        "consentry_webhook_oldest_pending_age_seconds",
        "Age of each system's oldest message still to be delivered (0 when there is none).",
        labels=("system",),
    )
    off = GaugeMetricFamily(
        "consentry_webhook_system_disabled",
        "1 while a system's deliveries are held after it answered 410 Gone, else 0.",
        labels=("system",),
    )
    for system in depth:
        for status in _STATUSES:
            counts.add_metric((system.system_id, status), system.counts.get(status, 0))
        age = (now - system.oldest).total_seconds() if system.oldest is not None else 0.0
        oldest.add_metric((system.system_id,), age)
        off.add_metric((system.system_id,), 1 if system.system_id in disabled else 0)
    return [counts, oldest, off]
