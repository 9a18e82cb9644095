"""Every SQL statement about erasure requests and about erasing a subject."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, tuple_, update

from consentry import subject_locks
from consentry.consent.models import ConsentLink, ConsentRecord, ConsentState, Tombstone
from consentry.consent.repository import CHANGES_CHANNEL
from consentry.db import Query, Reader, UnitOfWork, insert_ignoring_conflicts
from consentry.events.models import Event
from consentry.integrations import repository as integrations
from consentry.observability.queue import QueueDepth
from consentry.privacy.models import CANCELLED, ErasureConfirmToken, ErasureRequest, ErasureSystem

OPEN = ("pending", "running", "failed")
AWAITING = "awaiting_systems"
# Every request not yet ended: those the worker still runs, and those waiting for systems.
UNFINISHED = (*OPEN, AWAITING)
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
    erased_at: datetime | None
    overdue_at: datetime | None


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
    .where(ErasureRequest.status.in_(UNFINISHED))
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


# ---- the systems' part of an erasure ----


@dataclass(frozen=True)
class StoredEntry:
    """Where one system stands in one erasure request, as stored."""

    request_id: str
    system_id: str
    mode: str
    status: str
    message_id: str
    confirmed_at: datetime | None
    confirmed_by: str | None
    deleted: dict[str, int] | None
    note: str | None


_ENTRY_COLUMNS = tuple(ErasureSystem.__table__.columns)
_ADD_ENTRY = Query(insert(ErasureSystem))


async def add_entries(uow: UnitOfWork, entries: Sequence[StoredEntry]) -> None:
    """Store the systems an erasure waits for."""
    await uow.execute_many(_ADD_ENTRY, [vars(entry) for entry in entries])


async def entries(reader: Reader, request_ids: Sequence[str]) -> dict[str, list[StoredEntry]]:
    """Every system entry of these requests, by request, ordered by system id."""
    found: dict[str, list[StoredEntry]] = {request_id: [] for request_id in request_ids}
    if not request_ids:
        return found
    rows = await reader.all(
        select(*_ENTRY_COLUMNS)
        .where(ErasureSystem.request_id.in_(list(request_ids)))
        .order_by(ErasureSystem.request_id, ErasureSystem.system_id)
    )
    for row in rows:
        found[row["request_id"]].append(StoredEntry(**row))
    return found


async def set_entry(
    uow: UnitOfWork, request_id: str, system_id: str, values: dict[str, Any]
) -> None:
    """Change one system's entry of a request."""
    await uow.execute(
        update(ErasureSystem)
        .where(ErasureSystem.request_id == request_id, ErasureSystem.system_id == system_id)
        .values(values)
    )


_FAIL_OPEN_ENTRIES = Query(
    update(ErasureSystem)
    .where(ErasureSystem.request_id == bindparam("key_request"), ErasureSystem.status == "pending")
    .values(status="failed")
)


async def fail_open_entries(uow: UnitOfWork, request_id: str) -> None:
    """Every entry of the request not yet confirmed or notified reads failed, for good."""
    await uow.execute(_FAIL_OPEN_ENTRIES, {"key_request": request_id})


_AWAITING = Query(
    select(*_COLUMNS)
    .where(ErasureRequest.status == AWAITING)
    .order_by(ErasureRequest.erased_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)


async def lock_awaiting(uow: UnitOfWork, limit: int) -> list[StoredErasure]:
    """Requests waiting for systems, locked; those another worker holds are skipped."""
    return [StoredErasure(**row) for row in await uow.all(_AWAITING, {"limit": limit})]


_NEWLY_OVERDUE = Query(
    select(*_COLUMNS)
    .where(
        ErasureRequest.status.in_(UNFINISHED),
        ErasureRequest.due_by < bindparam("now"),
        ErasureRequest.overdue_at.is_(None),
    )
    .order_by(ErasureRequest.due_by)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)


async def lock_newly_overdue(uow: UnitOfWork, now: datetime, limit: int) -> list[StoredErasure]:
    """Unfinished requests past their due date that nobody has marked overdue yet, locked."""
    rows = await uow.all(_NEWLY_OVERDUE, {"now": now, "limit": limit})
    return [StoredErasure(**row) for row in rows]


_STALE = Query(
    select(*_COLUMNS)
    .where(ErasureRequest.status == AWAITING, ErasureRequest.erased_at < bindparam("before"))
    .order_by(ErasureRequest.erased_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_COUNT_STALE = Query(
    select(func.count())
    .select_from(ErasureRequest)
    .where(ErasureRequest.status == AWAITING, ErasureRequest.erased_at < bindparam("before"))
)


async def lock_stale(uow: UnitOfWork, before: datetime, limit: int) -> list[StoredErasure]:
    """Requests still waiting for systems whose own part was done before `before`, locked."""
    rows = await uow.all(_STALE, {"before": before, "limit": limit})
    return [StoredErasure(**row) for row in rows]


async def count_stale(reader: Reader, before: datetime) -> int:
    """How many requests lock_stale would find."""
    return int(await reader.scalar(_COUNT_STALE, {"before": before}) or 0)


_UNFINISHED_ENTRIES = Query(
    select(*_ENTRY_COLUMNS, ErasureRequest.due_by)
    .join(ErasureRequest, ErasureRequest.id == ErasureSystem.request_id)
    .where(ErasureRequest.status == AWAITING)
)
_OVERDUE_COUNT = Query(
    select(func.count())
    .select_from(ErasureRequest)
    .where(ErasureRequest.status.in_(UNFINISHED), ErasureRequest.due_by < bindparam("now"))
)


async def waiting_entries(reader: Reader) -> list[tuple[StoredEntry, datetime]]:
    """Every entry of the requests waiting for systems, with its request's due date."""
    rows = await reader.all(_UNFINISHED_ENTRIES)
    return [
        (StoredEntry(**{key: row[key] for key in _ENTRY_FIELDS}), row["due_by"]) for row in rows
    ]


_ENTRY_FIELDS = tuple(column.key for column in _ENTRY_COLUMNS)


async def count_overdue(reader: Reader, now: datetime) -> int:
    """Unfinished requests past their due date."""
    return int(await reader.scalar(_OVERDUE_COUNT, {"now": now}) or 0)


# ---- confirm tokens ----

_ADD_TOKEN = Query(insert(ErasureConfirmToken))
_FIND_TOKEN = Query(
    select(
        ErasureConfirmToken.token_hash,
        ErasureConfirmToken.request_id,
        ErasureConfirmToken.system_id,
    ).where(ErasureConfirmToken.token_hash == bindparam("token_hash"))
)


async def add_token(
    uow: UnitOfWork, token_hash: str, request_id: str, system_id: str, now: datetime
) -> None:
    """Keep the hash of a confirm token issued for one system's attempt."""
    await uow.execute(
        _ADD_TOKEN,
        {
            "token_hash": token_hash,
            "request_id": request_id,
            "system_id": system_id,
            "created_at": now,
        },
    )


async def find_token(reader: Reader, token_hash: str) -> tuple[str, str, str] | None:
    """(stored hash, request id, system id) of the token with this hash, or None."""
    row = await reader.one_or_none(_FIND_TOKEN, {"token_hash": token_hash})
    return None if row is None else (row["token_hash"], row["request_id"], row["system_id"])
