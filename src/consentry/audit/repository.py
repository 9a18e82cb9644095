"""Every SQL statement about the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from consentry.audit.models import AuditEntry


async def append(session: AsyncSession, entry: dict[str, Any]) -> None:
    """Add one row in the session's transaction, so it commits or rolls back with its action."""
    await session.execute(insert(AuditEntry).values(entry))


async def page(
    connection: AsyncConnection,
    *,
    action: str | None,
    actor: str | None,
    subject_hash: str | None,
    since: datetime | None,
    before_id: int | None,
    limit: int,
) -> Sequence[Any]:
    """Up to `limit` rows, newest first, filtered, older than `before_id` if given."""
    query = select(
        AuditEntry.id,
        AuditEntry.at,
        AuditEntry.action,
        AuditEntry.actor,
        AuditEntry.subject_hash,
        AuditEntry.target,
        AuditEntry.details,
    )
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
    return (await connection.execute(query)).all()
