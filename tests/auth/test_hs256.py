"""The HS256 shortcut: every token gets the answer PyJWT alone gives, and the usual ones skip it."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentry.errors import Unauthorized
from consentry.hs256 import shortcut_for
from consentry.settings import Settings
from consentry.tokens import TokenVerifier, mint
from tests.auth.conftest import b64url
from tests.conftest import make_settings
from tests.helpers import JWT_SECRET

AUDIENCE = "consentry-api"
ISSUER = "https://id.example.edu/"
WRONG_SECRET = "another-secret-0123456789abcdefghijklmnopqrstuvwxyz"
# Offsets from now far from every boundary, so that no check flips between the two verifiers.
HOUR = 3600

_ABSENT = object()


def _settings(audience: str | None, issuer: str | None, leeway: int) -> Settings:
    return make_settings(
        "sqlite+aiosqlite://",
        jwt_audience=audience,
        jwt_issuer=issuer,
        jwt_leeway_seconds=leeway,
    )


def _outcome(
    verifier: TokenVerifier, token: str, loop: asyncio.AbstractEventLoop
) -> tuple[str, str]:
    """("ok", subject) or ("refused", the detail), as a request would meet it."""
    try:
        return "ok", loop.run_until_complete(verifier.subject(token))
    except Unauthorized as refused:
        return "refused", refused.detail


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for the many checks of this module."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _odd_values(now: int) -> dict[str, list[Any]]:
    """For each claim, values that PyJWT refuses or reads its own way; `_ABSENT` leaves it out."""
    odd = [_ABSENT, None, True, "123", 1.5, float(now + HOUR), 2**70, [now]]
    return {
        "sub": [_ABSENT, "bad id", "", 5, None, ["learner-1"]],
        "exp": [*odd, now - HOUR, now - 40],
        "iat": [*odd, now + HOUR, now + 40, now + 10],
        "nbf": [*odd, now + HOUR, now + 40, now + 10],
        "jti": [5, None, ["id-1"]],
        "aud": [_ABSENT, [AUDIENCE, "x"], ["x"], "", [], [AUDIENCE, 1], 5, "x", None],
        "iss": [_ABSENT, "https://other.example/", 5, None, [ISSUER]],
    }


_HEADERS = [
    {"alg": "HS256", "typ": "JWT"},
    {"typ": "JWT", "alg": "HS256"},
    {"alg": "HS256"},
    {"alg": "HS256", "typ": "JWT", "kid": "k1"},
    {"alg": "HS256", "kid": 5},
    {"alg": "HS256", "crit": ["b64"], "b64": False},
    {"alg": "HS512", "typ": "JWT"},
    {"alg": "none", "typ": "JWT"},
]


def _token(header: dict[str, Any], claims: dict[str, Any], how: str) -> str:
    """A token of `header` and `claims`, signed as `how` says (or its signature spoilt)."""
    separators = (", ", ": ") if how == "spaced" else (",", ":")

    def dumps(value: dict[str, Any]) -> bytes:
        return json.dumps(value, separators=separators).encode()

    signing = f"{b64url(dumps(header))}.{b64url(dumps(claims))}"
    secret = WRONG_SECRET if how == "wrong-secret" else JWT_SECRET
    signature = b64url(hmac.digest(secret.encode(), signing.encode(), "sha256"))
    if how == "padded":
        signature += "="
    elif how == "flipped":
        signature = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    elif how == "cut":
        signature = ""
    return f"{signing}.{signature}"


_CONFIGS = [
    (audience, issuer, leeway)
    for audience in (None, AUDIENCE)
    for issuer in (None, ISSUER)
    for leeway in (0, 30)
]
_SIGNINGS = ["right", "spaced", "wrong-secret", "padded", "flipped", "cut"]


def _valid_claims(now: int, audience: str | None, issuer: str | None) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": "learner-1", "exp": now + HOUR, "iat": now, "jti": "id-1"}
    claims |= {"aud": audience} if audience else {}
    return claims | ({"iss": issuer} if issuer else {})


def _changed(claims: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    changed = {key: kept for key, kept in claims.items() if key != name}
    return changed if value is _ABSENT else changed | {name: value}


@pytest.mark.parametrize(("audience", "issuer", "leeway"), _CONFIGS)
def test_every_token_one_change_away_gets_pyjwts_answer(
    audience: str | None, issuer: str | None, leeway: int, loop: asyncio.AbstractEventLoop
) -> None:
    """Every claim changed to every odd value, under every header and signing, one at a time."""
    settings_ = _settings(audience, issuer, leeway)
    now = int(time.time())
    valid = _valid_claims(now, audience, issuer)
    changes = [(name, value) for name, values in _odd_values(now).items() for value in values]
    for name, value in [("sub", "learner-1"), *changes]:
        claims = _changed(valid, name, value)
        for header in _HEADERS:
            for signing in _SIGNINGS:
                token = _token(header, claims, signing)
                expected = _outcome(TokenVerifier(settings_, shortcut=False), token, loop)
                got = _outcome(TokenVerifier(settings_), token, loop)
                assert got == expected, (name, value, header, signing)


@st.composite
def _two_changes(draw: st.DrawFn) -> tuple[Settings, str]:
    """A token valid under the drawn settings but for two claims changed."""
    audience, issuer, leeway = draw(st.sampled_from(_CONFIGS))
    now = int(time.time())
    claims = _valid_claims(now, audience, issuer)
    odd = _odd_values(now)
    for name in draw(st.lists(st.sampled_from(sorted(odd)), min_size=2, max_size=2, unique=True)):
        claims = _changed(claims, name, draw(st.sampled_from(odd[name])))
    signing = draw(st.sampled_from(["right", "wrong-secret"]))
    return _settings(audience, issuer, leeway), _token(_HEADERS[0], claims, signing)


@settings(max_examples=300, deadline=None)
@given(case=_two_changes())
def test_every_token_two_changes_away_gets_pyjwts_answer(
    case: tuple[Settings, str], loop: asyncio.AbstractEventLoop
) -> None:
    settings_, token = case
    expected = _outcome(TokenVerifier(settings_, shortcut=False), token, loop)
    assert _outcome(TokenVerifier(settings_), token, loop) == expected


@pytest.mark.parametrize(
    "payload",
    [
        "!!!!",
        "e30",
        b64url(b"[1]"),
        b64url(b"\xff\xfe"),
        b64url(b"NaN"),
        b64url(b'{"sub":1e400}'),
        "é",
        "a.b",
        "",
    ],
)
def test_odd_payloads_signed_with_the_secret_get_pyjwts_answer(
    payload: str, loop: asyncio.AbstractEventLoop
) -> None:
    settings_ = _settings(None, None, 0)
    header = b64url(json.dumps(_HEADERS[0], separators=(",", ":")).encode())
    signing = f"{header}.{payload}"
    signature = b64url(hmac.digest(JWT_SECRET.encode(), signing.encode(), "sha256"))
    token = f"{signing}.{signature}"
    expected = _outcome(TokenVerifier(settings_, shortcut=False), token, loop)
    assert expected[0] == "refused"
    assert _outcome(TokenVerifier(settings_), token, loop) == expected


@pytest.mark.parametrize(
    ("audience", "issuer", "leeway"), [(None, None, 0), (AUDIENCE, ISSUER, 30)]
)
def test_the_usual_tokens_take_the_shortcut(
    audience: str | None, issuer: str | None, leeway: int
) -> None:
    shortcut = shortcut_for(JWT_SECRET, audience=audience, issuer=issuer, leeway=leeway)
    assert shortcut is not None
    minted = mint(JWT_SECRET, "learner-1", lifetime_seconds=HOUR, audience=audience, issuer=issuer)
    now = int(time.time())
    claims = {"sub": "learner-1", "exp": now + HOUR, "iat": now, "nbf": now, "jti": "j"}
    claims |= {"aud": [audience, "other"]} if audience else {}
    claims |= {"iss": issuer} if issuer else {}
    for header in _HEADERS[:3]:
        token = _token(header, claims, "right")
        assert shortcut.check(token) == ("learner-1", now + HOUR)
    assert shortcut.check(minted) is not None


def test_a_secret_pyjwt_refuses_as_an_hmac_key_has_no_shortcut() -> None:
    # A public key's PEM form: PyJWT refuses it as an HMAC secret, and so every token under it.
    pem = (
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----"
    )
    assert shortcut_for(pem, audience=None, issuer=None, leeway=0) is None


def test_a_refused_token_is_worded_by_pyjwt(loop: asyncio.AbstractEventLoop) -> None:
    verifier = TokenVerifier(_settings(None, None, 0))
    expired = mint(JWT_SECRET, "learner-1", lifetime_seconds=-60)
    assert _outcome(verifier, expired, loop) == (
        "refused",
        "The bearer token is not valid: expired.",
    )
    forged = mint(WRONG_SECRET, "learner-1", lifetime_seconds=HOUR)
    assert _outcome(verifier, forged, loop) == (
        "refused",
        "The bearer token is not valid: bad signature.",
    )
    encoded = base64.urlsafe_b64encode(b"not json").rstrip(b"=").decode()
    assert _outcome(verifier, f"{forged.split('.')[0]}.{encoded}.x", loop)[0] == "refused"
