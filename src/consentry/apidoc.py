"""The OpenAPI document: who may call each route, when each error happens, and its assembly."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from consentry.errors import PROBLEM_JSON, Problem

ADMIN_SCOPE = "privacy:admin"  # implies every other scope
# The key of a route's openapi_extra that declares its access when no gate dependency does.
_ACCESS_KEY = "x-consentry-access"


@dataclass(frozen=True)
class Access:
    """Who may call a route, as the document tells it: security requirements and a paragraph."""

    # The scope an API key needs (`privacy:admin` implies every other); None: no key by scope.
    scope: str | None = None
    # The subject's own JWT (its `sub` names the subject the route is about).
    own_token: bool = False
    # An `anon:<uuid4>` subject without any token: the random id is the capability.
    anonymous: bool = False
    # The key may be sent as HTTP Basic (the analytics libraries' write key).
    basic: bool = False
    # The single-purpose confirm token of an erasure (`cct_...`).
    confirm_token: bool = False

    def security(self) -> list[dict[str, list[str]]]:
        """The OpenAPI security requirements: any one of them admits the request."""
        requirements: list[dict[str, list[str]]] = []
        if self.scope is not None:
            requirements.append({"ApiKey": [self.scope]})
            if self.basic:
                requirements.append({"WriteKey": [self.scope]})
        if self.own_token:
            requirements.append({"UserToken": []})
        if self.confirm_token:
            requirements.append({"ConfirmToken": []})
        if self.anonymous:
            requirements.append({})
        return requirements

    def describe(self) -> str:
        """The paragraph that tells a client who may call the route."""
        who = []
        if self.scope is not None:
            key = f"an API key with `{self.scope}`"
            if self.scope != ADMIN_SCOPE:
                key += " (or `privacy:admin`, which implies it)"
            if self.basic:
                key += ", sent as `Bearer` or as the HTTP Basic user name with an empty password"
            who.append(key)
        if self.own_token:
            who.append("the learner's own JWT (its `sub` is the subject concerned)")
        if self.confirm_token:
            who.append("the confirm token (`cct_...`) of this request and system")
        if self.anonymous:
            who.append(
                "no token at all for an anonymous subject `anon:<uuid4>` (the random id is the "
                "capability; a token, once sent, decides alone)"
            )
        buckets = ["per key"] if self.scope or self.basic else []
        buckets += ["per learner"] if self.own_token else []
        buckets += ["per client address for anonymous visitors"] if self.anonymous else []
        address = "a refused token" + (", or a confirm token," if self.confirm_token else "")
        limits = (
            f"Each request counts against the caller's rate limit ({', '.join(buckets)}); "
            f"{address} counts against the client's address."
        )
        admin = " The admin key (`CONSENTRY_ADMIN_KEY`) holds every scope." if self.scope else ""
        return "**Access:** " + "; or ".join(who) + "." + admin + " " + limits

    def extra(self) -> dict[str, Any]:
        """The route's `openapi_extra` declaring this access (for routes that check in the body)."""
        return {_ACCESS_KEY: asdict(self)}


_GATE_ACCESS: dict[object, Access] = {}
# FastAPI drops every null while it encodes the document, examples' included: a route's examples
# carry this stand-in instead, and the finished document gets its nulls back.
_NULL = "\x00null"


def keep_nulls(value: Any) -> Any:
    """`value` with every null replaced by a stand-in that survives FastAPI's encoding."""
    if value is None:
        return _NULL
    if isinstance(value, dict):
        return {key: keep_nulls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [keep_nulls(item) for item in value]
    return value


def _restore_nulls(value: Any) -> Any:
    if value == _NULL:
        return None
    if isinstance(value, dict):
        return {key: _restore_nulls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_restore_nulls(item) for item in value]
    return value


def declare_access(gate: object, access: Access) -> None:
    """Record who a gate dependency admits, for every route that uses it."""
    _GATE_ACCESS[gate] = access


SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "ApiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`csk_...`, made with `consentry keys create --scope ...`) or "
        "the admin key. A requirement names the scope the key must hold; `privacy:admin` "
        "implies every other scope, and the admin key holds all.",
    },
    "UserToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A learner's JWT from the platform's identity provider; `sub` is the "
        "subject id. It reaches only routes about its own subject.",
    },
    "WriteKey": {
        "type": "http",
        "scheme": "basic",
        "description": "An API key as the user name and an empty password: the analytics "
        "libraries' write key. Taken only by the routes of the Segment / RudderStack tracking "
        "API; the requirement names the scope the key must hold.",
    },
    "ConfirmToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "A confirm token (`cct_...`) that came in the `webhook-confirm-token` "
        "header of an `erasure.requested` delivery; it confirms that request for that system.",
    },
}

# The errors of a route that takes a JSON body from a caller with a token, and of one that reads.
WRITE_ERRORS = (400, 401, 403, 413, 415, 422, 429, 503)
READ_ERRORS = (401, 403, 422, 429, 503)

# When each error happens, where one sentence fits every route that answers it.
_WHEN: dict[int, str] = {
    400: "The body is not valid JSON, or nests JSON deeper than 32 levels.",
    401: "No token where this route needs one, or a token that is unknown, revoked, expired, "
    "badly signed or malformed (`WWW-Authenticate` tells which).",
    403: "The token is valid but may not call this route (see **Access**): an API key without "
    "the scope it needs, or a learner's JWT where the route takes none or about another subject.",
    410: "The subject has been erased: every `/v1/subjects/{subject_id}/...` route answers 410 "
    "from then on.",
    412: "`If-Match` was sent and no longer names the current state's ETag: read the state "
    "again and decide anew.",
    413: "The body passes the service's limit (`CONSENTRY_MAX_BODY_BYTES`, 64 KiB by default).",
    415: "The body is sent with a `Content-Type` other than `application/json`.",
    422: "A path or query parameter, or the body, does not fit the schema (an unknown field in "
    "the body included); `errors` says where.",
    429: "The caller passed its rate limit; retry after the `Retry-After` seconds.",
    503: "The database cannot be reached; retry after the `Retry-After` seconds.",
}
# The 422 of a route without a body.
_WHEN_NO_BODY = {
    422: "A path or query parameter does not fit (a subject id that is not one, `limit` outside "
    "1-1000, a cursor the service did not issue, ...); `errors` says where.",
}

# The error codes of the contract, each with the detail of an example answer.
_CODES: dict[int, str] = {
    400: "malformed_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    410: "subject_erased",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "service_unavailable",
}
_DETAILS: dict[str, str] = {
    "malformed_request": "The body is not valid JSON.",
    "unauthorized": "A valid bearer token is required.",
    "forbidden": "This token may not reach that subject.",
    "not_found": "No such resource.",
    "conflict": "The request conflicts with the current state.",
    "subject_erased": "This subject has been erased.",
    "precondition_failed": "The consent changed since that ETag.",
    "payload_too_large": "The body may hold at most 65536 bytes.",
    "unsupported_media_type": "Send the body as application/json.",
    "validation_error": "The request does not fit the schema.",
    "required_category": "The necessary category cannot be withdrawn.",
    "unknown_policy_version": "That policy version is not known.",
    "unknown_scope": "The integration declares no such scope.",
    "rate_limited": "Too many requests from this caller; slow down.",
    "service_unavailable": "The database cannot be reached; try again shortly.",
}
# The 422 codes beyond validation_error, with when each is answered.
CODE_WHEN: dict[str, str] = {
    "required_category": "`required_category` when the body withdraws `necessary`",
    "unknown_policy_version": "`unknown_policy_version` when `policy_version` is not a version "
    "of the policy the service knows",
    "unknown_scope": "`unknown_scope` when a scope is not declared by the integration",
}


def _problem_example(status: int, code: str, model: type[Problem]) -> dict[str, Any]:
    detail = _DETAILS[code]
    value: dict[str, Any] = {
        "type": f"https://consentry.dev/problems/{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if code == "validation_error":
        value["errors"] = [
            {"loc": ["body", "categories"], "msg": "Field required", "type": "missing"}
        ]
    if "message" in model.model_fields:
        value["message"] = detail
    return {"summary": code, "value": value}


def problem_responses(
    *statuses: int,
    when: Mapping[int, str] | None = None,
    codes: Sequence[str] = (),
    model: type[Problem] = Problem,
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the errors a route can answer, each saying when it happens.

    `when` gives (or replaces) the sentence of a status; 404 and 409 always need one. `codes`
    are the 422 codes the route answers beside `validation_error`.
    """
    when = when or {}
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        defaults = _WHEN if 415 in statuses else {**_WHEN, **_WHEN_NO_BODY}
        sentence = when.get(status) or defaults.get(status)
        if sentence is None:
            raise ValueError(f"say when a {status} happens")
        status_codes = [_CODES[status]]
        if status == 422 and codes:
            status_codes += codes
            sentence += " Also " + "; ".join(CODE_WHEN[code] for code in codes) + "."
        examples = {code: _problem_example(status, code, model) for code in status_codes}
        responses[status] = {
            "model": model,
            "description": sentence,
            "content": {"application/json": {"examples": examples}},
        }
    return responses


def gate_access(calls: Iterable[object]) -> dict[str, Any]:
    """The `openapi_extra` declaring who the first gate among a route's dependencies admits."""
    for call in calls:
        access = _GATE_ACCESS.get(call)
        if access is not None:
            return access.extra()
    return {}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document: access as security requirements and prose, errors as
    application/problem+json."""
    document: dict[str, Any] = _restore_nulls(
        get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
    )
    for path in document["paths"].values():
        for operation in path.values():
            declared = operation.pop(_ACCESS_KEY, None)
            if declared is None:
                operation.pop("security", None)
            else:
                access = Access(**declared)
                operation["security"] = access.security()
                described = operation.get("description", "")
                operation["description"] = f"{described}\n\n{access.describe()}".strip()
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" in content:
                    response["content"] = {PROBLEM_JSON: content["application/json"]}
    document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    return document
