"""Shapes of the erasure endpoints."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from consentry.pagination import NEXT_CURSOR_DESCRIPTION
from consentry.subjects import SUBJECT_ID_PATTERN

Status = Literal["pending", "running", "awaiting_systems", "completed", "failed", "cancelled"]
SystemStatus = Literal["pending", "confirmed", "notified", "failed"]


class ErasureCreate(BaseModel):
    """A request to erase a subject (GDPR Art. 17, account deletion)."""

    model_config = ConfigDict(extra="forbid")

    subject_id: Annotated[
        str,
        Field(
            min_length=1,
            max_length=256,
            pattern=SUBJECT_ID_PATTERN,
            description="The subject to erase; a learner's own JWT may name only itself.",
        ),
    ]
    reason: Annotated[
        str,
        Field(
            pattern=r"^[a-z][a-z0-9_]{0,63}$",
            description="Why, as a word such as `account_deleted` or `subject_request`.",
        ),
    ] = "subject_request"


class ErasureSystemRead(BaseModel):
    """Where one registered system stands in the erasure."""

    id: str = Field(description="The registered system's id.")
    mode: Literal["confirm", "notify"] = Field(
        description="`confirm`: the system confirms when done; `notify`: told, no answer expected."
    )
    status: SystemStatus = Field(
        description=(
            "`notified` once a notify system took the message; `confirmed` once a confirm "
            "system (or the privacy team, by hand) confirmed; `failed` while its messages are "
            "exhausted or it is disabled, deleted or no longer told of erasures, and for good "
            "once the request ended without it."
        )
    )
    confirmed_at: str | None = Field(
        description="When it confirmed (or the privacy team did by hand); null until then."
    )
    deleted: dict[str, int] | None = Field(description="What the system reported deleting.")


class ErasureRead(BaseModel):
    """An erasure request; once erased, `subject_id` is null and only its keyed hash is kept."""

    id: str = Field(description="The request's id.")
    subject_id: str | None = Field(
        description="The subject to erase; null once erased (only its keyed hash is kept)."
    )
    status: Status = Field(
        description="`pending`, `running`, `awaiting_systems` (Consentry's part done, systems "
        "still to answer), `completed`, `failed` (retried) or `cancelled`."
    )
    reason: str = Field(description="Why, as given when it was requested.")
    requested_at: str = Field(description="When it was requested.")
    due_by: str = Field(description="The legal deadline: 30 days after the request.")
    completed_at: str | None = Field(description="When the request ended: every system done.")
    deleted: dict[str, int] | None = Field(description="What Consentry itself removed, per kind.")
    retained_until: str | None = Field(
        description="Until when the pseudonymised consent history is kept as legal proof "
        "(Consentry's part done + 90 days)."
    )
    erased_at: str | None = Field(description="When Consentry's own part was done.")
    starts_at: str | None = Field(
        description="While it waits out the grace period: when it starts; until then it can be "
        "cancelled."
    )
    overdue: bool = Field(description="True while the request is unfinished past `due_by`.")
    systems: list[ErasureSystemRead] = Field(
        description="Where each registered system that is told of erasures stands."
    )


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
        str,
        Field(
            min_length=1,
            max_length=64,
            pattern=r"^[a-z0-9][a-z0-9-]{0,63}$",
            description="The system that erased the subject; with a confirm token, its own id.",
        ),
    ]
    deleted: DeletedCounts | None = Field(
        default=None, description="What the system deleted: up to 32 snake_case counts."
    )
    note: Annotated[
        str | None,
        Field(max_length=1000, description="The privacy team's note: how it was confirmed."),
        AfterValidator(lambda v: v if v is None else _plain_text(v)),
    ] = None


class ErasurePage(BaseModel):
    """A page of erasure requests, newest first."""

    items: list[ErasureRead] = Field(description="Requests, newest first.")
    next_cursor: str | None = Field(description=NEXT_CURSOR_DESCRIPTION)
