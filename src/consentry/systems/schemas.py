"""Shapes of the platform systems' endpoints: the registry and its deliveries."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from consentry.pagination import NEXT_CURSOR_DESCRIPTION

SYSTEM_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
SYSTEM_ID_DESCRIPTION = (
    "The system's id: lower-case letters, digits and hyphens, up to 64, e.g. `course-progress`."
)
MESSAGE_ID_PATTERN = r"^msg_[0-9a-f]{32}$"
_SYSTEM_ID = re.compile(SYSTEM_ID_PATTERN)

MessageType = Literal["consent.changed", "integration.changed", "erasure.requested"]
ErasureMode = Literal["confirm", "notify", "none"]
DeliveryStatus = Literal["pending", "delivered", "failed", "exhausted"]


def is_system_id(value: str) -> bool:
    """Whether `value` is a well-formed system id."""
    return _SYSTEM_ID.fullmatch(value) is not None


def _plain_text(value: str) -> str:
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("must not hold control characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("must not name a type twice")
    return values


SystemId = Annotated[
    str,
    Field(
        min_length=1, max_length=64, pattern=SYSTEM_ID_PATTERN, description=SYSTEM_ID_DESCRIPTION
    ),
]
Name = Annotated[
    str,
    Field(min_length=1, max_length=128, description="A name for people, e.g. `Course progress`."),
    AfterValidator(_plain_text),
]
WebhookUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description=(
            "Where deliveries are POSTed: https without credentials, to a host whose every "
            "address is globally routable, unless the host is in CONSENTRY_WEBHOOK_ALLOW_HOSTS."
        ),
    ),
]
Events = Annotated[
    list[MessageType],
    Field(
        max_length=3,
        description=(
            "The message types sent to the system. `erasure.requested` goes to every system "
            "whose `erasure` is not `none`, listed here or not."
        ),
        json_schema_extra={"uniqueItems": True},
    ),
    AfterValidator(_unique),
]
Erasure = Annotated[
    ErasureMode,
    Field(
        description=(
            "`confirm`: told of erasures, deletes, and confirms; `notify`: told, no answer "
            "expected; `none`: not told."
        )
    ),
]

_SYSTEM_EXAMPLE: dict[str, Any] = {
    "name": "Course progress",
    "webhook_url": "https://progress.internal/hooks/consentry",
    "events": ["consent.changed", "integration.changed"],
    "erasure": "confirm",
}


class SystemFields(BaseModel):
    """Everything said about a system but its id."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    webhook_url: WebhookUrl
    events: Events = Field(default_factory=list)
    erasure: Erasure = "none"


class SystemCreate(SystemFields):
    """A system to register."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"id": "course-progress", **_SYSTEM_EXAMPLE}]},
    )

    id: SystemId


class SystemReplace(SystemFields):
    """A system's whole description; `id`, if given, must be the id in the path."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_SYSTEM_EXAMPLE]})

    id: SystemId | None = Field(
        default=None, description="Optional; when given, the id in the path."
    )


class SystemRead(BaseModel):
    """A registered system (its secret is shown only when it is made)."""

    id: str = Field(description=SYSTEM_ID_DESCRIPTION)
    name: str = Field(description="A name for people.")
    webhook_url: str = Field(description="Where deliveries are POSTed.")
    events: list[MessageType] = Field(
        description="The message types sent to it (and `erasure.requested` whenever `erasure` is "
        "not `none`)."
    )
    erasure: ErasureMode = Field(
        description="`confirm`, `notify` or `none`: what it is told of erasures and whether it "
        "answers."
    )
    disabled: bool = Field(
        description="True after the system answered 410 Gone: nothing is sent until its next PUT."
    )
    disabled_at: str | None = Field(description="When it answered 410 Gone; null while enabled.")
    previous_secret_expires_at: str | None = Field(
        description="Until when the secret before the last rotation still signs, if it does."
    )
    created_at: str = Field(description="When it was registered.")
    updated_at: str = Field(description="When its description or secret last changed.")


class SystemWithSecret(SystemRead):
    """A system with its signing secret, shown this once."""

    secret: str = Field(description="`whsec_...`: verify every delivery with it. Shown once.")


class SystemPage(BaseModel):
    """A page of systems, ordered by id."""

    items: list[SystemRead] = Field(description="Systems, ordered by id.")
    next_cursor: str | None = Field(description=NEXT_CURSOR_DESCRIPTION)


class DeliveryRead(BaseModel):
    """One message on its way to a system (never its body)."""

    message_id: str = Field(description="The `webhook-id` of every attempt.")
    type: MessageType = Field(description="The message type.")
    status: DeliveryStatus = Field(
        description="`pending` (to be sent), `delivered` (a 2xx answered), `failed` (retrying) or "
        "`exhausted` (given up; may be retried by hand)."
    )
    attempts: int = Field(description="Attempts made so far.")
    last_status: str | None = Field(
        description="The HTTP status of the last attempt, or `timeout` or `refused`."
    )
    last_error: str | None = Field(
        description="Why the last attempt got no HTTP status, when it did not."
    )
    last_attempt_at: str | None = Field(
        description="When the last attempt was made; null before the first."
    )
    next_attempt_at: str | None = Field(
        description="When the next attempt is due; null when none is."
    )
    delivered_at: str | None = Field(description="When a 2xx answered; null until then.")
    created_at: str = Field(
        description="When the message was stored, in the transaction of the change it announces."
    )
    retryable: bool = Field(
        description="False once the message's subject was erased: its body is gone."
    )


class DeliveryPage(BaseModel):
    """A page of a system's deliveries, newest first."""

    items: list[DeliveryRead] = Field(description="Messages, newest first.")
    next_cursor: str | None = Field(description=NEXT_CURSOR_DESCRIPTION)
