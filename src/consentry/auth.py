"""Who is calling: API keys, the admin key, user JWTs and anonymous visitors, as a Caller."""

from __future__ import annotations

import binascii
import hmac
from base64 import b64decode
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Request, Security
from fastapi.security import HTTPBasic, HTTPBearer

from consentry.apidoc import Access, declare_access
from consentry.db import database_of
from consentry.errors import Forbidden, Unauthorized, ValidationFailed
from consentry.keys import repository as keys
from consentry.keys.cache import KeyCache
from consentry.keys.format import KEY_PREFIX, SCOPES, hash_key
from consentry.keys.repository import ActiveKey
from consentry.ratelimit import limit, limit_address, refund_address
from consentry.subjects import is_anonymous, is_subject_id
from consentry.tokens import TokenVerifier

ADMIN_SCOPE = "privacy:admin"
# The single-purpose tokens a system confirms an erasure with; only that route takes them.
CONFIRM_TOKEN_PREFIX = "cct_"  # noqa: S105  # a prefix, not a token
_CONFIRMING = "consentry.confirming"
# A confirm token is the prefix and at most this much more (the service issues 32 characters).
_MAX_CONFIRM_TOKEN = 128
# Longer tokens are refused before they are read: a JWT from an identity provider is about 1 KiB
# (a few with many claims reach 4 KiB), an API key 47 bytes.
MAX_TOKEN_BYTES = 8 * 1024
# Spaces around the token that a header may carry, beside the scheme.
_MAX_PADDING = 64
# Where a request keeps what was decided about its caller, so that it is decided once.
_CALLER = "consentry.caller"
_ADMITTED = "consentry.admitted"
_GATES: set[object] = set()


class _DocumentedBearer(HTTPBearer):
    """The bearer scheme in the OpenAPI document only: the header is parsed below, strictly."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


_bearer_doc = _DocumentedBearer(
    scheme_name="HTTPBearer",
    auto_error=False,
    description="An API key (`csk_...`) or a user JWT.",
)


class _DocumentedBasic(HTTPBasic):
    """The basic scheme in the OpenAPI document only, for the routes that take it (see below)."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


_basic_doc = _DocumentedBasic(
    scheme_name="HTTPBasic",
    auto_error=False,
    description="An API key as the user name and an empty password: the analytics libraries' "
    "write key. Taken only by the routes of the Segment / RudderStack tracking API.",
)


@dataclass(frozen=True)
class Caller:
    """An authenticated caller and what it may do."""

    kind: Literal["key", "user", "anonymous"]
    name: str
    scopes: frozenset[str] = frozenset()
    subject_id: str | None = None
    # A key's id (`admin` for the admin key): it names the key where its name could be reused.
    key_id: str | None = None

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


def _sent_token(request: Request, *, basic: bool = False) -> str | None:
    """The token of the one `Authorization` header, refused unread past MAX_TOKEN_BYTES.

    `Bearer <token>`, or with `basic`, also `Basic` with the token as the user name and an empty
    password (how the analytics libraries send their write key).
    """
    headers: list[tuple[bytes, bytes]] = request.scope["headers"]
    values = [value for name, value in headers if name == b"authorization"]
    if not values:
        return None
    if len(values) > 1:
        raise Unauthorized("Send one Authorization header.")
    raw = values[0]
    # Measured before anything else reads the header: decoding, splitting, hashing or parsing
    # megabytes of it would hold the event loop, and every other request with it. Basic
    # credentials are measured encoded, so they are held to less.
    if len(raw) > MAX_TOKEN_BYTES + _MAX_PADDING:
        raise _too_long()
    scheme, _, token = raw.decode("latin-1").partition(" ")
    token = token.strip()
    if len(token) > MAX_TOKEN_BYTES:
        raise _too_long()
    if basic and scheme.lower() == "basic":
        token = _basic_user(token)
    elif scheme.lower() != "bearer":
        raise Unauthorized(_USAGE_BASIC if basic else _USAGE)
    if not token or " " in token:
        raise Unauthorized(_USAGE_BASIC if basic else _USAGE)
    return token


_USAGE = "Use 'Authorization: Bearer <token>'."
_USAGE_BASIC = (
    "Use 'Authorization: Bearer <key>', or Basic with the key as the user name and an empty "
    "password."
)


def _basic_user(credentials: str) -> str:
    """The user name of Basic credentials whose password is empty: the key."""
    try:
        decoded = b64decode(credentials, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized(_USAGE_BASIC) from None
    user, colon, password = decoded.partition(":")
    if not colon or password:
        raise Unauthorized(_USAGE_BASIC)
    return user


def sent_token_is(request: Request, value: object) -> bool:
    """Whether `value` is the token this request's `Authorization` header carries.

    For a request its route's gate admitted: the header was found well-formed already.
    """
    token = _sent_token(request, basic=True)
    if token is None or not isinstance(value, str):
        return False
    return hmac.compare_digest(value.encode(), token.encode())


def _too_long() -> Unauthorized:
    return Unauthorized(f"The bearer token may hold at most {MAX_TOKEN_BYTES} bytes.")


async def _authenticate(request: Request, *, basic: bool = False) -> Caller | None:
    """The caller a token proves, counted against its rate limit; None without a token.

    Once per request, whoever asks first. A refused token counts against the client's address,
    so guessing is limited too, and it is counted before the token is checked: an address past
    its limit gets 429 without costing a key lookup or a signature check.
    """
    if _CALLER in request.scope:
        known: Caller | None = request.scope[_CALLER]
        return known
    try:
        token = _sent_token(request, basic=basic)
    except Unauthorized:
        limit_address(request)
        raise
    caller = None if token is None else await _check(request, token)
    if caller is not None:
        # Keys by name (the admin key as "admin"), user tokens by subject: one bucket each.
        limit(request, "user" if caller.kind == "user" else "key", caller.subject_id or caller.name)
    request.scope[_CALLER] = caller
    return caller


async def _check(request: Request, token: str) -> Caller:
    """The caller `token` proves; the address is charged while it is checked, and refunded."""
    caller = _known(request, token)
    if caller is not None:
        return caller
    limit_address(request)
    try:
        caller = await _verify(request, token)
    except BaseException as error:
        if not isinstance(error, Unauthorized):
            refund_address(request)  # an outage or a cancelled request refused nothing
        raise
    refund_address(request)
    return caller


def _known(request: Request, token: str) -> Caller | None:
    """The caller of a token that costs nothing to check: the admin key, a key kept in memory,
    or a JWT seen just now."""
    state = request.app.state
    admin_key: str | None = state.settings.admin_key
    if admin_key is not None and hmac.compare_digest(token.encode(), admin_key.encode()):
        return Caller(kind="key", name="admin", scopes=frozenset(SCOPES), key_id="admin")
    if token.startswith(KEY_PREFIX):
        cache: KeyCache = state.key_cache
        _found, kept = cache.get(hash_key(token))
        return None if kept is None else _key_caller(kept)
    verifier: TokenVerifier = state.token_verifier
    subject = None if token.startswith(KEY_PREFIX) else verifier.known(token)
    return None if subject is None else Caller(kind="user", name="subject", subject_id=subject)


async def _verify(request: Request, token: str) -> Caller:
    if token.startswith(KEY_PREFIX):
        found = await _active_key(request, hash_key(token))
        if found is None:
            raise Unauthorized("Unknown or revoked API key.")
        return _key_caller(found)
    verifier: TokenVerifier = request.app.state.token_verifier
    subject = await verifier.subject(token)
    return Caller(kind="user", name="subject", subject_id=subject)


def _key_caller(key: ActiveKey) -> Caller:
    return Caller(kind="key", name=key.name, scopes=key.scopes, key_id=key.id)


async def _active_key(request: Request, key_hash: str) -> ActiveKey | None:
    """The unrevoked key with this hash, looked up, and kept for the requests that follow."""
    cache: KeyCache = request.app.state.key_cache
    epoch = cache.epoch
    async with database_of(request).reader() as reader:
        found = await keys.find_active(reader, key_hash)
    if found is not None:
        cache.fill(key_hash, found, epoch)
    return found


def _no_token(request: Request) -> Unauthorized:
    """The refusal of a request without a token, counted against the client's address."""
    limit_address(request)
    return Unauthorized(token_sent=False)


def _gate(
    check: Callable[[Request], Awaitable[Caller]],
    *,
    basic: bool = False,
    access: Access | None = None,
) -> Callable[..., Awaitable[Caller]]:
    """`check` as a route's access dependency, decided once per request.

    JSON routes run it before reading the body (routing.JSONRoute), and FastAPI runs it again as
    a dependency, which then returns what was decided. With `basic`, the OpenAPI document shows
    the route taking Basic credentials too; `access` is who the document says it admits.
    """

    async def decide(request: Request) -> Caller:
        admitted: dict[object, Caller] = request.scope.setdefault(_ADMITTED, {})
        if dependency not in admitted:
            admitted[dependency] = await check(request)
        return admitted[dependency]

    if basic:

        async def dependency(
            request: Request,
            _doc: Annotated[object, Security(_bearer_doc)] = None,
            _basic: Annotated[object, Security(_basic_doc)] = None,
        ) -> Caller:
            return await decide(request)

    else:

        async def dependency(  # type: ignore[misc]  # one signature or the other
            request: Request, _doc: Annotated[object, Security(_bearer_doc)] = None
        ) -> Caller:
            return await decide(request)

    _GATES.add(dependency)
    if access is not None:
        declare_access(dependency, access)
    return dependency


def is_gate(call: object) -> bool:
    """Whether a dependency decides who may call its route (one made by `_gate`)."""
    return call in _GATES


async def _any_token(request: Request) -> Caller:
    caller = await _authenticate(request)
    if caller is None:
        raise _no_token(request)
    return caller


# Any caller that sent a valid token; what it may do is the route's to decide.
token_caller = _gate(_any_token)


def require_scope(scope: str, *, basic: bool = False) -> Callable[..., Awaitable[Caller]]:
    """A dependency that admits only API keys holding `scope`; with `basic`, sent as Basic too."""

    async def check(request: Request) -> Caller:
        caller = await _authenticate(request, basic=basic)
        if caller is None:
            raise _no_token(request)
        if not caller.has(scope):
            raise Forbidden(f"This needs the {scope} scope.")
        return caller

    return _gate(check, basic=basic, access=Access(scope=scope, basic=basic))


def charge(request: Request, caller: Caller, requests: int) -> None:
    """Count `requests` more requests against the caller's bucket: a call doing many calls' work."""
    if requests > 0:
        if caller.kind == "user":
            limit(request, "user", caller.subject_id or caller.name, requests)
        else:
            limit(request, "key", caller.name, requests)


async def subject_caller(request: Request, scope: str | None, *, anonymous: bool) -> Caller:
    """The caller of a `/v1/subjects/{subject_id}/...` route: a key with `scope`, or the subject.

    Without a `scope`, the subject alone: its own JWT (or, with `anonymous`, the visitor).

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
    if (scope is not None and caller.has(scope)) or caller.acts_for(subject_id):
        return caller
    raise Forbidden("This token may not reach that subject.")


def subject_access(scope: str | None, *, anonymous: bool) -> Callable[..., Awaitable[Caller]]:
    """`subject_caller` as a dependency."""

    async def check(request: Request) -> Caller:
        return await subject_caller(request, scope, anonymous=anonymous)

    return _gate(check, access=Access(scope=scope, own_token=True, anonymous=anonymous))


def subject_key_access(scope: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency for a `/v1/subjects/{subject_id}/...` route that API keys with `scope` alone
    may call: the platform acting about a learner, never the learner's own token."""

    async def check(request: Request) -> Caller:
        caller = await subject_caller(request, scope, anonymous=False)
        if caller.kind != "key" or not caller.has(scope):
            raise Forbidden(f"This needs an API key with the {scope} scope.")
        return caller

    return _gate(check, access=Access(scope=scope))


def admin_or_confirm_token() -> Callable[..., Awaitable[Caller]]:
    """A dependency that admits a `privacy:admin` key, or a confirm token (`cct_...`).

    A confirm token is not checked here: it names one request and one system, which only the
    route knows; the route reads it with `confirm_token_of` and refuses it with 403 if it does
    not fit. Like any credential still to be checked, it counts against the client's address.
    """

    async def check(request: Request) -> Caller:
        token = _sent_token(request) if _CALLER not in request.scope else None
        if token is not None and token.startswith(CONFIRM_TOKEN_PREFIX):
            if len(token) > _MAX_CONFIRM_TOKEN:
                limit_address(request)
                raise Forbidden("This confirm token was not issued by this service.")
            limit_address(request)
            request.scope[_CONFIRMING] = token
            return Caller(kind="key", name="confirm-token")
        caller = await _authenticate(request)
        if caller is None:
            raise _no_token(request)
        if not caller.is_admin:
            raise Forbidden(f"This needs the {ADMIN_SCOPE} scope or a confirm token.")
        return caller

    return _gate(check, access=Access(scope=ADMIN_SCOPE, confirm_token=True))


def confirm_token_of(request: Request) -> str | None:
    """The confirm token `admin_or_confirm_token` admitted, if the caller sent one."""
    token: str | None = request.scope.get(_CONFIRMING)
    return token
