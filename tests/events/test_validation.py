"""Each event is checked on its own: a malformed one is rejected `invalid`, its batch goes on."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.events.support import (
    EVENTS,
    TIMESTAMP,
    count_rows,
    ingest,
    new_subject,
    now,
    outcomes,
    parse,
    stored,
    stored_ids,
)
from tests.helpers import admin, event, rfc3339

pytestmark = pytest.mark.anyio

Breaker = Callable[[dict[str, Any]], Any]


def _without(field: str) -> Breaker:
    return lambda e: {k: v for k, v in e.items() if k != field}


def _with(**fields: Any) -> Breaker:
    return lambda e: {**e, **fields}


def _future(minutes: int) -> str:
    return rfc3339(now() + timedelta(minutes=minutes))


def _object_of(size: int, character: str = "x") -> dict[str, str]:
    """A JSON object whose compact serialization is exactly `size` bytes."""
    count, rest = divmod(size - len('{"p":""}'), len(character.encode()))
    assert rest == 0
    document = {"p": character * count}
    assert len(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()) == size
    return document


# Each case: its name, how to break a valid event, the field its detail must name (None: any).
CASES: list[tuple[str, Breaker, str | None]] = [
    ("event_id_missing", _without("event_id"), "event_id"),
    ("event_id_not_a_uuid", _with(event_id="not-a-uuid"), "event_id"),
    ("event_id_without_dashes", _with(event_id=uuid.uuid4().hex), "event_id"),
    ("event_id_in_braces", _with(event_id=f"{{{uuid.uuid4()}}}"), "event_id"),
    ("event_id_urn", _with(event_id=f"urn:uuid:{uuid.uuid4()}"), "event_id"),
    ("event_id_newline", _with(event_id=f"{uuid.uuid4()}\n"), "event_id"),
    ("event_id_not_hex", _with(event_id=str(uuid.uuid4())[:-1] + "g"), "event_id"),
    ("event_id_number", _with(event_id=12345), "event_id"),
    ("event_id_null", _with(event_id=None), "event_id"),
    ("subject_id_missing", _without("subject_id"), "subject_id"),
    ("subject_id_empty", _with(subject_id=""), "subject_id"),
    ("subject_id_leading_dash", _with(subject_id="-u1"), "subject_id"),
    ("subject_id_space", _with(subject_id="u 1"), "subject_id"),
    ("subject_id_newline", _with(subject_id="u1\n"), "subject_id"),
    ("subject_id_257_chars", _with(subject_id="u" * 257), "subject_id"),
    ("subject_id_number", _with(subject_id=42), "subject_id"),
    ("category_missing", _without("category"), "category"),
    ("category_65_chars", _with(category="c" * 65), "category"),
    ("category_number", _with(category=1), "category"),
    ("category_null", _with(category=None), "category"),
    ("name_missing", _without("name"), "name"),
    ("name_empty", _with(name=""), "name"),
    ("name_129_chars", _with(name="n" * 129), "name"),
    ("name_list", _with(name=["lesson.viewed"]), "name"),
    ("occurred_at_missing", _without("occurred_at"), "occurred_at"),
    ("occurred_at_number", _with(occurred_at=1767225600), "occurred_at"),
    ("occurred_at_float", _with(occurred_at=1767225600.5), "occurred_at"),
    ("occurred_at_without_offset", _with(occurred_at="2026-01-01T00:00:00"), "occurred_at"),
    ("occurred_at_date_only", _with(occurred_at="2026-01-01"), "occurred_at"),
    ("occurred_at_garbage", _with(occurred_at="yesterday"), "occurred_at"),
    ("occurred_at_empty", _with(occurred_at=""), "occurred_at"),
    ("occurred_at_6_min_ahead", lambda e: {**e, "occurred_at": _future(6)}, "occurred_at"),
    ("properties_list", _with(properties=[]), "properties"),
    ("properties_string", _with(properties="{}"), "properties"),
    ("properties_null", _with(properties=None), "properties"),
    ("properties_8193_bytes", _with(properties=_object_of(8193)), "properties"),
    ("context_list", _with(context=[{"app": "web"}]), "context"),
    ("context_8193_bytes", _with(context=_object_of(8193)), "context"),
    ("unknown_field", _with(surprise=1), "surprise"),
    ("server_field", _with(received_at="2026-01-01T00:00:00Z"), "received_at"),
    ("a_string", lambda e: "an event", None),
    ("a_number", lambda e: 7, None),
    ("null", lambda e: None, None),
    ("a_list", lambda e: [e], None),
    ("an_empty_object", lambda e: {}, None),
]


async def test_each_invalid_event_is_rejected_alone(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Every kind of malformed event, each followed by a valid one, all in one batch."""
    subject = new_subject()
    pairs = [(breaker(event(subject)), event(subject)) for _, breaker, _ in CASES]
    result = await ingest(client, [e for pair in pairs for e in pair])
    wrong: dict[str, Any] = {}
    for index, ((name, _, field), (bad, good)) in enumerate(zip(CASES, pairs, strict=True)):
        rejected, accepted = result["results"][2 * index : 2 * index + 2]
        sent_id = bad.get("event_id") if isinstance(bad, dict) else None
        detail = rejected.pop("detail", None)
        expected = {
            "event_id": sent_id if isinstance(sent_id, str) else None,  # as sent, if text
            "status": "rejected",
            "reason": "invalid",
        }
        described = isinstance(detail, str) and bool(detail) and (field or "") in detail
        if (
            rejected != expected
            or not described
            or accepted != {"event_id": good["event_id"], "status": "accepted"}
        ):
            wrong[name] = (rejected, detail, accepted)
    assert wrong == {}
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (
        len(CASES),
        0,
        len(CASES),
    )
    assert await count_rows(app) == len(CASES)


async def test_a_batch_of_invalid_events_only_is_still_200(client: httpx.AsyncClient) -> None:
    nameless = event(new_subject(), name="")
    result = await ingest(client, [None, {"event_id": "x"}, nameless])
    assert outcomes(result) == ["invalid"] * 3
    assert [r["event_id"] for r in result["results"]] == [None, "x", nameless["event_id"]]


async def test_several_problems_of_one_event_are_all_described(client: httpx.AsyncClient) -> None:
    bad = {**event(new_subject(), name="", surprise=True), "category": 5}
    [result] = (await ingest(client, [bad]))["results"]
    assert result["reason"] == "invalid"
    for field in ("name", "category", "surprise"):
        assert field in result["detail"]


async def test_events_at_every_upper_bound_are_accepted(client: httpx.AsyncClient) -> None:
    subject = new_subject()
    events = [
        event(subject, properties=_object_of(8192)),
        event(subject, context=_object_of(8192)),
        # Bytes are counted, not characters: 4092 two-byte characters make 8192 bytes.
        event(subject, properties=_object_of(8192, "é")),
        event(subject, name="n" * 128),
        event(subject, name="é" * 128),
        event(subject, occurred_at=_future(4)),
        event("s" * 256),
        event(subject, properties={}, context={}),
    ]
    result = await ingest(client, events)
    assert outcomes(result) == ["accepted"] * len(events)
    assert len(await stored_ids(client, subject)) == len(events) - 1
    assert len(await stored_ids(client, "s" * 256)) == 1


async def test_the_size_of_an_object_is_that_of_its_compact_json(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A sender's own spacing does not count: 8192 bytes compact pass, even sent indented."""
    subject = new_subject()
    fits = event(subject, properties=_object_of(8192))
    too_big = event(subject, properties=_object_of(8194, "é"))
    body = json.dumps({"events": [fits, too_big]}, indent=4, ensure_ascii=True)
    response = await client.post(
        EVENTS, content=body, headers={**admin(), "Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert outcomes(response.json()) == ["accepted", "invalid"]
    assert "properties" in response.json()["results"][1]["detail"]
    assert await count_rows(app) == 1


async def test_a_stored_event_reads_back_as_sent(client: httpx.AsyncClient) -> None:
    subject = new_subject()
    properties = {"course_id": "bio-101", "score": 0.5, "tags": ["a", "é"], "nested": {"n": None}}
    sent = event(
        subject,
        occurred_at="2026-11-28T14:30:00.25+02:00",
        name="lesson.viewed",
        properties=properties,
        context={"app": "web", "version": 3},
    )
    bare = event(subject, occurred_at="2026-11-28T12:00:00Z")
    before = now()
    await ingest(client, [sent, bare])
    after = now()
    items = await stored(client, subject)
    assert [item["event_id"] for item in items] == [sent["event_id"], bare["event_id"]]
    item = items[0]
    assert set(item) == {
        "event_id",
        "subject_id",
        "category",
        "name",
        "occurred_at",
        "received_at",
        "properties",
        "context",
    }
    assert item["subject_id"] == subject
    assert item["category"] == "necessary"
    assert item["name"] == "lesson.viewed"
    assert item["occurred_at"] == "2026-11-28T12:30:00.250000Z"  # in UTC
    assert item["properties"] == properties
    assert item["context"] == {"app": "web", "version": 3}
    assert re.fullmatch(TIMESTAMP, item["received_at"])
    assert before <= parse(item["received_at"]) <= after
    assert items[1]["properties"] == {} and items[1]["context"] == {}


@pytest.mark.parametrize(
    "breaker",
    [
        pytest.param(_with(name="lesson\x00viewed"), id="name"),
        pytest.param(_with(properties={"course": "bio\x00101"}), id="properties_value"),
        pytest.param(_with(context={"\x00app": "web"}), id="context_key"),
    ],
)
async def test_a_nul_character_never_fails_the_batch(
    request: pytest.FixtureRequest, app: FastAPI, client: httpx.AsyncClient, breaker: Breaker
) -> None:
    """JSON may carry U+0000, which PostgreSQL's text and jsonb refuse: never a 500.

    Either answer keeps the batch: the event stored as sent, or rejected `invalid`.
    """
    subject = new_subject()
    odd = breaker(event(subject))
    good = event(subject)
    result = await ingest(client, [odd, good])
    assert result["results"][1] == {"event_id": good["event_id"], "status": "accepted"}
    if result["results"][0]["status"] == "accepted":
        [item] = [i for i in await stored(client, subject) if i["event_id"] == odd["event_id"]]
        assert {k: item[k] for k in ("name", "properties", "context")} == {
            "name": odd["name"],
            "properties": odd.get("properties", {}),
            "context": odd.get("context", {}),
        }
    else:
        assert result["results"][0]["reason"] == "invalid"


@pytest.mark.parametrize(
    ("occurred_at", "sent_at"),
    [
        pytest.param("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", id="shifted_before_year_1"),
        pytest.param("9999-12-31T23:00:00Z", "0001-01-01T00:00:00Z", id="shifted_past_9999"),
        pytest.param("0001-01-01T00:30:00+01:00", None, id="before_year_1_in_utc"),
    ],
)
async def test_an_occurred_at_out_of_range_once_corrected_is_invalid(
    app: FastAPI, client: httpx.AsyncClient, occurred_at: str, sent_at: str | None
) -> None:
    subject = new_subject()
    odd = event(subject, occurred_at=occurred_at)
    good = event(subject, occurred_at=rfc3339(now()) if sent_at is None else sent_at)
    envelope = {} if sent_at is None else {"sent_at": sent_at}
    result = await ingest(client, [odd, good], **envelope)
    assert outcomes(result) == ["invalid", "accepted"]
    assert await count_rows(app) == 1


def _nested(levels: int) -> dict[str, Any]:
    """An object nesting `levels` objects, itself included."""
    document: dict[str, Any] = {}
    for _ in range(levels - 1):
        document = {"a": document}
    return document


@pytest.mark.parametrize("levels", [30, 256, 300])
async def test_a_free_form_object_nested_too_deep_rejects_its_event_alone(
    app: FastAPI, client: httpx.AsyncClient, levels: int
) -> None:
    """Past 255 levels orjson could not store the object, and the batch was answered 500."""
    subject = new_subject()
    deep = [event(subject, properties=_nested(levels)), event(subject, context=_nested(levels))]
    result = await ingest(client, [*deep, event(subject)])
    assert outcomes(result) == ["invalid", "invalid", "accepted"]
    assert "nested deeper than 29 levels" in result["results"][0]["detail"]
    assert "context" in result["results"][1]["detail"]
    assert await count_rows(app) == 1


async def test_a_free_form_object_at_the_depth_limit_is_accepted(client: httpx.AsyncClient) -> None:
    """The body (1), `events` (2) and the event (3) leave 29 of CONSENTRY_MAX_JSON_DEPTH's 32."""
    subject = new_subject()
    result = await ingest(client, [event(subject, properties=_nested(29))])
    assert outcomes(result) == ["accepted"]
