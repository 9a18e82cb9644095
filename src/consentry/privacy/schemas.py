"""Shapes of the erasure endpoints."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from consentry.subjects import SUBJECT_ID_PATTERN

Status = Literal["pending", "running", "awaiting_systems", "completed", "failed", "cancelled"]
SystemStatus = Literal["pending", "confirmed", "notified", "failed"]


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


class ErasureSystemRead(BaseModel):
    """Where one registered system stands in the erasure."""

    id: str
    mode: Literal["confirm", "notify"]
    status: SystemStatus = Field(
        description=(
            "`notified` once a notify system took the message; `confirmed` once a confirm "
            "system (or the privacy team, by hand) confirmed; `failed` while its messages are "
            "exhausted or it is disabled, deleted or no longer told of erasures, and for good "
            "once the request ended without it."
        )
    )
    confirmed_at: str | None
    deleted: dict[str, int] | None = Field(description="What the system reported deleting.")


class ErasureRead(BaseModel):
    """An erasure request; once erased, `subject_id` is null and only its keyed hash is kept."""

    id: str
    subject_id: str | None
    status: Status
    reason: str
    requested_at: str
    due_by: str
    completed_at: str | None = Field(description="When the request ended: every system done.")
    deleted: dict[str, int] | None = Field(description="What Consentry itself removed, per kind.")
    retained_until: str | None
    erased_at: str | None = Field(description="When Consentry's own part was done.")
    starts_at: str | None = Field(
        description="While it waits out the grace period: when it starts; until then it can be "
        "cancelled."
    )
    overdue: bool = Field(description="True while the request is unfinished past `due_by`.")
    systems: list[ErasureSystemRead]


def _plain_text(value: str) -> str:
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("must not hold control characters")
    return value


DeletedCounts = Annotated[
    dict[
        Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")],
        Annotated[int, Field(ge=0, le=2**53)],
    ],
    Field(max_length=32, description="What was deleted: up to 32 snake_case counts."),
]


class ConfirmationCreate(BaseModel):
    """A system's confirmation that it erased the subject (by its token, or by hand)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"system_id": "course-progress", "deleted": {"progress_rows": 12}}]
        },
    )

    system_id: Annotated[
        str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    ]
    deleted: DeletedCounts | None = None
    note: Annotated[
        str | None,
        Field(max_length=1000, description="The privacy team's note: how it was confirmed."),
        AfterValidator(lambda v: v if v is None else _plain_text(v)),
    ] = None


class ErasurePage(BaseModel):
    """A page of erasure requests, newest first."""

    items: list[ErasureRead]
    next_cursor: str | None
