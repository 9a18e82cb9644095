"""The frontend's static routes: types, validators, caching, CSP, size, and nothing else served."""

from __future__ import annotations

import gzip
import re
from importlib.resources import files

import httpx
import pytest
from fastapi import FastAPI

from consentry.etags import strong_etag
from consentry.web.routes import compact_script
from tests.conftest import make_settings

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


async def test_consent_js_is_gzipped_when_the_client_accepts_it(
    client: httpx.AsyncClient,
) -> None:
    """A representation per encoding, each with its own strong ETag, and Vary on both."""
    plain = await client.get("/sdk/consent.js", headers={"Accept-Encoding": "identity"})
    packed = await client.get("/sdk/consent.js", headers={"Accept-Encoding": "br, gzip"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    for response in (plain, packed):
        assert response.headers["vary"] == "Accept-Encoding"
        assert response.headers["cache-control"] == "public, max-age=300"
        assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["etag"])
    # httpx decodes it: the same script, sent in far fewer bytes.
    assert packed.content == plain.content
    assert int(packed.headers["content-length"]) < len(plain.content) / 2
    assert packed.headers["etag"] != plain.headers["etag"]

    for accepted, encoded in [
        ("gzip;q=0", False),
        ("gzip;q=0, *", False),
        ("*", True),
        ("identity;q=1, *;q=0.5", True),
        ("deflate", False),
        ("GZIP;q=0.3", True),
        ("x-gzip", True),
        ("gzip;q=oops", False),
    ]:
        response = await client.get("/sdk/consent.js", headers={"Accept-Encoding": accepted})
        assert ("content-encoding" in response.headers) is encoded, accepted

    # Each validator names its own representation only.
    for etag, accepted, status in [
        (packed.headers["etag"], "gzip", 304),
        (plain.headers["etag"], "identity", 304),
        (packed.headers["etag"], "identity", 200),
        (plain.headers["etag"], "gzip", 200),
    ]:
        response = await client.get(
            "/sdk/consent.js", headers={"Accept-Encoding": accepted, "If-None-Match": etag}
        )
        assert response.status_code == status, (accepted, status)
        assert response.headers["vary"] == "Accept-Encoding"
    assert (
        await client.get(
            "/sdk/consent.js",
            headers={"Accept-Encoding": "gzip", "If-None-Match": packed.headers["etag"]},
        )
    ).headers["etag"] == packed.headers["etag"]


async def test_the_gzipped_script_is_the_same_on_every_process(client: httpx.AsyncClient) -> None:
    """Two replicas must agree on the ETag: compressing never stamps a time into the bytes."""
    first = await client.get("/sdk/consent.js", headers={"Accept-Encoding": "gzip"})
    body = (await client.get("/sdk/consent.js", headers={"Accept-Encoding": "identity"})).content
    assert gzip.compress(body, compresslevel=9, mtime=0)[4:8] == b"\0\0\0\0"
    assert first.headers["etag"] == strong_etag(gzip.compress(body, compresslevel=9, mtime=0))


async def test_privacy_page_names_the_platform_when_configured(database_url: str) -> None:
    from consentry.app import create_app

    url = "https://learn.example.edu/account?tab=privacy&x=<1>"
    app = create_app(make_settings(database_url, platform_url=url))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        page = await client.get("/privacy")
    assert (
        '<meta name="consentry-platform" '
        'content="https://learn.example.edu/account?tab=privacy&amp;x=&lt;1&gt;">'
    ) in page.text
    assert (
        "<script" in page.text
        and '<meta name="consentry-platform"' not in page.text.split("<script")[1]
    )


@pytest.mark.parametrize("url", ["javascript:alert(1)", "https://user:pw@learn.example", "learn"])
def test_platform_and_policy_urls_are_web_pages(url: str) -> None:
    from pydantic import ValidationError

    from consentry.settings import Settings

    for name in ("platform_url", "policy_url"):
        with pytest.raises(ValidationError):
            Settings(**{name: url})


async def test_our_scripts_keep_no_string_across_lines() -> None:
    """What lets compact_script strip each line: no string or template literal spans two."""
    static = files("consentry.web").joinpath("static")
    for name in ("consent.js", "privacy.js"):
        source = static.joinpath(name).read_text()
        for literal in re.findall(r"`[^`]*`", source):
            assert "\n" not in literal, (name, literal[:60])
        for line in source.splitlines():
            assert not line.rstrip().endswith("\\"), (name, line)
    compacted = compact_script(b"  const a = 1; // kept: not a whole-line comment\n\n  // gone\n")
    assert compacted == b"const a = 1; // kept: not a whole-line comment\n"
