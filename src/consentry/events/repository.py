"""Every SQL statement about events: the gate a batch is judged by, its insert, and the reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import bindparam, select, text, tuple_

from consentry import subject_locks
from consentry.consent import repository as consent_repository
from consentry.consent.gate import Gate
from consentry.db import Reader, UnitOfWork, UTCDateTime
from consentry.db import Row as StoredRow
from consentry.events.models import Event

# (subject_id, event_id): an event's identity.
Key = tuple[str, str]


class NewEvent(NamedTuple):
    """An event to store, in the order of the table's columns, with both JSON documents already
    serialized."""

    subject_id: str
    event_id: str
    category: str
    name: str
    occurred_at: datetime
    received_at: datetime
    properties: str
    context: str

    @property
    def key(self) -> Key:
        """What makes it the same event: its subject and its id."""
        return (self.subject_id, self.event_id)


async def share_gates(uow: UnitOfWork, subjects: list[str], hashes: list[str]) -> dict[str, Gate]:
    """The gates of `subjects` (with `hashes`, their keyed hashes), held until the transaction ends.

    The erasure locks come first: no erasure of these subjects can run until the batch commits,
    and one that committed before is seen by the statements that follow. Then the consent rows
    are share-locked, which keeps a withdrawal from interleaving with the batch: a writer needs
    the row FOR UPDATE, so it waits until the batch that read the grant has committed its
    events, and a batch that comes second waits for the withdrawal and reads it (READ COMMITTED
    re-reads a row whose lock it waited for). Subjects without a committed row have no grant to
    withdraw; their events are judged by the defaults. Rows are locked in subject order, so two
    batches never wait on each other's share locks. On SQLite the batch is the only writer.
    """
    await subject_locks.share(uow, subjects)
    return await consent_repository.read_gates(uow, subjects, hashes, share_lock=True)


# SQLite: text with typed timestamps, so the JSON columns take the serialized documents as
# they are.
_INSERT_SQLITE = text(
    "INSERT INTO events (subject_id, event_id, category, name, occurred_at, received_at,"
    " properties, context) VALUES (:subject_id, :event_id, :category, :name, :occurred_at,"
    " :received_at, :properties, :context)"
).bindparams(
    bindparam("occurred_at", type_=UTCDateTime()), bindparam("received_at", type_=UTCDateTime())
)


async def store(uow: UnitOfWork, rows: list[NewEvent]) -> set[Key]:
    """Insert the rows whose key is not stored yet, waiting out concurrent writers; the keys
    inserted.

    PostgreSQL takes them all in one statement that skips stored keys (a retry, or a concurrent
    writer). COPY is no faster for a batch of this size, and since it fails on the first stored
    key it needed a savepoint around it: two more round trips per batch. SQLite's lone writer
    checks first, then inserts.
    """
    if not rows:
        return set()
    if uow.dialect == "postgresql":
        batch = orjson.dumps([_pg_document(row) for row in rows]).decode()
        inserted = await uow.pg_rows(_INSERT_NEW_PG, batch)
        return {(row["subject_id"], row["event_id"]) for row in inserted}
    # The lone writer holds the lock: nothing can be stored between this check and the insert.
    keys = [row.key for row in rows]
    found = await uow.all(_STORED_SQLITE, {"keys": keys})
    stored = {(row["subject_id"], row["event_id"]) for row in found}
    new = [row for row in rows if row.key not in stored]
    await uow.execute_many(_INSERT_SQLITE, [row._asdict() for row in new])
    return {row.key for row in new}


def _pg_document(row: NewEvent) -> dict[str, Any]:
    # The documents are JSON already: embedded as they are, not as strings.
    return {
        "subject_id": row.subject_id,
        "event_id": row.event_id,
        "category": row.category,
        "name": row.name,
        "occurred_at": row.occurred_at,
        "received_at": row.received_at,
        "properties": orjson.Fragment(row.properties),
        "context": orjson.Fragment(row.context),
    }


# PostgreSQL: the rows as one JSON array; a key stored before, or by a concurrent transaction
# that commits first, is skipped rather than failing the statement. One text is far cheaper to
# send than a column array each, which the driver encoded value by value (the documents through
# a Python call each): 165 us of the driver's time for a batch of 80 events, against 400.
_INSERT_NEW_PG = """
INSERT INTO events (subject_id, event_id, category, name, occurred_at, received_at, properties,
                    context)
SELECT subject_id, event_id, category, name, occurred_at, received_at, properties, context
FROM json_to_recordset($1::text::json) AS new (subject_id text, event_id text, category text,
                                               name text, occurred_at timestamptz,
                                               received_at timestamptz, properties jsonb,
                                               context jsonb)
ON CONFLICT DO NOTHING
RETURNING subject_id, event_id
"""
_STORED_SQLITE = select(Event.subject_id, Event.event_id).where(
    tuple_(Event.subject_id, Event.event_id).in_(bindparam("keys", expanding=True))
)


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
    reader: Reader,
    subject_id: str,
    *,
    category: str | None,
    since: datetime | None,
    until: datetime | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[StoredRow]:
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
    return await reader.all(query)
