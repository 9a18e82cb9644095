"""Every SQL statement of retention: roll old analytics into daily counts, purge expired proof."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Date, Table, cast, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from consentry.consent.models import ConsentRecord
from consentry.db import Base, Dialect, Reader, UnitOfWork
from consentry.events.models import Event, EventAggregate
from consentry.policy.rules import REQUIRED_CATEGORY


def _table(model: type[Base]) -> Table:
    """A model's table as Core sees it: these statements need no ORM bookkeeping."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


EVENTS = _table(Event)
AGGREGATES = _table(EventAggregate)
RECORDS = _table(ConsentRecord)

# (day in UTC, category, name): the key of one aggregate row.
Group = tuple[date, str, str]
# (category, name, occurred_at) of one deleted event.
Gone = tuple[str, str, datetime]

# Any constant shared by every replica: passes on PostgreSQL take their chunks in turn.
_RETENTION_LOCK = 0x636F6E73_72657431  # "consret1"
# The finest step of both databases' timestamps.
_TICK = timedelta(microseconds=1)


async def take_turn(uow: UnitOfWork) -> None:
    """Wait for any other pass's transaction to end (PostgreSQL; SQLite has one writer)."""
    if uow.dialect == "postgresql":
        # Two passes deleting the same rows in different orders could deadlock; the lock
        # ends with the transaction.
        await uow.execute(select(func.pg_advisory_xact_lock(_RETENTION_LOCK)))


def _old_analytics(lower: datetime | None, upper: datetime) -> list[ColumnElement[bool]]:
    """Analytics events that occurred in [lower, upper); no lower bound when it is None."""
    where = [EVENTS.c.category != REQUIRED_CATEGORY, EVENTS.c.occurred_at < upper]
    if lower is not None:
        where.append(EVENTS.c.occurred_at >= lower)
    return where


async def chunk_end(
    uow: UnitOfWork, *, lower: datetime | None, cutoff: datetime, size: int
) -> datetime:
    """Where the next chunk of about `size` old analytics events from `lower` ends (exclusive)."""
    nth = (
        select(EVENTS.c.occurred_at)
        .where(*_old_analytics(lower, cutoff))
        .order_by(EVENTS.c.occurred_at)
        .offset(size - 1)
        .limit(1)
    )
    last: datetime | None = await uow.scalar(nth)
    # Just past the size-th event, so its ties join it: a chunk is never empty and ends.
    return cutoff if last is None else min(last + _TICK, cutoff)


async def delete_analytics(
    uow: UnitOfWork, *, lower: datetime | None, upper: datetime
) -> list[Gone]:
    """Delete the analytics events in [lower, upper); what was actually deleted."""
    statement = (
        delete(EVENTS)
        .where(*_old_analytics(lower, upper))
        .returning(EVENTS.c.category, EVENTS.c.name, EVENTS.c.occurred_at)
    )
    rows = await uow.all(statement)
    return [(row["category"], row["name"], row["occurred_at"]) for row in rows]


async def add_counts(uow: UnitOfWork, counts: Mapping[Group, int]) -> None:
    """Add each count to its aggregate row, creating the rows that do not exist yet."""
    if not counts:
        return
    # The same upsert, spelled by each dialect's own insert.
    insert = pg_insert if uow.dialect == "postgresql" else sqlite_insert
    statement = insert(AGGREGATES)
    statement = statement.on_conflict_do_update(
        index_elements=[AGGREGATES.c.day, AGGREGATES.c.category, AGGREGATES.c.name],
        set_={"count": AGGREGATES.c["count"] + statement.excluded["count"]},
    )
    # In key order, so concurrent writers of the same rows lock them in the same order.
    rows = [
        {"day": day, "category": category, "name": name, "count": count}
        for (day, category, name), count in sorted(counts.items())
    ]
    await uow.execute_many(statement, rows)


def _utc_day(dialect: Dialect) -> ColumnElement[Any]:
    """The UTC calendar day of an event's `occurred_at`, in the database's own terms."""
    if dialect == "postgresql":
        return cast(func.timezone("UTC", EVENTS.c.occurred_at), Date)
    # SQLite holds UTC text ("YYYY-MM-DD HH:MM:SS.ffffff"); date() keeps its first ten places.
    return func.date(EVENTS.c.occurred_at)


async def count_old_analytics(reader: Reader, *, cutoff: datetime) -> tuple[int, int]:
    """(events, day/category/name groups) of the analytics events older than `cutoff`."""
    day = _utc_day(reader.dialect).label("day")
    groups = (
        select(day, EVENTS.c.category, EVENTS.c.name, func.count().label("events"))
        .where(*_old_analytics(None, cutoff))
        .group_by(day, EVENTS.c.category, EVENTS.c.name)
        .subquery()
    )
    totals = select(
        func.coalesce(func.sum(groups.c.events), 0).label("events"), func.count().label("rows")
    )
    row = await reader.one_or_none(totals)
    assert row is not None  # an aggregate always has its one row
    return int(row["events"]), int(row["rows"])


def _expired(now: datetime) -> Sequence[ColumnElement[bool]]:
    """Pseudonymised consent records whose retention ended before `now`."""
    return [RECORDS.c.retained_until.is_not(None), RECORDS.c.retained_until < now]


async def purge_records(uow: UnitOfWork, *, now: datetime) -> int:
    """Delete the expired consent records; how many went."""
    return await uow.execute(delete(RECORDS).where(*_expired(now)))


async def count_expired_records(reader: Reader, *, now: datetime) -> int:
    """How many consent records `purge_records` would delete."""
    statement = select(func.count()).select_from(RECORDS).where(*_expired(now))
    return int(await reader.scalar(statement))
