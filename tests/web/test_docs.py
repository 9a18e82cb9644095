"""The API docs pages: only this origin's files, their own CSP, and off in production."""

from __future__ import annotations

import re

import httpx
import pytest
from pydantic import ValidationError

from consentry.settings import Settings
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio

PAGES = ("/docs", "/redoc")
STRONG = "k" * 16 + "Q2x9vB7nM4pL8rT6"
PRODUCTION = {"env": "production", "pseudonym_key": "p" + STRONG}
TYPES = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}


@pytest.fixture
def settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    return make_settings(database_url, **getattr(request, "param", {}))


def csp(response: httpx.Response) -> dict[str, str]:
    """The response's Content-Security-Policy as directive -> sources."""
    parts = response.headers["content-security-policy"].split(";")
    return dict(part.strip().split(" ", 1) for part in parts)


@pytest.mark.parametrize("path", PAGES)
async def test_the_docs_load_only_files_of_this_origin(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    names = re.findall(r'(?:src|href|spec-url)="([^"]+)"', html)
    assert names
    for name in names:
        assert "//" not in name and not name.startswith("/"), name
    # No inline code: the page's CSP allows none.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.DOTALL)
    assert scripts
    assert all(' src="' in attributes and not body.strip() for attributes, body in scripts)
    assert "<style" not in html
    assert " style=" not in html
    policy = csp(response)
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert "http" not in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", PAGES)
async def test_every_file_a_docs_page_names_is_served(client: httpx.AsyncClient, path: str) -> None:
    html = (await client.get(path)).text
    names = re.findall(r'(?:src|href)="([^"]+)"', html)
    for name in names:
        response = await client.get(f"/{name}")
        assert response.status_code == 200, name
        kind = TYPES[name.rsplit(".", 1)[1]]
        assert response.headers["content-type"] == f"{kind}; charset=utf-8", name
        assert response.headers["cache-control"] == "public, max-age=300"
        etag = response.headers["etag"]
        again = await client.get(f"/{name}", headers={"If-None-Match": etag})
        assert again.status_code == 304
    # The specification the pages render is the service's own document.
    assert (await client.get("/openapi.json")).status_code == 200


async def test_the_vendored_bundles_are_served(client: httpx.AsyncClient) -> None:
    bundle = await client.get("/docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert "SwaggerUIBundle" in bundle.text
    redoc = await client.get("/docs/redoc.standalone.js")
    assert redoc.status_code == 200
    assert "Redoc" in redoc.text


@pytest.mark.parametrize(
    "path",
    [
        "/docs/other.js",
        "/docs/privacy.js",
        "/docs/consent.js",
        "/docs/docs.html",
        "/docs/redoc.html",
        "/docs/LICENSE",
        "/docs/..%2Froutes.py",
        "/docs/vendor%2Fswagger-ui%2Fswagger-ui.css",
        "/docs/oauth2-redirect",
        "/redoc/redoc.standalone.js",
    ],
)
async def test_nothing_else_is_served_under_docs(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


OFF_PATHS = (
    "/docs",
    "/redoc",
    "/docs/swagger-ui-bundle.js",
    "/docs/swagger-ui.css",
    "/docs/docs.js",
    "/docs/redoc.standalone.js",
    "/docs/icon.svg",
    "/docs/oauth2-redirect",
)


@pytest.mark.parametrize(
    "settings",
    [{**PRODUCTION}, {"docs": False}, {**PRODUCTION, "docs": False}],
    indirect=True,
    ids=["production", "development-off", "production-off"],
)
async def test_the_docs_are_off_in_production_unless_asked_for(
    client: httpx.AsyncClient,
) -> None:
    for path in OFF_PATHS:
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "not_found"
    # The OpenAPI document stays public.
    document = await client.get("/openapi.json")
    assert document.status_code == 200
    assert document.json()["info"]["title"] == "Consentry"


@pytest.mark.parametrize("settings", [{**PRODUCTION, "docs": True}], indirect=True)
async def test_production_serves_the_docs_when_asked_to(client: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc", "/docs/swagger-ui-bundle.js", "/docs/redoc.standalone.js"):
        assert (await client.get(path)).status_code == 200, path


def test_docs_setting_defaults_to_on_except_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().docs_enabled
    assert not Settings(**PRODUCTION, jwt_secret=STRONG).docs_enabled
    monkeypatch.setenv("CONSENTRY_DOCS", "true")
    assert Settings(**PRODUCTION, jwt_secret=STRONG).docs_enabled
    monkeypatch.setenv("CONSENTRY_DOCS", "false")
    assert not Settings().docs_enabled
    monkeypatch.setenv("CONSENTRY_DOCS", "")
    assert Settings().docs_enabled
    assert not Settings(**PRODUCTION, jwt_secret=STRONG).docs_enabled
    monkeypatch.setenv("CONSENTRY_DOCS", "maybe")
    with pytest.raises(ValidationError, match="docs"):
        Settings()


async def test_no_vendored_file_names_a_cdn(client: httpx.AsyncClient) -> None:
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "docs.js"):
        body = (await client.get(f"/docs/{name}")).text
        assert not re.search(r"https?://[^\s\"'`]*cdn", body), name
