"""What the audit log records, and how it is read."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from consentry.audit import repository
from consentry.audit.repository import AuditRecord
from consentry.db import Reader, UnitOfWork, format_timestamp, utcnow
from consentry.pagination import Cursors

# The list its cursors belong to: one issued for another list is refused here.
_LIST = "audit_log"

Action = Literal[
    "export",
    "erasure_requested",
    "erasure_cancelled",
    "erasure_completed",
    "erasure_failed",
    "erasure_awaiting_systems",
    "erasure_confirmed",
    "erasure_overdue",
    "erasure_ended",
    "provider_created",
    "provider_changed",
    "provider_deleted",
    "integration_created",
    "integration_changed",
    "integration_deleted",
    "key_created",
    "key_revoked",
    "system_created",
    "system_changed",
    "system_deleted",
    "system_secret_rotated",
    "delivery_retried",
]
ACTIONS: tuple[str, ...] = Action.__args__  # type: ignore[attr-defined]


async def record(
    uow: UnitOfWork,
    action: Action,
    actor: str,
    *,
    subject_hash: str | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Write one row in the transaction of the action it records: both commit, or neither."""
    await repository.append(
        uow,
        entry(action, actor, subject_hash=subject_hash, target=target, details=details),
    )


def entry(
    action: Action,
    actor: str,
    *,
    subject_hash: str | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditRecord:
    """One row as `record` writes it, for `record_all`."""
    return AuditRecord(
        at=utcnow(),
        action=action,
        actor=actor,
        subject_hash=subject_hash,
        target=target,
        details=details or {},
    )


async def record_all(uow: UnitOfWork, entries: list[AuditRecord]) -> None:
    """Write several rows in the transaction of the actions they record, in one round trip."""
    await repository.append_all(uow, entries)


def represent(entry: AuditRecord) -> dict[str, Any]:
    """A stored row as the API shows it."""
    return {
        "id": entry.id,
        "at": format_timestamp(entry.at),
        "action": entry.action,
        "actor": entry.actor,
        "subject_hash": entry.subject_hash,
        "target": entry.target,
        "details": entry.details,
    }


async def read(
    reader: Reader,
    *,
    action: str | None,
    actor: str | None,
    subject_hash: str | None,
    since: datetime | None,
    limit: int,
    cursor: str | None,
    cursors: Cursors,
) -> dict[str, Any]:
    """A page of the log, newest first."""
    before = cursors.decode(_LIST, cursor, {"id": int})["id"] if cursor else None
    rows = await repository.page(
        reader,
        action=action,
        actor=actor,
        subject_hash=subject_hash,
        since=since,
        before_id=before,
        limit=limit + 1,
    )
    items = [represent(row) for row in rows[:limit]]
    next_cursor = cursors.encode(_LIST, {"id": items[-1]["id"]}) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}
