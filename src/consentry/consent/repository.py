"""Every SQL statement that reads consent state and history, or locks the state for a write.

The statements that write a change are in change_repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, false, null, select, true

from consentry import subject_locks
from consentry.consent.gate import ERASED, Gate, gate_of
from consentry.consent.models import ConsentRecord, ConsentState, Tombstone
from consentry.db import Query, Reader, Row, UnitOfWork, insert_ignoring_conflicts
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


@dataclass(frozen=True)
class StoredRecord:
    """One record of a subject's history, as stored (`seq` is its place in the chain)."""

    id: str
    seq: int
    recorded_at: datetime
    categories: dict[str, bool]
    changed: list[str]
    source: str
    method: str | None
    actor: str
    policy_version: str
    region: str | None
    language: str | None
    gpc: bool
    user_agent: str | None
    ip: str | None
    hash: str
    prev_hash: str | None
    # Only on a learner's record that carried an anonymous visitor's choice over.
    linked_from: str | None = None


# Every committed consent change is announced here with the subject id (see consent/cache.py).
CHANGES_CHANNEL = "consentry_consent"

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
# Their names.
STATE_FIELDS = tuple(column.key for column in STATE_COLUMNS)
# The fields of StoredRecord.
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
    ConsentRecord.linked_from,
)

# The hottest statement of the service: the state and the tombstone in one round trip (the
# tombstone's row has no state).
_READ_STATE = Query(
    select(*STATE_COLUMNS, false().label("erased"))
    .where(ConsentState.subject_id == bindparam("subject_id"))
    .union_all(
        select(*(null() for _ in STATE_COLUMNS), true()).where(
            Tombstone.subject_hash == bindparam("subject_hash")
        )
    )
)
_IS_ERASED = Query(
    select(Tombstone.subject_hash).where(Tombstone.subject_hash == bindparam("subject_hash"))
)
# Run once the erasure lock is held, so it sees any erasure that committed before. SQLite
# has no FOR UPDATE (and needs none: BEGIN IMMEDIATE made this the only writer).
_LOCK_STATE_SELECT = (
    select(
        *STATE_COLUMNS,
        exists().where(Tombstone.subject_hash == bindparam("subject_hash")).label("erased"),
    )
    .where(ConsentState.subject_id == bindparam("subject_id"))
    .with_for_update(of=ConsentState)
)
_LOCK_STATE = Query(_LOCK_STATE_SELECT)
# PostgreSQL: the same statement shares the erasure lock first. Its snapshot may predate an
# erasure that committed while it waited, but that erasure deleted the row it would lock: it
# finds none, and the placeholder's second read (a new snapshot) sees the tombstone.
_LOCK_STATE_SHARING = Query(_LOCK_STATE_SELECT.where(subject_locks.shared_first()))
_PLACEHOLDER = {
    dialect: Query(
        insert_ignoring_conflicts(dialect, ConsentState).values(
            subject_id=bindparam("subject_id"), revision=0, categories={}
        )
    )
    for dialect in ("postgresql", "sqlite")
}


def _stored(row: Row | None) -> StoredConsent | None:
    if row is None or row["revision"] == 0:
        return None
    return StoredConsent(**{key: row[key] for key in STATE_FIELDS})


async def read_state(
    reader: Reader, subject_id: str, subject_hash: str
) -> tuple[StoredConsent | None, bool]:
    """The subject's recorded consent (None when it has recorded no choice), and if it is erased."""
    rows = await reader.all(_READ_STATE, {"subject_id": subject_id, "subject_hash": subject_hash})
    return _state_of(rows)


async def read_state_ahead(
    uow: UnitOfWork, subject_id: str, subject_hash: str
) -> tuple[StoredConsent | None, bool]:
    """`read_state` for a write that then checks it still holds (`record_change_if_unchanged`).

    On PostgreSQL it takes no lock and begins no transaction (UnitOfWork.read_ahead).
    """
    key = {"subject_id": subject_id, "subject_hash": subject_hash}
    return _state_of(await uow.read_ahead(_READ_STATE, key))


def _state_of(rows: list[Row]) -> tuple[StoredConsent | None, bool]:
    if any(row["erased"] for row in rows):
        return None, True
    return _stored(rows[0] if rows else None), False


async def is_erased(reader: Reader, subject_hash: str) -> bool:
    """Whether the subject with this keyed hash was erased."""
    return await reader.scalar(_IS_ERASED, {"subject_hash": subject_hash}) is not None


async def lock_state(
    uow: UnitOfWork, subject_id: str, subject_hash: str
) -> tuple[StoredConsent | None, bool]:
    """Take the subject's write lock for this transaction, then read its consent and erasure.

    The subject's erasure lock is shared first (see subject_locks), so no erasure can run until
    the write commits; on PostgreSQL by the statement that reads the row. The state row is
    locked FOR UPDATE; a subject without one gets a
    placeholder row (revision 0) first, so there is always a row to lock: concurrent first
    writers queue on its primary key, and the placeholder never outlives the transaction, which
    either records a choice or rolls back.
    """
    key = {"subject_id": subject_id, "subject_hash": subject_hash}
    if uow.dialect == "postgresql":
        row = await uow.one_or_none(
            _LOCK_STATE_SHARING, {**key, **subject_locks.lock_params(subject_id)}
        )
    else:
        await subject_locks.share(uow, [subject_id])
        row = await uow.one_or_none(_LOCK_STATE, key)
    if row is None:
        await uow.execute(_PLACEHOLDER[uow.dialect], key)
        row = await uow.one_or_none(_LOCK_STATE, key)
    assert row is not None  # inserted above, or by the writer this one queued behind
    if row["erased"]:
        return None, True
    return _stored(row), False


def _history(subject_id_matches: Any, before: bool) -> Query:
    query = select(*RECORD_COLUMNS).where(subject_id_matches)
    if before:
        query = query.where(ConsentRecord.seq < bindparam("before_seq"))
    return Query(query.order_by(ConsentRecord.seq.desc()).limit(bindparam("limit")))


_SUBJECT = ConsentRecord.subject_id == bindparam("subject_id")
_HISTORY = {before: _history(_SUBJECT, before) for before in (False, True)}


async def history(
    reader: Reader, subject_id: str, before_seq: int | None, limit: int
) -> list[StoredRecord]:
    """Up to `limit` records of the subject, newest first, older than `before_seq` if given."""
    params = {"subject_id": subject_id, "before_seq": before_seq, "limit": limit}
    rows = await reader.all(_HISTORY[before_seq is not None], params)
    return [StoredRecord(**row) for row in rows]


# ---- the gate: what the event rule and bulk decisions judge by ----

# For each optional category, when its grant in force began (NULL when it is not granted):
# PostgreSQL takes the JSON apart and the driver decodes timestamps, cheaper than doing it here.
_GRANTED_SINCE = ", ".join(
    f"CASE WHEN (categories -> '{c}' ->> 'granted')::boolean"
    f" THEN (categories -> '{c}' ->> 'updated_at')::timestamptz END AS {c}"
    for c in OPTIONAL_CATEGORIES
)
_NO_GRANTS = ", ".join(f"NULL AS {c}" for c in OPTIONAL_CATEGORIES)


def _gates_pg(lock: str) -> str:
    """The grants and the tombstones of many subjects in one statement; tombstone rows
    (`erased`) carry no grants."""
    return f"""
WITH found AS (
    SELECT subject_id, {_GRANTED_SINCE}
    FROM consent_states
    WHERE subject_id = ANY($1::text[]) AND revision > 0
    ORDER BY subject_id
    {lock}
)
SELECT found.*, false AS erased FROM found
UNION ALL
SELECT s.subject_id, {_NO_GRANTS}, true
FROM unnest($1::text[], $2::text[]) AS s(subject_id, subject_hash)
WHERE EXISTS (SELECT 1 FROM tombstones AS t WHERE t.subject_hash = s.subject_hash)
"""  # noqa: S608  (built from the policy's fixed category ids, never from input)


_GATES_PG = {True: _gates_pg("FOR SHARE"), False: _gates_pg("")}
# SQLite: the same in one statement; a tombstone row names its subject by the keyed hash.
_GATES_SQLITE = (
    select(ConsentState.subject_id, ConsentState.categories, null().label("subject_hash"))
    .where(
        ConsentState.subject_id.in_(bindparam("subjects", expanding=True)),
        ConsentState.revision > 0,
    )
    .union_all(
        select(null(), null(), Tombstone.subject_hash).where(
            Tombstone.subject_hash.in_(bindparam("hashes", expanding=True))
        )
    )
)


async def read_gates(
    reader: Reader, subjects: list[str], hashes: list[str], *, share_lock: bool = False
) -> dict[str, Gate]:
    """The gates of `subjects` (with `hashes`, their keyed hashes, in the same order), in one
    statement; a subject without a recorded choice has none (NO_RECORD applies).

    With `share_lock` (in a unit of work) the consent rows stay share-locked until it ends, so
    no consent write can commit in between (see events.repository.share_gates). On SQLite a
    unit of work is the only writer already.
    """
    gates: dict[str, Gate] = {}
    if reader.dialect == "postgresql":
        for row in await reader.pg_rows(_GATES_PG[share_lock], subjects, hashes):
            if row["erased"]:
                gates[row["subject_id"]] = ERASED
            elif row["subject_id"] not in gates:  # a tombstone wins, in whatever order they come
                since = {c: row[c] for c in OPTIONAL_CATEGORIES if row[c] is not None}
                gates[row["subject_id"]] = Gate(granted_since=since)
        return gates
    erased: set[str] = set()
    for row in await reader.all(_GATES_SQLITE, {"subjects": subjects, "hashes": hashes}):
        if row["subject_hash"] is not None:
            erased.add(row["subject_hash"])
        else:
            gates[row["subject_id"]] = gate_of(row["categories"])
    if erased:
        for subject_id, subject_hash in zip(subjects, hashes, strict=True):
            if subject_hash in erased:
                gates[subject_id] = ERASED
    return gates
