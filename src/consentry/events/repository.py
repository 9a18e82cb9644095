"""Every SQL statement about events: the gate a batch is judged by, its insert, and the reads."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, select, text, tuple_

from consentry import subject_locks
from consentry.consent.gate import ERASED, Gate, gate_of
from consentry.consent.models import ConsentState, Tombstone
from consentry.db import Reader, UniqueViolation, UnitOfWork, UTCDateTime
from consentry.db import Row as StoredRow
from consentry.events.models import Event
from consentry.policy import OPTIONAL_CATEGORIES

# (subject_id, event_id): an event's identity.
Key = tuple[str, str]


class NewEvent(NamedTuple):
    """An event to store, in the order of the table's columns (COPY takes it as it is), with
    both JSON documents already serialized."""

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


COLUMNS = NewEvent._fields


# For each optional category, when its grant in force began (NULL when it is not granted):
# PostgreSQL takes the JSON apart and the driver decodes timestamps, cheaper than doing it here.
_GRANTED_SINCE = ", ".join(
    f"CASE WHEN (categories -> '{c}' ->> 'granted')::boolean"
    f" THEN (categories -> '{c}' ->> 'updated_at')::timestamptz END AS {c}"
    for c in OPTIONAL_CATEGORIES
)
_NO_GRANTS = ", ".join(f"NULL AS {c}" for c in OPTIONAL_CATEGORIES)
# PostgreSQL: the share-locked grants and the tombstones of a batch's subjects in one round
# trip; the tombstone rows (`erased`) carry no grants.
_SHARE_GATES_PG = f"""
WITH locked AS (
    SELECT subject_id, {_GRANTED_SINCE}
    FROM consent_states
    WHERE subject_id = ANY($1::text[]) AND revision > 0
    ORDER BY subject_id
    FOR SHARE
)
SELECT locked.*, false AS erased FROM locked
UNION ALL
SELECT s.subject_id, {_NO_GRANTS}, true
FROM unnest($1::text[], $2::text[]) AS s(subject_id, subject_hash)
WHERE EXISTS (SELECT 1 FROM tombstones AS t WHERE t.subject_hash = s.subject_hash)
"""  # noqa: S608  (built from the policy's fixed category ids, never from input)
# SQLite: the same two reads as two statements (the write lock is already held).
_READ_GATES = select(ConsentState.subject_id, ConsentState.categories).where(
    ConsentState.subject_id.in_(bindparam("subjects", expanding=True)),
    ConsentState.revision > 0,
)
_ERASED_AMONG = select(Tombstone.subject_hash).where(
    Tombstone.subject_hash.in_(bindparam("hashes", expanding=True))
)


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
    gates: dict[str, Gate] = {}
    if uow.dialect == "postgresql":
        for row in await uow.pg_rows(_SHARE_GATES_PG, subjects, hashes):
            if row["erased"]:
                gates[row["subject_id"]] = ERASED
            elif row["subject_id"] not in gates:  # a tombstone wins, in whatever order they come
                since = {c: row[c] for c in OPTIONAL_CATEGORIES if row[c] is not None}
                gates[row["subject_id"]] = Gate(granted_since=since)
        return gates
    for row in await uow.all(_READ_GATES, {"subjects": subjects}):
        gates[row["subject_id"]] = gate_of(row["categories"])
    erased = {row["subject_hash"] for row in await uow.all(_ERASED_AMONG, {"hashes": hashes})}
    for subject_id, subject_hash in zip(subjects, hashes, strict=True):
        if subject_hash in erased:
            gates[subject_id] = ERASED
    return gates


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
    """Insert the rows whose key is not stored yet; the keys inserted.

    PostgreSQL first copies them all at once (COPY, no statement per event) inside a savepoint,
    and only when a key was stored before (a retry, or a concurrent batch) inserts them again
    skipping stored keys. SQLite's lone writer checks first, then inserts.
    """
    if not rows:
        return set()
    if uow.dialect == "postgresql":
        try:
            async with uow.savepoint():
                await uow.pg_copy("events", COLUMNS, rows)
        except UniqueViolation:
            return await _insert_new(uow, rows)
        return {row.key for row in rows}
    return await _insert_new(uow, rows)


# PostgreSQL: slower than COPY, but it cannot fail on a key a concurrent batch stored first.
_INSERT_NEW_PG = """
INSERT INTO events (subject_id, event_id, category, name, occurred_at, received_at, properties,
                    context)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                     $6::timestamptz[], $7::jsonb[], $8::jsonb[])
ON CONFLICT DO NOTHING
RETURNING subject_id, event_id
"""
_STORED_SQLITE = select(Event.subject_id, Event.event_id).where(
    tuple_(Event.subject_id, Event.event_id).in_(bindparam("keys", expanding=True))
)


async def _insert_new(uow: UnitOfWork, rows: list[NewEvent]) -> set[Key]:
    """Insert the rows not stored yet, waiting out concurrent writers; the keys inserted."""
    if uow.dialect == "postgresql":
        columns = [list(column) for column in zip(*rows, strict=True)]
        inserted = await uow.pg_rows(_INSERT_NEW_PG, *columns)
        return {(row["subject_id"], row["event_id"]) for row in inserted}
    # The lone writer holds the lock: nothing can be stored between this check and the insert.
    keys = [row.key for row in rows]
    found = await uow.all(_STORED_SQLITE, {"keys": keys})
    stored = {(row["subject_id"], row["event_id"]) for row in found}
    new = [row for row in rows if row.key not in stored]
    await uow.execute_many(_INSERT_SQLITE, [row._asdict() for row in new])
    return {row.key for row in new}


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
