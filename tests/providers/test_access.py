"""Who may do what: anyone reads the registry; only `privacy:admin` changes it."""

from __future__ import annotations

import secrets

import httpx
import pytest
from fastapi import FastAPI

from tests.auth.conftest import make_revoked_key
from tests.helpers import ADMIN_KEY, bearer, make_key, user_token
from tests.providers.support import PROVIDERS, audit_rows, body, create, stored
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

# caller -> the status every write answers it (None: the write succeeds).
WRITERS: dict[str, int | None] = {
    "no token": 401,
    "malformed header": 401,
    "garbage token": 401,
    "unknown csk_ key": 401,
    "revoked privacy:admin key": 401,
    "consent:read key": 403,
    "consent:write key": 403,
    "events:write key": 403,
    "every other scope": 403,
    "a learner's JWT": 403,
    "privacy:admin key": None,
    "CONSENTRY_ADMIN_KEY": None,
}
WRITES = {"POST": 201, "PUT": 201, "DELETE": 204}


async def _headers(app: FastAPI, caller: str) -> dict[str, str]:
    """The Authorization header, if any, that `caller` sends."""
    scoped = caller.removesuffix(" key")
    if scoped in ("consent:read", "consent:write", "events:write", "privacy:admin"):
        return bearer(await make_key(app, scoped.replace(":", "-"), scoped))
    match caller:
        case "no token":
            return {}
        case "malformed header":
            return {"Authorization": "Basic abc"}
        case "garbage token":
            return bearer("not-a-token")
        case "unknown csk_ key":
            return bearer("csk_" + secrets.token_urlsafe(32))
        case "revoked privacy:admin key":
            return bearer(await make_revoked_key(app, "revoked", "privacy:admin"))
        case "every other scope":
            scopes = ("consent:read", "consent:write", "events:write")
            return bearer(await make_key(app, "everything-else", *scopes))
        case "a learner's JWT":
            return bearer(user_token("learner-1"))
        case "CONSENTRY_ADMIN_KEY":
            return bearer(ADMIN_KEY)
    raise AssertionError(f"no such caller: {caller}")


def _request(method: str) -> tuple[str, dict[str, object] | None]:
    if method == "POST":
        return PROVIDERS, body("new-provider")
    if method == "PUT":
        return f"{PROVIDERS}/new-provider", body("new-provider")
    return f"{PROVIDERS}/existing", None


@pytest.mark.parametrize("method", list(WRITES))
@pytest.mark.parametrize("caller", list(WRITERS))
async def test_only_the_privacy_team_writes(
    app: FastAPI, client: httpx.AsyncClient, caller: str, method: str
) -> None:
    await create(client, "existing")
    before, audited = await stored(app), len(await audit_rows(app))
    url, sent = _request(method)

    response = await client.request(method, url, json=sent, headers=await _headers(app, caller))

    refusal = WRITERS[caller]
    if refusal is None:
        assert response.status_code == WRITES[method], response.text
        assert await stored(app) != before
        assert len(await audit_rows(app)) == audited + 1
        return
    code = {401: "unauthorized", 403: "forbidden"}[refusal]
    assert_problem(response, refusal, code)
    if refusal == 401:
        challenge = "Bearer" if caller == "no token" else 'Bearer error="invalid_token"'
        assert response.headers["www-authenticate"] == challenge
    assert await stored(app) == before
    assert len(await audit_rows(app)) == audited


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_a_body_without_a_token_is_refused_before_it_is_read(
    client: httpx.AsyncClient, method: str
) -> None:
    url, _ = _request(method)
    headers = {"Content-Type": "text/plain"}
    response = await client.request(method, url, content=b"not json", headers=headers)
    assert_problem(response, 401, "unauthorized")


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("not-a-token"), bearer(user_token("learner-1"))],
    ids=["no token", "garbage token", "a learner's JWT"],
)
async def test_anyone_reads_the_registry(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await create(client, "video-cdn")
    listing = await client.get(PROVIDERS, headers=headers)
    assert listing.status_code == 200, listing.text
    assert [item["id"] for item in listing.json()["items"]] == ["video-cdn"]
    assert listing.headers["cache-control"] == "public, max-age=300"
    one = await client.get(f"{PROVIDERS}/video-cdn", headers=headers)
    assert one.status_code == 200, one.text
    assert "www-authenticate" not in listing.headers
