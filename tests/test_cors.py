"""CORS: the frontend's origins may call the API from the browser; others may not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import ValidationError

from consentry.app import create_app
from tests.conftest import make_settings
from tests.helpers import anon_id

pytestmark = pytest.mark.anyio

ORIGIN = "https://learn.example"


@pytest.fixture
async def cors_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that allows one origin."""
    app = create_app(make_settings(database_url, cors_origins=[ORIGIN]))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield client


def _preflight(origin: str, method: str = "PUT") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type, if-match",
    }


async def test_preflight_from_allowed_origin(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.options(
        f"/v1/subjects/{anon_id()}/consent", headers=_preflight(ORIGIN)
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "PUT" in response.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in response.headers


async def test_simple_request_exposes_etag(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.get(
        f"/v1/subjects/{anon_id()}/consent", headers={"Origin": ORIGIN}
    )
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "ETag" in response.headers["access-control-expose-headers"]


@pytest.mark.parametrize(
    "headers",
    [_preflight("https://evil.example"), _preflight(ORIGIN, method="TRACE")],
)
async def test_refused_preflight_is_problem_json(
    cors_client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await cors_client.options(f"/v1/subjects/{anon_id()}/consent", headers=headers)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "forbidden"
    assert "access-control-allow-origin" not in response.headers


async def test_other_origin_gets_no_cors_headers(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.get("/v1/policy", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    "origin",
    [
        "https://learn.example.evil.example",
        "https://evil.example/https://learn.example",
        "http://learn.example",
        "https://learn.example:8443",
        "null",
    ],
)
async def test_only_the_exact_origin_is_allowed(
    cors_client: httpx.AsyncClient, origin: str
) -> None:
    refused = await cors_client.options(
        f"/v1/subjects/{anon_id()}/consent", headers=_preflight(origin)
    )
    assert refused.status_code == 403
    read = await cors_client.get(f"/v1/subjects/{anon_id()}/consent", headers={"Origin": origin})
    assert "access-control-allow-origin" not in read.headers


async def test_answers_vary_by_origin_and_never_allow_credentials(
    cors_client: httpx.AsyncClient,
) -> None:
    response = await cors_client.get(
        f"/v1/subjects/{anon_id()}/consent", headers={"Origin": ORIGIN}
    )
    assert "Origin" in response.headers["vary"]
    assert "access-control-allow-credentials" not in response.headers


async def test_preflight_for_an_unlisted_header_is_refused(cors_client: httpx.AsyncClient) -> None:
    headers = {**_preflight(ORIGIN), "Access-Control-Request-Headers": "x-forwarded-for"}
    response = await cors_client.options(f"/v1/subjects/{anon_id()}/consent", headers=headers)
    assert response.status_code == 403
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "origins", ["*", "https://learn.example/", "learn.example", "https://*.learn.example"]
)
def test_settings_refuse_anything_but_exact_origins(origins: str) -> None:
    with pytest.raises(ValidationError, match="is not an origin"):
        make_settings("sqlite+aiosqlite:///:memory:", cors_origins=origins)
