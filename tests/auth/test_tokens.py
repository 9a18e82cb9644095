"""User JWTs in depth: HS256 claims, audience and issuer, and RS256/ES256 through a real JWKS."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.auth.conftest import JWKSServer, SigningKey, b64url, serve, unsigned_token
from tests.conftest import make_settings
from tests.helpers import JWT_SECRET, bearer, user_token

pytestmark = pytest.mark.anyio

SUBJECT = "learner-1"
AUDIENCE = "consentry-api"
ISSUER = "https://id.example.edu/"


async def _read(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(f"/v1/subjects/{SUBJECT}/consent", headers=bearer(token))


def _assert_refused(response: httpx.Response, reason: str) -> None:
    """A 401 problem whose detail names `reason`."""
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    problem = response.json()
    assert problem["code"] == "unauthorized"
    assert reason in problem["detail"]


def _signed(key: SigningKey, kid: str | None = None, **claims: Any) -> str:
    """A token signed by `key`, naming `kid` (the key's own by default) in its header."""
    payload = {"sub": SUBJECT, "exp": int(time.time()) + 3600, **claims}
    return jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": kid or key.kid})


# HS256 with CONSENTRY_JWT_SECRET


async def test_hs256_valid_token(client: httpx.AsyncClient) -> None:
    response = await _read(client, user_token(SUBJECT))
    assert response.status_code == 200
    assert response.json()["subject_id"] == SUBJECT


# `exp` and `nbf` are seconds from when the test runs: taken at collection, a future `nbf` had
# passed by the time a slow suite reached the test.
@pytest.mark.parametrize(
    ("claims", "secret", "reason"),
    [
        ({"exp": -60}, JWT_SECRET, "expired"),
        ({"nbf": 600}, JWT_SECRET, "not yet valid"),
        ({}, "wrong-secret-0123456789abcdefghijklmnopqrstuvwxyz", "bad signature"),
        ({"sub": "bad id with spaces"}, JWT_SECRET, "not a valid subject id"),
    ],
    ids=["expired", "nbf-in-future", "wrong-secret", "invalid-sub"],
)
async def test_hs256_refused(
    client: httpx.AsyncClient, claims: dict[str, Any], secret: str, reason: str
) -> None:
    now = int(time.time())
    timed = {name: now + v if name in {"exp", "nbf"} else v for name, v in claims.items()}
    _assert_refused(await _read(client, user_token(SUBJECT, secret=secret, **timed)), reason)


@pytest.mark.parametrize("alg", [["HS256"], {"HS256": True}, None, 256])
async def test_non_string_alg_is_refused_not_a_crash(client: httpx.AsyncClient, alg: Any) -> None:
    token = unsigned_token({"alg": alg, "typ": "JWT"}, {"sub": SUBJECT})
    _assert_refused(await _read(client, token), "algorithm is not accepted")


async def test_garbage_is_malformed(client: httpx.AsyncClient) -> None:
    _assert_refused(await _read(client, "eyJ.not.a-token"), "malformed")


# CONSENTRY_JWT_AUDIENCE and CONSENTRY_JWT_ISSUER


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        ({"aud": AUDIENCE, "iss": ISSUER}, 200),
        ({"aud": ["other-api", AUDIENCE], "iss": ISSUER}, 200),
        ({"aud": "other-api", "iss": ISSUER}, 401),
        ({"iss": ISSUER}, 401),
        ({"aud": AUDIENCE, "iss": "https://evil.example/"}, 401),
        ({"aud": AUDIENCE}, 401),
    ],
    ids=["right", "aud-list", "wrong-aud", "no-aud", "wrong-iss", "no-iss"],
)
async def test_audience_and_issuer(database_url: str, claims: dict[str, Any], status: int) -> None:
    settings = make_settings(database_url, jwt_audience=AUDIENCE, jwt_issuer=ISSUER)
    async with serve(settings) as client:
        response = await _read(client, user_token(SUBJECT, **claims))
    assert response.status_code == status, response.text


# RS256 and ES256 through CONSENTRY_JWKS_URL


@pytest.fixture
def jwks_settings(database_url: str, jwks_server: JWKSServer) -> dict[str, Any]:
    """Settings overrides for JWKS only: no HS256 secret."""
    return {"database_url": database_url, "jwt_secret": None, "jwks_url": jwks_server.url}


@pytest.mark.parametrize("key_name", ["rsa_key", "ec_key"])
async def test_jwks_token_accepted(
    request: pytest.FixtureRequest,
    jwks_settings: dict[str, Any],
    jwks_server: JWKSServer,
    key_name: str,
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)
    jwks_server.publish(key)
    async with serve(make_settings(**jwks_settings)) as client:
        response = await _read(client, _signed(key))
    assert response.status_code == 200, response.text


async def test_jwks_fetched_once_and_cached(
    jwks_settings: dict[str, Any],
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    ec_key: SigningKey,
) -> None:
    jwks_server.publish(rsa_key, ec_key)
    async with serve(make_settings(**jwks_settings)) as client:
        for key in (rsa_key, ec_key, rsa_key, ec_key, rsa_key):
            assert (await _read(client, _signed(key))).status_code == 200
    assert jwks_server.requests == 1


async def test_key_rotation_refetches_at_once(
    jwks_settings: dict[str, Any],
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    rsa_key_2: SigningKey,
) -> None:
    jwks_server.publish(rsa_key)
    async with serve(make_settings(**jwks_settings)) as client:
        assert (await _read(client, _signed(rsa_key))).status_code == 200
        jwks_server.publish(rsa_key_2)
        assert (await _read(client, _signed(rsa_key_2))).status_code == 200
        assert jwks_server.requests == 2
        _assert_refused(await _read(client, _signed(rsa_key)), "unknown key")


async def test_unknown_kid_is_refused_and_refetched_only_once(
    jwks_settings: dict[str, Any], jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    jwks_server.publish(rsa_key)
    async with serve(make_settings(**jwks_settings)) as client:
        for attempt in range(4):
            _assert_refused(
                await _read(client, _signed(rsa_key, kid=f"made-up-{attempt}")), "unknown"
            )
    assert jwks_server.requests == 2  # the first fetch, then one refetch for an unknown kid


@pytest.mark.parametrize(("kid", "reason"), [("rsa-1", "bad signature"), ("rsa-2", "unknown key")])
async def test_key_not_in_jwks_is_refused(
    jwks_settings: dict[str, Any],
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    rsa_key_2: SigningKey,
    kid: str,
    reason: str,
) -> None:
    jwks_server.publish(rsa_key)
    async with serve(make_settings(**jwks_settings)) as client:
        _assert_refused(await _read(client, _signed(rsa_key_2, kid=kid)), reason)


@pytest.mark.parametrize(
    ("secret", "reason"),
    [(None, "algorithm is not accepted"), (JWT_SECRET, "bad signature")],
    ids=["jwks-only", "jwks-and-secret"],
)
async def test_hmac_with_the_public_key_is_refused(
    jwks_settings: dict[str, Any],
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    secret: str | None,
    reason: str,
) -> None:
    jwks_server.publish(rsa_key)
    pem = rsa_key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid}
    claims = {"sub": SUBJECT, "exp": int(time.time()) + 3600}
    signing_input = ".".join(b64url(json.dumps(part).encode()) for part in (header, claims))
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64url(signature)}"
    async with serve(make_settings(**{**jwks_settings, "jwt_secret": secret})) as client:
        _assert_refused(await _read(client, token), reason)


async def test_alg_none_is_refused_with_jwks(
    jwks_settings: dict[str, Any], jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    jwks_server.publish(rsa_key)
    claims = {"sub": SUBJECT, "exp": int(time.time()) + 3600}
    token = unsigned_token({"alg": "none", "typ": "JWT", "kid": rsa_key.kid}, claims)
    async with serve(make_settings(**jwks_settings)) as client:
        _assert_refused(await _read(client, token), "algorithm is not accepted")


async def test_header_alg_must_match_the_jwks_key(
    jwks_settings: dict[str, Any], jwks_server: JWKSServer, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    jwks_server.publish(rsa_key, ec_key)
    async with serve(make_settings(**jwks_settings)) as client:
        rs256_naming_ec_key = _signed(rsa_key, kid=ec_key.kid)
        _assert_refused(await _read(client, rs256_naming_ec_key), "does not match")
        es256_naming_rsa_key = _signed(ec_key, kid=rsa_key.kid)
        _assert_refused(await _read(client, es256_naming_rsa_key), "does not match")


@pytest.mark.parametrize(
    ("status", "document"),
    [(500, {"keys": []}), (200, b"<html>not json</html>"), (200, []), (200, {"keys": "none"})],
    ids=["http-500", "not-json", "json-list", "keys-not-a-list"],
)
async def test_jwks_broken_with_no_cached_keys_is_503_until_it_recovers(
    jwks_settings: dict[str, Any],
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    status: int,
    document: Any,
) -> None:
    jwks_server.status, jwks_server.document = status, document
    async with serve(make_settings(**jwks_settings)) as client:
        response = await _read(client, _signed(rsa_key))
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "service_unavailable"
        assert response.headers["retry-after"].isdigit()
        jwks_server.status = 200
        jwks_server.publish(rsa_key)
        assert (await _read(client, _signed(rsa_key))).status_code == 200


async def test_jwks_unreachable_with_no_cached_keys_is_503(
    database_url: str, rsa_key: SigningKey
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/jwks.json"
        settings = make_settings(database_url, jwt_secret=None, jwks_url=url)
        async with serve(settings) as client:
            response = await _read(client, _signed(rsa_key))
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "service_unavailable"


async def test_cached_keys_outlive_an_outage(
    jwks_settings: dict[str, Any], jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    jwks_server.publish(rsa_key)
    # A cache lifetime of 0 makes every request refetch, so the second one meets the outage.
    async with serve(make_settings(**jwks_settings, jwks_cache_seconds=0)) as client:
        assert (await _read(client, _signed(rsa_key))).status_code == 200
        jwks_server.status = 503
        assert (await _read(client, _signed(rsa_key))).status_code == 200
    assert jwks_server.requests == 2
