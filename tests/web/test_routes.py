"""The frontend's static routes: types, validators, caching, CSP, size, and nothing else served."""

from __future__ import annotations

import gzip
import re

import httpx
import pytest
from fastapi import FastAPI

pytestmark = pytest.mark.anyio

SIZE_LIMIT = 15 * 1024


async def test_consent_js_is_javascript_with_a_validator(client: httpx.AsyncClient) -> None:
    response = await client.get("/sdk/consent.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert "window.Consentry = Object.freeze(" in response.text
    etag = response.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)

    again = await client.get("/sdk/consent.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    changed = await client.get("/sdk/consent.js", headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200


async def test_consent_js_is_at_most_15_kb_gzipped(client: httpx.AsyncClient) -> None:
    body = (await client.get("/sdk/consent.js")).content
    assert len(gzip.compress(body, compresslevel=9)) <= SIZE_LIMIT


async def test_the_stylesheet_is_css(client: httpx.AsyncClient) -> None:
    response = await client.get("/sdk/consent.css")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/css; charset=utf-8"
    assert "prefers-color-scheme: dark" in response.text
    assert "etag" in response.headers


async def test_privacy_page_has_a_strict_csp_and_is_never_stored(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/privacy")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    policy = dict(
        part.strip().split(" ", 1)
        for part in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'"
    for directive in ("script-src", "style-src", "connect-src", "img-src"):
        assert policy[directive] == "'self'", directive
    # No inline code: every script and stylesheet is a file of this origin.
    html = response.text
    assert "<style" not in html
    assert " style=" not in html
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.DOTALL)
    assert len(scripts) == 2
    assert all(' src="' in attributes and not body.strip() for attributes, body in scripts)


async def test_every_file_the_page_names_is_served(client: httpx.AsyncClient) -> None:
    html = (await client.get("/privacy")).text
    names = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(names) == [
        "privacy/icon.svg",
        "privacy/privacy.css",
        "privacy/privacy.js",
        "sdk/consent.js",
    ]
    types = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}
    for name in names:
        response = await client.get(f"/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == f"{types[name.rsplit('.', 1)[1]]}; charset=utf-8"
        assert "'unsafe-inline'" not in response.headers.get("content-security-policy", "")


@pytest.mark.parametrize(
    "path",
    [
        "/sdk/other.js",
        "/sdk/privacy.js",
        "/privacy/consent.js",
        "/privacy/privacy.html",
        "/privacy/..%2F..%2Fpyproject.toml",
        "/sdk/..%2Froutes.py",
        "/sdk/%2e%2e%2f%2e%2e%2fapp.py",
        "/sdk/static%2Fconsent.js",
        "/privacy/%2Fetc%2Fpasswd",
    ],
)
async def test_nothing_else_is_served(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


async def test_the_pages_stay_out_of_the_openapi_document(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    assert not [path for path in paths if path.startswith(("/sdk", "/privacy"))]
