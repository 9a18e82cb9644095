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
    """One batch's transaction: read the gates, see what is stored, insert what was accepted."""

    # Whether no other writer can run beside this transaction (SQLite's single writer).
    serialized: bool

    async def gates(self, subjects: list[str]) -> dict[str, Gate]:
        """The gates of the subjects with a recorded choice, held steady until commit."""
        ...

    async def stored(self, keys: list[Key]) -> set[Key]:
        """Which of `keys` are stored already."""
        ...

    async def insert(self, rows: list[Row]) -> None:
        """Insert every row at once; DuplicateEvent if one is stored already."""
        ...


@asynccontextmanager
async def batch_store(database: Database) -> AsyncIterator[BatchStore]:
    """A transaction for one batch, committed when the block ends without error."""
    if database.pool is not None:
        async with database.pool.acquire() as connection, connection.transaction():
            yield _PostgresBatch(connection)
    else:
        async with database.sessions() as session, session.begin():
            yield _SQLiteBatch(session)


_STORED_PG = """
SELECT e.subject_id, e.event_id
FROM events AS e
JOIN unnest($1::text[], $2::text[]) AS k(subject_id, event_id)
  ON e.subject_id = k.subject_id AND e.event_id = k.event_id
"""


class _PostgresBatch:
    """COPY through the driver, straight into the table: no statement per event."""

    serialized = False

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def gates(self, subjects: list[str]) -> dict[str, Gate]:
        return await consent.share_gates(self._connection, subjects)

    async def stored(self, keys: list[Key]) -> set[Key]:
        if not keys:
            return set()
        subjects, event_ids = zip(*keys, strict=True)
        rows = await self._connection.fetch(_STORED_PG, list(subjects), list(event_ids))
        return {(row[0], row[1]) for row in rows}

    async def insert(self, rows: list[Row]) -> None:
        if not rows:
            return
        try:
            await self._connection.copy_records_to_table("events", records=rows, columns=COLUMNS)
        except asyncpg.UniqueViolationError:
            raise DuplicateEvent from None


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

    serialized = True

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def gates(self, subjects: list[str]) -> dict[str, Gate]:
        return await consent.read_gates(self._session, subjects)

    async def stored(self, keys: list[Key]) -> set[Key]:
        if not keys:
            return set()
        result = await self._session.execute(_STORED_SQLITE, {"keys": keys})
        return {(subject_id, event_id) for subject_id, event_id in result}

    async def insert(self, rows: list[Row]) -> None:
        if rows:
            values = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
            await self._session.execute(_INSERT_SQLITE, values)


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
    query = select(
        Event.event_id,
        Event.subject_id,
        Event.category,
        Event.name,
        Event.occurred_at,
        Event.received_at,
        Event.properties,
        Event.context,
    ).where(Event.subject_id == subject_id)
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
