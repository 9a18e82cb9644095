"""Retention: analytics past their time become daily counts; expired legal proof is purged.

Learner activity (`necessary` events) is never touched here: it goes only with its account.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from consentry.db import Database, format_timestamp
from consentry.privacy import fanout
from consentry.privacy import retention_repository as repository
from consentry.privacy.retention_repository import Gone, Group

# Events per transaction: a large backlog is worked off in many short transactions rather
# than one that holds its locks (and, on SQLite, every writer) for minutes.
CHUNK_EVENTS = 10_000


@dataclass(frozen=True)
class RetentionReport:
    """What one retention pass did, or with `dry_run` what it would have done."""

    events_aggregated: int
    aggregate_rows: int
    events_deleted: int
    records_purged: int
    cutoff: datetime
    dry_run: bool
    # Erasure requests still waiting for systems 90 days after Consentry's own part, ended.
    erasures_ended: int = 0

    def describe(self) -> str:
        """One paragraph for people: the cutoff and every number."""
        head = f"Retention pass, cutoff {format_timestamp(self.cutoff)}"
        events = f"{self.events_aggregated} analytics events older than the cutoff"
        rows = f"{self.aggregate_rows} daily aggregate rows"
        records = f"{self.records_purged} pseudonymised consent records past their retention date"
        ended = f"{self.erasures_ended} erasure requests still waiting for systems after 90 days"
        if self.dry_run:
            return (
                f"Dry run, nothing changed. {head}: would roll {events} into {rows} and delete "
                f"{self.events_deleted} events; would purge {records}; would end {ended}."
            )
        return (
            f"{head}: rolled {events} into {rows} and deleted {self.events_deleted} events; "
            f"purged {records}; ended {ended}. Learner activity (necessary events) is kept."
        )


def retention_cutoff(now: datetime, retention_days: int) -> datetime:
    """The instant before which analytics events are past retention."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    return now - timedelta(days=retention_days)


def daily_counts(events: Iterable[Gone]) -> Counter[Group]:
    """How many of the events fall on each (UTC day, category, name)."""
    return Counter(
        (occurred_at.astimezone(UTC).date(), category, name)
        for category, name, occurred_at in events
    )


async def run_retention(
    database: Database,
    *,
    now: datetime,
    retention_days: int,
    dry_run: bool = False,
    chunk_events: int = CHUNK_EVENTS,
) -> RetentionReport:
    """One retention pass as of `now`; with `dry_run`, the same numbers and no change."""
    cutoff = retention_cutoff(now, retention_days)
    if chunk_events < 1:
        raise ValueError("chunk_events must be at least 1")
    if dry_run:
        return await _preview(database, now=now, cutoff=cutoff)
    events, groups = await _roll_up(database, cutoff=cutoff, chunk_events=chunk_events)
    async with database.unit_of_work() as uow:
        await repository.take_turn(uow)
        purged = await repository.purge_records(uow, now=now)
    ended = await fanout.end_stale(database, now)
    return RetentionReport(
        events_aggregated=events,
        aggregate_rows=groups,
        events_deleted=events,
        records_purged=purged,
        cutoff=cutoff,
        dry_run=False,
        erasures_ended=ended,
    )


async def _roll_up(database: Database, *, cutoff: datetime, chunk_events: int) -> tuple[int, int]:
    """Count and delete the old analytics, chunk by chunk; (events, aggregate rows touched)."""
    events = 0
    groups: set[Group] = set()
    lower: datetime | None = None
    while lower != cutoff:
        # Counted from what the delete returned, in its transaction: an event is counted
        # exactly when it goes, so a crash or a concurrent pass can never count it twice.
        async with database.unit_of_work() as uow:
            await repository.take_turn(uow)
            upper = await repository.chunk_end(uow, lower=lower, cutoff=cutoff, size=chunk_events)
            counts = daily_counts(await repository.delete_analytics(uow, lower=lower, upper=upper))
            await repository.add_counts(uow, counts)
        events += counts.total()
        groups.update(counts)
        lower = upper
    return events, len(groups)


async def _preview(database: Database, *, now: datetime, cutoff: datetime) -> RetentionReport:
    """The numbers a real pass at `now` would report, read without changing anything."""
    async with database.snapshot() as reader:
        events, groups = await repository.count_old_analytics(reader, cutoff=cutoff)
        purged = await repository.count_expired_records(reader, now=now)
        ended = await fanout.count_stale(reader, now)
    return RetentionReport(
        events_aggregated=events,
        aggregate_rows=groups,
        events_deleted=events,
        records_purged=purged,
        cutoff=cutoff,
        dry_run=True,
        erasures_ended=ended,
    )
