"""A learner's connections: asked or informed by the platform, decided by the learner, checked."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers import admin, bearer, make_key, user_token
from tests.integrations.support import PROVIDER, declare, integration, verify
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

LEARNER = "learner-42"
BASE = f"/v1/subjects/{LEARNER}/integrations"


@pytest.fixture
async def keys(app: FastAPI) -> dict[str, dict[str, str]]:
    """Headers of each kind of caller."""
    platform = await make_key(app, "platform", "integrations:write")
    reader = await make_key(app, "sync-service", "integrations:read")
    consent = await make_key(app, "frontend", "consent:read", "consent:write")
    return {
        "platform": bearer(platform),
        "reader": bearer(reader),
        "consent": bearer(consent),
        "learner": bearer(user_token(LEARNER)),
        "other": bearer(user_token("someone-else")),
        "admin": admin(),
    }


async def _ask(
    client: httpx.AsyncClient, headers: dict[str, str], scopes: list[str], name: str = "cloud-drive"
) -> httpx.Response:
    return await client.post(f"{BASE}/{name}/requests", json={"scopes": scopes}, headers=headers)


async def _decide(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    decision: str,
    scopes: list[str] | None = None,
    name: str = "cloud-drive",
) -> httpx.Response:
    body: dict[str, Any] = {"decision": decision}
    if scopes is not None:
        body["scopes"] = scopes
    return await client.put(f"{BASE}/{name}", json=body, headers=headers)


async def _check(
    client: httpx.AsyncClient, headers: dict[str, str], name: str = "cloud-drive"
) -> dict[str, Any]:
    response = await client.get(f"{BASE}/{name}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    found: dict[str, Any] = response.json()
    return found


async def _history(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get(f"{BASE}/history", headers=admin())
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_ask_approve_check_revoke(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    await declare(client)
    none = await _check(client, keys["reader"])
    assert none == {
        "integration_id": "cloud-drive",
        "status": "none",
        "scopes": [],
        "requested_at": None,
        "decided_at": None,
        "source": None,
    }
    asked = await _ask(client, keys["platform"], ["files.write", "profile.read"])
    assert asked.status_code == 201, asked.text
    assert asked.json()["status"] == "pending" and asked.json()["source"] == "platform"
    assert (await _check(client, keys["reader"]))["status"] == "pending"

    # The learner approves a subset of what was asked.
    approved = await _decide(client, keys["learner"], "approve", ["files.write"])
    assert approved.status_code == 200, approved.text
    found = await _check(client, keys["reader"])
    assert (found["status"], found["scopes"], found["source"]) == (
        "approved",
        ["files.write"],
        "learner",
    )
    assert found["requested_at"] == asked.json()["requested_at"] and found["decided_at"]
    # Asking within the approval changes nothing; asking beyond it is the learner's to decide.
    same = await _ask(client, keys["platform"], ["files.write"])
    assert same.status_code == 200 and same.json() == found
    assert_problem(await _ask(client, keys["platform"], ["profile.read"]), 409, "conflict")

    revoked = await client.delete(f"{BASE}/cloud-drive", headers=keys["learner"])
    assert revoked.status_code == 200
    assert (revoked.json()["status"], revoked.json()["scopes"]) == ("revoked", [])
    # Revoked by the learner: the platform cannot ask again; the learner can reconnect.
    assert_problem(await _ask(client, keys["platform"], ["files.write"]), 409, "conflict")
    again = await _decide(client, keys["learner"], "approve", ["profile.read"])
    assert again.json()["status"] == "approved"

    history = await _history(client)
    assert [(r["status"], r["source"], r["actor"]) for r in history] == [
        ("approved", "learner", "subject"),
        ("revoked", "learner", "subject"),
        ("approved", "learner", "subject"),
        ("pending", "platform", "platform"),
    ]
    assert history[-1]["scopes"] == ["files.write", "profile.read"]
    verify(history)


async def test_inform_until_the_learner_declines(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    await declare(client, integration_id="district-roster", kind="school_roster", default="inform")
    informed = await _ask(client, keys["platform"], ["files.write"], "district-roster")
    assert informed.status_code == 201
    assert (informed.json()["status"], informed.json()["source"]) == ("informed", "notice")
    # A notice again replaces the scopes: the platform may change what it tells.
    wider = await _ask(client, keys["platform"], ["files.write", "profile.read"], "district-roster")
    assert wider.status_code == 201 and wider.json()["scopes"] == ["files.write", "profile.read"]
    declined = await _decide(client, keys["learner"], "decline", name="district-roster")
    assert declined.status_code == 200
    assert (declined.json()["status"], declined.json()["scopes"]) == ("declined", [])
    refused = await _ask(client, keys["platform"], ["files.write"], "district-roster")
    assert_problem(refused, 409, "conflict")
    # Declining again records nothing more.
    await _decide(client, keys["learner"], "decline", [], name="district-roster")
    assert [r["status"] for r in await _history(client)] == ["declined", "informed", "informed"]


async def test_a_key_relays_the_learners_answer_and_the_privacy_team_overrides(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    await declare(client)
    # A learner may connect a tool on their own: from `none`, through the platform's key.
    relayed = await _decide(client, keys["platform"], "approve", ["files.write"])
    assert (relayed.json()["status"], relayed.json()["source"]) == ("approved", "platform")
    assert relayed.json()["requested_at"] is None
    by_admin = await client.delete(f"{BASE}/cloud-drive", headers=keys["admin"])
    assert (by_admin.json()["status"], by_admin.json()["source"]) == ("revoked", "admin")
    # Revoked by the privacy team, not the learner: the platform may ask again.
    assert (await _ask(client, keys["platform"], ["files.write"])).status_code == 201
    history = await _history(client)
    assert [(r["status"], r["actor"]) for r in history] == [
        ("pending", "platform"),
        ("revoked", "admin"),
        ("approved", "platform"),
    ]
    verify(history)


async def test_undeclared_scopes_are_refused(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    await declare(client)
    assert_problem(await _ask(client, keys["platform"], ["files.delete"]), 422, "unknown_scope")
    refused = await _decide(client, keys["learner"], "approve", ["files.write", "mail.send"])
    assert_problem(refused, 422, "unknown_scope")
    for body in (
        {"decision": "approve"},
        {"decision": "approve", "scopes": []},
        {"decision": "maybe", "scopes": ["files.write"]},
        {"decision": "approve", "scopes": ["files.write", "files.write"]},
    ):
        response = await client.put(f"{BASE}/cloud-drive", json=body, headers=keys["learner"])
        assert_problem(response, 422, "validation_error")
    assert_problem(await _ask(client, keys["platform"], []), 422, "validation_error")
    assert await _history(client) == []
    assert (await _check(client, keys["reader"]))["status"] == "none"


async def test_unknown_integrations_are_not_found(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    await declare(client)
    assert_problem(await client.get(f"{BASE}/nothing", headers=keys["reader"]), 404, "not_found")
    assert_problem(
        await client.get(f"{BASE}/Bad_Id", headers=keys["reader"]), 422, "validation_error"
    )
    assert_problem(await _ask(client, keys["platform"], ["a"], "nothing"), 404, "not_found")
    assert_problem(
        await _decide(client, keys["learner"], "decline", name="nothing"), 404, "not_found"
    )
    revoke = await client.delete(f"{BASE}/nothing", headers=keys["learner"])
    assert_problem(revoke, 404, "not_found")


async def test_who_may_do_what(client: httpx.AsyncClient, keys: dict[str, dict[str, str]]) -> None:
    await declare(client)
    check = f"{BASE}/cloud-drive"
    for caller in ("consent", "other", "platform"):
        assert_problem(await client.get(check, headers=keys[caller]), 403, "forbidden")
        assert_problem(await client.get(BASE, headers=keys[caller]), 403, "forbidden")
        history = await client.get(f"{BASE}/history", headers=keys[caller])
        assert_problem(history, 403, "forbidden")
    assert_problem(await client.get(check), 401, "unauthorized")
    # Only the platform's keys ask; the learner's own token cannot ask itself.
    for caller in ("learner", "reader", "consent"):
        assert_problem(await _ask(client, keys[caller], ["files.write"]), 403, "forbidden")
    for caller in ("reader", "other", "consent"):
        refused = await _decide(client, keys[caller], "approve", ["files.write"])
        assert_problem(refused, 403, "forbidden")
    # Revoking is the learner's or the privacy team's, not the platform's.
    for caller in ("platform", "reader", "other"):
        assert_problem(await client.delete(check, headers=keys[caller]), 403, "forbidden")
    assert await _history(client) == []
    for caller in ("learner", "reader", "admin"):
        assert (await client.get(BASE, headers=keys[caller])).status_code == 200


async def test_the_list_shows_every_integration_with_the_learners_connection(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    for name in ("b-calendar", "a-drive", "c-tool"):
        await declare(client, integration_id=name)
    await _ask(client, keys["platform"], ["files.write"], "b-calendar")
    first = (await client.get(BASE, params={"limit": 2}, headers=keys["learner"])).json()
    assert [(i["integration_id"], i["status"]) for i in first["items"]] == [
        ("a-drive", "none"),
        ("b-calendar", "pending"),
    ]
    rest = await client.get(
        BASE, params={"limit": 2, "cursor": first["next_cursor"]}, headers=keys["learner"]
    )
    assert [i["integration_id"] for i in rest.json()["items"]] == ["c-tool"]
    # A cursor of another list is refused.
    history = await client.get(
        f"{BASE}/history", params={"cursor": first["next_cursor"]}, headers=keys["learner"]
    )
    assert_problem(history, 422, "validation_error")


async def test_the_history_pages_newest_first(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    await declare(client)
    for _ in range(3):
        await _ask(client, keys["platform"], ["files.write"])
    page = (await client.get(f"{BASE}/history", params={"limit": 2}, headers=admin())).json()
    rest = await client.get(
        f"{BASE}/history", params={"limit": 2, "cursor": page["next_cursor"]}, headers=admin()
    )
    items = page["items"] + rest.json()["items"]
    assert len(items) == 3 and rest.json()["next_cursor"] is None
    verify(items)


async def test_removing_a_scope_or_the_integration_reaches_every_connection(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    await declare(client)
    await _decide(client, keys["learner"], "approve", ["files.write", "profile.read"])
    other = "/v1/subjects/learner-7/integrations/cloud-drive"
    await client.put(other, json={"decision": "decline"}, headers=keys["platform"])
    narrower = integration(id=None, scopes=[{"id": "files.write", "description": "Save work."}])
    narrower["translations"] = {}
    response = await client.put("/v1/integrations/cloud-drive", json=narrower, headers=admin())
    assert response.status_code == 200, response.text
    found = await _check(client, keys["reader"])
    assert (found["status"], found["scopes"], found["source"]) == (
        "approved",
        ["files.write"],
        "admin",
    )
    # The declined connection held no scope of those removed: nothing changed for it.
    assert (await client.get(other, headers=admin())).json()["source"] == "platform"

    assert (await client.delete("/v1/integrations/cloud-drive", headers=admin())).status_code == 204
    history = await _history(client)
    assert [(r["status"], r["scopes"], r["source"]) for r in history] == [
        ("revoked", [], "admin"),
        ("approved", ["files.write"], "admin"),
        ("approved", ["files.write", "profile.read"], "learner"),
    ]
    verify(history)
    assert (await client.get(BASE, headers=keys["learner"])).json()["items"] == []
    assert_problem(await client.get(f"{BASE}/cloud-drive", headers=admin()), 404, "not_found")


async def test_a_connection_lets_its_provider_receive_data(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    await declare(client)

    async def providers() -> list[str]:
        response = await client.get(f"/v1/subjects/{LEARNER}/providers", headers=admin())
        return [item["id"] for item in response.json()["items"]]

    assert PROVIDER not in await providers()
    await _ask(client, keys["platform"], ["files.write"])
    assert PROVIDER not in await providers()  # asked, not approved
    await _decide(client, keys["learner"], "approve", ["files.write"])
    assert PROVIDER in await providers()
    await _decide(client, keys["learner"], "decline")
    assert PROVIDER not in await providers()
    await declare(client, integration_id="roster", default="inform")
    await _ask(client, keys["platform"], ["files.write"], "roster")
    assert PROVIDER in await providers()  # informed: data may flow until declined


async def test_concurrent_changes_of_one_learner_keep_one_chain(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    names = [f"tool-{n}" for n in range(6)]
    for name in names:
        await declare(client, integration_id=name)
    answers = await asyncio.gather(
        *(_decide(client, keys["learner"], "approve", ["files.write"], name) for name in names),
        *(_ask(client, keys["platform"], ["profile.read"], name) for name in names),
    )
    assert all(answer.status_code in (200, 201, 409) for answer in answers), answers
    # Every answered change is one record of one unforked chain (an approval first leaves the
    # request beyond it refused: 409, no record).
    history = await _history(client)
    verify(history)
    assert len(history) == sum(1 for a in answers if a.status_code in (200, 201))
    assert len({r["prev_hash"] for r in history}) == len(history)
