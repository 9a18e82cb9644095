"""Every field is checked: a bad one is 422 `validation_error`, and nothing is stored or audited."""

from __future__ import annotations

from typing import Any, get_args

import httpx
import pytest
from fastapi import FastAPI

from consentry.policy import CATEGORIES
from consentry.providers.countries import COUNTRY_CODES
from consentry.providers.schemas import Category
from tests.helpers import admin
from tests.providers.support import PROVIDERS, audit_rows, body, create, stored
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

MISSING = object()
BAD_FIELDS: list[tuple[str, Any]] = [
    ("id", ""),
    ("id", "Video-CDN"),
    ("id", "-video"),
    ("id", "video_cdn"),
    ("id", "a" * 65),
    ("id", 7),
    ("name", ""),
    ("name", "n" * 129),
    ("name", "   "),
    ("name", "nul\u0000inside"),
    ("name", "tab\there"),
    ("name", None),
    ("name", 42),
    ("name", MISSING),
    ("kind", "advertising"),
    ("kind", "Technology"),
    ("kind", None),
    ("kind", MISSING),
    ("purpose", ""),
    ("purpose", "p" * 1001),
    ("purpose", "two\nlines"),
    ("purpose", MISSING),
    ("data_shared", []),
    ("data_shared", "ip_address"),
    ("data_shared", ["ip_address", "ip_address"]),
    ("data_shared", ["IP_address"]),
    ("data_shared", ["1st_party"]),
    ("data_shared", ["ip-address"]),
    ("data_shared", ["d" * 65]),
    ("data_shared", [f"item_{number}" for number in range(33)]),
    ("data_shared", [1]),
    ("data_shared", None),
    ("data_shared", MISSING),
    ("category", "marketing"),
    ("category", "Necessary"),
    ("category", None),
    ("category", MISSING),
    ("countries", []),
    ("countries", "US"),
    ("countries", ["us"]),
    ("countries", ["USA"]),
    ("countries", ["XX"]),
    ("countries", ["EU"]),
    ("countries", ["US", "DE", "US"]),
    ("countries", MISSING),
    ("transfer_mechanism", "scc"),
    ("transfer_mechanism", "none"),
    ("transfer_mechanism", ""),
    ("transfer_mechanism", 1),
    ("opt_out_url", "http://example.com/opt-out"),
    ("opt_out_url", "ftp://example.com/opt-out"),
    ("opt_out_url", "example.com/opt-out"),
    ("opt_out_url", "https://"),
    ("opt_out_url", "https://exa mple.com/"),
    ("opt_out_url", "https://user:secret@example.com/"),
    ("opt_out_url", "https://example.com:99999/"),
    ("opt_out_url", "https://[::1/"),
    ("opt_out_url", "https://example.com/" + "a" * 493),
    ("opt_out_url", ""),
    ("website", "https://example.com/"),
]


def _with(field: str, value: Any, *, provider_id: str = "video-cdn") -> dict[str, Any]:
    sent = body(provider_id)
    if value is MISSING:
        del sent[field]
    else:
        sent[field] = value
    return sent


def _case_id(case: tuple[str, Any]) -> str:
    field, value = case
    return f"{field}={'missing' if value is MISSING else repr(value)[:24]}"


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS, ids=[_case_id(c) for c in BAD_FIELDS])
async def test_a_bad_field_in_a_post_stores_nothing(
    app: FastAPI, client: httpx.AsyncClient, field: str, value: Any
) -> None:
    response = await client.post(PROVIDERS, json=_with(field, value), headers=admin())
    problem = assert_problem(response, 422, "validation_error")
    assert any(field in error["loc"] for error in problem["errors"]), problem
    assert await stored(app) == {}
    assert await audit_rows(app) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [case for case in BAD_FIELDS if case[0] != "id"],
    ids=[_case_id(c) for c in BAD_FIELDS if c[0] != "id"],
)
async def test_a_bad_field_in_a_put_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient, field: str, value: Any
) -> None:
    await create(client, name="Kept")
    before = await stored(app)
    response = await client.put(f"{PROVIDERS}/video-cdn", json=_with(field, value), headers=admin())
    assert_problem(response, 422, "validation_error")
    assert await stored(app) == before
    assert [row["action"] for row in await audit_rows(app)] == ["provider_created"]


async def test_a_put_may_not_rename_through_the_body(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await create(client)
    response = await client.put(f"{PROVIDERS}/video-cdn", json=body("other-id"), headers=admin())
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["loc"] == ["body", "id"]
    assert set(await stored(app)) == {"video-cdn"}
    assert len(await audit_rows(app)) == 1


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("provider_id", ["Video", "under_score", "-x", "a" * 65])
async def test_a_malformed_id_in_the_path_is_422(
    app: FastAPI, client: httpx.AsyncClient, method: str, provider_id: str
) -> None:
    sent = _with("id", MISSING) if method == "PUT" else None
    response = await client.request(
        method, f"{PROVIDERS}/{provider_id}", headers=admin(), json=sent
    )
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["loc"] == ["path", "provider_id"]
    assert await stored(app) == {}


async def test_the_limits_themselves_are_accepted(client: httpx.AsyncClient) -> None:
    longest_url = "https://example.com/" + "a" * 492
    purpose = "Ünïcode and punctuation — fine. "
    provider = await create(
        client,
        "a" * 64,
        name="n" * 128,
        purpose=purpose + "p" * (1000 - len(purpose)),
        data_shared=[f"item_{number}" for number in range(32)],
        countries=sorted(COUNTRY_CODES),
        transfer_mechanism="DPF",
        opt_out_url=longest_url,
    )
    assert len(provider["purpose"]) == 1000
    assert len(provider["opt_out_url"]) == 512
    assert len(provider["countries"]) == 249


@pytest.mark.parametrize("mechanism", ["adequacy", "SCC", "BCR", "DPF", "consent", None])
async def test_each_documented_transfer_mechanism(
    client: httpx.AsyncClient, mechanism: str | None
) -> None:
    assert (await create(client, transfer_mechanism=mechanism))["transfer_mechanism"] == mechanism


@pytest.mark.parametrize("kind", ["technology", "analytics", "payment", "support"])
@pytest.mark.parametrize("category", ["necessary", "performance", "functional", "customization"])
async def test_every_kind_and_category(client: httpx.AsyncClient, kind: str, category: str) -> None:
    provider = await create(client, kind=kind, category=category)
    assert (provider["kind"], provider["category"]) == (kind, category)


async def test_a_body_that_is_not_json_is_400(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = {**admin(), "Content-Type": "application/json"}
    response = await client.post(PROVIDERS, content=b'{"id": "x",', headers=headers)
    assert_problem(response, 400, "malformed_request")
    assert await stored(app) == {}


async def test_a_body_of_another_type_is_415(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = {**admin(), "Content-Type": "text/plain"}
    response = await client.post(PROVIDERS, content=b"id=video-cdn", headers=headers)
    assert_problem(response, 415, "unsupported_media_type")
    assert await stored(app) == {}


@pytest.mark.parametrize("sent", [b"[]", b'"provider"', b"null", b"1"])
async def test_a_body_that_is_not_an_object_is_422(
    app: FastAPI, client: httpx.AsyncClient, sent: bytes
) -> None:
    headers = {**admin(), "Content-Type": "application/json"}
    response = await client.post(PROVIDERS, content=sent, headers=headers)
    assert_problem(response, 422, "validation_error")
    assert await stored(app) == {}


async def test_a_body_past_the_size_limit_is_413(app: FastAPI, client: httpx.AsyncClient) -> None:
    sent = body(purpose="p" * (app.state.max_body_bytes + 1))
    assert_problem(
        await client.post(PROVIDERS, json=sent, headers=admin()), 413, "payload_too_large"
    )
    assert await stored(app) == {}


def test_the_schema_lists_exactly_the_policys_categories() -> None:
    assert set(get_args(Category)) == set(CATEGORIES)
