"""Every SQL statement about erasure requests and about erasing a subject."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from consentry.consent.models import ConsentRecord, ConsentState, Tombstone
from consentry.consent.repository import (
    CHANGES_CHANNEL,
    ERASURE_LOCK_SPACE,
    erasure_bucket,
)
from consentry.db import insert_ignoring_conflicts
from consentry.events.models import Event
from consentry.privacy.models import CANCELLED, ErasureRequest

OPEN = ("pending", "running", "failed")
# What an erasure counts, per kind; a request whose subject was already erased removes none.
ERASED_KINDS = ("events", "consent_states", "consent_records")


def _columns() -> tuple[Any, ...]:
    return tuple(ErasureRequest.__table__.columns)


async def find_standing(session: AsyncSession, subject_hash: str) -> Any | None:
    """The subject's open or completed request, if any."""
    query = (
        select(*_columns())
        .where(ErasureRequest.subject_hash == subject_hash, ErasureRequest.status != CANCELLED)
        .order_by(ErasureRequest.requested_at.desc())
        .limit(1)
    )
    return (await session.execute(query)).one_or_none()


async def add_unless_standing(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Store a new request unless its subject has a standing one (even uncommitted); if stored.

    A concurrent request's insert waits for the other to commit (PostgreSQL), then does nothing.
    """
    dialect = session.get_bind().dialect.name
    statement = (
        insert_ignoring_conflicts(dialect, ErasureRequest)
        .values(values)
        .returning(ErasureRequest.id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def get(
    connection: AsyncConnection | AsyncSession, request_id: str, *, lock: bool = False
) -> Any | None:
    """One request by id; with `lock`, held FOR UPDATE until the transaction ends."""
    query = select(*_columns()).where(ErasureRequest.id == request_id)
    if lock:
        query = query.with_for_update()
    return (await connection.execute(query)).one_or_none()


async def set_fields(session: AsyncSession, request_id: str, values: dict[str, Any]) -> None:
    """Change a request's fields."""
    await session.execute(
        update(ErasureRequest).where(ErasureRequest.id == request_id).values(values)
    )


async def page(
    connection: AsyncConnection,
    *,
    status: str | None,
    subject_hash: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> Sequence[Any]:
    """Up to `limit` requests, newest first, filtered, after a cursor position."""
    query = select(*_columns())
    if status is not None:
        query = query.where(ErasureRequest.status == status)
    if subject_hash is not None:
        query = query.where(ErasureRequest.subject_hash == subject_hash)
    if before is not None:
        query = query.where(
            tuple_(ErasureRequest.requested_at, ErasureRequest.id) < tuple_(*before)
        )
    query = query.order_by(ErasureRequest.requested_at.desc(), ErasureRequest.id.desc())
    return (await connection.execute(query.limit(limit))).all()


async def open_by_status(connection: AsyncConnection) -> Sequence[Any]:
    """`(status, count, oldest requested_at)` of the open requests, one row per open status."""
    query = (
        select(ErasureRequest.status, func.count(), func.min(ErasureRequest.requested_at))
        .where(ErasureRequest.status.in_(OPEN))
        .group_by(ErasureRequest.status)
    )
    return (await connection.execute(query)).all()


async def claim_due(session: AsyncSession, now: datetime) -> Any | None:
    """The open request due longest, locked; rows other workers hold are skipped (PostgreSQL).

    On SQLite, BEGIN IMMEDIATE makes the worker the only writer, and SKIP LOCKED is not needed.
    """
    query = (
        select(*_columns())
        .where(ErasureRequest.status.in_(OPEN), ErasureRequest.run_after <= now)
        .order_by(ErasureRequest.run_after)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return (await session.execute(query)).one_or_none()


async def lock_subject_for_erasure(session: AsyncSession, subject_id: str) -> None:
    """Wait until no writer holds the subject's bucket, then keep them all out (PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:space, :bucket)"),
            {"space": ERASURE_LOCK_SPACE, "bucket": erasure_bucket(subject_id)},
        )


async def erase_subject(
    session: AsyncSession, subject_id: str, subject_hash: str, now: datetime, until: datetime
) -> dict[str, int]:
    """Remove the subject's events and consent, pseudonymise its history, leave a tombstone.

    The consent history stays, as legal proof, with the keyed hash in place of the subject (in a
    column of its own, which no subject route reads), no address and no user agent, until
    `until`. The chain still verifies: its hash never covered those.
    """
    events = await session.execute(delete(Event).where(Event.subject_id == subject_id))
    states = await session.execute(
        delete(ConsentState).where(ConsentState.subject_id == subject_id)
    )
    records = await session.execute(
        update(ConsentRecord)
        .where(ConsentRecord.subject_id == subject_id)
        .values(
            subject_id=None,
            subject_hash=subject_hash,
            ip=None,
            user_agent=None,
            retained_until=until,
        )
    )
    dialect = session.get_bind().dialect.name
    await session.execute(
        insert_ignoring_conflicts(dialect, Tombstone).values(
            subject_hash=subject_hash, erased_at=now
        )
    )
    # Earlier requests for the subject (a cancelled one, say) hold its id as well.
    await session.execute(
        update(ErasureRequest)
        .where(ErasureRequest.subject_hash == subject_hash)
        .values(subject_id=None)
    )
    if dialect == "postgresql":
        # Every replica's read cache drops the subject when this commits.
        await session.execute(
            text("SELECT pg_notify(:channel, :subject)"),
            {"channel": CHANGES_CHANNEL, "subject": subject_id},
        )
    counts = (_count(events), _count(states), _count(records))
    return dict(zip(ERASED_KINDS, counts, strict=True))


def _count(result: Any) -> int:
    return int(result.rowcount)
