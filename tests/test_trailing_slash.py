"""Paths with a trailing slash: a 404 problem+json, never a redirect built from the Host header."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import admin

pytestmark = pytest.mark.anyio

PATHS = (
    "/v1/policy/",
    "/v1/providers/",
    "/privacy/",
    "/sdk/consent.js/",
    "/v1/subjects/x/consent/",
    "/v1/subjects/x/consent/history/",
    "/v1/subjects/x/export/",
    "/v1/events/",
    "/v1/erasure-requests/",
    "/v1/audit-log/",
    "/docs/",
    "/redoc/",
    "/openapi.json/",
    "/healthz/",
    "/readyz/",
    "/metrics/",
)
HOSTILE = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE"])
@pytest.mark.parametrize("path", PATHS)
async def test_a_trailing_slash_is_not_found_and_names_no_host(
    client: httpx.AsyncClient, path: str, method: str
) -> None:
    response = await client.request(method, path, headers={**HOSTILE, **admin()})
    assert "location" not in response.headers
    assert response.status_code == 404, response.text
    if method != "HEAD":
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "not_found"


async def test_no_redirect_anywhere_names_another_host(client: httpx.AsyncClient) -> None:
    for path in ("/v1/policy", "/privacy", "/docs", "/openapi.json"):
        response = await client.get(path, headers=HOSTILE)
        location = response.headers.get("location", "")
        assert "evil.example" not in location, (path, location)
        assert response.status_code in (200, 404), path
