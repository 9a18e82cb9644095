"""Shapes of the events endpoints: the batch envelope, one event, the results."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    WithJsonSchema,
    with_config,
)
from typing_extensions import TypedDict

from consentry.subjects import SUBJECT_ID_PATTERN
from consentry.timestamps import Timestamp

MAX_EVENTS = 1000
MAX_BATCH_BYTES = 1024 * 1024
MAX_OBJECT_BYTES = 8 * 1024
MAX_FUTURE_SECONDS = 300

UUID_PATTERN = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
Status = Literal["accepted", "duplicate", "rejected"]
Reason = Literal["consent_denied", "subject_erased", "unknown_category", "invalid"]


@with_config(ConfigDict(extra="forbid"))
class EventIn(TypedDict):
    """One tracking event as a service sends it."""

    event_id: Annotated[str, Field(pattern=UUID_PATTERN)]
    subject_id: Annotated[str, Field(min_length=1, max_length=256, pattern=SUBJECT_ID_PATTERN)]
    # Any text: a category outside the policy is its own outcome, `unknown_category`.
    category: Annotated[str, Field(max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=128)]
    occurred_at: Timestamp
    properties: NotRequired[dict[str, Any]]
    context: NotRequired[dict[str, Any]]


EVENT = TypeAdapter(EventIn)


class EventBatch(BaseModel):
    """The envelope: up to 1000 events, each judged on its own, and the sender's clock."""

    model_config = ConfigDict(extra="forbid")

    # Each event is validated on its own, so one bad event rejects only itself.
    events: Annotated[
        list[Any],
        Field(min_length=1, max_length=MAX_EVENTS),
        WithJsonSchema(
            {
                "type": "array",
                # An item that is not an Event still gets a 200 and its own result (`rejected`,
                # reason `invalid`): the envelope takes any JSON value in the list.
                "items": {
                    "anyOf": [
                        EVENT.json_schema(),
                        {"description": "Anything else: rejected on its own, reason `invalid`."},
                    ]
                },
                "minItems": 1,
                "maxItems": MAX_EVENTS,
            }
        ),
    ]
    sent_at: Timestamp | None = Field(
        default=None,
        description="The sender's clock when it sent the batch; each `occurred_at` is shifted "
        "by (time received - sent_at).",
    )


class EventResult(BaseModel):
    """What became of one event."""

    event_id: str | None
    status: Status
    reason: Reason | None = None
    detail: str | None = None


class EventBatchResult(BaseModel):
    """One result per event, in the order sent, and the counts of each status."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResult]


class StoredEvent(BaseModel):
    """An event as stored, time-corrected."""

    event_id: str
    subject_id: str
    category: str
    name: str
    occurred_at: str
    received_at: str
    properties: dict[str, Any]
    context: dict[str, Any]


class StoredEventPage(BaseModel):
    """A page of a subject's events, newest first."""

    items: list[StoredEvent]
    next_cursor: str | None
