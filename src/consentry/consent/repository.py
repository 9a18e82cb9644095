"""Every SQL statement about consent state and history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from consentry.consent.gate import Gate, gate_of
from consentry.consent.models import ConsentRecord, ConsentState
from consentry.db import insert_ignoring_conflicts


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
_LOCK_STATE = _READ_STATE.with_for_update()


def _stored(row: Any) -> StoredConsent | None:
    if row is None or row.revision == 0:
        return None
    return StoredConsent(**row._mapping)


async def get_state(connection: AsyncConnection, subject_id: str) -> StoredConsent | None:
    """The subject's recorded consent, or None when it has recorded no choice."""
    result = await connection.execute(_READ_STATE, {"subject_id": subject_id})
    return _stored(result.one_or_none())


async def lock_state(session: AsyncSession, subject_id: str) -> StoredConsent | None:
    """Take the subject's write lock for this transaction, then read its recorded consent.

    The state row is locked with FOR UPDATE. A subject without one gets a placeholder row
    (revision 0) first, so there is always a row to lock: concurrent first writers queue on its
    primary key, and the placeholder never outlives the transaction, which either records a
    choice or rolls back. On SQLite, BEGIN IMMEDIATE has already excluded every other writer.
    """
    key = {"subject_id": subject_id}
    row = (await session.execute(_LOCK_STATE, key)).one_or_none()
    if row is None:
        dialect = session.get_bind().dialect.name
        placeholder = insert_ignoring_conflicts(dialect, ConsentState).values(
            subject_id=subject_id, revision=0, categories={}
        )
        await session.execute(placeholder)
        row = (await session.execute(_LOCK_STATE, key)).one_or_none()
    return _stored(row)


async def save_state(session: AsyncSession, subject_id: str, state: StoredConsent) -> None:
    """Replace the subject's state row (its placeholder included) with `state`."""
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
    await session.execute(
        update(ConsentState).where(ConsentState.subject_id == subject_id).values(values)
    )


async def append_record(session: AsyncSession, record: dict[str, Any]) -> None:
    """Append one history record."""
    await session.execute(insert(ConsentRecord).values(record))


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
_SHARE_GATES = """
SELECT subject_id, categories::text
FROM consent_states
WHERE subject_id = ANY($1::text[]) AND revision > 0
ORDER BY subject_id
FOR SHARE
"""
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
    return {row[0]: gate_of(row[1]) for row in rows}


async def read_gates(session: AsyncSession, subjects: list[str]) -> dict[str, Gate]:
    """The gates of `subjects` with a recorded choice (SQLite: the write lock is already held)."""
    result = await session.execute(_READ_GATES, {"subjects": subjects})
    return {subject_id: gate_of(categories) for subject_id, categories in result}
