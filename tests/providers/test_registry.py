"""The registry's life cycle: create, read, replace, delete, and every status code on the way."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers import admin
from tests.providers.support import FIELDS, PROVIDERS, TIMESTAMP, body, create, stored
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio


def _url(provider_id: str) -> str:
    return f"{PROVIDERS}/{provider_id}"


async def test_post_creates_and_answers_201_with_the_provider(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    sent = body(opt_out_url="https://example.com/opt-out", countries=["US", "DE"])
    response = await client.post(PROVIDERS, json=sent, headers=admin())

    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/v1/providers/video-cdn"
    provider = response.json()
    assert set(provider) == FIELDS
    assert {key: provider[key] for key in sent} == sent
    assert re.fullmatch(TIMESTAMP, provider["created_at"])
    assert provider["updated_at"] == provider["created_at"]
    assert set(await stored(app)) == {"video-cdn"}


async def test_optional_fields_default_to_null(client: httpx.AsyncClient) -> None:
    sent = body()
    del sent["transfer_mechanism"], sent["opt_out_url"]
    response = await client.post(PROVIDERS, json=sent, headers=admin())
    assert response.status_code == 201, response.text
    assert response.json()["transfer_mechanism"] is None
    assert response.json()["opt_out_url"] is None


async def test_post_of_an_existing_id_is_409_and_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await create(client, name="First")
    response = await client.post(PROVIDERS, json=body(name="Second"), headers=admin())
    assert_problem(response, 409, "conflict")
    assert (await stored(app))["video-cdn"]["name"] == "First"


async def test_get_one_is_public_and_404_when_absent(client: httpx.AsyncClient) -> None:
    created = await create(client)
    response = await client.get(_url("video-cdn"))
    assert response.status_code == 200
    assert response.json() == created
    assert response.headers["cache-control"] == "public, max-age=300"
    assert_problem(await client.get(_url("no-such-provider")), 404, "not_found")


async def test_put_creates_with_201_then_replaces_with_200(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    first = await client.put(_url("support-desk"), json=body("support-desk"), headers=admin())
    assert first.status_code == 201, first.text
    assert first.headers["location"] == "/v1/providers/support-desk"

    replacement = body("support-desk", name="Helpdesk Inc", kind="support", countries=["IE"])
    second = await client.put(_url("support-desk"), json=replacement, headers=admin())
    assert second.status_code == 200, second.text
    provider = second.json()
    assert {key: provider[key] for key in replacement} == replacement
    assert provider["created_at"] == first.json()["created_at"]
    assert provider["updated_at"] > provider["created_at"]
    assert (await client.get(_url("support-desk"))).json() == provider
    assert (await stored(app))["support-desk"]["name"] == "Helpdesk Inc"


async def test_put_replaces_every_field_so_omitted_optional_ones_become_null(
    client: httpx.AsyncClient,
) -> None:
    await create(client, opt_out_url="https://example.com/opt-out")
    replacement = body()
    del replacement["opt_out_url"], replacement["transfer_mechanism"]
    response = await client.put(_url("video-cdn"), json=replacement, headers=admin())
    assert response.status_code == 200, response.text
    assert response.json()["opt_out_url"] is None
    assert response.json()["transfer_mechanism"] is None


async def test_put_body_may_leave_out_the_id(client: httpx.AsyncClient) -> None:
    without_id = body("analytics-one")
    del without_id["id"]
    response = await client.put(_url("analytics-one"), json=without_id, headers=admin())
    assert response.status_code == 201, response.text
    assert response.json()["id"] == "analytics-one"


async def test_put_of_the_same_description_changes_nothing(client: httpx.AsyncClient) -> None:
    created = await create(client)
    response = await client.put(_url("video-cdn"), json=body(), headers=admin())
    assert response.status_code == 200
    assert response.json() == created  # updated_at included


async def test_reordering_a_list_is_a_change(client: httpx.AsyncClient) -> None:
    created = await create(client, countries=["US", "DE"])
    reordered = body(countries=["DE", "US"])
    response = await client.put(_url("video-cdn"), json=reordered, headers=admin())
    assert response.json()["countries"] == ["DE", "US"]
    assert response.json()["updated_at"] > created["updated_at"]


async def test_delete_answers_204_then_404(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create(client)
    await create(client, "support-desk", kind="support")
    response = await client.delete(_url("video-cdn"), headers=admin())
    assert response.status_code == 204
    assert response.content == b""
    assert set(await stored(app)) == {"support-desk"}
    assert_problem(await client.get(_url("video-cdn")), 404, "not_found")
    assert_problem(await client.delete(_url("video-cdn"), headers=admin()), 404, "not_found")


async def test_a_deleted_id_can_be_created_again(client: httpx.AsyncClient) -> None:
    await create(client, name="Old")
    await client.delete(_url("video-cdn"), headers=admin())
    assert (await create(client, name="New"))["name"] == "New"


async def test_timestamps_are_utc_and_recent(client: httpx.AsyncClient) -> None:
    before = datetime.now(UTC)
    created = await create(client)
    moment = datetime.fromisoformat(created["created_at"])
    assert moment.utcoffset() == timedelta(0)
    assert before <= moment <= datetime.now(UTC)


@pytest.mark.parametrize("method", ["PATCH", "POST"])
async def test_other_methods_on_one_provider_are_405(
    client: httpx.AsyncClient, method: str
) -> None:
    response = await client.request(method, _url("video-cdn"), headers=admin(), json=body())
    assert_problem(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].split(", ")) == {"GET", "PUT", "DELETE"}
