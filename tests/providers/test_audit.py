"""Every change to the registry is audited, in the same transaction as the change itself."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from consentry.audit import repository as audit_repository
from tests.helpers import admin, bearer, make_key
from tests.providers.support import FIELDS, PROVIDERS, audit_rows, body, create, stored
from tests.test_errors import assert_problem, lenient

pytestmark = pytest.mark.anyio

# What a provider describes, without the service's own timestamps.
DESCRIBED = FIELDS - {"created_at", "updated_at"}


async def test_a_creation_records_the_new_provider_and_who_made_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    key = bearer(await make_key(app, "privacy-team", "privacy:admin"))
    sent = body(opt_out_url="https://example.com/opt-out")
    assert (await client.post(PROVIDERS, json=sent, headers=key)).status_code == 201

    [row] = await audit_rows(app)
    assert (row["action"], row["actor"], row["target"]) == (
        "provider_created",
        "privacy-team",
        "video-cdn",
    )
    assert row["subject_hash"] is None
    assert row["details"] == {"after": sent}
    assert set(row["details"]["after"]) == DESCRIBED


async def test_a_put_that_creates_is_a_creation(app: FastAPI, client: httpx.AsyncClient) -> None:
    sent = body("support-desk")
    response = await client.put(f"{PROVIDERS}/support-desk", json=sent, headers=admin())
    assert response.status_code == 201
    [row] = await audit_rows(app)
    assert (row["action"], row["actor"], row["target"]) == (
        "provider_created",
        "admin",
        "support-desk",
    )
    assert row["details"] == {"after": body("support-desk")}


async def test_a_change_records_only_the_fields_that_changed(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await create(client)
    changed = body(name="Renamed", countries=["US", "IE"], transfer_mechanism=None)
    assert (await client.put(f"{PROVIDERS}/video-cdn", json=changed, headers=admin())).is_success

    created, change = await audit_rows(app)
    assert created["action"] == "provider_created"
    assert (change["action"], change["actor"], change["target"]) == (
        "provider_changed",
        "admin",
        "video-cdn",
    )
    assert change["details"] == {
        "before": {
            "name": "Example Video Network",
            "countries": ["US"],
            "transfer_mechanism": "SCC",
        },
        "after": {"name": "Renamed", "countries": ["US", "IE"], "transfer_mechanism": None},
    }


async def test_a_put_that_changes_nothing_records_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await create(client)
    assert (await client.put(f"{PROVIDERS}/video-cdn", json=body(), headers=admin())).is_success
    assert [row["action"] for row in await audit_rows(app)] == ["provider_created"]


async def test_a_deletion_records_what_was_removed(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create(client)
    assert (await client.delete(f"{PROVIDERS}/video-cdn", headers=admin())).status_code == 204
    deleted = (await audit_rows(app))[-1]
    assert (deleted["action"], deleted["actor"], deleted["target"]) == (
        "provider_deleted",
        "admin",
        "video-cdn",
    )
    assert deleted["details"] == {"before": body()}


async def test_refused_changes_record_nothing(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create(client)
    refusals = [
        await client.post(PROVIDERS, json=body(), headers=admin()),
        await client.delete(f"{PROVIDERS}/absent", headers=admin()),
        await client.put(f"{PROVIDERS}/video-cdn", json=body(kind="ads"), headers=admin()),
        await client.put(f"{PROVIDERS}/video-cdn", json=body("other"), headers=admin()),
    ]
    assert [response.status_code for response in refusals] == [409, 404, 422, 422]
    assert [row["action"] for row in await audit_rows(app)] == ["provider_created"]


async def test_the_changes_are_listed_by_the_audit_log_endpoint(
    client: httpx.AsyncClient,
) -> None:
    await create(client)
    await client.delete(f"{PROVIDERS}/video-cdn", headers=admin())
    response = await client.get("/v1/audit-log?action=provider_deleted", headers=admin())
    [entry] = response.json()["items"]
    assert (entry["action"], entry["target"]) == ("provider_deleted", "video-cdn")


async def _failing_append(session: Any, entry: dict[str, Any]) -> None:
    raise RuntimeError("the audit log is unavailable")


@pytest.mark.parametrize(
    ("method", "path", "sent"),
    [
        ("POST", PROVIDERS, body("new-provider")),
        ("PUT", f"{PROVIDERS}/new-provider", body("new-provider")),
        ("PUT", f"{PROVIDERS}/video-cdn", body(name="Renamed")),
        ("DELETE", f"{PROVIDERS}/video-cdn", None),
    ],
    ids=["create", "create by PUT", "change", "delete"],
)
async def test_a_change_whose_audit_row_fails_is_rolled_back(
    app: FastAPI,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    sent: dict[str, Any] | None,
) -> None:
    await create(client)
    before = await stored(app)
    # The audit row is written after the change itself: failing there proves they share a commit.
    monkeypatch.setattr(audit_repository, "append", _failing_append)
    async with lenient(app) as failing:
        response = await failing.request(method, path, json=sent, headers=admin())
    assert_problem(response, 500, "internal_error")
    assert await stored(app) == before
    assert [row["action"] for row in await audit_rows(app)] == ["provider_created"]
