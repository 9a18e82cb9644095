"""HTTP endpoints of the integration catalogue and of each learner's connections."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from consentry.apidoc import WRITE_ERRORS, Access, problem_responses
from consentry.auth import (
    ADMIN_SCOPE,
    Caller,
    require_scope,
    subject_access,
    subject_caller,
    subject_key_access,
)
from consentry.db import DatabaseDep, UnitOfWorkDep, database_of
from consentry.errors import ValidationFailed
from consentry.integrations import service
from consentry.integrations.cache import ConnectionCache
from consentry.integrations.schemas import (
    EXAMPLE_INTEGRATION,
    INTEGRATION_ID_DESCRIPTION,
    INTEGRATION_ID_PATTERN,
    ConnectionDecision,
    ConnectionPage,
    ConnectionRead,
    ConnectionRequest,
    IntegrationCreate,
    IntegrationHistoryPage,
    IntegrationPage,
    IntegrationRead,
    IntegrationReplace,
)
from consentry.pagination import DEFAULT_LIMIT, Cursor, Limit
from consentry.pseudonyms import CursorsDep, PseudonymsDep, pseudonyms_of
from consentry.routing import NO_STORE, JSONRoute, json_response
from consentry.subjects import SUBJECT_ID_DESCRIPTION, SUBJECT_ID_PATTERN, SubjectIdPath

router = APIRouter(tags=["integrations"], route_class=JSONRoute)

Admin = Annotated[Caller, Depends(require_scope(ADMIN_SCOPE))]
SubjectReader = Annotated[Caller, Depends(subject_access("integrations:read", anonymous=False))]
Platform = Annotated[Caller, Depends(subject_key_access("integrations:write"))]
Decider = Annotated[Caller, Depends(subject_access("integrations:write", anonymous=False))]
Revoker = Annotated[Caller, Depends(subject_access(ADMIN_SCOPE, anonymous=False))]
IntegrationIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=INTEGRATION_ID_PATTERN,
        description=INTEGRATION_ID_DESCRIPTION,
    ),
]
LANGUAGE_QUERY_PATTERN = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"
Language = Annotated[
    str | None,
    Query(
        max_length=35,
        pattern=LANGUAGE_QUERY_PATTERN,
        description="A language tag such as `de`: its translation if there is one, else English.",
    ),
]
_INTEGRATION_ID = re.compile(INTEGRATION_ID_PATTERN)

# The catalogue is public and changes seldom; a few minutes' delay after a change is harmless.
_PUBLIC = {"Cache-Control": "public, max-age=300"}
_SUBJECT_READ_ERRORS = (401, 403, 410, 422, 429, 503)
_NO_INTEGRATION = {404: "No integration has this id."}

_EXAMPLE_READ = {
    **EXAMPLE_INTEGRATION,
    "created_at": "2026-12-01T09:00:00.000000Z",
    "updated_at": "2026-12-01T09:00:00.000000Z",
}
_PENDING = {
    "integration_id": "cloud-drive",
    "status": "pending",
    "scopes": ["files.write"],
    "requested_at": "2026-12-01T09:00:00.000000Z",
    "decided_at": None,
    "source": "platform",
}
_APPROVED = {
    **_PENDING,
    "status": "approved",
    "decided_at": "2026-12-01T09:05:00.000000Z",
    "source": "learner",
}
_REVOKED = {
    **_APPROVED,
    "status": "revoked",
    "scopes": [],
    "decided_at": "2026-12-02T10:00:00.000000Z",
}
_RECORD = {
    "id": "6f1c8a1e-3b7d-4c1a-9a57-2f0e4f7a1b2c",
    "recorded_at": "2026-12-01T09:05:00.000000Z",
    "integration_id": "cloud-drive",
    "status": "approved",
    "scopes": ["files.write"],
    "source": "learner",
    "actor": "subject",
    "hash": "5d41402abc4b2a76b9719d911017c592e1b0d5f3b1c0a6a1f2a3b4c5d6e7f809",
    "prev_hash": "0cc175b9c0f1b6a831c399e269772661b4a1a5e3f0d2c6b7a8e9f0a1b2c3d4e5",
}


def _example(description: str, example: Any) -> dict[str, Any]:
    """An OpenAPI response entry with an example body."""
    return {"description": description, "content": {"application/json": {"example": example}}}


def _body_example(example: Any) -> dict[str, Any]:
    """An operation's request body example (merged into FastAPI's own entry)."""
    return {"requestBody": {"content": {"application/json": {"example": example}}}}


def _created(integration: dict[str, Any]) -> Response:
    location = f"/v1/integrations/{integration['id']}"
    return json_response(integration, 201, headers={"Location": location})


def _cache(request: Request) -> ConnectionCache:
    cache: ConnectionCache = request.app.state.connection_cache
    return cache


def _language(value: str | None) -> str | None:
    return None if value is None else value.split("-")[0].lower()


# ---- the catalogue ----


@router.get(
    "/v1/integrations",
    response_model=IntegrationPage,
    summary="List the integration catalogue",
    description="Every integration the platform can connect a learner's data with, ordered by "
    "id: who receives the data (`provider_id`), what it shares and why, the scopes it asks for, "
    "and whether it asks first (`ask`) or informs (`inform`). Public: no token needed. "
    "`?language=` picks a translation, English otherwise.",
    responses={
        200: _example("A page of integrations", {"items": [_EXAMPLE_READ], "next_cursor": None}),
        **problem_responses(422, 503),
    },
)
async def list_integrations(
    database: DatabaseDep,
    cursors: CursorsDep,
    language: Language = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """The integration catalogue; public."""
    async with database.reader() as reader:
        page = await service.read_page(
            reader, language=_language(language), limit=limit, cursor=cursor, cursors=cursors
        )
    return json_response(page, headers=_PUBLIC)


@router.post(
    "/v1/integrations",
    status_code=201,
    response_model=IntegrationRead,
    summary="Declare an integration",
    description="Adds an integration to the catalogue. Audited. "
    "`provider_id` must name a provider of the registry (else 422); the id `history` is "
    "reserved (422); an id in use → 409.",
    responses={
        201: _example("The integration as stored", _EXAMPLE_READ),
        **problem_responses(
            *WRITE_ERRORS,
            409,
            when={
                409: "An integration with this id exists already: PUT replaces it.",
                422: "The body does not fit the schema, `provider_id` names no provider of the "
                "registry, or the id is `history` (reserved).",
            },
        ),
    },
    openapi_extra=_body_example(EXAMPLE_INTEGRATION),
)
async def create_integration(
    body: IntegrationCreate, caller: Admin, uow: UnitOfWorkDep
) -> Response:
    """Add an integration; 409 when its id is taken. Audited."""
    return _created(await service.create(uow, body, caller.name))


@router.get(
    "/v1/integrations/{integration_id}",
    response_model=IntegrationRead,
    summary="Read one integration",
    description="One integration of the catalogue. Public: no token needed. `?language=` picks "
    "a translation, English otherwise.",
    responses={
        200: _example("The integration", _EXAMPLE_READ),
        **problem_responses(404, 422, 503, when=_NO_INTEGRATION),
    },
)
async def get_integration(
    integration_id: IntegrationIdPath, database: DatabaseDep, language: Language = None
) -> Response:
    """One integration; public."""
    async with database.reader() as reader:
        found = await service.read_one(reader, integration_id, _language(language))
    return json_response(found, headers=_PUBLIC)


@router.put(
    "/v1/integrations/{integration_id}",
    response_model=IntegrationRead,
    summary="Replace or create an integration",
    description="Replaces an integration's description (200), or creates it (201). Audited "
    "when it changes. A scope no longer declared is removed from "
    "every learner's connection (the status stays; one history record each, source `admin`).",
    responses={
        200: _example("The integration as replaced", _EXAMPLE_READ),
        201: {"model": IntegrationRead, **_example("The integration as created", _EXAMPLE_READ)},
        **problem_responses(
            *WRITE_ERRORS,
            when={
                422: "The body does not fit the schema, `provider_id` names no provider of the "
                "registry, or the id is `history` (reserved).",
            },
        ),
    },
    openapi_extra=_body_example({k: v for k, v in EXAMPLE_INTEGRATION.items() if k != "id"}),
)
async def put_integration(
    request: Request,
    integration_id: IntegrationIdPath,
    body: IntegrationReplace,
    caller: Admin,
    pseudonyms: PseudonymsDep,
    uow: UnitOfWorkDep,
) -> Response:
    """Replace an integration (200), or create it (201)."""
    stored, created = await service.replace(
        uow, _cache(request), pseudonyms, integration_id, body, caller
    )
    return _created(stored) if created else json_response(stored)


@router.delete(
    "/v1/integrations/{integration_id}",
    status_code=204,
    response_class=Response,
    summary="Remove an integration",
    description="Removes an integration and revokes every learner's connection to it (one "
    "history record each, source `admin`). Audited.",
    responses={
        204: {"description": "Removed, with its connections revoked; the answer has no body."},
        **problem_responses(401, 403, 404, 422, 429, 503, when=_NO_INTEGRATION),
    },
)
async def delete_integration(
    request: Request,
    integration_id: IntegrationIdPath,
    caller: Admin,
    pseudonyms: PseudonymsDep,
    uow: UnitOfWorkDep,
) -> Response:
    """Remove an integration, revoking its connections; 404 when there is none. Audited."""
    await service.delete(uow, _cache(request), pseudonyms, integration_id, caller)
    return Response(status_code=204)


# ---- a learner's connections ----


@router.get(
    "/v1/subjects/{subject_id}/integrations",
    response_model=ConnectionPage,
    summary="List a learner's connections",
    description="Every integration of the catalogue with this learner's connection to it "
    "(`none` where there is none), ordered by integration id. Paginated: pass `next_cursor` as "
    "`?cursor=` until it is null.",
    responses={
        200: _example("A page of connections", {"items": [_APPROVED], "next_cursor": None}),
        **problem_responses(*_SUBJECT_READ_ERRORS),
    },
)
async def list_connections(
    subject_id: SubjectIdPath,
    caller: SubjectReader,
    pseudonyms: PseudonymsDep,
    database: DatabaseDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """Every integration with the learner's connection."""
    async with database.reader() as reader:
        page = await service.read_connections(
            reader, pseudonyms, subject_id, limit=limit, cursor=cursor
        )
    return json_response(page, headers=NO_STORE)


@router.get(
    "/v1/subjects/{subject_id}/integrations/history",
    response_model=IntegrationHistoryPage,
    summary="Read a learner's integration history",
    description="Every request, notice, decision and revocation of the learner's connections, "
    "newest first, each chained to the one before by `prev_hash` (verify it as the README "
    "says).",
    responses={
        200: _example("A page of records", {"items": [_RECORD], "next_cursor": None}),
        **problem_responses(*_SUBJECT_READ_ERRORS),
    },
)
async def get_integration_history(
    subject_id: SubjectIdPath,
    caller: SubjectReader,
    pseudonyms: PseudonymsDep,
    database: DatabaseDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """The learner's integration history, newest first."""
    async with database.reader() as reader:
        page = await service.read_history(
            reader, pseudonyms, subject_id, limit=limit, cursor=cursor
        )
    return json_response(page, headers=NO_STORE)


# The check takes the request alone, so FastAPI resolves no parameters for it: a connecting
# service makes it before every exchange. Its parameters are checked in the handler and
# described here for the OpenAPI document.
_CHECK_PARAMETERS = {
    "parameters": [
        {
            "name": "subject_id",
            "in": "path",
            "required": True,
            "description": SUBJECT_ID_DESCRIPTION,
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": 256,
                "pattern": SUBJECT_ID_PATTERN,
            },
        },
        {
            "name": "integration_id",
            "in": "path",
            "required": True,
            "description": INTEGRATION_ID_DESCRIPTION,
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": 64,
                "pattern": INTEGRATION_ID_PATTERN,
            },
        },
    ],
    **Access(scope="integrations:read", own_token=True).extra(),
}


def _integration_id(request: Request) -> str:
    integration_id: str = request.path_params["integration_id"]
    if not _INTEGRATION_ID.fullmatch(integration_id):
        raise ValidationFailed(
            "The integration id is not valid.",
            errors=[
                {
                    "loc": ["path", "integration_id"],
                    "msg": f"String should match pattern '{INTEGRATION_ID_PATTERN}'",
                    "type": "string_pattern_mismatch",
                }
            ],
        )
    return integration_id


@router.get(
    "/v1/subjects/{subject_id}/integrations/{integration_id}",
    response_model=ConnectionRead,
    summary="Check a learner's connection",
    description="The check a service makes before it exchanges a learner's data with an "
    "integration: data may flow only when `status` is `approved` or `informed`, and only "
    "within `scopes`.",
    responses={
        200: _example("The connection", _APPROVED),
        **problem_responses(401, 403, 404, 410, 422, 429, 503, when=_NO_INTEGRATION),
    },
    openapi_extra=_CHECK_PARAMETERS,
)
async def check_connection(request: Request) -> Response:
    """The learner's connection to one integration."""
    await subject_caller(request, "integrations:read", anonymous=False)
    integration_id = _integration_id(request)
    body = await service.check(
        database_of(request),
        _cache(request),
        await pseudonyms_of(request),
        request.path_params["subject_id"],
        integration_id,
    )
    return Response(body, media_type="application/json", headers=NO_STORE)


@router.post(
    "/v1/subjects/{subject_id}/integrations/{integration_id}/requests",
    status_code=201,
    response_model=ConnectionRead,
    summary="Ask a learner to connect",
    description="The platform asks the learner to approve a connection (`ask`: `pending`) or "
    "tells them of it (`inform`: `informed`, data may flow until they decline). Scope "
    "API keys only; the learner's own token cannot. "
    "An approval that covers the scopes already → 200 unchanged; asking for more than was "
    "approved, or asking again after the learner declined or revoked → 409; a scope the "
    "integration does not declare → 422 `unknown_scope`.",
    responses={
        201: _example("The request, recorded", _PENDING),
        200: {"model": ConnectionRead, **_example("Already approved for these scopes", _APPROVED)},
        **problem_responses(
            *WRITE_ERRORS,
            404,
            409,
            410,
            codes=("unknown_scope",),
            when={
                403: "The caller is not an API key with `integrations:write`: a learner's own "
                "token may not ask itself.",
                **_NO_INTEGRATION,
                409: "The connection is approved and the request asks for a scope beyond the "
                "approved ones, or the learner (or a key relaying them) declined or revoked it.",
            },
        ),
    },
    openapi_extra=_body_example({"scopes": ["files.write"]}),
)
async def request_connection(
    request: Request,
    subject_id: SubjectIdPath,
    integration_id: IntegrationIdPath,
    body: ConnectionRequest,
    caller: Platform,
    pseudonyms: PseudonymsDep,
    uow: UnitOfWorkDep,
) -> Response:
    """Ask the learner for a connection, or inform them of one."""
    found, created = await service.request_connection(
        uow, _cache(request), pseudonyms, caller, subject_id, integration_id, body.scopes
    )
    return json_response(found, 201 if created else 200, headers=NO_STORE)


@router.put(
    "/v1/subjects/{subject_id}/integrations/{integration_id}",
    response_model=ConnectionRead,
    summary="Approve or decline a connection",
    description="Records the learner's decision, from any status (a learner may connect a tool "
    "on their own, from `none`): `approve` with some of the declared scopes, or `decline`. A "
    "key relays the learner's own answer (`privacy:admin` records it as the privacy team's). "
    "Idempotent: the same decision again changes nothing. A scope the integration does not "
    "declare → 422 `unknown_scope`.",
    responses={
        200: _example("The connection as decided", _APPROVED),
        **problem_responses(
            *WRITE_ERRORS,
            404,
            410,
            codes=("unknown_scope",),
            when=_NO_INTEGRATION,
        ),
    },
    openapi_extra=_body_example({"decision": "approve", "scopes": ["files.write"]}),
)
async def decide_connection(
    request: Request,
    subject_id: SubjectIdPath,
    integration_id: IntegrationIdPath,
    body: ConnectionDecision,
    caller: Decider,
    pseudonyms: PseudonymsDep,
    uow: UnitOfWorkDep,
) -> Response:
    """Approve or decline a connection."""
    cache = _cache(request)
    found = await service.decide(uow, cache, pseudonyms, caller, subject_id, integration_id, body)
    return json_response(found, headers=NO_STORE)


@router.delete(
    "/v1/subjects/{subject_id}/integrations/{integration_id}",
    response_model=ConnectionRead,
    summary="Revoke a connection",
    description="Revokes the connection: no data flows any more, and the learner may connect "
    "again later with PUT. One history record, announced as `integration.changed`.",
    responses={
        200: _example("The connection, revoked", _REVOKED),
        **problem_responses(401, 403, 404, 410, 422, 429, 503, when=_NO_INTEGRATION),
    },
)
async def revoke_connection(
    request: Request,
    subject_id: SubjectIdPath,
    integration_id: IntegrationIdPath,
    caller: Revoker,
    pseudonyms: PseudonymsDep,
    uow: UnitOfWorkDep,
) -> Response:
    """Revoke a connection."""
    found = await service.revoke(
        uow, _cache(request), pseudonyms, caller, subject_id, integration_id
    )
    return json_response(found, headers=NO_STORE)
