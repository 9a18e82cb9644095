"""Counts of judged events by outcome, kept in one place for the metrics endpoint to expose."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


class EventCounts:
    """Events judged since the process started, by status and, for rejections, by reason."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, outcomes: Iterable[tuple[str, str]]) -> None:
        """Count `(status, reason)` pairs; `reason` is empty unless the status is `rejected`."""
        self._counts.update(outcomes)

    def snapshot(self) -> dict[tuple[str, str], int]:
        """Every count so far."""
        return dict(self._counts)
