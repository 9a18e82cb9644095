"""The integration catalogue: empty at first, public to read, changed only by the privacy team."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers import admin, bearer, make_key, user_token
from tests.integrations.support import PROVIDER, add_provider, declare, integration
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

URL = "/v1/integrations"


async def test_the_catalogue_ships_empty(client: httpx.AsyncClient) -> None:
    response = await client.get(URL)
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


async def test_declared_integrations_are_public_and_translated(client: httpx.AsyncClient) -> None:
    created = await declare(client)
    assert created["provider_id"] == PROVIDER and created["default"] == "ask"
    one = await client.get(f"{URL}/cloud-drive")
    assert one.status_code == 200 and one.json() == created
    assert one.headers["cache-control"] == "public, max-age=300"
    german = (await client.get(f"{URL}/cloud-drive", params={"language": "de-AT"})).json()
    assert german["name"] == "Cloud-Speicher"
    # What the translation leaves out stays English.
    assert german["purpose"] == created["purpose"]
    assert [s["description"] for s in german["scopes"]] == [
        "Aufgaben ablegen.",
        "Read your drive's account name.",
    ]
    listed = (await client.get(URL, params={"language": "fr"})).json()
    assert listed["items"] == [created]


async def test_the_list_pages_by_id(client: httpx.AsyncClient) -> None:
    for name in ("c-tool", "a-tool", "b-tool"):
        await declare(client, integration_id=name)
    first = (await client.get(URL, params={"limit": 2})).json()
    assert [item["id"] for item in first["items"]] == ["a-tool", "b-tool"]
    second = (await client.get(URL, params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [item["id"] for item in second["items"]] == ["c-tool"]
    assert second["next_cursor"] is None
    forged = await client.get(URL, params={"cursor": "abc.def"})
    assert_problem(forged, 422, "validation_error")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "history"}, "id"),
        ({"id": "Bad Id"}, "id"),
        ({"kind": "spyware"}, "kind"),
        ({"default": "assume"}, "default"),
        ({"scopes": []}, "scopes"),
        ({"scopes": [{"id": "a.b", "description": "x"}] * 2}, None),
        ({"translations": {"de": {"scopes": {"nope": "x"}}}}, None),
        ({"translations": {"german": {}}}, "translations"),
        ({"provider_id": "nobody"}, "provider_id"),
        ({"unknown": 1}, "unknown"),
    ],
)
async def test_invalid_integrations_are_refused(
    client: httpx.AsyncClient, change: dict[str, Any], field: str | None
) -> None:
    await add_provider(client)
    response = await client.post(URL, json=integration(**change), headers=admin())
    body = assert_problem(response, 422, "validation_error")
    if field is not None:
        assert any(field in error["loc"] for error in body["errors"]), body
    assert (await client.get(URL)).json()["items"] == []


async def test_only_the_privacy_team_changes_the_catalogue(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await add_provider(client)
    writer = await make_key(app, "platform", "integrations:write", "integrations:read")
    for headers in (bearer(writer), bearer(user_token("learner-1"))):
        assert_problem(
            await client.post(URL, json=integration(), headers=headers), 403, "forbidden"
        )
        put = await client.put(f"{URL}/x", json=integration(id=None), headers=headers)
        assert_problem(put, 403, "forbidden")
        assert_problem(await client.delete(f"{URL}/x", headers=headers), 403, "forbidden")
    assert_problem(await client.post(URL, json=integration()), 401, "unauthorized")


async def test_create_replace_delete_are_audited(client: httpx.AsyncClient) -> None:
    await declare(client)
    again = await client.post(URL, json=integration(), headers=admin())
    assert_problem(again, 409, "conflict")
    body = integration(id=None, name="Cloud drive (school)")
    replaced = await client.put(f"{URL}/cloud-drive", json=body, headers=admin())
    assert replaced.status_code == 200 and replaced.json()["name"] == "Cloud drive (school)"
    # The same description again changes nothing and is not audited.
    assert (await client.put(f"{URL}/cloud-drive", json=body, headers=admin())).status_code == 200
    created = await client.put(f"{URL}/calendar", json=body, headers=admin())
    assert created.status_code == 201 and created.headers["location"] == f"{URL}/calendar"
    other_id = await client.put(f"{URL}/calendar", json={**body, "id": "x"}, headers=admin())
    assert_problem(other_id, 422, "validation_error")
    assert (await client.delete(f"{URL}/calendar", headers=admin())).status_code == 204
    assert_problem(await client.delete(f"{URL}/calendar", headers=admin()), 404, "not_found")
    assert_problem(await client.get(f"{URL}/calendar"), 404, "not_found")
    log = (await client.get("/v1/audit-log", headers=admin())).json()["items"]
    actions = [(e["action"], e["target"]) for e in log if e["action"].startswith("integration")]
    assert actions == [
        ("integration_deleted", "calendar"),
        ("integration_created", "calendar"),
        ("integration_changed", "cloud-drive"),
        ("integration_created", "cloud-drive"),
    ]
    changed = next(e for e in log if e["action"] == "integration_changed")
    assert changed["details"] == {
        "before": {"name": "Cloud drive"},
        "after": {"name": "Cloud drive (school)"},
    }


async def test_a_provider_an_integration_names_cannot_be_removed(
    client: httpx.AsyncClient,
) -> None:
    await declare(client)
    refused = await client.delete(f"/v1/providers/{PROVIDER}", headers=admin())
    assert_problem(refused, 409, "conflict")
    assert (await client.get(f"/v1/providers/{PROVIDER}")).status_code == 200
    assert (await client.delete(f"{URL}/cloud-drive", headers=admin())).status_code == 204
    assert (await client.delete(f"/v1/providers/{PROVIDER}", headers=admin())).status_code == 204
