"""Shapes of the audit log endpoint."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from consentry.pagination import NEXT_CURSOR_DESCRIPTION


class AuditEntryRead(BaseModel):
    """One recorded action; `subject_hash` is the keyed hash of the subject it concerned."""

    id: int = Field(description="The entry's number; later entries have larger ones.")
    at: str = Field(description="When it happened (RFC 3339, UTC).")
    action: str = Field(
        description="What was done, e.g. `export`, `key_created`, `system_changed`."
    )
    actor: str = Field(description="Who did it: an API key's name, `subject`, `worker` or `cli`.")
    subject_hash: str | None = Field(
        description="The keyed hash of the subject it concerned; null when none."
    )
    target: str | None = Field(
        description="What it acted on besides a subject (a provider, system, key), if anything."
    )
    details: dict[str, Any] = Field(description="More about the action; never personal data.")


class AuditLogPage(BaseModel):
    """A page of the log, newest first."""

    items: list[AuditEntryRead] = Field(description="Entries, newest first.")
    next_cursor: str | None = Field(description=NEXT_CURSOR_DESCRIPTION)
