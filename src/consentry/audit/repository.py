"""Every SQL statement about the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select

from consentry.audit.models import AuditEntry
from consentry.db import Query, Reader, UnitOfWork


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One row of the log as stored (`id` is None until it is)."""

    at: datetime
    action: str
    actor: str
    subject_hash: str | None
    target: str | None
    details: dict[str, Any]
    id: int | None = None


_FIELDS = ("at", "action", "actor", "subject_hash", "target", "details")
_APPEND = Query(insert(AuditEntry).values({name: bindparam(name) for name in _FIELDS}))
_COLUMNS = (
    AuditEntry.id,
    AuditEntry.at,
    AuditEntry.action,
    AuditEntry.actor,
    AuditEntry.subject_hash,
    AuditEntry.target,
    AuditEntry.details,
)


async def append(uow: UnitOfWork, entry: AuditRecord) -> None:
    """Add one row in the unit of work, so it commits or rolls back with its action."""
    await uow.execute(_APPEND, {name: getattr(entry, name) for name in _FIELDS})


async def append_all(uow: UnitOfWork, entries: list[AuditRecord]) -> None:
    """Add several rows in the unit of work, in one call to the driver."""
    await uow.execute_many(
        _APPEND, [{name: getattr(entry, name) for name in _FIELDS} for entry in entries]
    )


async def page(
    reader: Reader,
    *,
    action: str | None,
    actor: str | None,
    subject_hash: str | None,
    since: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[AuditRecord]:
    """Up to `limit` rows, newest first, filtered, older than `before_id` if given."""
    query = select(*_COLUMNS)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if subject_hash is not None:
        query = query.where(AuditEntry.subject_hash == subject_hash)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    query = query.order_by(AuditEntry.id.desc()).limit(limit)
    return [AuditRecord(**row) for row in await reader.all(query)]
