"""The event intakes answered directly give the answers of FastAPI's routes, refusals too."""

from __future__ import annotations

import gzip
from collections.abc import Callable
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


Requests = Callable[[str, str], list[tuple[dict[str, str], bytes]]]


async def _compared(
    app: FastAPI,
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    path: str,
    requests: Requests,
) -> tuple[set[int], set[str]]:
    """Send `requests` to the direct service and to the routed one, each with batches of its
    own; assert every answer is the same. The statuses and the results' outcomes seen."""
    writer = await make_key(app, "writer", "events:write")
    reader = await make_key(app, "reader", "consent:read")
    answers = [
        [
            _answer(await http.post(path, headers=headers, content=content))
            for headers, content in requests(writer, reader)
        ]
        for http in clients
    ]
    for direct, through_router in zip(*answers, strict=True):
        assert direct == through_router
    statuses = {status for status, _, _ in answers[0]}
    outcomes = {r["status"] for _, _, body in answers[0] for r in body.get("results", ())}
    return statuses, outcomes


async def test_each_answer_is_the_routes(
    app: FastAPI, client: httpx.AsyncClient, routed: httpx.AsyncClient
) -> None:
    statuses, outcomes = await _compared(app, (client, routed), EVENTS, _requests)
    assert statuses >= {200, 400, 401, 403, 413, 415, 422}
    assert outcomes == {"accepted", "rejected", "duplicate"}


async def test_each_answer_to_an_analytics_batch_is_the_routes(
    app: FastAPI, client: httpx.AsyncClient, routed: httpx.AsyncClient
) -> None:
    statuses, outcomes = await _compared(app, (client, routed), "/v1/batch", _batches)
    assert statuses >= {200, 400, 401, 403, 415, 422}
    assert outcomes >= {"accepted", "duplicate", "ignored"}
