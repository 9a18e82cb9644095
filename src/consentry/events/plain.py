"""The events that are plainly valid, recognised without pydantic: most of every batch.

Validating an event through its TypeAdapter costs several times what these few checks do, and
a batch is nearly always well-formed. Each check here is at least as strict as the schema's
(`schemas.EventIn`), so an event it takes is one the schema takes, with the same values; any
doubt answers None and the schema decides, with its own messages.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from consentry.events.schemas import EVENT, UUID_PATTERN
from consentry.subjects import SUBJECT_ID_PATTERN

_REQUIRED = frozenset({"event_id", "subject_id", "category", "name", "occurred_at"})
_FIELDS = _REQUIRED | {"properties", "context"}
# The schema's patterns, matched in full: `$` in Python also matches before a final newline.
_UUID = re.compile(UUID_PATTERN.removeprefix("^").removesuffix("$"))
_SUBJECT_ID = re.compile(SUBJECT_ID_PATTERN.removeprefix("^").removesuffix("$"))
# RFC 3339 in the one spelling senders use, which both parsers read alike; any other spelling
# (lower-case letters, a space, more than six fractional digits, leap seconds) goes to pydantic.
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_EMPTY: dict[str, Any] = {}


class PlainEvent(NamedTuple):
    """A valid event's fields, `occurred_at` parsed and in UTC, the documents serialized too."""

    event_id: str
    subject_id: str
    category: str
    name: str
    occurred_at: datetime
    properties: dict[str, Any]
    context: dict[str, Any]
    # Both documents as JSON (see `dumped`).
    properties_json: bytes
    context_json: bytes


def dumped(document: dict[str, Any]) -> bytes:
    """The document as JSON; empty past orjson's own limit of 255 levels (or any it refuses)."""
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:
        return b""


def plain_event(raw: Any) -> PlainEvent | None:
    """The event, when every field is plainly valid; None when the schema must decide."""
    # Only known fields, and as many as the required ones and the optional ones present.
    if (
        type(raw) is not dict
        or not _FIELDS.issuperset(raw)
        or len(raw) != len(_REQUIRED) + ("properties" in raw) + ("context" in raw)
    ):
        return None
    event_id = raw["event_id"]
    subject_id = raw["subject_id"]
    category = raw["category"]
    name = raw["name"]
    occurred_at = raw["occurred_at"]
    if not (
        type(event_id) is str
        and type(subject_id) is str
        and type(category) is str
        and type(name) is str
        and type(occurred_at) is str
        and len(category) <= 64
        and 0 < len(name) <= 128
        and _UUID.fullmatch(event_id)
        and _SUBJECT_ID.fullmatch(subject_id)
        and _TIMESTAMP.fullmatch(occurred_at)
    ):
        return None
    properties = raw.get("properties", _EMPTY)
    context = raw.get("context", _EMPTY)
    if type(properties) is not dict or type(context) is not dict:
        return None
    try:
        # A valid text may name no date (February 30th) or fall outside the years 1-9999 in UTC.
        moment = datetime.fromisoformat(occurred_at).astimezone(UTC)
        # orjson takes keys of exactly `str` only, as the schema's `dict[str, Any]` keeps them
        # (it turns any other into text): serializing here checks them for free.
        properties_json = orjson.dumps(properties)
        context_json = orjson.dumps(context)
    except (ValueError, OverflowError, orjson.JSONEncodeError):
        return None
    return PlainEvent(
        event_id,
        subject_id,
        category,
        name,
        moment,
        properties,
        context,
        properties_json,
        context_json,
    )


def schema_reading(raw: Any) -> PlainEvent:
    """The event as the schema reads it, whatever it holds; ValidationError with its problems."""
    event = EVENT.validate_python(raw)
    properties = event.get("properties", {})
    context = event.get("context", {})
    return PlainEvent(
        event["event_id"],
        event["subject_id"],
        event["category"],
        event["name"],
        event["occurred_at"].astimezone(UTC),
        properties,
        context,
        dumped(properties),
        dumped(context),
    )
