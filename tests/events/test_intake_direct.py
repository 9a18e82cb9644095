"""The event intakes answered directly give the answers of FastAPI's routes, refusals too."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from tests.events.support import EVENTS, new_subject
from tests.events.test_analytics import basic, track
from tests.helpers import admin, bearer, event, make_key, user_token

pytestmark = pytest.mark.anyio

# Headers that differ from one request to the next whoever answers.
_VARYING = {"date", "x-request-id", "content-length"}


def _requests(writer: str, reader: str) -> list[tuple[dict[str, str], bytes]]:
    """Batches to send: (headers, body), about a subject of their own."""
    json = {**bearer(writer), "content-type": "application/json"}
    subject = new_subject()
    kept = event(subject)
    denied = event(subject, "performance")
    late = event(subject, occurred_at="2999-01-01T00:00:00.000000Z")

    def body(value: Any) -> bytes:
        return orjson.dumps(value)

    first = body({"events": [kept, denied, late, {"event_id": "not-an-event"}]})
    return [
        (json, first),
        (json, first),  # its repeats come back `duplicate`
        (json, body({"events": [kept], "sent_at": "2026-12-07T00:00:00.000000Z"})),
        (admin() | {"content-type": "application/json"}, body({"events": [event(subject)]})),
        # Envelopes that do not fit the schema.
        (json, body({})),
        (json, body({"events": "none"})),
        (json, body({"events": [], "extra": 1})),
        (json, body([kept])),
        # Bodies refused before they are validated.
        (json, b'{"events": ['),
        (json, b""),
        ({**json, "content-type": "text/plain"}, body({"events": [kept]})),
        ({**json, "content-encoding": "gzip"}, gzip.compress(body({"events": [kept]}))),
        (json, b" " * (2 * 1024 * 1024)),
        # Callers refused, before the body is read.
        ({"content-type": "application/json"}, body({"events": [kept]})),
        ({**bearer(reader), "content-type": "application/json"}, body({"events": [kept]})),
        ({**bearer(user_token(subject)), "content-type": "application/json"}, b"not json"),
    ]


def _batches(writer: str, reader: str) -> list[tuple[dict[str, str], bytes]]:
    """Analytics batches to send as the libraries do: (headers, body)."""
    json = {**basic(writer), "content-type": "application/json"}
    subject = new_subject()
    messages = [
        track(subject),
        track(subject, properties={"consent_category": "necessary"}),
        {"type": "identify", "messageId": "m-1", "userId": subject, "traits": {}},
        {"type": "track"},
    ]

    def body(value: Any) -> bytes:
        return orjson.dumps(value)

    first = body({"batch": messages, "writeKey": writer})
    return [
        (json, first),
        (json, first),  # its repeats come back `duplicate`
        ({**json, "content-encoding": "gzip"}, gzip.compress(body({"batch": [track(subject)]}))),
        (json, body({"batch": [track(subject)], "writeKey": reader})),
        (json, body({"batch": "none"})),
        (json, body({})),
        (json, b'{"batch": ['),
        ({**json, "content-type": "text/plain"}, body({"batch": []})),
        ({"content-type": "application/json"}, body({"batch": []})),
        ({**basic(reader), "content-type": "application/json"}, body({"batch": []})),
        ({**basic(reader), "content-type": "application/json"}, b"not json"),
    ]


def _answer(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k not in _VARYING}
    body = response.json()
    for result in body.get("results", ()):
        for field in ("event_id", "message_id"):
            if field in result:
                result[field] = "<id>"  # each service's batches have ids of their own
    if "instance" in body:
        body["instance"] = "<instance>"
    return response.status_code, headers, body


async def test_each_answer_is_the_routes(
    app: FastAPI, client: httpx.AsyncClient, routed: httpx.AsyncClient
) -> None:
    writer = await make_key(app, "ingest", "events:write")
    reader = await make_key(app, "consent", "consent:read")
    answers: dict[str, list[Any]] = {}
    for name, http in (("direct", client), ("routed", routed)):
        answers[name] = [
            _answer(await http.post(EVENTS, headers=headers, content=content))
            for headers, content in _requests(writer, reader)
        ]
    for direct, through_router in zip(answers["direct"], answers["routed"], strict=True):
        assert direct == through_router
    assert {status for status, _, _ in answers["direct"]} >= {200, 400, 401, 403, 413, 415, 422}
    outcomes = {r["status"] for _, _, body in answers["direct"] for r in body.get("results", ())}
    assert outcomes == {"accepted", "rejected", "duplicate"}


async def test_each_answer_to_an_analytics_batch_is_the_routes(
    app: FastAPI, client: httpx.AsyncClient, routed: httpx.AsyncClient
) -> None:
    writer = await make_key(app, "library", "events:write")
    reader = await make_key(app, "consent", "consent:read")
    answers: dict[str, list[Any]] = {}
    for name, http in (("direct", client), ("routed", routed)):
        answers[name] = [
            _answer(await http.post("/v1/batch", headers=headers, content=content))
            for headers, content in _batches(writer, reader)
        ]
    for direct, through_router in zip(answers["direct"], answers["routed"], strict=True):
        assert direct == through_router
    assert {status for status, _, _ in answers["direct"]} >= {200, 400, 401, 403, 415, 422}
    outcomes = {r["status"] for _, _, body in answers["direct"] for r in body.get("results", ())}
    assert outcomes >= {"accepted", "duplicate", "ignored"}
