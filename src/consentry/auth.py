"""Who is calling: API keys, the admin key, user JWTs and anonymous visitors, as a Caller."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer

from consentry.db import database_of
from consentry.errors import Forbidden, Unauthorized, ValidationFailed
from consentry.keys import repository as keys
from consentry.keys.format import KEY_PREFIX, SCOPES, hash_key
from consentry.ratelimit import limit, limit_address
from consentry.subjects import is_anonymous, is_subject_id
from consentry.tokens import TokenVerifier

ADMIN_SCOPE = "privacy:admin"


class _DocumentedBearer(HTTPBearer):
    """The bearer scheme in the OpenAPI document only: the header is parsed below, strictly."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


_bearer_doc = _DocumentedBearer(
    scheme_name="HTTPBearer",
    auto_error=False,
    description="An API key (`csk_...`) or a user JWT.",
)


@dataclass(frozen=True)
class Caller:
    """An authenticated caller and what it may do."""

    kind: Literal["key", "user", "anonymous"]
    name: str
    scopes: frozenset[str] = frozenset()
    subject_id: str | None = None

    def has(self, scope: str) -> bool:
        """Whether this caller holds `scope`; `privacy:admin` implies every other."""
        return ADMIN_SCOPE in self.scopes or scope in self.scopes

    @property
    def is_admin(self) -> bool:
        """Whether this caller is the privacy team."""
        return ADMIN_SCOPE in self.scopes

    def acts_for(self, subject_id: str) -> bool:
        """Whether this caller is the subject itself (its own JWT, or the anonymous visitor)."""
        return self.kind != "key" and self.subject_id == subject_id


def _bearer_token(request: Request) -> str | None:
    headers = request.headers.getlist("authorization")
    if not headers:
        return None
    if len(headers) > 1:
        raise Unauthorized("Send one Authorization header.")
    header = headers[0]
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthorized("Use 'Authorization: Bearer <token>'.")
    return token


async def _authenticate(request: Request) -> Caller | None:
    """The caller a token proves, counted against its rate limit; None without a token.

    A refused token counts against the client's address instead, so guessing is limited too.
    """
    try:
        caller = await _verify(request)
    except Unauthorized:
        limit_address(request)
        raise
    if caller is not None:
        # Keys by name (the admin key as "admin"), user tokens by subject: one bucket each.
        limit(request, "user" if caller.kind == "user" else "key", caller.subject_id or caller.name)
    return caller


async def _verify(request: Request) -> Caller | None:
    token = _bearer_token(request)
    if token is None:
        return None
    state = request.app.state
    admin_key: str | None = state.settings.admin_key
    if admin_key is not None and hmac.compare_digest(token.encode(), admin_key.encode()):
        return Caller(kind="key", name="admin", scopes=frozenset(SCOPES))
    if token.startswith(KEY_PREFIX):
        async with database_of(request).reader() as reader:
            found = await keys.find_active(reader, hash_key(token))
        if found is None:
            raise Unauthorized("Unknown or revoked API key.")
        return Caller(kind="key", name=found.name, scopes=found.scopes)
    verifier: TokenVerifier = state.token_verifier
    subject = await verifier.subject(token)
    return Caller(kind="user", name="subject", subject_id=subject)


async def optional_caller(
    request: Request, _doc: Annotated[object, Security(_bearer_doc)] = None
) -> Caller | None:
    """The caller if a token was sent; a malformed or invalid token is always refused."""
    return await _authenticate(request)


def _no_token(request: Request) -> Unauthorized:
    """The refusal of a request without a token, counted against the client's address."""
    limit_address(request)
    return Unauthorized(token_sent=False)


async def token_caller(
    request: Request, caller: Annotated[Caller | None, Depends(optional_caller)]
) -> Caller:
    """Any caller that sent a valid token; what it may do is the route's to decide."""
    if caller is None:
        raise _no_token(request)
    return caller


def require_scope(scope: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency that admits only API keys holding `scope`."""

    async def dependency(
        request: Request, caller: Annotated[Caller | None, Depends(optional_caller)]
    ) -> Caller:
        if caller is None:
            raise _no_token(request)
        if not caller.has(scope):
            raise Forbidden(f"This needs the {scope} scope.")
        return caller

    return dependency


async def subject_caller(request: Request, scope: str, *, anonymous: bool) -> Caller:
    """The caller of a `/v1/subjects/{subject_id}/...` route: a key with `scope`, or the subject.

    With `anonymous`, an `anon:<uuid4>` subject may be reached without any token: the random id
    is the capability. A token, once sent, decides alone, so a bad one is never ignored.
    """
    subject_id: str = request.path_params["subject_id"]
    if not is_subject_id(subject_id):
        raise ValidationFailed(
            "The subject id is not valid.",
            errors=[
                {
                    "loc": ["path", "subject_id"],
                    "msg": "invalid subject id",
                    "type": "string_pattern_mismatch",
                }
            ],
        )
    caller = await _authenticate(request)
    if caller is None:
        if anonymous and is_anonymous(subject_id):
            # Visitors are counted by address: a fresh random id must not buy a fresh bucket.
            limit_address(request)
            return Caller(kind="anonymous", name="subject", subject_id=subject_id)
        raise _no_token(request)
    if caller.has(scope) or caller.acts_for(subject_id):
        return caller
    raise Forbidden("This token may not reach that subject.")


def subject_access(scope: str, *, anonymous: bool) -> Callable[..., Awaitable[Caller]]:
    """`subject_caller` as a dependency."""

    async def dependency(
        request: Request, _doc: Annotated[object, Security(_bearer_doc)] = None
    ) -> Caller:
        return await subject_caller(request, scope, anonymous=anonymous)

    return dependency
