"""The registry of platform systems: the privacy team registers, reads, changes and removes."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from consentry.systems.urls import AllowList
from tests.helpers import admin, bearer, make_key, user_token
from tests.systems.support import SYSTEMS, register
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

# A public address as a literal: nothing to resolve, nothing to reach.
PUBLIC_URL = "https://93.184.215.14/hooks"


async def test_a_system_is_registered_with_a_secret_shown_once(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    created = await register(client, "course-progress", PUBLIC_URL, erasure="confirm")
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["events"] == ["consent.changed"] and created["erasure"] == "confirm"
    assert created["disabled"] is False
    read = await client.get(f"{SYSTEMS}/course-progress", headers=admin())
    assert read.status_code == 200
    assert "secret" not in read.json()
    assert read.json() == {k: v for k, v in created.items() if k != "secret"}
    listed = (await client.get(SYSTEMS, headers=admin())).json()
    assert [item["id"] for item in listed["items"]] == ["course-progress"]
    assert all("secret" not in item for item in listed["items"])
    # The secret is in the database (it signs), but no answer shows it again.
    again = await client.post(
        SYSTEMS,
        json={"id": "course-progress", "name": "x", "webhook_url": PUBLIC_URL},
        headers=admin(),
    )
    assert_problem(again, 409, "conflict")
    assert created["secret"] not in again.text


async def test_put_replaces_or_creates_and_every_change_is_audited(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    body = {"name": "Recommendations", "webhook_url": PUBLIC_URL, "events": [], "erasure": "notify"}
    made = await client.put(f"{SYSTEMS}/recs", json=body, headers=admin())
    assert made.status_code == 201 and made.json()["secret"].startswith("whsec_")
    assert made.headers["location"] == "/v1/systems/recs"
    body["events"] = ["consent.changed", "integration.changed"]
    changed = await client.put(f"{SYSTEMS}/recs", json=body, headers=admin())
    assert changed.status_code == 200 and "secret" not in changed.json()
    assert changed.json()["events"] == ["consent.changed", "integration.changed"]
    same = await client.put(f"{SYSTEMS}/recs", json=body, headers=admin())
    assert same.status_code == 200
    mismatch = await client.put(f"{SYSTEMS}/recs", json={**body, "id": "other"}, headers=admin())
    assert_problem(mismatch, 422, "validation_error")
    deleted = await client.delete(f"{SYSTEMS}/recs", headers=admin())
    assert deleted.status_code == 204
    assert_problem(await client.get(f"{SYSTEMS}/recs", headers=admin()), 404, "not_found")
    assert_problem(await client.delete(f"{SYSTEMS}/recs", headers=admin()), 404, "not_found")

    log = (await client.get("/v1/audit-log", headers=admin())).json()["items"]
    actions = [(entry["action"], entry["target"]) for entry in reversed(log)]
    assert actions == [
        ("system_created", "recs"),
        ("system_changed", "recs"),  # the unchanged PUT wrote nothing
        ("system_deleted", "recs"),
    ]
    change = log[1]["details"]
    assert change == {
        "before": {"events": []},
        "after": {"events": ["consent.changed", "integration.changed"]},
    }
    assert all("whsec_" not in str(entry) for entry in log)


async def test_rotating_the_secret_shows_the_new_one_once_and_keeps_the_old_for_a_day(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    created = await register(client, "support-desk", PUBLIC_URL)
    rotated = await client.post(f"{SYSTEMS}/support-desk/secret", headers=admin())
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["secret"].startswith("whsec_") and new["secret"] != created["secret"]
    assert new["previous_secret_expires_at"] is not None
    read = (await client.get(f"{SYSTEMS}/support-desk", headers=admin())).json()
    assert "secret" not in read
    assert read["previous_secret_expires_at"] == new["previous_secret_expires_at"]
    entry = (await client.get("/v1/audit-log", headers=admin())).json()["items"][0]
    assert entry["action"] == "system_secret_rotated" and new["secret"] not in str(entry)
    missing = await client.post(f"{SYSTEMS}/nobody/secret", headers=admin())
    assert_problem(missing, 404, "not_found")


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hooks",  # plain http, not allow-listed
        "https://127.0.0.2/hooks",  # loopback
        "https://localhost/hooks",  # a name that resolves to loopback
        "https://10.1.2.3/hooks",  # private
        "https://192.168.0.10/hooks",
        "https://169.254.169.254/latest/meta-data",  # link-local: the cloud's metadata service
        "https://100.64.1.1/hooks",  # shared address space
        "https://0.0.0.0/hooks",  # unspecified
        "https://224.0.0.1/hooks",  # multicast
        "https://240.0.0.1/hooks",  # reserved
        "https://[::1]/hooks",
        "https://[fd00::1]/hooks",  # unique local
        "https://[fe80::1]/hooks",
        "https://[::ffff:10.0.0.1]/hooks",  # IPv4-mapped, carrying a private address
        "https://[64:ff9b::7f00:1]/hooks",  # NAT64 of 127.0.0.1
        "https://[2002:a00:1::1]/hooks",  # 6to4 of 10.0.0.1
        "https://user:password@93.184.215.14/hooks",  # credentials
        "ftp://93.184.215.14/hooks",
        "https://93.184.215.14:0/hooks",
        "not a url",
    ],
)
async def test_urls_the_rules_refuse_are_422_and_change_nothing(
    app: FastAPI, client: httpx.AsyncClient, url: str
) -> None:
    app.state.webhook_allow = AllowList.parse([])  # as CONSENTRY_WEBHOOK_ALLOW_HOSTS unset
    body = {"id": "probe", "name": "Probe", "webhook_url": url}
    response = await client.post(SYSTEMS, json=body, headers=admin())
    assert_problem(response, 422, "validation_error")
    put = await client.put(
        f"{SYSTEMS}/probe", json={"name": "P", "webhook_url": url}, headers=admin()
    )
    assert_problem(put, 422, "validation_error")
    assert (await client.get(SYSTEMS, headers=admin())).json()["items"] == []


async def test_an_allow_listed_host_may_use_http_and_a_private_address(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # The systems tests allow 127.0.0.1 (CONSENTRY_WEBHOOK_ALLOW_HOSTS=127.0.0.1).
    await register(client, "in-cluster", "http://127.0.0.1:8080/hooks")
    # The IPv4-mapped form of the same address is judged by the address it carries.
    await register(client, "mapped", "https://[::ffff:127.0.0.1]/hooks")
    refused = await client.post(
        SYSTEMS,
        json={"id": "other", "name": "O", "webhook_url": "http://127.0.0.2:8080/hooks"},
        headers=admin(),
    )
    assert_problem(refused, 422, "validation_error")


@pytest.mark.parametrize(
    "change",
    [
        {"events": ["consent.deleted"]},
        {"events": ["consent.changed", "consent.changed"]},
        {"erasure": "maybe"},
        {"name": ""},
        {"name": "tab\there"},
        {"id": "Not_An_Id"},
        {"secret": "whsec_mine"},
    ],
)
async def test_a_malformed_system_is_422(
    client: httpx.AsyncClient, change: dict[str, object]
) -> None:
    body = {"id": "probe", "name": "Probe", "webhook_url": PUBLIC_URL, **change}
    assert_problem(await client.post(SYSTEMS, json=body, headers=admin()), 422, "validation_error")


async def test_only_the_privacy_team_reaches_the_registry(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await register(client, "course-progress", PUBLIC_URL)
    consent_key = await make_key(app, "frontend", "consent:read", "consent:write")
    for headers in (bearer(consent_key), bearer(user_token("learner-1"))):
        for method, path in (
            ("GET", SYSTEMS),
            ("GET", f"{SYSTEMS}/course-progress"),
            ("DELETE", f"{SYSTEMS}/course-progress"),
            ("POST", f"{SYSTEMS}/course-progress/secret"),
            ("GET", f"{SYSTEMS}/course-progress/deliveries"),
        ):
            response = await client.request(method, path, headers=headers)
            assert_problem(response, 403, "forbidden")


async def test_the_list_is_paginated_by_id(app: FastAPI, client: httpx.AsyncClient) -> None:
    for name in ("c", "a", "b-2", "b"):
        await register(client, name, PUBLIC_URL)
    first = (await client.get(SYSTEMS, params={"limit": 3}, headers=admin())).json()
    assert [item["id"] for item in first["items"]] == ["a", "b", "b-2"]
    second = await client.get(
        SYSTEMS, params={"limit": 3, "cursor": first["next_cursor"]}, headers=admin()
    )
    assert [item["id"] for item in second.json()["items"]] == ["c"]
    assert second.json()["next_cursor"] is None
    forged = await client.get(SYSTEMS, params={"cursor": "abc.def"}, headers=admin())
    assert_problem(forged, 422, "validation_error")
