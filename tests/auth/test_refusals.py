"""Refused credentials cost little: tokens are capped before parsing, refusals are counted against
the client's address before any verification, and no body is read before the caller is known."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from consentry.keys import repository
from consentry.settings import Settings
from tests.conftest import make_settings
from tests.helpers import admin, anon_id, bearer, choice, make_key, user_token
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

BURST = 3
LOW = {
    "rate_limit_key_per_second": 0.01,
    "rate_limit_key_burst": BURST,
    "rate_limit_user_per_second": 0.01,
    "rate_limit_user_burst": BURST,
    "rate_limit_address_per_second": 0.01,
    "rate_limit_address_burst": BURST,
}
MAX_TOKEN = 8 * 1024
JSON = {"Content-Type": "application/json"}
MIB = 1024 * 1024


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Low limits, so that a test reaches them in a few requests."""
    return make_settings(database_url, **LOW)


@dataclass
class Checks:
    """Every call that parses or verifies a token: the JWT parser and the key lookup."""

    calls: list[str] = field(default_factory=list)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> Checks:
    """Records each parse of a JWT and each key lookup, still doing them."""
    seen = Checks()
    parse_header, decode, find_active = (
        jwt.get_unverified_header,
        jwt.decode,
        repository.find_active,
    )

    def parse_header_seen(token: str | bytes) -> dict[str, Any]:
        seen.calls.append("jwt header")
        return parse_header(token)

    def decode_seen(token: str | bytes, *args: Any, **kwargs: Any) -> Any:
        seen.calls.append("jwt decode")
        return decode(token, *args, **kwargs)

    async def find_active_seen(*args: Any) -> Any:
        seen.calls.append("key lookup")
        return await find_active(*args)

    monkeypatch.setattr(jwt, "get_unverified_header", parse_header_seen)
    monkeypatch.setattr(jwt, "decode", decode_seen)
    monkeypatch.setattr(repository, "find_active", find_active_seen)
    return seen


def _long(prefix: str, size: int) -> str:
    return prefix + "a" * (size - len(prefix))


# Every way a token reaches the service: a key on a key route, a JWT on a subject route, a token
# on an anonymous subject's route (which needs none), and a key on the event intake.
AUTH_PATHS = {
    "key": ("GET", "/v1/audit-log", "csk_"),
    "jwt": ("GET", "/v1/subjects/learner-1/consent", "eyJ"),
    "anonymous-with-token": ("GET", "/v1/subjects/anon:{anon}/consent", "eyJ"),
    "events-key": ("POST", "/v1/events", "csk_"),
    "analytics-key": ("POST", "/v1/batch", "csk_"),
}
SIZES = {"8KiB+1": MAX_TOKEN + 1, "9KiB": 9 * 1024, "5MB": 5_000_000, "20MB": 20_000_000}


async def _send(client: httpx.AsyncClient, method: str, path: str, token: str) -> httpx.Response:
    path = path.replace("anon:{anon}", anon_id())
    if method == "POST":
        return await client.post(path, content=b"{}", headers={**bearer(token), **JSON})
    return await client.get(path, headers=bearer(token))


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("route", AUTH_PATHS.values(), ids=AUTH_PATHS.keys())
async def test_an_oversized_token_is_refused_unparsed_and_counted(
    client: httpx.AsyncClient, checks: Checks, route: tuple[str, str, str], size: int
) -> None:
    method, path, prefix = route
    for _ in range(BURST):
        body = assert_problem(
            await _send(client, method, path, _long(prefix, size)), 401, "unauthorized"
        )
        assert str(MAX_TOKEN) in body["detail"]
    assert checks.calls == []
    # Counted against the address: the next request from it, whatever it carries, is over.
    assert_problem(await _send(client, method, path, _long(prefix, size)), 429, "rate_limited")
    assert_problem(await client.get("/v1/audit-log"), 429, "rate_limited")
    assert checks.calls == []


@pytest.mark.parametrize("route", AUTH_PATHS.values(), ids=AUTH_PATHS.keys())
async def test_a_token_at_the_cap_is_checked(
    client: httpx.AsyncClient, checks: Checks, route: tuple[str, str, str]
) -> None:
    method, path, prefix = route
    response = await _send(client, method, path, _long(prefix, MAX_TOKEN))
    body = assert_problem(response, 401, "unauthorized")
    assert str(MAX_TOKEN) not in body["detail"]
    assert checks.calls


async def test_the_cap_counts_the_token_not_the_header(client: httpx.AsyncClient) -> None:
    # Surrounding spaces are not part of the token; a header that is all padding is still capped.
    token = user_token("learner-1")
    padded = {"Authorization": "Bearer " + token + " " * 100}
    assert (await client.get("/v1/subjects/learner-1/consent", headers=padded)).status_code == 200
    huge = {"Authorization": "Bearer " + " " * 5_000_000 + token}
    body = assert_problem(
        await client.get("/v1/subjects/learner-1/consent", headers=huge), 401, "unauthorized"
    )
    assert str(MAX_TOKEN) in body["detail"]


async def test_an_address_over_its_limit_gets_429_before_any_verification(
    app: FastAPI, client: httpx.AsyncClient, checks: Checks
) -> None:
    key = await make_key(app, "reader", "consent:read")
    for _ in range(BURST):
        guess = await client.get("/v1/audit-log", headers=bearer("csk_guess"))
        assert_problem(guess, 401, "unauthorized")
    checks.calls.clear()

    guesses = [bearer("csk_another-guess"), bearer(user_token("learner-1", secret="x" * 32))]
    for headers in guesses:
        response = await client.get("/v1/subjects/learner-1/consent", headers=headers)
        assert_problem(response, 429, "rate_limited")
        assert int(response.headers["retry-after"]) >= 1
    # A key is not checked either: from this address, checking is what is limited.
    response = await client.get("/v1/subjects/learner-1/consent", headers=bearer(key))
    assert_problem(response, 429, "rate_limited")
    assert checks.calls == []
    # The admin key costs one comparison, and keys are counted by their name, not the address.
    assert (await client.get("/v1/audit-log", headers=admin())).status_code == 200


async def test_valid_tokens_do_not_use_up_the_address(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    keys = [await make_key(app, f"reader-{n}", "consent:read") for n in range(BURST * 2)]
    tokens = [user_token(f"learner-{n}") for n in range(BURST * 2)]
    for key, token in zip(keys, tokens, strict=True):
        read = await client.get("/v1/subjects/learner-1/consent", headers=bearer(key))
        assert read.status_code == 200, read.text
        own = await client.get(
            f"/v1/subjects/{token_subject(token)}/consent", headers=bearer(token)
        )
        assert own.status_code == 200, own.text
    # The address's bucket is untouched: a visitor from it still gets its whole burst.
    for _ in range(BURST):
        assert (await client.get(f"/v1/subjects/{anon_id()}/consent")).status_code == 200


def token_subject(token: str) -> str:
    subject: str = jwt.decode(token, options={"verify_signature": False})["sub"]
    return subject


@dataclass
class Body:
    """A streamed 1 MiB body that records whether the service read any of it."""

    pulled: int = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        for _ in range(16):
            self.pulled += 1
            yield b" " * (MIB // 16)


# Every route that takes a body, with a path that would be accepted.
BODY_ROUTES = {
    "put-consent": ("PUT", "/v1/subjects/learner-1/consent"),
    "patch-consent": ("PATCH", "/v1/subjects/learner-1/consent"),
    "put-anonymous-consent": ("PUT", "/v1/subjects/anon:{anon}/consent"),
    "events": ("POST", "/v1/events"),
    "analytics-batch": ("POST", "/v1/batch"),
    "analytics-track": ("POST", "/v1/track"),
    "post-provider": ("POST", "/v1/providers"),
    "put-provider": ("PUT", "/v1/providers/some-provider"),
    "erasure": ("POST", "/v1/erasure-requests"),
}


async def _stream(
    client: httpx.AsyncClient, route: tuple[str, str], headers: dict[str, str]
) -> tuple[httpx.Response, Body]:
    method, path = route
    body = Body()
    path = path.replace("anon:{anon}", anon_id())
    response = await client.request(
        method, path, content=body.chunks(), headers={**JSON, **headers}
    )
    return response, body


@pytest.mark.parametrize("route", BODY_ROUTES.values(), ids=BODY_ROUTES.keys())
@pytest.mark.parametrize(
    "token", ["junk", "csk_unknown", "eyJhbGciOiJIUzI1NiJ9.e30.x"], ids=["junk", "key", "jwt"]
)
async def test_a_refused_token_never_gets_its_body_read(
    client: httpx.AsyncClient, route: tuple[str, str], token: str
) -> None:
    response, body = await _stream(client, route, bearer(token))
    assert_problem(response, 401, "unauthorized")
    assert body.pulled == 0


@pytest.mark.parametrize(
    "route",
    [route for name, route in BODY_ROUTES.items() if "anonymous" not in name],
    ids=[name for name in BODY_ROUTES if "anonymous" not in name],
)
async def test_without_a_token_no_body_is_read_and_the_refusal_is_counted(
    client: httpx.AsyncClient, route: tuple[str, str]
) -> None:
    for _ in range(BURST):
        response, body = await _stream(client, route, {})
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
        assert body.pulled == 0
    response, body = await _stream(client, route, {})
    assert_problem(response, 429, "rate_limited")
    assert body.pulled == 0


SCOPED_NAMES = (
    "put-consent",
    "events",
    "analytics-batch",
    "analytics-track",
    "post-provider",
    "put-provider",
)
# The routes that need a scope; erasure requests take any token and decide by the body.
SCOPED = {name: route for name, route in BODY_ROUTES.items() if name in SCOPED_NAMES}


@pytest.mark.parametrize("route", SCOPED.values(), ids=SCOPED.keys())
async def test_a_key_without_the_scope_never_gets_its_body_read(
    app: FastAPI, client: httpx.AsyncClient, route: tuple[str, str]
) -> None:
    key = await make_key(app, "reader", "consent:read")
    response, body = await _stream(client, route, bearer(key))
    assert_problem(response, 403, "forbidden")
    assert body.pulled == 0


async def test_a_valid_caller_still_has_its_body_read_and_counted_once(
    client: httpx.AsyncClient,
) -> None:
    subject = anon_id()
    for _ in range(BURST):
        written = await client.put(f"/v1/subjects/{subject}/consent", json=choice())
        assert written.status_code == 200, written.text
    # Three writes, three counts: the check before the body and the route's own are one.
    assert_problem(await client.get(f"/v1/subjects/{subject}/consent"), 429, "rate_limited")


def basic(user: str, password: str = "") -> dict[str, str]:
    """HTTP Basic credentials, as the analytics libraries send their write key."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# The longest key whose Basic credentials (`key:` in base64) stay within the cap.
BASIC_AT_CAP = MAX_TOKEN * 3 // 4 - 1


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_oversized_basic_credentials_are_refused_unparsed_and_counted(
    client: httpx.AsyncClient, checks: Checks, size: int
) -> None:
    for _ in range(BURST):
        response, body = await _stream(client, ("POST", "/v1/batch"), basic(_long("csk_", size)))
        assert str(MAX_TOKEN) in assert_problem(response, 401, "unauthorized")["detail"]
        assert body.pulled == 0
    assert checks.calls == []
    assert_problem(await client.get("/v1/audit-log"), 429, "rate_limited")


async def test_basic_credentials_at_the_cap_are_checked(
    client: httpx.AsyncClient, checks: Checks
) -> None:
    response = await client.post(
        "/v1/batch", json={"batch": []}, headers=basic(_long("csk_", BASIC_AT_CAP))
    )
    body = assert_problem(response, 401, "unauthorized")
    assert str(MAX_TOKEN) not in body["detail"]
    assert checks.calls == ["key lookup"]


@pytest.mark.parametrize(
    "headers",
    [
        basic("csk_guess"),
        basic("csk_guess", "a-password"),
        {"Authorization": "Basic not*base64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
    ],
    ids=["unknown-key", "password", "not-base64", "no-colon"],
)
async def test_refused_basic_credentials_are_counted_and_no_body_is_read(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for _ in range(BURST):
        response, body = await _stream(client, ("POST", "/v1/batch"), headers)
        assert assert_problem(response, 401, "unauthorized")["message"]
        assert body.pulled == 0
    response, body = await _stream(client, ("POST", "/v1/batch"), headers)
    assert assert_problem(response, 429, "rate_limited")["message"]
    assert body.pulled == 0


async def test_a_valid_basic_key_does_not_use_up_the_address(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    keys = [await make_key(app, f"tracker-{n}", "events:write") for n in range(BURST * 2)]
    for key in keys:
        response = await client.post("/v1/batch", json={"batch": []}, headers=basic(key))
        assert response.status_code == 200, response.text
    for _ in range(BURST):
        assert (await client.get(f"/v1/subjects/{anon_id()}/consent")).status_code == 200
