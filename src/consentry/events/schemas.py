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

from consentry.pagination import NEXT_CURSOR_DESCRIPTION
from consentry.subjects import SUBJECT_ID_PATTERN
from consentry.timestamps import Timestamp

MAX_EVENTS = 1000
MAX_BATCH_BYTES = 1024 * 1024
MAX_OBJECT_BYTES = 8 * 1024
MAX_FUTURE_SECONDS = 300
# The analytics libraries' batches: larger than native ones, as the libraries send them.
MAX_MESSAGES = 2500
MAX_MESSAGE_BYTES = 32 * 1024
MAX_MESSAGES_BYTES = 4 * 1024 * 1024

UUID_PATTERN = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
Status = Literal["accepted", "duplicate", "rejected"]
Reason = Literal["consent_denied", "subject_erased", "unknown_category", "invalid"]
_EVENT_ID = "The event's UUID, chosen by the sender: a repeat is a `duplicate`, never stored twice."
_SUBJECT_ID = "The learner (or `anon:<uuid4>` visitor) the event is about."
_CATEGORY = "The consent category that must be granted for the event to be kept."
_NAME = "What happened, e.g. `lesson.viewed`."
_OCCURRED_AT = "When it happened (RFC 3339 with an offset); at most 5 minutes in the future."
_PROPERTIES = "The event's data, a JSON object of at most 8 KiB."
_CONTEXT = "Where it happened (app, page, device), a JSON object of at most 8 KiB."


@with_config(ConfigDict(extra="forbid"))
class EventIn(TypedDict):
    """One tracking event as a service sends it."""

    event_id: Annotated[str, Field(pattern=UUID_PATTERN, description=_EVENT_ID)]
    subject_id: Annotated[
        str,
        Field(min_length=1, max_length=256, pattern=SUBJECT_ID_PATTERN, description=_SUBJECT_ID),
    ]
    # Any text: a category outside the policy is its own outcome, `unknown_category`.
    category: Annotated[str, Field(max_length=64, description=_CATEGORY)]
    name: Annotated[str, Field(min_length=1, max_length=128, description=_NAME)]
    occurred_at: Annotated[Timestamp, Field(description=_OCCURRED_AT)]
    properties: NotRequired[Annotated[dict[str, Any], Field(description=_PROPERTIES)]]
    context: NotRequired[Annotated[dict[str, Any], Field(description=_CONTEXT)]]


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
                "description": "1-1000 events, each judged on its own.",
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

    event_id: str | None = Field(description="The event's id; null when it had none to read.")
    status: Status = Field(
        description="`accepted` (stored), `duplicate` (stored before) or `rejected`."
    )
    reason: Reason | None = Field(default=None, description="Why it was rejected.")
    detail: str | None = Field(default=None, description="What is wrong with an `invalid` event.")


class EventBatchResult(BaseModel):
    """One result per event, in the order sent, and the counts of each status."""

    accepted: int = Field(description="Events stored now.")
    duplicates: int = Field(description="Events already stored: nothing was stored again.")
    rejected: int = Field(description="Events not stored.")
    results: list[EventResult] = Field(description="One result per event, in the order sent.")


class StoredEvent(BaseModel):
    """An event as stored, time-corrected."""

    event_id: str = Field(description="The event's id, as sent.")
    subject_id: str = Field(description=_SUBJECT_ID)
    category: str = Field(description="The consent category it was judged by.")
    name: str = Field(description=_NAME)
    occurred_at: str = Field(description="When it happened, after the clock correction (UTC).")
    received_at: str = Field(description="When the service received it (UTC).")
    properties: dict[str, Any] = Field(description="The event's data, as sent.")
    context: dict[str, Any] = Field(description="Where it happened, as sent.")


class StoredEventPage(BaseModel):
    """A page of a subject's events, newest first."""

    items: list[StoredEvent] = Field(description="Events, newest first.")
    next_cursor: str | None = Field(description=NEXT_CURSOR_DESCRIPTION)


# The analytics libraries' tracking API (Segment / RudderStack): what the documents show of a
# message. The routes read only these fields and ignore every other one the libraries send.
_MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A message as Segment's and RudderStack's libraries send it; fields not "
    "listed are ignored.",
    "properties": {
        "type": {"enum": ["track", "page", "screen", "identify", "group", "alias"]},
        "messageId": {"type": "string", "description": "The library's id of the message."},
        "userId": {"type": "string", "description": "The subject id."},
        "anonymousId": {
            "type": "string",
            "description": "A UUID v4: the subject `anon:<anonymousId>` when there is no userId.",
        },
        "event": {"type": "string", "description": "A track message's event name."},
        "name": {"type": "string", "description": "A page or screen message's name."},
        "timestamp": {"type": "string", "format": "date-time"},
        "properties": {
            "type": "object",
            "description": "Stored as the event's properties; `consent_category` names the "
            "category.",
        },
        "context": {
            "type": "object",
            "description": "Stored as the event's context; `consentry.category` names the "
            "category, `consent.categoryPreferences` and `consentManagement.deniedConsentIds` "
            "may only deny more.",
        },
    },
    "additionalProperties": True,
}


class AnalyticsBatch(BaseModel):
    """`POST /v1/batch`: the messages, the sender's clock, and perhaps its write key."""

    model_config = ConfigDict(extra="ignore")

    # Each message is mapped and judged on its own, so one bad message rejects only itself.
    batch: Annotated[
        list[Any],
        Field(max_length=MAX_MESSAGES),
        WithJsonSchema(
            {
                "type": "array",
                "description": "Up to 2,500 messages, each mapped and judged on its own.",
                "items": {
                    "anyOf": [
                        _MESSAGE_SCHEMA,
                        {"description": "Anything else: rejected on its own, reason `invalid`."},
                    ]
                },
                "maxItems": MAX_MESSAGES,
            }
        ),
    ]
    sentAt: Timestamp | None = Field(
        default=None,
        description="The sender's clock when it sent the batch; each message's `timestamp` is "
        "shifted by (time received - sentAt).",
    )
    writeKey: Annotated[
        Any,
        WithJsonSchema(
            {
                "type": "string",
                "description": "Compared with the key of the Authorization header (401 when "
                "they differ); never stored.",
            }
        ),
    ] = None


# A single message, on the routes named for its type: any object is taken, and one whose fields
# do not fit is answered 200 with its own result (`rejected`, reason `invalid`).
MESSAGE_BODY_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            **_MESSAGE_SCHEMA,
            "properties": {
                **_MESSAGE_SCHEMA["properties"],
                "sentAt": {"type": "string", "format": "date-time"},
                "writeKey": {"type": "string"},
            },
        },
        {
            "type": "object",
            "description": "Any other object: rejected on its own, reason `invalid`.",
        },
    ],
    "description": "One message; its `type` is the route's. `sentAt` and `writeKey` may come "
    "with it, as in a batch.",
}

MessageStatus = Literal["accepted", "duplicate", "rejected", "ignored"]


class MessageResult(BaseModel):
    """What became of one message."""

    message_id: str | None = Field(description="The message's `messageId`; null without one.")
    status: MessageStatus = Field(
        description="`accepted`, `duplicate`, `rejected`, or `ignored` (identify, group and "
        "alias carry profile data, which is not stored)."
    )
    reason: Reason | None = Field(default=None, description="Why it was rejected.")
    detail: str | None = Field(default=None, description="What is wrong with an `invalid` message.")


class AnalyticsResult(BaseModel):
    """One result per message, in the order sent, and the counts of each status."""

    success: Literal[True] = Field(
        description="Always true: the libraries read it; every parsed batch answers 200."
    )
    accepted: int = Field(description="Messages stored now.")
    duplicates: int = Field(description="Messages already stored: nothing was stored again.")
    rejected: int = Field(description="Messages not stored.")
    ignored: int = Field(description="identify, group and alias messages: nothing is stored.")
    results: list[MessageResult] = Field(description="One result per message, in the order sent.")
