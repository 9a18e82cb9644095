"""Shapes of the erasure endpoints."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from consentry.subjects import SUBJECT_ID_PATTERN

Status = Literal["pending", "running", "completed", "failed", "cancelled"]


class ErasureCreate(BaseModel):
    """A request to erase a subject (GDPR Art. 17, account deletion)."""

    model_config = ConfigDict(extra="forbid")

    subject_id: Annotated[str, Field(min_length=1, max_length=256, pattern=SUBJECT_ID_PATTERN)]
    reason: Annotated[
        str,
        Field(
            pattern=r"^[a-z][a-z0-9_]{0,63}$",
            description="Why, as a word such as `account_deleted` or `subject_request`.",
        ),
    ] = "subject_request"


class ErasureRead(BaseModel):
    """An erasure request; once completed, `subject_id` is null and only its keyed hash is kept."""

    id: str
    subject_id: str | None
    status: Status
    reason: str
    requested_at: str
    due_by: str
    completed_at: str | None
    deleted: dict[str, int] | None
    retained_until: str | None


class ErasurePage(BaseModel):
    """A page of erasure requests, newest first."""

    items: list[ErasureRead]
    next_cursor: str | None
