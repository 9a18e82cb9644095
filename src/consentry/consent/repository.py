"""Every SQL statement about consent state and history."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg
import orjson
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from consentry.consent.gate import Gate, gate_of
from consentry.consent.models import ConsentRecord, ConsentState, Tombstone
from consentry.db import Database, insert_ignoring_conflicts
from consentry.policy import OPTIONAL_CATEGORIES


@dataclass(frozen=True)
class StoredConsent:
    """A subject's recorded consent, as held in its state row."""

    revision: int
    categories: dict[str, Any]
    policy_version: str
    region: str | None
    language: str | None
    updated_at: datetime
    receipt_id: str
    last_hash: str


# The hot statements are built once: building a select per call costs as much as running it.
_READ_STATE = select(
    ConsentState.revision,
    ConsentState.categories,
    ConsentState.policy_version,
    ConsentState.region,
    ConsentState.language,
    ConsentState.updated_at,
    ConsentState.receipt_id,
    ConsentState.last_hash,
).where(ConsentState.subject_id == bindparam("subject_id"))


# Every committed consent change is announced here with the subject id (see consent/cache.py).
CHANGES_CHANNEL = "consentry_consent"

# The same read for the driver's own pool on PostgreSQL, the hottest statement of the service.
_READ_STATE_PG = """
SELECT revision, categories::text AS categories, policy_version, region, language, updated_at,
       receipt_id, last_hash
FROM consent_states
WHERE subject_id = $1
"""


def _stored(row: Any) -> StoredConsent | None:
    if row is None or row.revision == 0:
        return None
    return StoredConsent(**row._mapping)


def _from_driver(record: asyncpg.Record | None) -> StoredConsent | None:
    if record is None or record["revision"] == 0:
        return None
    return StoredConsent(**{**record, "categories": orjson.loads(record["categories"])})


async def get_state(database: Database, subject_id: str) -> StoredConsent | None:
    """The subject's recorded consent, or None when it has recorded no choice."""
    if database.pool is not None:
        return _from_driver(await database.fetchrow(_READ_STATE_PG, subject_id))
    async with database.reader() as connection:
        result = await connection.execute(_READ_STATE, {"subject_id": subject_id})
        return _stored(result.one_or_none())


class ConsentStore(Protocol):
    """One consent write's transaction: take the subject's lock, then record a change."""

    async def lock(self, subject_id: str) -> StoredConsent | None:
        """Take the subject's write lock for this transaction, then read its recorded consent.

        The state row is locked with FOR UPDATE. A subject without one gets a placeholder row
        (revision 0) first, so there is always a row to lock: concurrent first writers queue on
        its primary key, and the placeholder never outlives the transaction, which either
        records a choice or rolls back. On SQLite, BEGIN IMMEDIATE already excluded every other
        writer.
        """
        ...

    async def record(self, subject_id: str, record: dict[str, Any], state: StoredConsent) -> None:
        """Append a history record and replace the subject's state row with `state`."""
        ...


@asynccontextmanager
async def consent_store(database: Database) -> AsyncIterator[ConsentStore]:
    """A transaction for one consent write, committed when the block ends without error."""
    if database.pool is not None:
        async with database.driver() as connection, connection.transaction():
            yield _PostgresStore(connection)
    else:
        async with database.sessions() as session, session.begin():
            yield _SQLiteStore(session)


_LOCK_STATE_PG = _READ_STATE_PG + "FOR UPDATE"
_PLACEHOLDER_PG = """
INSERT INTO consent_states (subject_id, revision, categories) VALUES ($1, 0, '{}')
ON CONFLICT DO NOTHING
"""
# The record, the state and the notice to every replica's read cache (delivered on commit) in
# one round trip: a write is the service's second hottest path.
_RECORD_PG = """
WITH record AS (
    INSERT INTO consent_records (id, subject_id, seq, recorded_at, categories, changed, source,
                                 method, actor, policy_version, region, language, gpc,
                                 user_agent, ip, hash, prev_hash)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
)
UPDATE consent_states
SET revision = $18, categories = $19, policy_version = $10, region = $20, language = $21,
    updated_at = $22, receipt_id = $23, last_hash = $16
FROM (SELECT pg_notify($24, $2)) AS changed
WHERE subject_id = $2
"""


class _PostgresStore:
    """Raw driver statements: through SQLAlchemy, each cost several times its round trip."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def lock(self, subject_id: str) -> StoredConsent | None:
        record = await self._connection.fetchrow(_LOCK_STATE_PG, subject_id)
        if record is None:
            await self._connection.execute(_PLACEHOLDER_PG, subject_id)
            record = await self._connection.fetchrow(_LOCK_STATE_PG, subject_id)
        return _from_driver(record)

    async def record(self, subject_id: str, record: dict[str, Any], state: StoredConsent) -> None:
        await self._connection.execute(
            _RECORD_PG,
            record["id"],
            subject_id,
            record["seq"],
            record["recorded_at"],
            orjson.dumps(record["categories"]).decode(),
            orjson.dumps(record["changed"]).decode(),
            record["source"],
            record["method"],
            record["actor"],
            record["policy_version"],
            record["region"],
            record["language"],
            record["gpc"],
            record["user_agent"],
            record["ip"],
            record["hash"],
            record["prev_hash"],
            state.revision,
            orjson.dumps(state.categories).decode(),
            state.region,
            state.language,
            state.updated_at,
            state.receipt_id,
            CHANGES_CHANNEL,
        )


class _SQLiteStore:
    """Core statements in the session whose BEGIN IMMEDIATE holds the database's write lock."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock(self, subject_id: str) -> StoredConsent | None:
        key = {"subject_id": subject_id}
        row = (await self._session.execute(_READ_STATE, key)).one_or_none()
        if row is None:
            placeholder = insert_ignoring_conflicts("sqlite", ConsentState).values(
                subject_id=subject_id, revision=0, categories={}
            )
            await self._session.execute(placeholder)
            row = (await self._session.execute(_READ_STATE, key)).one_or_none()
        return _stored(row)

    async def record(self, subject_id: str, record: dict[str, Any], state: StoredConsent) -> None:
        await self._session.execute(insert(ConsentRecord).values(record))
        values = {
            "revision": state.revision,
            "categories": state.categories,
            "policy_version": state.policy_version,
            "region": state.region,
            "language": state.language,
            "updated_at": state.updated_at,
            "receipt_id": state.receipt_id,
            "last_hash": state.last_hash,
        }
        await self._session.execute(
            update(ConsentState).where(ConsentState.subject_id == subject_id).values(values)
        )


_RECORD_COLUMNS = (
    ConsentRecord.id,
    ConsentRecord.seq,
    ConsentRecord.recorded_at,
    ConsentRecord.categories,
    ConsentRecord.changed,
    ConsentRecord.source,
    ConsentRecord.method,
    ConsentRecord.actor,
    ConsentRecord.policy_version,
    ConsentRecord.region,
    ConsentRecord.language,
    ConsentRecord.gpc,
    ConsentRecord.user_agent,
    ConsentRecord.ip,
    ConsentRecord.hash,
    ConsentRecord.prev_hash,
)


async def history(
    connection: AsyncConnection, subject_id: str, before_seq: int | None, limit: int
) -> Sequence[Any]:
    """Up to `limit` records of the subject, newest first, older than `before_seq` if given."""
    query = select(*_RECORD_COLUMNS).where(ConsentRecord.subject_id == subject_id)
    if before_seq is not None:
        query = query.where(ConsentRecord.seq < before_seq)
    query = query.order_by(ConsentRecord.seq.desc()).limit(limit)
    return (await connection.execute(query)).all()


# Erasure's tombstones join these two statements, so the events rule stays one query per batch.
# For each optional category, when its grant in force began (NULL when it is not granted):
# PostgreSQL takes the JSON apart and the driver decodes timestamps, cheaper than doing it here.
_GRANTED_SINCE = ", ".join(
    f"CASE WHEN (categories -> '{c}' ->> 'granted')::boolean"
    f" THEN (categories -> '{c}' ->> 'updated_at')::timestamptz END"
    for c in OPTIONAL_CATEGORIES
)
_SHARE_GATES = f"""
SELECT subject_id, {_GRANTED_SINCE}
FROM consent_states
WHERE subject_id = ANY($1::text[]) AND revision > 0
ORDER BY subject_id
FOR SHARE
"""  # noqa: S608  (built from the policy's fixed category ids, never from input)
_READ_GATES = select(ConsentState.subject_id, ConsentState.categories).where(
    ConsentState.subject_id.in_(bindparam("subjects", expanding=True)),
    ConsentState.revision > 0,
)


async def share_gates(connection: asyncpg.Connection, subjects: list[str]) -> dict[str, Gate]:
    """The gates of `subjects` with a recorded choice, share-locked until the transaction ends.

    The share lock is what keeps a withdrawal from interleaving with an event batch: a writer
    needs the row FOR UPDATE, so it waits until the batch that read the grant has committed its
    events, and a batch that comes second waits for the withdrawal and reads it (READ COMMITTED
    re-reads a row whose lock it waited for). Subjects without a committed row have no grant to
    withdraw; their events are judged by the defaults. Rows are locked in subject order, so two
    batches never wait on each other's share locks.
    """
    rows = await connection.fetch(_SHARE_GATES, subjects)
    return {
        row[0]: Gate(
            granted_since={
                category: since
                for category, since in zip(OPTIONAL_CATEGORIES, row[1:], strict=True)
                if since is not None
            }
        )
        for row in rows
    }


async def read_gates(session: AsyncSession, subjects: list[str]) -> dict[str, Gate]:
    """The gates of `subjects` with a recorded choice (SQLite: the write lock is already held)."""
    result = await session.execute(_READ_GATES, {"subjects": subjects})
    return {subject_id: gate_of(categories) for subject_id, categories in result}


_IS_ERASED = select(Tombstone.subject_hash).where(Tombstone.subject_hash == bindparam("hash"))


async def is_erased(database: Database, subject_hash: str) -> bool:
    """Whether the subject with this keyed hash was erased."""
    async with database.reader() as connection:
        found = await connection.scalar(_IS_ERASED, {"hash": subject_hash})
    return found is not None
