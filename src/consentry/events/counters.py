"""Counts of judged events by outcome, kept in the metrics that `GET /metrics` exposes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from prometheus_client import Counter as MetricCounter


class EventCounts:
    """Events judged since the process started, by status and, for rejections, by reason."""

    def __init__(self, total: MetricCounter) -> None:
        # The metric is the one record of the counts; this only feeds and reads it.
        self._total = total

    def add(self, outcomes: Iterable[tuple[str, str]]) -> None:
        """Count `(status, reason)` pairs; `reason` is empty unless the status is `rejected`."""
        # A batch has up to 1000 events but only a few distinct outcomes: one increment each.
        for (status, reason), count in Counter(outcomes).items():
            self._total.labels(status, reason).inc(count)

    def snapshot(self) -> dict[tuple[str, str], int]:
        """Every count so far (of this process)."""
        return {
            (sample.labels["status"], sample.labels["reason"]): int(sample.value)
            for metric in self._total.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        }
