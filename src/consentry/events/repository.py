"""Every SQL statement about events, with the one seam between PostgreSQL's and SQLite's writes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol

import asyncpg
from sqlalchemy import bindparam, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from consentry.consent import repository as consent
from consentry.consent.gate import Gate
from consentry.db import Database, UTCDateTime
from consentry.events.models import Event

# (subject_id, event_id, category, name, occurred_at, received_at, properties, context), with
# both JSON documents already serialized: the order of the columns below.
Row = tuple[str, str, str, str, datetime, datetime, str, str]
COLUMNS = (
    "subject_id",
    "event_id",
    "category",
    "name",
    "occurred_at",
    "received_at",
    "properties",
    "context",
)
Key = tuple[str, str]


class DuplicateEvent(Exception):
    """A concurrent batch stored one of these events first: judge the batch again."""


class BatchStore(Protocol):
    """One batch's transaction: read the gates, then insert what the rule accepted."""

    # Whether `insert` is a bulk copy that fails on a stored key rather than skipping it.
    copies: bool

    async def gates(self, subjects: list[str], hashes: list[str]) -> dict[str, Gate]:
        """The gates of the subjects (with their keyed hashes), held steady until commit."""
        ...

    async def insert(self, rows: list[Row]) -> None:
        """Insert every row at once; DuplicateEvent if one is stored already."""
        ...

    async def insert_new(self, rows: list[Row]) -> set[Key]:
        """Insert the rows not stored yet, waiting out concurrent writers; the keys inserted."""
        ...


@asynccontextmanager
async def batch_store(database: Database) -> AsyncIterator[BatchStore]:
    """A transaction for one batch, committed when the block ends without error."""
    if database.pool is not None:
        async with database.driver() as connection, connection.transaction():
            yield _PostgresBatch(connection)
    else:
        async with database.sessions() as session, session.begin():
            yield _SQLiteBatch(session)


# Slower than COPY, but it cannot fail on a key a concurrent batch stored first.
_INSERT_NEW_PG = """
INSERT INTO events (subject_id, event_id, category, name, occurred_at, received_at, properties,
                    context)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                     $6::timestamptz[], $7::jsonb[], $8::jsonb[])
ON CONFLICT DO NOTHING
RETURNING subject_id, event_id
"""


class _PostgresBatch:
    """COPY through the driver, straight into the table: no statement per event."""

    copies = True

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def gates(self, subjects: list[str], hashes: list[str]) -> dict[str, Gate]:
        return await consent.share_gates(self._connection, subjects, hashes)

    async def insert(self, rows: list[Row]) -> None:
        if not rows:
            return
        try:
            await self._connection.copy_records_to_table("events", records=rows, columns=COLUMNS)
        except asyncpg.UniqueViolationError:
            raise DuplicateEvent from None

    async def insert_new(self, rows: list[Row]) -> set[Key]:
        if not rows:
            return set()
        columns = [list(column) for column in zip(*rows, strict=True)]
        inserted = await self._connection.fetch(_INSERT_NEW_PG, *columns)
        return {(row[0], row[1]) for row in inserted}


_STORED_SQLITE = select(Event.subject_id, Event.event_id).where(
    tuple_(Event.subject_id, Event.event_id).in_(bindparam("keys", expanding=True))
)
# Text with typed timestamps: the JSON columns take the already serialized documents as they are.
_INSERT_SQLITE = text(
    "INSERT INTO events (subject_id, event_id, category, name, occurred_at, received_at,"
    " properties, context) VALUES (:subject_id, :event_id, :category, :name, :occurred_at,"
    " :received_at, :properties, :context)"
).bindparams(
    bindparam("occurred_at", type_=UTCDateTime()), bindparam("received_at", type_=UTCDateTime())
)


class _SQLiteBatch:
    """One executemany under the write lock that BEGIN IMMEDIATE took."""

    copies = False

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def gates(self, subjects: list[str], hashes: list[str]) -> dict[str, Gate]:
        return await consent.read_gates(self._session, subjects, hashes)

    async def _stored(self, keys: list[Key]) -> set[Key]:
        if not keys:
            return set()
        result = await self._session.execute(_STORED_SQLITE, {"keys": keys})
        return {(subject_id, event_id) for subject_id, event_id in result}

    async def insert(self, rows: list[Row]) -> None:
        if rows:
            values = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
            await self._session.execute(_INSERT_SQLITE, values)

    async def insert_new(self, rows: list[Row]) -> set[Key]:
        # The lone writer holds the lock: nothing can be stored between this check and the insert.
        stored = await self._stored([(row[0], row[1]) for row in rows])
        new = [row for row in rows if (row[0], row[1]) not in stored]
        await self.insert(new)
        return {(row[0], row[1]) for row in new}


# A stored event as clients see it.
EVENT_COLUMNS = (
    Event.event_id,
    Event.subject_id,
    Event.category,
    Event.name,
    Event.occurred_at,
    Event.received_at,
    Event.properties,
    Event.context,
)


async def page(
    connection: AsyncConnection,
    subject_id: str,
    *,
    category: str | None,
    since: datetime | None,
    until: datetime | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> Sequence[Any]:
    """Up to `limit` events of the subject, newest first, filtered, after a cursor position."""
    query = select(*EVENT_COLUMNS).where(Event.subject_id == subject_id)
    if category is not None:
        query = query.where(Event.category == category)
    if since is not None:
        query = query.where(Event.occurred_at >= since)
    if until is not None:
        query = query.where(Event.occurred_at < until)
    if before is not None:
        query = query.where(tuple_(Event.occurred_at, Event.event_id) < tuple_(*before))
    query = query.order_by(Event.occurred_at.desc(), Event.event_id.desc()).limit(limit)
    return (await connection.execute(query)).all()
