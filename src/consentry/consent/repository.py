"""Every SQL statement about consent state and history."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg
import orjson
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from consentry.consent.gate import ERASED, Gate, gate_of
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


# The fields of StoredConsent.
STATE_COLUMNS = (
    ConsentState.revision,
    ConsentState.categories,
    ConsentState.policy_version,
    ConsentState.region,
    ConsentState.language,
    ConsentState.updated_at,
    ConsentState.receipt_id,
    ConsentState.last_hash,
)
# The hot statements are built once: building a select per call costs as much as running it.
_READ_STATE = select(*STATE_COLUMNS).where(ConsentState.subject_id == bindparam("subject_id"))


_IS_ERASED = select(Tombstone.subject_hash).where(Tombstone.subject_hash == bindparam("hash"))


# Every committed consent change is announced here with the subject id (see consent/cache.py).
CHANGES_CHANNEL = "consentry_consent"

# Erasure and every writer of a subject's data exclude each other with PostgreSQL advisory locks
# on one of a few buckets of subjects: writers share their buckets' locks, erasure takes its
# bucket's alone. Row locks cannot do it, since a subject with no consent row has none to lock,
# and a writer that committed after an erasure would leave the erased id behind. Few buckets
# keep a batch of 100 subjects at a few locks; an erasure pauses a sixteenth of the writers
# for the milliseconds it takes.
ERASURE_LOCK_SPACE = 0x436F6E73
ERASURE_BUCKETS = 16
_SHARE_ERASURE_LOCKS_PG = """
SELECT pg_advisory_xact_lock_shared($1, bucket) FROM unnest($2::int[]) AS bucket
"""


def erasure_bucket(subject_id: str) -> int:
    """The advisory-lock bucket of a subject."""
    return zlib.crc32(subject_id.encode()) % ERASURE_BUCKETS


async def share_erasure_locks(connection: asyncpg.Connection, subject_ids: list[str]) -> None:
    """Keep erasure of these subjects out until the transaction ends (in bucket order)."""
    buckets = sorted({erasure_bucket(subject_id) for subject_id in subject_ids})
    await connection.execute(_SHARE_ERASURE_LOCKS_PG, ERASURE_LOCK_SPACE, buckets)


# The same read for the driver's own pool on PostgreSQL, the hottest statement of the service,
# with the tombstone in the same round trip (its row has a NULL revision).
_STATE_COLUMNS_PG = """revision, categories::text AS categories, policy_version, region,
       language, updated_at, receipt_id, last_hash"""
_READ_STATE_PG = f"""
SELECT {_STATE_COLUMNS_PG}
FROM consent_states
WHERE subject_id = $1
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM tombstones WHERE subject_hash = $2
"""  # noqa: S608  (a constant column list)


def _stored(row: Any) -> StoredConsent | None:
    if row is None or row.revision == 0:
        return None
    return StoredConsent(**row._mapping)


def _from_driver(record: Mapping[str, Any] | None) -> StoredConsent | None:
    if record is None or record["revision"] == 0:
        return None
    return StoredConsent(**{**record, "categories": orjson.loads(record["categories"])})


async def get_state(
    database: Database, subject_id: str, subject_hash: str
) -> tuple[StoredConsent | None, bool]:
    """The subject's recorded consent (None when it has recorded no choice), and if it is erased."""
    if database.pool is not None:
        async with database.driver() as connection:
            records = await connection.fetch(_READ_STATE_PG, subject_id, subject_hash)
        if any(record["revision"] is None for record in records):
            return None, True
        return _from_driver(records[0] if records else None), False
    async with database.reader() as connection:
        if await connection.scalar(_IS_ERASED, {"hash": subject_hash}) is not None:
            return None, True
        result = await connection.execute(_READ_STATE, {"subject_id": subject_id})
        return _stored(result.one_or_none()), False


class ConsentStore(Protocol):
    """One consent write's transaction: take the subject's lock, then record a change."""

    async def lock(self, subject_id: str, subject_hash: str) -> tuple[StoredConsent | None, bool]:
        """Take the subject's write lock for this transaction, then read its recorded consent
        and whether it was erased.

        On PostgreSQL the subject's erasure lock is shared first (see ERASURE_LOCK_SPACE), so no
        erasure can run until the write commits. The state row is locked with FOR UPDATE. A
        subject without one gets a placeholder row (revision 0) first, so there is always a row
        to lock: concurrent first writers queue on its primary key, and the placeholder never
        outlives the transaction, which either records a choice or rolls back. On SQLite, BEGIN
        IMMEDIATE already excluded every other writer.
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


# Run after the erasure lock is held, so its snapshot sees any erasure that committed before.
_LOCK_STATE_PG = f"""
SELECT {_STATE_COLUMNS_PG},
       EXISTS (SELECT 1 FROM tombstones WHERE subject_hash = $2) AS erased
FROM consent_states
WHERE subject_id = $1
FOR UPDATE
"""  # noqa: S608  (a constant column list)
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

    async def lock(self, subject_id: str, subject_hash: str) -> tuple[StoredConsent | None, bool]:
        await share_erasure_locks(self._connection, [subject_id])
        record = await self._connection.fetchrow(_LOCK_STATE_PG, subject_id, subject_hash)
        if record is None:
            await self._connection.execute(_PLACEHOLDER_PG, subject_id)
            record = await self._connection.fetchrow(_LOCK_STATE_PG, subject_id, subject_hash)
        if record["erased"]:
            return None, True
        fields = {key: value for key, value in record.items() if key != "erased"}
        return _from_driver(fields), False

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

    async def lock(self, subject_id: str, subject_hash: str) -> tuple[StoredConsent | None, bool]:
        if await self._session.scalar(_IS_ERASED, {"hash": subject_hash}) is not None:
            return None, True
        key = {"subject_id": subject_id}
        row = (await self._session.execute(_READ_STATE, key)).one_or_none()
        if row is None:
            placeholder = insert_ignoring_conflicts("sqlite", ConsentState).values(
                subject_id=subject_id, revision=0, categories={}
            )
            await self._session.execute(placeholder)
            row = (await self._session.execute(_READ_STATE, key)).one_or_none()
        return _stored(row), False

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


# A history record as clients see it (with `seq`, the position its cursor uses).
RECORD_COLUMNS = (
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
    query = select(*RECORD_COLUMNS).where(ConsentRecord.subject_id == subject_id)
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
_NO_GRANTS = ", ".join("NULL" for _ in OPTIONAL_CATEGORIES)
# The share-locked grants and the tombstones of a batch's subjects in one round trip; the
# tombstone rows (`erased`) carry no grants.
_SHARE_GATES = f"""
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


async def share_gates(
    connection: asyncpg.Connection, subjects: list[str], hashes: list[str]
) -> dict[str, Gate]:
    """The gates of `subjects` (with `hashes`, their keyed hashes), held until the transaction ends.

    The erasure locks come first: no erasure of these subjects can run until the batch commits,
    and one that committed before is seen by the statements that follow. Then the consent rows
    are share-locked, which keeps a withdrawal from interleaving with the batch: a writer needs
    the row FOR UPDATE, so it waits until the batch that read the grant has committed its
    events, and a batch that comes second waits for the withdrawal and reads it (READ COMMITTED
    re-reads a row whose lock it waited for). Subjects without a committed row have no grant to
    withdraw; their events are judged by the defaults. Rows are locked in subject order, so two
    batches never wait on each other's share locks.
    """
    await share_erasure_locks(connection, subjects)
    gates: dict[str, Gate] = {}
    for row in await connection.fetch(_SHARE_GATES, subjects, hashes):
        if row["erased"]:
            gates[row[0]] = ERASED
        elif row[0] not in gates:  # a tombstone wins, whatever order the rows come in
            since = zip(OPTIONAL_CATEGORIES, row[1:-1], strict=True)
            gates[row[0]] = Gate(granted_since={c: at for c, at in since if at is not None})
    return gates


_READ_GATES = select(ConsentState.subject_id, ConsentState.categories).where(
    ConsentState.subject_id.in_(bindparam("subjects", expanding=True)),
    ConsentState.revision > 0,
)
_ERASED_AMONG = select(Tombstone.subject_hash).where(
    Tombstone.subject_hash.in_(bindparam("hashes", expanding=True))
)


async def read_gates(
    session: AsyncSession, subjects: list[str], hashes: list[str]
) -> dict[str, Gate]:
    """The gates of `subjects` (SQLite: the write lock is already held)."""
    result = await session.execute(_READ_GATES, {"subjects": subjects})
    gates = {subject_id: gate_of(categories) for subject_id, categories in result}
    erased = set(await session.scalars(_ERASED_AMONG, {"hashes": hashes}))
    for subject_id, subject_hash in zip(subjects, hashes, strict=True):
        if subject_hash in erased:
            gates[subject_id] = ERASED
    return gates


async def is_erased(database: Database, subject_hash: str) -> bool:
    """Whether the subject with this keyed hash was erased."""
    async with database.reader() as connection:
        found = await connection.scalar(_IS_ERASED, {"hash": subject_hash})
    return found is not None
