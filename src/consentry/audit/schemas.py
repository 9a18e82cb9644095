"""Shapes of the audit log endpoint."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class AuditEntryRead(BaseModel):
    """One recorded action; `subject_hash` is the keyed hash of the subject it concerned."""

    id: int
    at: str
    action: str
    actor: str
    subject_hash: str | None
    target: str | None
    details: dict[str, Any]


class AuditLogPage(BaseModel):
    """A page of the log, newest first."""

    items: list[AuditEntryRead]
    next_cursor: str | None
