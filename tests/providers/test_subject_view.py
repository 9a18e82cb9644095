"""A subject's providers: those its consent lets data reach now, its defaults until it chooses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert

from consentry.consent.models import Tombstone
from tests.helpers import admin, anon_id, bearer, choice, make_key, user_token
from tests.providers.support import create
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

SUBJECT = "learner-1"
# One provider per category, named for it.
BY_CATEGORY = {
    "necessary": "hosting",
    "performance": "analytics",
    "functional": "preferences-store",
    "customization": "recommender",
}
ALWAYS = ["hosting"]


def _url(subject: str = SUBJECT) -> str:
    return f"/v1/subjects/{subject}/providers"


@pytest.fixture
async def registry(client: httpx.AsyncClient) -> None:
    """One provider for each category."""
    for category, provider_id in BY_CATEGORY.items():
        await create(client, provider_id, category=category)


async def _ids(
    client: httpx.AsyncClient,
    subject: str = SUBJECT,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> list[str]:
    """The ids of the subject's providers (one page), sorted."""
    response = await client.get(
        _url(subject), params=params, headers=admin() if headers is None else headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    page = response.json()
    assert set(page) == {"items", "next_cursor"}
    return sorted(item["id"] for item in page["items"])


async def _choose(client: httpx.AsyncClient, subject: str = SUBJECT, **categories: Any) -> None:
    response = await client.put(
        f"/v1/subjects/{subject}/consent", json=choice(**categories), headers=admin()
    )
    assert response.status_code == 200, response.text


def _expected(*categories: str) -> list[str]:
    return sorted(BY_CATEGORY[category] for category in ("necessary", *categories))


@pytest.mark.usefixtures("registry")
@pytest.mark.parametrize("region", [None, "DE", "GB", "BR"])
async def test_no_record_under_opt_in_reaches_only_necessary_providers(
    client: httpx.AsyncClient, region: str | None
) -> None:
    params = {"region": region} if region else {}
    assert await _ids(client, **params) == _expected()


@pytest.mark.usefixtures("registry")
async def test_no_record_under_opt_out_reaches_every_category(client: httpx.AsyncClient) -> None:
    assert await _ids(client, region="US-CA") == _expected(
        "performance", "functional", "customization"
    )


@pytest.mark.usefixtures("registry")
async def test_gpc_keeps_analytics_and_recommendations_out_under_opt_out(
    client: httpx.AsyncClient,
) -> None:
    headers = {**admin(), "Sec-GPC": "1"}
    assert await _ids(client, headers=headers, region="US-CA") == _expected("functional")


@pytest.mark.usefixtures("registry")
async def test_a_grant_lets_its_providers_in_and_a_withdrawal_takes_them_out(
    client: httpx.AsyncClient,
) -> None:
    await _choose(client, performance=True)
    assert await _ids(client) == _expected("performance")

    await _choose(client, performance=True, functional=True, customization=True)
    assert await _ids(client) == _expected("performance", "functional", "customization")

    await _choose(client, performance=False, functional=True)
    assert await _ids(client) == _expected("functional")


@pytest.mark.usefixtures("registry")
async def test_a_recorded_refusal_wins_over_opt_out_defaults(client: httpx.AsyncClient) -> None:
    await _choose(client)
    assert await _ids(client, region="US-CA") == _expected()


@pytest.mark.usefixtures("registry")
async def test_a_provider_moved_to_a_denied_category_drops_out(client: httpx.AsyncClient) -> None:
    await _choose(client, performance=True)
    moved = {
        "name": "Example",
        "kind": "analytics",
        "purpose": "Counts visits.",
        "data_shared": ["usage_statistics"],
        "category": "customization",
        "countries": ["DE"],
    }
    response = await client.put("/v1/providers/analytics", json=moved, headers=admin())
    assert response.status_code == 200, response.text
    assert await _ids(client) == _expected()


@pytest.mark.usefixtures("registry")
async def test_the_list_pages_in_id_order(client: httpx.AsyncClient) -> None:
    await _choose(client, performance=True, functional=True, customization=True)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(_url(), params=params, headers=admin())).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(BY_CATEGORY.values())


async def test_items_are_whole_providers(client: httpx.AsyncClient) -> None:
    created = await create(client, "hosting")
    page = (await client.get(_url(), headers=admin())).json()
    assert page == {"items": [created], "next_cursor": None}


async def test_an_erased_subject_is_410(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create(client, "hosting")
    pseudonyms = await app.state.pseudonyms.get()
    async with app.state.database.unit_of_work() as uow:
        await uow.execute(
            insert(Tombstone).values(
                subject_hash=pseudonyms.of(SUBJECT), erased_at=datetime.now(UTC)
            )
        )
    assert_problem(await client.get(_url(), headers=admin()), 410, "subject_erased")
    assert (await client.get(_url("learner-2"), headers=admin())).status_code == 200


@pytest.mark.parametrize(
    ("caller", "status"),
    [
        ("admin", 200),
        ("privacy:admin key", 200),
        ("consent:read key", 200),
        ("own JWT", 200),
        ("other JWT", 403),
        ("consent:write key", 403),
        ("events:write key", 403),
        ("no token", 401),
    ],
)
async def test_who_may_see_a_named_subjects_providers(
    app: FastAPI, client: httpx.AsyncClient, caller: str, status: int
) -> None:
    headers = {
        "admin": admin(),
        "own JWT": bearer(user_token(SUBJECT)),
        "other JWT": bearer(user_token("learner-2")),
        "no token": {},
    }.get(caller)
    if headers is None:
        scope = caller.removesuffix(" key")
        headers = bearer(await make_key(app, scope.replace(":", "-"), scope))
    response = await client.get(_url(), headers=headers)
    if status == 200:
        assert response.status_code == 200, response.text
    else:
        assert_problem(response, status, {401: "unauthorized", 403: "forbidden"}[status])


async def test_an_anonymous_visitor_sees_its_own_without_a_token(client: httpx.AsyncClient) -> None:
    await create(client, "hosting")
    assert await _ids(client, anon_id(), headers={}) == ["hosting"]


@pytest.mark.parametrize(
    ("subject", "params"),
    [("-bad-subject", {}), (SUBJECT, {"region": "Germany"}), (SUBJECT, {"limit": 0})],
)
async def test_malformed_requests_are_422(
    client: httpx.AsyncClient, subject: str, params: dict[str, Any]
) -> None:
    response = await client.get(_url(subject), params=params, headers=admin())
    assert_problem(response, 422, "validation_error")
