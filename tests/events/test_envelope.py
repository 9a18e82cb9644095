"""The batch envelope: who may send, how much, in what form; a refused envelope stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from tests.events.support import EVENTS, count_rows, ingest, new_subject, post, stored_ids
from tests.helpers import admin, bearer, event, make_key, user_token
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

LIMIT = 1024 * 1024
JSON = {"Content-Type": "application/json"}


async def test_an_events_write_key_may_send(app: FastAPI, client: httpx.AsyncClient) -> None:
    key = await make_key(app, "ingest", "events:write")
    subject = new_subject()
    response = await post(client, [event(subject)], headers=bearer(key))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    assert len(await stored_ids(client, subject)) == 1


async def test_a_privacy_admin_key_may_send(app: FastAPI, client: httpx.AsyncClient) -> None:
    key = await make_key(app, "privacy", "privacy:admin")
    response = await post(client, [event(new_subject())], headers=bearer(key))
    assert response.status_code == 200
    assert (await post(client, [event(new_subject())], headers=admin())).status_code == 200
    assert await count_rows(app) == 2


@pytest.mark.parametrize(
    ("who", "status", "code"),
    [
        ("nobody", 401, "unauthorized"),
        ("unknown_key", 401, "unauthorized"),
        ("consent_key", 403, "forbidden"),
        ("subject_jwt", 403, "forbidden"),
    ],
)
async def test_only_event_writers_may_send(
    app: FastAPI, client: httpx.AsyncClient, who: str, status: int, code: str
) -> None:
    subject = new_subject()
    headers = {
        "nobody": {},
        "unknown_key": bearer("csk_not-a-key-of-this-service-0123456789abcdef"),
        "consent_key": bearer(await make_key(app, "consent", "consent:read", "consent:write")),
        "subject_jwt": bearer(user_token(subject)),
    }[who]
    response = await post(client, [event(subject)], headers=headers)
    assert_problem(response, status, code)
    assert await count_rows(app) == 0


def _envelope(events: list[Any], **fields: Any) -> dict[str, Any]:
    return {"events": events, **fields}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"surprise": 1}, id="unknown_field"),
        pytest.param({"Events": []}, id="field_name_case"),
        pytest.param({"events": None}, id="events_null"),
        pytest.param({"events": {}}, id="events_object"),
        pytest.param({"events": "[]"}, id="events_string"),
        pytest.param({"events": []}, id="events_empty"),
        pytest.param({"sent_at": 1767225600}, id="sent_at_number"),
        pytest.param({"sent_at": "2026-01-01T00:00:00"}, id="sent_at_without_offset"),
        pytest.param({"sent_at": "yesterday"}, id="sent_at_garbage"),
        pytest.param({"sent_at": None, "surprise": None}, id="unknown_field_null"),
    ],
)
async def test_an_envelope_that_does_not_fit_is_422_and_stores_nothing(
    app: FastAPI, client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    payload = {"events": [event(new_subject())], **body}
    response = await client.post(EVENTS, json=payload, headers=admin())
    assert_problem(response, 422, "validation_error")
    assert await count_rows(app) == 0


@pytest.mark.parametrize("content", [b"[]", b'[{"events": []}]', b'"events"', b"1", b"null"])
async def test_a_body_that_is_not_an_object_is_422(
    client: httpx.AsyncClient, content: bytes
) -> None:
    response = await client.post(EVENTS, content=content, headers={**admin(), **JSON})
    assert_problem(response, 422, "validation_error")


async def test_a_missing_events_list_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(EVENTS, json={"sent_at": "2026-01-01T00:00:00Z"}, headers=admin())
    assert_problem(response, 422, "validation_error")


async def test_exactly_1000_events_are_taken(app: FastAPI, client: httpx.AsyncClient) -> None:
    subjects = [new_subject() for _ in range(10)]
    events = [event(subjects[i % 10]) for i in range(1000)]
    result = await ingest(client, events)
    assert result["accepted"] == 1000
    assert await count_rows(app) == 1000


async def test_1001_events_are_422_and_none_is_stored(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    subject = new_subject()
    response = await post(client, [event(subject) for _ in range(1001)])
    assert_problem(response, 422, "validation_error")
    assert await count_rows(app) == 0


# Events of some 8 KiB each that fill all but the last few KiB of a mebibyte.
EVENTS_IN_1_MIB = 129


def _body_of(size: int, subject: str) -> bytes:
    """A valid batch of exactly `size` bytes: padded events, then JSON whitespace at the end."""
    events = [event(subject, properties={"pad": "x" * 7900}) for _ in range(EVENTS_IN_1_MIB)]
    body = orjson.dumps({"events": events})
    assert LIMIT - 8000 < len(body) <= size
    return body + b" " * (size - len(body))


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 64 * 1024):
        yield body[start : start + 64 * 1024]


async def test_a_body_of_exactly_1_mib_is_taken(app: FastAPI, client: httpx.AsyncClient) -> None:
    body = _body_of(LIMIT, new_subject())
    response = await client.post(EVENTS, content=body, headers={**admin(), **JSON})
    assert response.request.headers["content-length"] == str(LIMIT)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == EVENTS_IN_1_MIB
    assert await count_rows(app) == EVENTS_IN_1_MIB


async def test_a_streamed_body_of_exactly_1_mib_is_taken(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        EVENTS, content=_chunks(_body_of(LIMIT, new_subject())), headers={**admin(), **JSON}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 200, response.text
    assert await count_rows(app) == EVENTS_IN_1_MIB


async def test_a_body_one_byte_past_1_mib_is_413(app: FastAPI, client: httpx.AsyncClient) -> None:
    body = _body_of(LIMIT + 1, new_subject())
    response = await client.post(EVENTS, content=body, headers={**admin(), **JSON})
    assert response.request.headers["content-length"] == str(LIMIT + 1)
    assert_problem(response, 413, "payload_too_large")
    assert await count_rows(app) == 0


async def test_a_streamed_body_one_byte_past_1_mib_is_413(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        EVENTS, content=_chunks(_body_of(LIMIT + 1, new_subject())), headers={**admin(), **JSON}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")
    assert await count_rows(app) == 0


async def test_without_a_token_the_body_is_never_read(client: httpx.AsyncClient) -> None:
    """An anonymous sender cannot make the service read, let alone parse, a batch."""
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(32):
            sent.append(1)
            yield b" " * (64 * 1024)

    response = await client.post(EVENTS, content=chunks(), headers=JSON)
    assert_problem(response, 401, "unauthorized")  # not 413, though 2 MiB were on offer
    assert sent == []


@pytest.mark.parametrize(
    "content",
    [b'{"events": [', b"events=1", b"", b'{"events": [{"name": "\xff"}]}', b"{'events': []}"],
)
async def test_a_body_that_is_not_json_is_400(
    app: FastAPI, client: httpx.AsyncClient, content: bytes
) -> None:
    response = await client.post(EVENTS, content=content, headers={**admin(), **JSON})
    assert_problem(response, 400, "malformed_request")
    assert await count_rows(app) == 0


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
async def test_a_body_of_another_media_type_is_415(
    app: FastAPI, client: httpx.AsyncClient, content_type: str | None
) -> None:
    content = orjson.dumps({"events": [event(new_subject())]})
    headers = admin() if content_type is None else {**admin(), "Content-Type": content_type}
    response = await client.post(EVENTS, content=content, headers=headers)
    assert_problem(response, 415, "unsupported_media_type")
    assert await count_rows(app) == 0
