"""Bulk decisions: many subjects in one call, judged by the event rule now, in one statement."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from consentry.db import Reader
from tests.conftest import make_settings
from tests.helpers import admin, bearer, choice, make_key, user_token
from tests.privacy.test_erasure import work
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

PATH = "/v1/consent/decisions"
ALL = ["necessary", "performance", "functional", "customization"]


async def _reader_key(app: FastAPI) -> dict[str, str]:
    return bearer(await make_key(app, f"nightly-{uuid.uuid4().hex[:6]}", "consent:read"))


async def _decide(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> Any:
    response = await client.post(PATH, json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()["items"]


async def test_each_subject_as_the_event_rule_judges_it_now(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    key = await _reader_key(app)
    put = "/v1/subjects/{}/consent"
    await client.put(put.format("u-all"), json=choice(True, True, True), headers=admin())
    await client.put(put.format("u-perf"), json=choice(performance=True), headers=admin())
    await client.put(put.format("u-none"), json=choice(), headers=admin())
    # Granted, then withdrawn: the decision follows the withdrawal at once.
    await client.put(put.format("u-gone"), json=choice(customization=True), headers=admin())
    await client.put(put.format("u-gone"), json=choice(), headers=admin())
    # A never-seen subject of an opt_out region still gets the opt_in defaults: fail closed.
    read = await client.get(put.format("u-never") + "?region=US-CA", headers=admin())
    assert read.json()["categories"]["performance"]["granted"] is True
    await client.put(put.format("u-erased"), json=choice(True, True, True), headers=admin())
    erasure = {"subject_id": "u-erased", "reason": "account_deleted"}
    await client.post("/v1/erasure-requests", json=erasure, headers=admin())
    await work(app)

    ids = ["u-perf", "u-all", "u-never", "u-none", "u-erased", "u-gone", "u-all"]
    items = await _decide(client, key, subject_ids=ids, categories=ALL)
    assert [item["subject_id"] for item in items] == ids  # request order, repeats kept
    got = {item["subject_id"]: (item["erased"], item["categories"]) for item in items}

    def allowed(*granted: str) -> dict[str, bool]:
        return {c: c == "necessary" or c in granted for c in ALL}

    assert got == {
        "u-perf": (False, allowed("performance")),
        "u-all": (False, allowed("performance", "functional", "customization")),
        "u-never": (False, allowed()),
        "u-none": (False, allowed()),
        "u-erased": (True, dict.fromkeys(ALL, False)),
        "u-gone": (False, allowed()),
    }


async def test_only_the_categories_asked_for(app: FastAPI, client: httpx.AsyncClient) -> None:
    key = await _reader_key(app)
    await client.put("/v1/subjects/u-1/consent", json=choice(customization=True), headers=admin())
    items = await _decide(
        client, key, subject_ids=["u-1", "u-2"], categories=["customization", "customization"]
    )
    assert items == [
        {"subject_id": "u-1", "erased": False, "categories": {"customization": True}},
        {"subject_id": "u-2", "erased": False, "categories": {"customization": False}},
    ]


async def test_a_thousand_subjects_in_one_statement(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(0, 1000, 250):
        body = choice(customization=True)
        await client.put(f"/v1/subjects/u-{number}/consent", json=body, headers=admin())
    statements: list[object] = []
    for name in ("all", "pg_rows"):
        original = getattr(Reader, name)

        def counted(self: Reader, *args: Any, _original: Any = original) -> Any:
            statements.append(args[0])
            return _original(self, *args)

        monkeypatch.setattr(Reader, name, counted)
    ids = [f"u-{number}" for number in range(1000)]
    # The admin key costs no lookup, so every statement counted is the decision's own.
    items = await _decide(client, admin(), subject_ids=ids, categories=["customization"])
    assert len(statements) == 1
    granted = [item["subject_id"] for item in items if item["categories"]["customization"]]
    assert granted == ["u-0", "u-250", "u-500", "u-750"]


async def test_long_ids_fill_a_body_past_the_usual_limit(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    key = await _reader_key(app)
    ids = [f"u{number:04d}-" + "x" * 250 for number in range(1000)]
    content = httpx.Request("POST", PATH, json={"subject_ids": ids, "categories": ALL}).content
    assert 64 * 1024 < len(content) < 512 * 1024  # past the service's default body limit
    items = await _decide(client, key, subject_ids=ids, categories=ALL)
    assert len(items) == 1000


async def test_a_body_past_512_kib_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    key = await _reader_key(app)
    body = b'{"subject_ids": ["u-1"], "categories": ["customization"], "pad": "'
    body += b"x" * (512 * 1024) + b'"}'
    headers = {**key, "Content-Type": "application/json"}
    response = await client.post(PATH, content=body, headers=headers)
    assert_problem(response, 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused while it streams
        yield body

    streamed = await client.post(PATH, content=chunks(), headers=headers)
    assert_problem(streamed, 413, "payload_too_large")


@pytest.mark.parametrize(
    "body",
    [
        {"subject_ids": [], "categories": ["customization"]},
        {"subject_ids": [f"u-{n}" for n in range(1001)], "categories": ["customization"]},
        {"subject_ids": ["u-1", "not valid"], "categories": ["customization"]},
        {"subject_ids": ["u-1", ""], "categories": ["customization"]},
        {"subject_ids": ["u-1", 7], "categories": ["customization"]},
        {"subject_ids": ["u-1"], "categories": []},
        {"subject_ids": ["u-1"], "categories": ["marketing"]},
        {"subject_ids": ["u-1"], "categories": [*ALL, "necessary"]},
        {"subject_ids": ["u-1"]},
        {"subject_ids": ["u-1"], "categories": ["customization"], "region": "DE"},
    ],
)
async def test_one_bad_part_refuses_the_whole_request(
    app: FastAPI, client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await client.post(PATH, json=body, headers=await _reader_key(app))
    assert_problem(response, 422, "validation_error")


async def test_keys_with_consent_read_only(app: FastAPI, client: httpx.AsyncClient) -> None:
    body = {"subject_ids": ["u-1"], "categories": ["customization"]}
    assert_problem(await client.post(PATH, json=body), 401, "unauthorized")
    learner = bearer(user_token("u-1"))
    assert_problem(await client.post(PATH, json=body, headers=learner), 403, "forbidden")
    writer = bearer(await make_key(app, "events-only", "events:write", "consent:write"))
    assert_problem(await client.post(PATH, json=body, headers=writer), 403, "forbidden")
    assert (await client.post(PATH, json=body, headers=admin())).status_code == 200


@pytest.fixture
def settings(database_url: str) -> Any:
    """A key bucket of 25 requests that hardly refills during the test."""
    return make_settings(database_url, rate_limit_key_per_second=0.01, rate_limit_key_burst=25)


async def test_a_call_costs_one_request_per_hundred_subjects(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    key = await _reader_key(app)

    async def call(count: int) -> httpx.Response:
        ids = [f"u-{n}" for n in range(count)]
        body = {"subject_ids": ids, "categories": ["customization"]}
        return await client.post(PATH, json=body, headers=key)

    assert (await call(1000)).status_code == 200  # 10 of 25
    assert (await call(1000)).status_code == 200  # 20
    assert (await call(101)).status_code == 200  # 22: 101 subjects count as 2
    refused = await call(400)  # 4 more would make 26
    assert_problem(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1
    # The refused call counted as one request, like any other refused at the door: 23.
    assert (await call(200)).status_code == 200  # 25
    assert_problem(await call(1), 429, "rate_limited")
