"""Every SQL statement about erasure requests and about erasing a subject."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, tuple_, update

from consentry import subject_locks
from consentry.consent.models import ConsentLink, ConsentRecord, ConsentState, Tombstone
from consentry.consent.repository import CHANGES_CHANNEL
from consentry.db import Query, Reader, UnitOfWork, insert_ignoring_conflicts
from consentry.events.models import Event
from consentry.integrations import repository as integrations
from consentry.observability.queue import QueueDepth
from consentry.privacy.models import CANCELLED, ErasureRequest

OPEN = ("pending", "running", "failed")
# What an erasure counts, per kind; a request whose subject was already erased removes none.
ERASED_KINDS = (
    "events",
    "consent_states",
    "consent_records",
    "integrations",
    "integration_records",
)


@dataclass(frozen=True)
class StoredErasure:
    """An erasure request as stored."""

    id: str
    subject_id: str | None
    subject_hash: str
    status: str
    reason: str
    requested_by: str
    requested_at: datetime
    due_by: datetime
    run_after: datetime
    attempts: int
    last_error: str | None
    completed_at: datetime | None
    deleted: dict[str, int] | None
    retained_until: datetime | None


_COLUMNS = tuple(ErasureRequest.__table__.columns)


def _stored(row: Any) -> StoredErasure | None:
    return None if row is None else StoredErasure(**row)


_FIND_STANDING = Query(
    select(*_COLUMNS)
    .where(
        ErasureRequest.subject_hash == bindparam("subject_hash"),
        ErasureRequest.status != CANCELLED,
    )
    .order_by(ErasureRequest.requested_at.desc())
    .limit(1)
)


async def find_standing(uow: Reader, subject_hash: str) -> StoredErasure | None:
    """The subject's open or completed request, if any."""
    return _stored(await uow.one_or_none(_FIND_STANDING, {"subject_hash": subject_hash}))


_ADD_UNLESS_STANDING = {
    dialect: Query(insert_ignoring_conflicts(dialect, ErasureRequest).returning(ErasureRequest.id))
    for dialect in ("postgresql", "sqlite")
}


async def add_unless_standing(uow: UnitOfWork, request: StoredErasure) -> bool:
    """Store a new request unless its subject has a standing one (even uncommitted); if stored.

    A concurrent request's insert waits for the other to commit (PostgreSQL), then does nothing.
    """
    stored = await uow.scalar(_ADD_UNLESS_STANDING[uow.dialect], vars(request))
    return stored is not None


_GET = Query(select(*_COLUMNS).where(ErasureRequest.id == bindparam("id")))
_GET_LOCKED = Query(select(*_COLUMNS).where(ErasureRequest.id == bindparam("id")).with_for_update())


async def get(reader: Reader, request_id: str) -> StoredErasure | None:
    """One request by id."""
    return _stored(await reader.one_or_none(_GET, {"id": request_id}))


async def get_locked(uow: UnitOfWork, request_id: str) -> StoredErasure | None:
    """One request by id, held FOR UPDATE until the transaction ends."""
    return _stored(await uow.one_or_none(_GET_LOCKED, {"id": request_id}))


async def set_fields(uow: UnitOfWork, request_id: str, values: dict[str, Any]) -> None:
    """Change a request's fields."""
    await uow.execute(update(ErasureRequest).where(ErasureRequest.id == request_id).values(values))


async def page(
    reader: Reader,
    *,
    status: str | None,
    subject_hash: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[StoredErasure]:
    """Up to `limit` requests, newest first, filtered, after a cursor position."""
    query = select(*_COLUMNS)
    if status is not None:
        query = query.where(ErasureRequest.status == status)
    if subject_hash is not None:
        query = query.where(ErasureRequest.subject_hash == subject_hash)
    if before is not None:
        query = query.where(
            tuple_(ErasureRequest.requested_at, ErasureRequest.id) < tuple_(*before)
        )
    query = query.order_by(ErasureRequest.requested_at.desc(), ErasureRequest.id.desc())
    return [StoredErasure(**row) for row in await reader.all(query.limit(limit))]


_OPEN_BY_STATUS = Query(
    select(
        ErasureRequest.status,
        func.count().label("count"),
        func.min(ErasureRequest.requested_at).label("oldest"),
    )
    .where(ErasureRequest.status.in_(OPEN))
    .group_by(ErasureRequest.status)
)


async def open_by_status(reader: Reader) -> list[QueueDepth]:
    """The open requests, one entry per open status that has any."""
    rows = await reader.all(_OPEN_BY_STATUS)
    return [QueueDepth(row["status"], row["count"], row["oldest"]) for row in rows]


# On SQLite, BEGIN IMMEDIATE makes the worker the only writer; SKIP LOCKED is not needed and
# is left out of the statement there.
_CLAIM_DUE = Query(
    select(*_COLUMNS)
    .where(ErasureRequest.status.in_(OPEN), ErasureRequest.run_after <= bindparam("now"))
    .order_by(ErasureRequest.run_after)
    .limit(1)
    .with_for_update(skip_locked=True)
)


async def claim_due(uow: UnitOfWork, now: datetime) -> StoredErasure | None:
    """The open request due longest, locked; rows other workers hold are skipped."""
    return _stored(await uow.one_or_none(_CLAIM_DUE, {"now": now}))


async def lock_subject_for_erasure(uow: UnitOfWork, subject_id: str) -> None:
    """Wait until no writer holds the subject's bucket, then keep them all out."""
    await subject_locks.take(uow, subject_id)


_LINKED_INTO = Query(
    select(ConsentLink.subject_id)
    .where(ConsentLink.linked_to == bindparam("subject_id"))
    .order_by(ConsentLink.subject_id)
)


async def linked_into(uow: UnitOfWork, subject_id: str) -> list[str]:
    """The anonymous subjects linked into this learner: erased with it."""
    return [row["subject_id"] for row in await uow.all(_LINKED_INTO, {"subject_id": subject_id})]


_NOTIFY_PG = "SELECT pg_notify($1, $2)"


async def erase_subject(
    uow: UnitOfWork, subject_id: str, subject_hash: str, now: datetime, until: datetime
) -> dict[str, int]:
    """Remove the subject's events, consent and connections, pseudonymise its consent history,
    leave a tombstone.

    The consent history stays, as legal proof, with the keyed hash in place of the subject (in a
    column of its own, which no subject route reads), no address and no user agent, until
    `until`. The chain still verifies: its hash never covered those. The integration history
    goes with the connections: it records what the subject allowed, not what it was asked.
    """
    events = await uow.execute(delete(Event).where(Event.subject_id == subject_id))
    connections, connection_records = await integrations.erase_subject(uow, subject_id)
    states = await uow.execute(delete(ConsentState).where(ConsentState.subject_id == subject_id))
    records = await uow.execute(
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
    await uow.execute(
        insert_ignoring_conflicts(uow.dialect, Tombstone).values(
            subject_hash=subject_hash, erased_at=now
        )
    )
    # A link names both subjects: the visitor it used up, the learner it went into.
    await uow.execute(
        delete(ConsentLink).where(
            or_(ConsentLink.subject_id == subject_id, ConsentLink.linked_to == subject_id)
        )
    )
    # Earlier requests for the subject (a cancelled one, say) hold its id as well.
    await uow.execute(
        update(ErasureRequest)
        .where(ErasureRequest.subject_hash == subject_hash)
        .values(subject_id=None)
    )
    if uow.dialect == "postgresql":
        # Every replica's read cache drops the subject when this commits.
        await uow.pg_execute(_NOTIFY_PG, CHANGES_CHANNEL, subject_id)
    counts = (events, states, records, connections, connection_records)
    return dict(zip(ERASED_KINDS, counts, strict=True))
