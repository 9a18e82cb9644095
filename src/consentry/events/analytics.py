"""The analytics libraries' messages (Segment / RudderStack) as events, judged by the one rule.

Each message is mapped to the native event shape and handed, with the batch's other events, to
`service.decide`: the same gate, dedupe and storage as `POST /v1/events`. Profile calls
(`identify`, `group`, `alias`) are not tracking events; nothing of them is kept.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from consentry.db import format_timestamp, utcnow
from consentry.events import service
from consentry.events.categories import CategoryMap
from consentry.events.counters import EventCounts
from consentry.events.schemas import MAX_MESSAGE_BYTES
from consentry.events.service import EventWriter
from consentry.policy import CATEGORIES
from consentry.policy.rules import CONSENT_MODE_CATEGORIES
from consentry.pseudonyms import Pseudonyms
from consentry.subjects import is_anonymous, is_subject_id

# Event ids are UUIDv5 of "<key id>:<messageId>" in this namespace: a library's retry of a
# message is a duplicate, and two keys' messages never collide.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://consentry.dev/analytics")
EVENT_TYPES = ("track", "page", "screen")
PROFILE_TYPES = ("identify", "group", "alias")
MESSAGE_TYPES = (*EVENT_TYPES, *PROFILE_TYPES)

# Names a message's own consent data may use for a category: its id, or its Consent Mode signal.
_CONSENT_NAMES = {
    **{category: category for category in CATEGORIES},
    **CONSENT_MODE_CATEGORIES,
}
_NONE: frozenset[str] = frozenset()
_NATIVE_FIELDS = (("occurred_at", "timestamp"), ("subject_id", "userId"))


@dataclass(frozen=True, slots=True)
class _Event:
    """A message mapped to a native event, and the categories the message itself denies."""

    event: dict[str, Any]
    denied: frozenset[str]


class EventIds:
    """The event ids of one key's messages: UUIDv5 in NAMESPACE of `"<key id>:<messageId>"`.

    What `uuid.uuid5` computes, without building a UUID object per message (which costs three
    times the hash): the hash of the namespace and key is taken once, then copied per message.
    """

    def __init__(self, key_id: str) -> None:
        self._prefix = hashlib.sha1(NAMESPACE.bytes + f"{key_id}:".encode(), usedforsecurity=False)

    def of(self, message_id: str) -> str:
        """The event id of a message."""
        digest = self._prefix.copy()
        digest.update(message_id.encode())
        text = digest.hexdigest()
        # The version (5) and the RFC 4122 variant (10xx) written over their bits, as uuid5 does.
        return (
            f"{text[:8]}-{text[8:12]}-5{text[13:16]}-{_VARIANT[text[16]]}{text[17:20]}-"
            f"{text[20:32]}"
        )


# A hex digit with its two high bits set to the RFC 4122 variant, 10.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def _rejected(message_id: str | None, detail: str) -> dict[str, Any]:
    return {"message_id": message_id, "status": "rejected", "reason": "invalid", "detail": detail}


def _subject(message: dict[str, Any]) -> str:
    """The subject of a message: `userId`, else `anon:<anonymousId>` for a UUID v4."""
    user_id = message.get("userId")
    if user_id is not None and user_id != "":
        if not isinstance(user_id, str) or not is_subject_id(user_id):
            raise ValueError(
                "userId: 1-256 characters of A-Z a-z 0-9 . _ : @ + -, starting with a letter "
                "or digit"
            )
        return user_id
    anonymous_id = message.get("anonymousId")
    if anonymous_id is None or anonymous_id == "":
        raise ValueError("userId or anonymousId: one is required")
    subject = f"anon:{anonymous_id.lower()}" if isinstance(anonymous_id, str) else ""
    if not is_anonymous(subject):
        raise ValueError("anonymousId: only a UUID v4 names an anonymous subject")
    return subject


def _category(name: str, properties: Any, context: Any, categories: CategoryMap) -> Any:
    """The message's own category, else the operator's for its name; "" when there is none."""
    if isinstance(properties, dict) and "consent_category" in properties:
        return properties["consent_category"]
    own = context.get("consentry") if isinstance(context, dict) else None
    if isinstance(own, dict) and "category" in own:
        return own["category"]
    # An empty category is outside the policy: the rule answers `unknown_category`.
    return categories.category_of(name) or ""


def _denied(context: Any) -> frozenset[str]:
    """The categories a message's consent data denies: it may refuse more, never allow more."""
    if not isinstance(context, dict) or (
        "consent" not in context and "consentManagement" not in context
    ):
        return _NONE
    names: list[Any] = []
    consent = context.get("consent")
    if isinstance(consent, dict):
        preferences = consent.get("categoryPreferences")
        if isinstance(preferences, dict):
            # Anything but an explicit true is not a grant.
            names.extend(name for name, granted in preferences.items() if granted is not True)
    management = context.get("consentManagement")
    if isinstance(management, dict):
        denied_ids = management.get("deniedConsentIds")
        if isinstance(denied_ids, list):
            names.extend(denied_ids)
    return frozenset(
        _CONSENT_NAMES[name.lower()]
        for name in names
        if isinstance(name, str) and name.lower() in _CONSENT_NAMES
    )


def _to_event(
    message: dict[str, Any],
    kind: str,
    message_id: str,
    ids: EventIds,
    categories: CategoryMap,
    now: str,
) -> _Event:
    """The native event of a track, page or screen message; ValueError when it has none."""
    try:
        size = len(orjson.dumps(message))
    except orjson.JSONEncodeError:
        raise ValueError("message: nested too deep") from None
    if size > MAX_MESSAGE_BYTES:
        raise ValueError(f"message: more than {MAX_MESSAGE_BYTES} bytes as JSON")
    subject_id = _subject(message)
    name = message.get("event") if kind == "track" else message.get("name")
    if name is None or name == "":
        name = kind
    elif not isinstance(name, str):
        raise ValueError(f"{'event' if kind == 'track' else 'name'}: must be a string")
    properties = message.get("properties")
    context = message.get("context")
    timestamp = message.get("timestamp")
    event = {
        "event_id": ids.of(message_id),
        "subject_id": subject_id,
        "category": _category(name, properties, context, categories),
        "name": name,
        "occurred_at": now if timestamp is None else timestamp,
        "properties": {} if properties is None else properties,
        "context": {} if context is None else context,
    }
    return _Event(event, _denied(context))


def _message_result(message_id: str | None, result: dict[str, Any]) -> dict[str, Any]:
    """A native result, told about the message it came from."""
    answer = {"message_id": message_id, "status": result["status"]}
    if "reason" in result:
        answer["reason"] = result["reason"]
    if "detail" in result:
        detail: str = result["detail"]
        for native, theirs in _NATIVE_FIELDS:
            detail = detail.replace(f"{native}:", f"{theirs}:")
        answer["detail"] = detail
    return answer


async def ingest_messages(
    writer: EventWriter,
    pseudonyms: Pseudonyms,
    counts: EventCounts,
    messages: list[Any],
    sent_at: datetime | None,
    *,
    source: str,
    categories: CategoryMap,
    max_depth: int,
    kind: str | None = None,
) -> dict[str, Any]:
    """Judge and store the tracking events among `messages`; one result per message, in order.

    `source` names the key that sent them (its id); `kind`, on the single-message routes, is
    the route's message type, which the message need not repeat.
    """
    received_at = utcnow()
    ids = EventIds(source)
    # A message without a time happened when it was sent (the batch's clock, corrected below).
    now = format_timestamp(sent_at if sent_at is not None else received_at)
    results: list[dict[str, Any] | None] = []
    events: list[dict[str, Any]] = []
    denied: list[frozenset[str]] = []
    judged: list[tuple[int, str]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            results.append(_rejected(None, "message: must be a JSON object"))
            continue
        raw_id = message.get("messageId")
        message_id = raw_id if isinstance(raw_id, str) and raw_id else None
        message_kind = kind or message.get("type")
        if message_kind in PROFILE_TYPES:
            results.append({"message_id": message_id, "status": "ignored"})
            continue
        if message_kind not in EVENT_TYPES:
            results.append(_rejected(message_id, f"type: one of {', '.join(MESSAGE_TYPES)}"))
            continue
        if message_id is None:
            results.append(_rejected(None, "messageId: a non-empty string is required"))
            continue
        try:
            mapped = _to_event(message, message_kind, message_id, ids, categories, now)
        except ValueError as error:
            results.append(_rejected(message_id, str(error)))
            continue
        results.append(None)
        events.append(mapped.event)
        denied.append(mapped.denied)
        judged.append((index, message_id))
    if events:
        decided = await service.decide(
            writer, pseudonyms, events, sent_at, max_depth, received_at, denied
        )
        for (index, message_id), result in zip(judged, decided, strict=True):
            results[index] = _message_result(message_id, result)
    answered: list[dict[str, Any]] = results  # type: ignore[assignment]  # every one decided
    outcomes = [(result["status"], result.get("reason", "")) for result in answered]
    counts.add(outcomes)
    return _summary(outcomes, answered)


def _summary(outcomes: list[tuple[str, str]], results: list[dict[str, Any]]) -> dict[str, Any]:
    totals = {"accepted": 0, "duplicate": 0, "rejected": 0, "ignored": 0}
    for status, _ in outcomes:
        totals[status] += 1
    return {
        "success": True,
        "accepted": totals["accepted"],
        "duplicates": totals["duplicate"],
        "rejected": totals["rejected"],
        "ignored": totals["ignored"],
        "results": results,
    }
