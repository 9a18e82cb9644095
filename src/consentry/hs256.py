"""HS256 tokens in their usual form, accepted without PyJWT's general machinery.

A learner's write arrives with a token the service has not seen (its read cache forgets them
within a minute), and PyJWT spent about a tenth of the write's time on one: parsing the header
twice, and vetting the shared secret as a possible public key on every call. Here a token of
the usual shape is checked in a few microseconds; anything else, every token refused included,
is left to PyJWT, which decides it and words the refusal. So this check only ever says yes to
what PyJWT would accept, and says nothing otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import orjson
from jwt.algorithms import HMACAlgorithm
from jwt.exceptions import InvalidKeyError

# The headers a token may carry to be checked here, in the byte forms identity providers emit
# (PyJWT's own first). A header that names a key id, critical extensions or anything else goes
# to PyJWT.
_HEADERS = frozenset(
    base64.urlsafe_b64encode(header).rstrip(b"=").decode()
    for header in (
        b'{"alg":"HS256","typ":"JWT"}',
        b'{"typ":"JWT","alg":"HS256"}',
        b'{"alg":"HS256"}',
    )
)
_ABSENT = object()


def shortcut_for(
    secret: str, *, audience: str | None, issuer: str | None, leeway: float
) -> HS256Shortcut | None:
    """The shortcut for `secret`; None when PyJWT refuses it as an HMAC key (it looks like a
    public key), and so would refuse every token."""
    try:
        HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(secret)
    except InvalidKeyError:
        return None
    return HS256Shortcut(secret, audience=audience, issuer=issuer, leeway=leeway)


class HS256Shortcut:
    """The subject and expiry of an HS256 token whose every check holds, or None."""

    def __init__(
        self, secret: str, *, audience: str | None, issuer: str | None, leeway: float
    ) -> None:
        self._key = secret.encode()
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway

    def check(self, token: str) -> tuple[str, int] | None:
        """(`sub`, `exp`) when the signature and the claims hold as PyJWT checks them; None when
        the token is refused or not of the usual form (PyJWT then decides)."""
        header, _, rest = token.partition(".")
        if header not in _HEADERS or not rest.isascii():
            return None
        payload, _, signature = rest.partition(".")
        signed = f"{header}.{payload}".encode()
        expected = base64.urlsafe_b64encode(hmac.digest(self._key, signed, hashlib.sha256))
        if not hmac.compare_digest(expected.rstrip(b"="), signature.encode()):
            return None
        try:
            claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:  # not base64url, not ASCII, not JSON: PyJWT words the refusal
            return None
        if not isinstance(claims, dict) or not self._claims_hold(claims):
            return None
        return claims["sub"], claims["exp"]

    def _claims_hold(self, claims: dict[str, Any]) -> bool:
        """PyJWT's claim checks under the verifier's options, in their plainest case only."""
        now = time.time()
        subject, expires = claims.get("sub"), claims.get("exp")
        # `type(...) is int` keeps booleans and floats, which PyJWT reads its own way, out.
        if type(subject) is not str or type(expires) is not int or expires <= now - self._leeway:
            return False
        for claim in ("iat", "nbf"):
            value = claims.get(claim, _ABSENT)
            if value is not _ABSENT and (type(value) is not int or value > now + self._leeway):
                return False
        jti = claims.get("jti", _ABSENT)
        if jti is not _ABSENT and type(jti) is not str:
            return False
        if self._issuer is not None and claims.get("iss") != self._issuer:
            return False
        if self._audience is not None:
            audience = claims.get("aud")
            named = [audience] if type(audience) is str else audience
            if type(named) is not list or any(type(name) is not str for name in named):
                return False
            return self._audience in named
        return True
