"""What the audit log records, and how it is read."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from consentry.audit import repository
from consentry.db import format_timestamp, utcnow
from consentry.pagination import Cursors

# The list its cursors belong to: one issued for another list is refused here.
_LIST = "audit_log"

Action = Literal[
    "export",
    "erasure_requested",
    "erasure_cancelled",
    "erasure_completed",
    "erasure_failed",
    "provider_created",
    "provider_changed",
    "provider_deleted",
    "key_created",
    "key_revoked",
]
ACTIONS: tuple[str, ...] = Action.__args__  # type: ignore[attr-defined]


async def record(
    session: AsyncSession,
    action: Action,
    actor: str,
    *,
    subject_hash: str | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Write one row in the transaction of the action it records: both commit, or neither."""
    await repository.append(
        session,
        {
            "at": utcnow(),
            "action": action,
            "actor": actor,
            "subject_hash": subject_hash,
            "target": target,
            "details": details or {},
        },
    )


async def read(
    connection: AsyncConnection,
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
        connection,
        action=action,
        actor=actor,
        subject_hash=subject_hash,
        since=since,
        before_id=before,
        limit=limit + 1,
    )
    items = [{**row._mapping, "at": format_timestamp(row.at)} for row in rows[:limit]]
    next_cursor = cursors.encode(_LIST, {"id": items[-1]["id"]}) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}
