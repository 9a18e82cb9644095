"""End-user JWTs: HS256 with a shared secret, or RS256/ES256 with keys from a cached JWKS."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import jwt

from consentry.errors import ServiceUnavailable, Unauthorized, ValidationFailed
from consentry.hs256 import HS256Shortcut, shortcut_for
from consentry.settings import Settings
from consentry.subjects import is_subject_id

log = logging.getLogger(__name__)

_ASYMMETRIC = frozenset({"RS256", "ES256"})
# An unknown `kid` may mean the identity provider rotated keys: refetch at once, but at most this
# often, so that made-up kids cannot turn every request into a fetch.
_MIN_REFETCH_SECONDS = 30.0
_FETCH_ERRORS = (httpx.HTTPError, httpx.InvalidURL, ValueError, jwt.PyJWTError)
# A verified token is remembered, so the frontend's read on every page load does not check the
# same signature again: at most this many tokens, each for at most this long and never past its
# `exp`. Every fetch of the JWKS forgets them all, so a key rotated out stops admitting at once.
_VERIFIED_TOKENS = 10_000
_VERIFIED_SECONDS = 60.0


class JWKSCache:
    """Signing keys from `CONSENTRY_JWKS_URL`, refreshed when stale or when a new `kid` appears."""

    def __init__(self, url: str, ttl_seconds: int) -> None:
        self._url = url
        self._ttl = ttl_seconds
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._refetched_for_kid_at = float("-inf")
        self._attempts = 0
        # Counts successful fetches: what was verified under an older key set is checked again.
        self.generation = 0
        self._failed = False
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str | None, alg: str) -> jwt.PyJWK:
        """The key that must have signed a token with this header."""
        now = time.monotonic()
        if now - self._fetched_at > self._ttl:
            await self._refresh(self._attempts)
        elif kid not in self._keys and now - self._refetched_for_kid_at > _MIN_REFETCH_SECONDS:
            self._refetched_for_kid_at = now
            await self._refresh(self._attempts)
        if self._failed and not self._keys:
            raise ServiceUnavailable("The identity provider's keys are unavailable.")
        key = self._keys.get(kid)
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))
        if key is None:
            raise Unauthorized("The token is signed with an unknown key.")
        if key.algorithm_name != alg:
            raise Unauthorized("The token's algorithm does not match its key.")
        return key

    async def _refresh(self, attempts_seen: int) -> None:
        async with self._lock:
            if self._attempts != attempts_seen:
                return  # another request fetched while this one waited: share its outcome
            self._attempts += 1
            try:
                async with httpx.AsyncClient(timeout=5.0) as client:
                    response = await client.get(self._url)
                    response.raise_for_status()
                    document = response.json()
                self._keys = _parse_jwks(document)
                self.generation += 1
            except _FETCH_ERRORS as exc:
                log.warning("JWKS refresh failed: %s", type(exc).__name__)
                self._failed = True
                if not self._keys:
                    return  # nothing to fall back on: the next request tries again
            else:
                self._failed = False
            self._fetched_at = time.monotonic()


def _parse_jwks(document: Any) -> dict[str | None, jwt.PyJWK]:
    if not isinstance(document, dict):
        raise ValueError("a JWKS document is a JSON object")
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in jwt.PyJWKSet.from_dict(document).keys:
        if entry.public_key_use in (None, "sig") and entry.algorithm_name in _ASYMMETRIC:
            keys[entry.key_id] = entry
    return keys


class TokenVerifier:
    """Checks a user JWT and returns its subject."""

    def __init__(self, settings: Settings, *, shortcut: bool = True) -> None:
        self._secret = settings.jwt_secret
        self._jwks = (
            JWKSCache(settings.jwks_url, settings.jwks_cache_seconds) if settings.jwks_url else None
        )
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._leeway = settings.jwt_leeway_seconds
        self._shortcut: HS256Shortcut | None = None
        # Without it (`shortcut=False`) PyJWT checks every token: the reference the tests hold
        # the shortcut to.
        if self._secret is not None and shortcut:
            self._shortcut = shortcut_for(
                self._secret, audience=self._audience, issuer=self._issuer, leeway=self._leeway
            )
        self._verified: dict[str, tuple[str, float, int]] = {}
        self._required = ["exp", "sub"]
        if self._audience:
            self._required.append("aud")
        if self._issuer:
            self._required.append("iss")

    def known(self, token: str) -> str | None:
        """The `sub` of a token verified moments ago and still valid, without checking it again."""
        remembered = self._verified.get(token)
        if remembered is None:
            return None
        subject, until, generation = remembered
        if time.time() < until and generation == self._generation():
            return subject
        del self._verified[token]
        return None

    async def subject(self, token: str) -> str:
        """The `sub` of a valid token; Unauthorized for anything else."""
        known = self.known(token)
        if known is not None:
            return known
        # The generation before verifying: a fetch while this token waited makes it stale.
        generation = self._generation()
        subject, expires = await self._verify(token)
        if len(self._verified) >= _VERIFIED_TOKENS:
            del self._verified[next(iter(self._verified))]  # the oldest: dicts keep order
        until = min(expires, time.time() + _VERIFIED_SECONDS)
        self._verified[token] = (subject, until, generation)
        return subject

    def _generation(self) -> int:
        return self._jwks.generation if self._jwks is not None else 0

    async def _verify(self, token: str) -> tuple[str, float]:
        """The subject of a token whose signature and claims hold, and when it expires."""
        checked = self._shortcut.check(token) if self._shortcut is not None else None
        if checked is not None:
            subject, expires = checked
            return self._valid_subject(subject), float(expires) + self._leeway
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("The bearer token is malformed.") from None
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise Unauthorized("The token's signing algorithm is not accepted.")
        key: Any
        # The algorithm picks the key source, and each source admits only its own algorithms,
        # so `none` and HMAC-with-a-public-key confusion have nothing to verify against.
        if alg == "HS256" and self._secret is not None:
            key = self._secret
        elif alg in _ASYMMETRIC and self._jwks is not None:
            kid = header.get("kid")
            if kid is not None and not isinstance(kid, str):
                raise Unauthorized("The token's key id is malformed.")
            key = await self._jwks.key_for(kid, alg)
        else:
            raise Unauthorized("The token's signing algorithm is not accepted.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": self._required, "verify_aud": self._audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"The bearer token is not valid: {_reason(exc)}.") from None
        # `exp` is required and was checked, so it is a number here.
        return self._valid_subject(claims.get("sub")), float(claims["exp"]) + self._leeway

    @staticmethod
    def _valid_subject(subject: object) -> str:
        if not isinstance(subject, str) or not is_subject_id(subject):
            raise Unauthorized("The token's subject is not a valid subject id.")
        return subject


def _reason(exc: jwt.PyJWTError) -> str:
    reasons: dict[type[jwt.PyJWTError], str] = {
        jwt.ExpiredSignatureError: "expired",
        jwt.ImmatureSignatureError: "not yet valid",
        jwt.InvalidAudienceError: "wrong audience",
        jwt.InvalidIssuerError: "wrong issuer",
        jwt.MissingRequiredClaimError: "a required claim is missing",
        jwt.InvalidSignatureError: "bad signature",
    }
    for kind, reason in reasons.items():
        if isinstance(exc, kind):
            return reason
    return "malformed"


def mint(
    secret: str,
    subject: str,
    *,
    lifetime_seconds: int,
    audience: str | None = None,
    issuer: str | None = None,
    name: str | None = None,
) -> str:
    """An HS256 learner token as the platform's identity provider would sign it, for trying out."""
    if not is_subject_id(subject):
        raise ValidationFailed(f"{subject!r} is not a valid subject id.")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + lifetime_seconds}
    # The claims the service is configured to require, so the token passes its own checks.
    optional = {"aud": audience, "iss": issuer, "name": name}
    claims.update({claim: value for claim, value in optional.items() if value is not None})
    return jwt.encode(claims, secret, algorithm="HS256")
