"""Every SQL statement of linking: the two subjects' locks, their latest choices, used-up ids."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, select

from consentry import subject_locks
from consentry.consent.models import ConsentLink, ConsentRecord, ConsentState
from consentry.consent.repository import (
    RECORD_COLUMNS,
    STATE_COLUMNS,
    StoredRecord,
    is_erased,
)
from consentry.consent.sources import NOT_A_CHOICE
from consentry.db import Query, Reader, UnitOfWork, insert_ignoring_conflicts

# Locks the state row of a subject that has one, and makes none: an anonymous subject without a
# choice has nothing to carry over, and a placeholder would outlive a link that commits.
_LOCK_EXISTING = Query(
    select(*STATE_COLUMNS)
    .where(ConsentState.subject_id == bindparam("subject_id"), ConsentState.revision > 0)
    .with_for_update(of=ConsentState)
)
_LATEST_CHOICE = Query(
    select(*RECORD_COLUMNS)
    .where(
        ConsentRecord.subject_id == bindparam("subject_id"),
        ConsentRecord.source.not_in(NOT_A_CHOICE),
    )
    .order_by(ConsentRecord.seq.desc())
    .limit(1)
)
_DROP_PLACEHOLDER = Query(
    delete(ConsentState).where(
        ConsentState.subject_id == bindparam("subject_id"), ConsentState.revision == 0
    )
)
_USE_UP = {
    dialect: Query(
        insert_ignoring_conflicts(dialect, ConsentLink).returning(ConsentLink.subject_id)
    )
    for dialect in ("postgresql", "sqlite")
}


async def lock_existing(uow: UnitOfWork, subject_id: str, subject_hash: str) -> tuple[bool, bool]:
    """Share the subject's erasure lock and lock its state row if it has one; (has a row, erased).

    For the second subject of a transaction that holds another's write lock: it never inserts.
    """
    await subject_locks.share(uow, [subject_id])
    if await is_erased(uow, subject_hash):
        return False, True
    row = await uow.one_or_none(_LOCK_EXISTING, {"subject_id": subject_id})
    return row is not None, False


async def latest_choice(reader: Reader, subject_id: str) -> StoredRecord | None:
    """The subject's latest record that is a choice of its own (sources.is_choice), if any."""
    row = await reader.one_or_none(_LATEST_CHOICE, {"subject_id": subject_id})
    return None if row is None else StoredRecord(**row)


async def drop_placeholder(uow: UnitOfWork, subject_id: str) -> None:
    """Remove the lock placeholder of `lock_state` from a transaction that recorded nothing."""
    await uow.execute(_DROP_PLACEHOLDER, {"subject_id": subject_id})


async def use_up(
    uow: UnitOfWork, anonymous_id: str, learner_id: str, now: datetime, receipt_id: str | None
) -> bool:
    """Mark the anonymous subject as linked into the learner; False when it was already.

    A concurrent link of the same id waits here for the first to commit, then finds it.
    """
    values = {
        "subject_id": anonymous_id,
        "linked_to": learner_id,
        "linked_at": now,
        "receipt_id": receipt_id,
    }
    return await uow.scalar(_USE_UP[uow.dialect], values) is not None
