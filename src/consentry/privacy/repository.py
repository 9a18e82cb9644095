"""Every SQL statement about erasure requests and about erasing a subject."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    String,
    any_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from consentry import subject_locks
from consentry.consent.models import ConsentLink, ConsentRecord, ConsentState, Tombstone
from consentry.consent.repository import CHANGES_CHANNEL
from consentry.db import (
    ORDER_FROM_INDEX,
    Dialect,
    Query,
    Reader,
    UnitOfWork,
    insert_ignoring_conflicts,
)
from consentry.events.models import Event
from consentry.integrations import repository as integrations
from consentry.observability.queue import QueueDepth
from consentry.privacy.models import (
    CANCELLED,
    OPEN,
    ErasureConfirmToken,
    ErasureRequest,
    ErasureSystem,
)

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


DIALECTS: tuple[Dialect, ...] = ("postgresql", "sqlite")


def _among(column: Any, name: str, dialect: Dialect) -> Any:
    """`column` is one of the list parameter `name`: an array on PostgreSQL, so that the
    statement is compiled once, and an expanding IN on SQLite, whose statements SQLAlchemy
    caches itself."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


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


# Every lock on a request row is FOR NO KEY UPDATE: nothing here changes a request's id, and a
# FOR UPDATE would also keep out the FOR KEY SHARE that an insert into a table referring to the
# request takes (a system's entry, a confirm token), which deadlocked the delivery worker's
# settling against a transaction locking two requests the other way round.
_GET = Query(select(*_COLUMNS).where(ErasureRequest.id == bindparam("id")))
# Where a request due at once is announced on commit, to wake the workers of every process.
DUE_CHANNEL = "consentry_erasures_due"
_ANNOUNCE_DUE_PG = "SELECT pg_notify($1, '')"


async def announce_due(uow: UnitOfWork) -> None:
    """Wake every listening worker once the transaction commits (PostgreSQL; on SQLite the
    process's own worker is woken by its caller)."""
    if uow.dialect == "postgresql":
        await uow.pg_execute(_ANNOUNCE_DUE_PG, DUE_CHANNEL)


_GET_LOCKED = Query(
    select(*_COLUMNS).where(ErasureRequest.id == bindparam("id")).with_for_update(key_share=True)
)
_GET_UNLESS_HELD = Query(
    select(*_COLUMNS)
    .where(ErasureRequest.id == bindparam("id"))
    .with_for_update(key_share=True, skip_locked=True)
)


async def get(reader: Reader, request_id: str) -> StoredErasure | None:
    """One request by id."""
    return _stored(await reader.one_or_none(_GET, {"id": request_id}))


async def get_locked(uow: UnitOfWork, request_id: str) -> StoredErasure | None:
    """One request by id, held until the transaction ends."""
    return _stored(await uow.one_or_none(_GET_LOCKED, {"id": request_id}))


async def get_unless_held(uow: UnitOfWork, request_id: str) -> StoredErasure | None:
    """One request by id, held until the transaction ends; None when another transaction holds
    it (or there is no such request)."""
    return _stored(await uow.one_or_none(_GET_UNLESS_HELD, {"id": request_id}))


_LOCK_EACH = {
    dialect: Query(
        select(*_COLUMNS)
        .where(_among(ErasureRequest.id, "ids", dialect))
        .order_by(ErasureRequest.id)
        .with_for_update(key_share=True)
    )
    for dialect in DIALECTS
}


async def lock_each(uow: UnitOfWork, request_ids: Sequence[str]) -> list[StoredErasure]:
    """These requests, held until the transaction ends."""
    rows = await uow.all(_LOCK_EACH[uow.dialect], {"ids": list(request_ids)})
    return [StoredErasure(**row) for row in rows]


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


# The worker's claim, in one statement: the longest-due open requests, leased. On SQLite,
# BEGIN IMMEDIATE makes the worker the only writer; SKIP LOCKED is left out of the statement there.
# The statuses are written into the SQL, so that the planner matches the partial index.
_STILL_OPEN = ErasureRequest.status.in_([literal_column(f"'{s}'") for s in OPEN])
_CLAIM_DUE = Query(
    update(ErasureRequest)
    .where(
        ErasureRequest.id.in_(
            select(ErasureRequest.id)
            .where(_STILL_OPEN, ErasureRequest.run_after <= bindparam("now"))
            .order_by(ErasureRequest.run_after)
            .limit(bindparam("limit"))
            .with_for_update(key_share=True, skip_locked=True)
        )
    )
    .values(status="running", attempts=ErasureRequest.attempts + 1, run_after=bindparam("lease"))
    .returning(*_COLUMNS)
)


async def claim_due(
    uow: UnitOfWork, now: datetime, limit: int, lease: datetime
) -> list[StoredErasure]:
    """Up to `limit` open requests due longest, now running (an attempt more) until `lease`;
    rows other workers hold are skipped."""
    if uow.dialect == "postgresql":
        await uow.pg_begin_with(ORDER_FROM_INDEX)
    rows = await uow.all(_CLAIM_DUE, {"now": now, "limit": limit, "lease": lease})
    return sorted((StoredErasure(**row) for row in rows), key=lambda found: found.run_after)


# What an erasure writes into each of its requests, several requests in one round trip.
_FINISH = Query(
    update(ErasureRequest)
    .where(ErasureRequest.id == bindparam("key_id"))
    .values(
        status=bindparam("new_status"),
        deleted=bindparam("new_deleted"),
        retained_until=bindparam("new_retained_until"),
        erased_at=bindparam("new_erased_at"),
        completed_at=bindparam("new_completed_at"),
        last_error=None,
    )
)


@dataclass(frozen=True)
class Erased:
    """What one request's erasure leaves in it."""

    request_id: str
    status: str
    deleted: dict[str, int]
    retained_until: datetime
    erased_at: datetime
    completed_at: datetime | None


async def finish(uow: UnitOfWork, erased: Sequence[Erased]) -> None:
    """Store what each erasure did, and where its request stands now."""
    await uow.execute_many(
        _FINISH,
        [
            {
                "key_id": done.request_id,
                "new_status": done.status,
                "new_deleted": done.deleted,
                "new_retained_until": done.retained_until,
                "new_erased_at": done.erased_at,
                "new_completed_at": done.completed_at,
            }
            for done in erased
        ],
    )


async def lock_subject_for_erasure(uow: UnitOfWork, subject_id: str) -> None:
    """Wait until no writer holds the subject's bucket, then keep them all out."""
    await subject_locks.take(uow, subject_id)


async def lock_subjects_for_erasure(uow: UnitOfWork, subject_ids: Sequence[str]) -> None:
    """The same for several subjects: each bucket once, in order."""
    by_bucket = {subject_locks.bucket(subject_id): subject_id for subject_id in subject_ids}
    for bucket in sorted(by_bucket):
        await subject_locks.take(uow, by_bucket[bucket])


_LINKED_INTO = {
    dialect: Query(
        select(ConsentLink.subject_id, ConsentLink.linked_to)
        .where(_among(ConsentLink.linked_to, "subject_ids", dialect))
        .order_by(ConsentLink.subject_id)
    )
    for dialect in DIALECTS
}


async def linked_into(uow: UnitOfWork, subject_ids: Sequence[str]) -> dict[str, list[str]]:
    """The anonymous subjects linked into each of these learners: erased with it."""
    found: dict[str, list[str]] = {subject_id: [] for subject_id in subject_ids}
    rows = await uow.all(_LINKED_INTO[uow.dialect], {"subject_ids": list(subject_ids)})
    for row in rows:
        found[row["linked_to"]].append(row["subject_id"])
    return found


# PostgreSQL: the whole of erase_subjects in one round trip, counting what it removes as it goes.
# $1 the subject ids, $2 their keyed hashes (in the same order), $3 `until`, $4 `now`, $5 the
# consent read cache's channel.
_ERASE_PG = """
WITH subjects AS (
    SELECT * FROM unnest($1::text[], $2::text[]) AS s(subject_id, subject_hash)
), events_gone AS (
    DELETE FROM events WHERE subject_id = ANY($1::text[]) RETURNING subject_id
), states_gone AS (
    DELETE FROM consent_states WHERE subject_id = ANY($1::text[]) RETURNING subject_id
), records_kept AS (
    UPDATE consent_records AS r
    SET subject_id = NULL, subject_hash = s.subject_hash, ip = NULL, user_agent = NULL,
        retained_until = $3
    FROM subjects AS s WHERE r.subject_id = s.subject_id
    RETURNING s.subject_id
), tombstoned AS (
    INSERT INTO tombstones (subject_hash, erased_at) SELECT subject_hash, $4 FROM subjects
    ON CONFLICT DO NOTHING
), unlinked AS (
    DELETE FROM consent_links
    WHERE subject_id = ANY($1::text[]) OR linked_to = ANY($1::text[])
), requests_cleared AS (
    UPDATE erasure_requests SET subject_id = NULL WHERE subject_hash = ANY($2::text[])
), notified AS (
    SELECT count(pg_notify($5, subject_id)) FROM subjects
)
SELECT 'events' AS kind, subject_id, count(*) AS n FROM events_gone GROUP BY subject_id
UNION ALL
SELECT 'consent_states', subject_id, count(*) FROM states_gone GROUP BY subject_id
UNION ALL
SELECT 'consent_records', subject_id, count(*) FROM records_kept GROUP BY subject_id
UNION ALL
SELECT 'notified', NULL, count FROM notified
"""


async def _erase_connections(uow: UnitOfWork, counts: dict[str, dict[str, int]]) -> None:
    """Remove the subjects' connections and integration history, counted into `counts`."""
    for subject_id, (connections, records) in (
        await integrations.erase_subjects(uow, list(counts))
    ).items():
        counts[subject_id]["integrations"] = connections
        counts[subject_id]["integration_records"] = records


async def _erase_subjects_pg(
    uow: UnitOfWork, hashes: dict[str, str], now: datetime, until: datetime
) -> dict[str, dict[str, int]]:
    """erase_subjects on PostgreSQL: its own part in one statement, the connections' in another."""
    subject_ids = list(hashes)
    counts = {subject_id: dict.fromkeys(ERASED_KINDS, 0) for subject_id in subject_ids}
    rows = await uow.pg_rows(
        _ERASE_PG, subject_ids, list(hashes.values()), until, now, CHANGES_CHANNEL
    )
    for row in rows:
        if row["subject_id"] is not None:
            counts[row["subject_id"]][row["kind"]] = row["n"]
    await _erase_connections(uow, counts)
    return counts


_PSEUDONYMISE = Query(
    update(ConsentRecord)
    .where(ConsentRecord.subject_id == bindparam("key_subject"))
    .values(
        subject_id=None,
        subject_hash=bindparam("new_hash"),
        ip=None,
        user_agent=None,
        retained_until=bindparam("new_until"),
    )
)
_TOMBSTONE = {
    dialect: Query(
        insert_ignoring_conflicts(dialect, Tombstone).values(
            subject_hash=bindparam("subject_hash"), erased_at=bindparam("erased_at")
        )
    )
    for dialect in ("postgresql", "sqlite")
}


async def erase_subject(
    uow: UnitOfWork, subject_id: str, subject_hash: str, now: datetime, until: datetime
) -> dict[str, int]:
    """Erase one subject (see erase_subjects); what was removed, per kind."""
    return (await erase_subjects(uow, {subject_id: subject_hash}, now, until))[subject_id]


async def erase_subjects(
    uow: UnitOfWork, hashes: dict[str, str], now: datetime, until: datetime
) -> dict[str, dict[str, int]]:
    """Remove the subjects' events, consent and connections, pseudonymise their consent
    history, leave a tombstone each; what was removed, per subject and kind.

    `hashes` maps each subject id to its keyed hash. The consent history stays, as legal proof,
    with the keyed hash in place of the subject (in a column of its own, which no subject route
    reads), no address and no user agent, until `until`. The chain still verifies: its hash
    never covered those. The integration history goes with the connections: it records what the
    subject allowed, not what it was asked. The caller holds the subjects' erasure locks, so
    the counts taken first are what the statements after them remove.
    """
    subject_ids = list(hashes)
    if uow.dialect == "postgresql":
        return await _erase_subjects_pg(uow, hashes, now, until)
    counts = {subject_id: dict.fromkeys(ERASED_KINDS, 0) for subject_id in subject_ids}
    counted = union_all(
        *(
            select(literal(kind).label("kind"), model.subject_id, func.count().label("n"))
            .where(model.subject_id.in_(subject_ids))
            .group_by(model.subject_id)
            for kind, model in (
                ("events", Event),
                ("consent_states", ConsentState),
                ("consent_records", ConsentRecord),
            )
        )
    )
    for row in await uow.all(counted):
        counts[row["subject_id"]][row["kind"]] = row["n"]
    await _erase_connections(uow, counts)
    await uow.execute(delete(Event).where(Event.subject_id.in_(subject_ids)))
    await uow.execute(delete(ConsentState).where(ConsentState.subject_id.in_(subject_ids)))
    await uow.execute_many(
        _PSEUDONYMISE,
        [
            {"key_subject": subject_id, "new_hash": subject_hash, "new_until": until}
            for subject_id, subject_hash in hashes.items()
        ],
    )
    await uow.execute_many(
        _TOMBSTONE[uow.dialect],
        [{"subject_hash": subject_hash, "erased_at": now} for subject_hash in hashes.values()],
    )
    # A link names both subjects: the visitor it used up, the learner it went into.
    await uow.execute(
        delete(ConsentLink).where(
            or_(ConsentLink.subject_id.in_(subject_ids), ConsentLink.linked_to.in_(subject_ids))
        )
    )
    # Earlier requests for the subject (a cancelled one, say) hold its id as well.
    await uow.execute(
        update(ErasureRequest)
        .where(ErasureRequest.subject_hash.in_(list(hashes.values())))
        .values(subject_id=None)
    )
    return counts


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
    .with_for_update(key_share=True, skip_locked=True)
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
    .with_for_update(key_share=True, skip_locked=True)
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
    .with_for_update(key_share=True, skip_locked=True)
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
