"""Who may reach which route: every kind of caller on every subject route, and public routes."""

from __future__ import annotations

import secrets
import time

import httpx
import jwt
import pytest
from fastapi import FastAPI

from tests.auth.conftest import make_revoked_key, unsigned_token
from tests.helpers import (
    ADMIN_KEY,
    JWT_SECRET,
    admin,
    anon_id,
    bearer,
    choice,
    make_key,
    user_token,
)

pytestmark = pytest.mark.anyio

NAMED = "learner-1"
OTHER_SECRET = "another-jwt-secret-0123456789abcdefghijklmnopqrstuvwxyz"
MALFORMED = {
    "'Bearer' alone": "Bearer",
    "'Basic abc'": "Basic abc",
    "'Bearer a b'": "Bearer a b",
    "'bearer  '": "bearer  ",
}
KEY_SCOPES = ("consent:read", "consent:write", "events:write", "privacy:admin")

ALLOWED = (200, 200, 200, 200)
DENIED = (403, 403, 403, 403)
REFUSED = (401, 401, 401, 401)
# "own JWT" has the reached subject as `sub`; "other subject's JWT" has another one.
# caller                       named subject   anon:<uuid4> subject
#                              read   write    read   write
EXPECTED: dict[str, tuple[int, int, int, int]] = {
    "no token":                (401,  401,     200,   200),
    **dict.fromkeys(MALFORMED, REFUSED),
    "garbage token":           REFUSED,
    "unknown csk_ key":        REFUSED,
    "revoked key":             REFUSED,
    "consent:read key":        (200,  403,     200,   403),
    "consent:write key":       (403,  200,     403,   200),
    "events:write key":        DENIED,
    "privacy:admin key":       ALLOWED,
    "CONSENTRY_ADMIN_KEY":     ALLOWED,
    "own JWT":                 ALLOWED,
    "other subject's JWT":     DENIED,
    "expired JWT":             REFUSED,
    "JWT of another secret":   REFUSED,
    "JWT with alg none":       REFUSED,
    "JWT without exp":         REFUSED,
    "JWT without sub":         REFUSED,
}  # fmt: skip
ROUTES = [
    ("GET", "/consent", "read"),
    ("PUT", "/consent", "write"),
    ("PATCH", "/consent", "write"),
    ("GET", "/consent/history", "read"),
]


async def _headers(caller: str, app: FastAPI, subject: str) -> dict[str, str]:
    """The Authorization header, if any, that `caller` sends to reach `subject`."""
    now = int(time.time())
    if caller in MALFORMED:
        return {"Authorization": MALFORMED[caller]}
    if caller.endswith(" key") and caller.removesuffix(" key") in KEY_SCOPES:
        scope = caller.removesuffix(" key")
        return bearer(await make_key(app, scope.replace(":", "-"), scope))
    match caller:
        case "no token":
            return {}
        case "garbage token":
            return bearer("not-a-jwt")
        case "unknown csk_ key":
            return bearer("csk_" + secrets.token_urlsafe(32))
        case "revoked key":
            return bearer(await make_revoked_key(app, "revoked", "privacy:admin"))
        case "CONSENTRY_ADMIN_KEY":
            return bearer(ADMIN_KEY)
        case "own JWT":
            return bearer(user_token(subject))
        case "other subject's JWT":
            return bearer(user_token("learner-2"))
        case "expired JWT":
            return bearer(user_token(subject, iat=now - 7200, exp=now - 60))
        case "JWT of another secret":
            return bearer(user_token(subject, secret=OTHER_SECRET))
        case "JWT with alg none":
            claims = {"sub": subject, "exp": now + 3600}
            return bearer(unsigned_token({"alg": "none", "typ": "JWT"}, claims))
        case "JWT without exp":
            return bearer(jwt.encode({"sub": subject}, JWT_SECRET, algorithm="HS256"))
        case "JWT without sub":
            return bearer(jwt.encode({"exp": now + 3600}, JWT_SECRET, algorithm="HS256"))
    raise AssertionError(f"no such caller: {caller}")


@pytest.mark.parametrize("target", ["named", "anon"])
@pytest.mark.parametrize(
    ("method", "path", "access"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES]
)
@pytest.mark.parametrize("caller", list(EXPECTED))
async def test_subject_route_access(
    app: FastAPI,
    client: httpx.AsyncClient,
    caller: str,
    method: str,
    path: str,
    access: str,
    target: str,
) -> None:
    subject = NAMED if target == "named" else anon_id()
    expected = EXPECTED[caller][(target == "anon") * 2 + (access == "write")]
    response = await client.request(
        method,
        f"/v1/subjects/{subject}{path}",
        headers=await _headers(caller, app, subject),
        json=choice() if access == "write" else None,
    )

    assert response.status_code == expected, response.text
    if expected == 200 and path.endswith("history"):
        assert response.json()["items"] == []
    elif expected == 200:
        assert response.json()["subject_id"] == subject
    else:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == {401: "unauthorized", 403: "forbidden"}[expected]
    if expected == 401:
        challenge = "Bearer" if caller == "no token" else 'Bearer error="invalid_token"'
        assert response.headers["www-authenticate"] == challenge
    if access == "write":
        history = await client.get(f"/v1/subjects/{subject}/consent/history", headers=admin())
        assert len(history.json()["items"]) == (1 if expected == 200 else 0)


@pytest.mark.parametrize("path", ["/v1/policy", "/healthz", "/readyz", "/openapi.json"])
async def test_public_routes_need_no_token(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    assert "www-authenticate" not in response.headers
