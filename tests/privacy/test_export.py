"""The export: everything about one subject, audited first, streamed from one snapshot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.consent.test_history import verify_chain
from tests.events.support import ingest
from tests.helpers import ADMIN_KEY, JWT_SECRET, admin, bearer, choice, event, make_key, user_token
from tests.processes import environment, serving
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

SUBJECT = "learner-export-1"


async def _export(client: httpx.AsyncClient, subject: str = SUBJECT, **headers: str) -> Any:
    return await client.get(f"/v1/subjects/{subject}/export", headers=headers or admin())


async def test_the_export_holds_everything_about_the_subject(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    for performance in (True, False):
        body = choice(performance=performance, functional=True)
        await client.put(f"/v1/subjects/{SUBJECT}/consent", json=body, headers=admin())
    await ingest(client, [event(SUBJECT, "necessary"), event(SUBJECT, "functional")])
    await ingest(client, [event("learner-other", "necessary")])
    response = await _export(client)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["cache-control"] == "no-store"
    document = response.json()
    assert set(document) == {
        "subject_id",
        "exported_at",
        "policy_version",
        "consent",
        "consent_history",
        "events",
        "providers",
        "integrations",
        "integration_history",
        "erasure_requests",
    }
    assert document["subject_id"] == SUBJECT
    assert document["consent"]["revision"] == 2
    assert document["consent"]["categories"]["functional"]["granted"] is True
    assert len(document["consent_history"]) == 2
    verify_chain(list(reversed(document["consent_history"])))
    assert [e["category"] for e in document["events"]] == ["necessary", "functional"]
    assert document["erasure_requests"] == []
    assert document["integrations"] == document["integration_history"] == []


async def test_every_export_is_audited_before_it_is_sent(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _export(client)
    await _export(client, **bearer(user_token(SUBJECT)))
    log = (await client.get("/v1/audit-log?action=export", headers=admin())).json()["items"]
    assert [entry["actor"] for entry in log] == ["subject", "admin"]
    subject_hash = (await app.state.pseudonyms.get()).of(SUBJECT)
    assert {entry["subject_hash"] for entry in log} == {subject_hash}


async def test_a_subject_with_nothing_stored_exports_its_defaults(
    client: httpx.AsyncClient,
) -> None:
    document = (await _export(client, "learner-new")).json()
    assert document["consent"]["revision"] == 0
    assert document["consent_history"] == [] and document["events"] == []
    granted = {p["category"] for p in document["providers"]}
    assert granted <= {"necessary"}


async def test_who_may_export(app: FastAPI, client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"/v1/subjects/{SUBJECT}/export"), 401, "unauthorized")
    anonymous = "anon:7d9f2b1e-8c4a-4f3e-9b2d-1a5c6e7f8091"
    assert_problem(await client.get(f"/v1/subjects/{anonymous}/export"), 401, "unauthorized")
    assert_problem(await _export(client, **bearer(user_token("other"))), 403, "forbidden")
    key = await make_key(app, "reader", "consent:read", "events:write")
    assert_problem(await _export(client, **bearer(key)), 403, "forbidden")
    assert (await _export(client, **bearer(user_token(SUBJECT)))).status_code == 200


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A `consentry serve` process on the test's database; yields its base URL."""
    env = environment(
        CONSENTRY_DATABASE_URL=database_url,
        CONSENTRY_ADMIN_KEY=ADMIN_KEY,
        CONSENTRY_JWT_SECRET=JWT_SECRET,
    )
    with serving(env, tmp_path / "serve.log", "--no-migrate") as base:
        yield base


async def test_a_real_server_sends_the_export_in_several_pieces(app: FastAPI, served: str) -> None:
    """The in-process transport buffers whole bodies; a real server shows the streaming."""
    async with httpx.AsyncClient(base_url=served, headers=admin(), timeout=30) as client:
        await client.put(f"/v1/subjects/{SUBJECT}/consent", json=choice(functional=True))
        for start in range(0, 3000, 1000):
            numbers = range(start, start + 1000)
            batch = [event(SUBJECT, "necessary", properties={"n": n}) for n in numbers]
            posted = await client.post("/v1/events", json={"events": batch})
            assert posted.json()["accepted"] == 1000
        pieces: list[bytes] = []
        async with client.stream("GET", f"/v1/subjects/{SUBJECT}/export") as response:
            assert response.status_code == 200
            assert "content-length" not in response.headers  # streamed, not built first
            pieces.extend([piece async for piece in response.aiter_raw()])
    assert len(pieces) > 3
    document = json.loads(b"".join(pieces))
    assert len(document["events"]) == 3000
