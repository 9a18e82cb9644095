"""The audit log: actions recorded with them, read by the privacy team only."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from consentry.keys.service import revoke_key
from tests.helpers import admin, bearer, make_key, user_token
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio


async def _log(client: httpx.AsyncClient, query: str = "") -> list[dict[str, object]]:
    response = await client.get(f"/v1/audit-log{query}", headers=admin())
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    items: list[dict[str, object]] = response.json()["items"]
    return items


async def test_key_creation_and_revocation_are_recorded(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await make_key(app, "ingest", "events:write")
    async with app.state.database.unit_of_work() as uow:
        await revoke_key(uow, "ingest")
    revoked, created = await _log(client)
    assert (created["action"], created["actor"], created["target"]) == (
        "key_created",
        "cli",
        "ingest",
    )
    assert created["details"] == {"scopes": ["events:write"]}
    assert (revoked["action"], revoked["target"]) == ("key_revoked", "ingest")
    assert created["subject_hash"] is None and isinstance(created["at"], str)


async def test_an_action_that_fails_leaves_no_row(app: FastAPI, client: httpx.AsyncClient) -> None:
    await make_key(app, "ingest", "events:write")
    with pytest.raises(Exception, match="already exists"):
        await make_key(app, "ingest", "events:write")
    assert [entry["action"] for entry in await _log(client)] == ["key_created"]


async def test_filters_and_pages(app: FastAPI, client: httpx.AsyncClient) -> None:
    for number in range(5):
        await make_key(app, f"key-{number}", "consent:read")
    async with app.state.database.unit_of_work() as uow:
        await revoke_key(uow, "key-0", actor="ops")
    assert [e["target"] for e in await _log(client, "?action=key_revoked")] == ["key-0"]
    assert [e["target"] for e in await _log(client, "?actor=ops")] == ["key-0"]
    assert len(await _log(client, "?since=2000-01-01T00:00:00Z")) == 6
    assert await _log(client, "?since=2999-01-01T00:00:00Z") == []
    seen: list[object] = []
    cursor = None
    while True:
        query = "?limit=4" + (f"&cursor={cursor}" if cursor else "")
        body = (await client.get(f"/v1/audit-log{query}", headers=admin())).json()
        seen.extend(entry["id"] for entry in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6 and seen == sorted(seen, reverse=True)  # type: ignore[type-var]


@pytest.mark.parametrize(
    "query", ["?action=cooking", "?limit=0", "?cursor=nope", "?since=yesterday", "?subject_id=-x"]
)
async def test_bad_filters_are_422(client: httpx.AsyncClient, query: str) -> None:
    assert_problem(
        await client.get(f"/v1/audit-log{query}", headers=admin()), 422, "validation_error"
    )


async def test_only_the_privacy_team_reads_it(app: FastAPI, client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/audit-log"), 401, "unauthorized")
    key = await make_key(app, "everything-else", "consent:read", "consent:write", "events:write")
    for headers in (bearer(key), bearer(user_token("learner-1"))):
        assert_problem(await client.get("/v1/audit-log", headers=headers), 403, "forbidden")
    privacy = await make_key(app, "privacy", "privacy:admin")
    assert (await client.get("/v1/audit-log", headers=bearer(privacy))).status_code == 200
