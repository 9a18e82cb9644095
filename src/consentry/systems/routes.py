"""HTTP endpoints of the platform systems: the registry, secret rotation, deliveries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from consentry.apidoc import READ_ERRORS, WRITE_ERRORS, problem_responses
from consentry.auth import ADMIN_SCOPE, Caller, require_scope
from consentry.db import DatabaseDep, UnitOfWorkDep
from consentry.pagination import DEFAULT_LIMIT, Cursor, Limit
from consentry.pseudonyms import CursorsDep
from consentry.routing import NO_STORE, JSONRoute, json_response
from consentry.systems import service, urls
from consentry.systems.schemas import (
    MESSAGE_ID_PATTERN,
    SYSTEM_ID_DESCRIPTION,
    SYSTEM_ID_PATTERN,
    DeliveryPage,
    DeliveryRead,
    DeliveryStatus,
    SystemCreate,
    SystemPage,
    SystemRead,
    SystemReplace,
    SystemWithSecret,
)

router = APIRouter(prefix="/v1/systems", tags=["systems"], route_class=JSONRoute)

Admin = Annotated[Caller, Depends(require_scope(ADMIN_SCOPE))]
SystemIdPath = Annotated[
    str,
    Path(min_length=1, max_length=64, pattern=SYSTEM_ID_PATTERN, description=SYSTEM_ID_DESCRIPTION),
]
MessageIdPath = Annotated[
    str, Path(pattern=MESSAGE_ID_PATTERN, description="The message's `webhook-id`.")
]

_NO_SYSTEM = "No system has this id."
_URL_REFUSED = (
    "The body does not fit the schema, or the webhook URL is not https, carries credentials, "
    "or its host resolves to an address that is not globally routable and is not in "
    "`CONSENTRY_WEBHOOK_ALLOW_HOSTS`."
)
_SYSTEM = {
    "id": "course-progress",
    "name": "Course progress",
    "webhook_url": "https://progress.internal/hooks/consentry",
    "events": ["consent.changed", "integration.changed"],
    "erasure": "confirm",
    "disabled": False,
    "disabled_at": None,
    "previous_secret_expires_at": None,
    "created_at": "2026-12-01T09:30:00.000000Z",
    "updated_at": "2026-12-01T09:30:00.000000Z",
}
_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw3e6u5LTOXeA="  # noqa: S105  # an example
_DELIVERY = {
    "message_id": "msg_6f1c2a0e9b7d4c3f8a5e1d2c3b4a5f60",
    "type": "consent.changed",
    "status": "failed",
    "attempts": 2,
    "last_status": "503",
    "last_error": None,
    "last_attempt_at": "2026-12-01T09:31:05.120000Z",
    "next_attempt_at": "2026-12-01T09:36:05.120000Z",
    "delivered_at": None,
    "created_at": "2026-12-01T09:31:00.004000Z",
    "retryable": True,
}


def _example(body: Any, status: int = 200, *, description: str) -> dict[int | str, Any]:
    return {
        status: {"description": description, "content": {"application/json": {"example": body}}}
    }


def _request_example(body: Any) -> dict[str, Any]:
    return {"requestBody": {"content": {"application/json": {"example": body}}}}


def _allow(request: Request) -> urls.AllowList:
    allow: urls.AllowList = request.app.state.webhook_allow
    return allow


def _created(system: dict[str, Any]) -> Response:
    return json_response(
        system, 201, headers={**NO_STORE, "Location": f"/v1/systems/{system['id']}"}
    )


@router.post(
    "",
    status_code=201,
    response_model=SystemWithSecret,
    summary="Register a platform system",
    description=(
        "Registers a service of the platform that holds learners' data, so that consent changes "
        "and erasures reach it as signed webhooks. The answer holds its signing secret, shown "
        "this once. The webhook URL must be https without credentials, and every address its "
        "host resolves to globally routable, unless the host is in "
        "`CONSENTRY_WEBHOOK_ALLOW_HOSTS`; else 422. 409 when the id is taken. Audited."
    ),
    responses={
        **_example(
            {**_SYSTEM, "secret": _SECRET},
            201,
            description="Registered, with its secret shown once.",
        ),
        **problem_responses(
            *WRITE_ERRORS,
            409,
            when={409: "A system with this id exists already: PUT replaces it.", 422: _URL_REFUSED},
        ),
    },
    openapi_extra=_request_example(
        {key: _SYSTEM[key] for key in ("id", "name", "webhook_url", "events", "erasure")}
    ),
)
async def create_system(
    body: SystemCreate, request: Request, caller: Admin, uow: UnitOfWorkDep
) -> Response:
    """Register a system."""
    return _created(await service.create(uow, body, caller.name, _allow(request)))


@router.get(
    "",
    response_model=SystemPage,
    summary="List the platform systems",
    description="Every registered system, ordered by id, without secrets.",
    responses={
        **_example(
            {"items": [_SYSTEM], "next_cursor": None},
            description="A page of systems, ordered by id.",
        ),
        **problem_responses(401, 403, 422, 429, 503),
    },
)
async def list_systems(
    caller: Admin,
    database: DatabaseDep,
    cursors: CursorsDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """List systems."""
    async with database.reader() as reader:
        page = await service.read_page(reader, limit=limit, cursor=cursor, cursors=cursors)
    return json_response(page, headers=NO_STORE)


@router.get(
    "/{system_id}",
    response_model=SystemRead,
    summary="Read a platform system",
    description="One registered system, without its secret; 404 when none has the id.",
    responses={
        **_example(_SYSTEM, description="The system, without its secret."),
        **problem_responses(401, 403, 404, 422, 429, 503, when={404: _NO_SYSTEM}),
    },
)
async def get_system(system_id: SystemIdPath, caller: Admin, database: DatabaseDep) -> Response:
    """Read one system."""
    async with database.reader() as reader:
        found = await service.read_one(reader, system_id)
    return json_response(found, headers=NO_STORE)


@router.put(
    "/{system_id}",
    response_model=SystemRead,
    summary="Replace or register a platform system",
    description=(
        "Replaces a system's description (200), or registers it (201, with its secret shown "
        "once). A PUT also re-enables a system that answered 410 Gone: its waiting deliveries "
        "are sent again. The URL rules are those of registration. Audited when something "
        "changes."
    ),
    responses={
        **_example(_SYSTEM, description="The system, replaced."),
        **_example(
            {**_SYSTEM, "secret": _SECRET},
            201,
            description="Registered, with its secret shown once.",
        ),
        **problem_responses(*WRITE_ERRORS, when={422: _URL_REFUSED}),
    },
    openapi_extra=_request_example(
        {key: _SYSTEM[key] for key in ("name", "webhook_url", "events", "erasure")}
    ),
)
async def put_system(
    system_id: SystemIdPath,
    body: SystemReplace,
    request: Request,
    caller: Admin,
    uow: UnitOfWorkDep,
) -> Response:
    """Replace or register a system."""
    stored, created = await service.replace(uow, system_id, body, caller.name, _allow(request))
    return _created(stored) if created else json_response(stored, headers=NO_STORE)


@router.delete(
    "/{system_id}",
    status_code=204,
    response_class=Response,
    summary="Remove a platform system",
    description=(
        "Removes a system and its undelivered messages; it hears nothing more. Erasure requests "
        "already waiting for it keep its entry, which reads `failed` until confirmed by hand. "
        "404 when none has the id. Audited."
    ),
    responses={
        204: {"description": "Removed; the answer has no body."},
        **problem_responses(401, 403, 404, 422, 429, 503, when={404: _NO_SYSTEM}),
    },
)
async def delete_system(system_id: SystemIdPath, caller: Admin, uow: UnitOfWorkDep) -> Response:
    """Remove a system."""
    await service.delete(uow, system_id, caller.name)
    return Response(status_code=204)


@router.post(
    "/{system_id}/secret",
    response_model=SystemWithSecret,
    summary="Rotate a system's signing secret",
    description=(
        "Makes a new signing secret, shown this once. For 24 hours every delivery is signed with "
        "both the new and the old secret (two signatures, space-separated), so the system can "
        "switch without losing a message. No body. Audited (never the secret)."
    ),
    responses={
        **_example(
            {
                **_SYSTEM,
                "previous_secret_expires_at": "2026-12-02T09:30:00.000000Z",
                "updated_at": "2026-12-01T09:30:00.000000Z",
                "secret": _SECRET,
            },
            description="The system with its new secret, shown this once.",
        ),
        **problem_responses(401, 403, 404, 422, 429, 503, when={404: _NO_SYSTEM}),
    },
)
async def rotate_secret(system_id: SystemIdPath, caller: Admin, uow: UnitOfWorkDep) -> Response:
    """Rotate a system's secret."""
    return json_response(await service.rotate_secret(uow, system_id, caller.name), headers=NO_STORE)


@router.get(
    "/{system_id}/deliveries",
    response_model=DeliveryPage,
    summary="List a system's deliveries",
    description=(
        "The messages sent or to be sent to a system, newest first, with their attempts, the "
        "last answer (`last_status`: the HTTP status, or `timeout` / `refused`) and the next "
        "attempt; never their bodies. `status` filters. 404 for an unknown system."
    ),
    responses={
        **_example(
            {"items": [_DELIVERY], "next_cursor": None},
            description="A page of the system's messages, newest first.",
        ),
        **problem_responses(401, 403, 404, 422, 429, 503, when={404: _NO_SYSTEM}),
    },
)
async def list_deliveries(
    system_id: SystemIdPath,
    caller: Admin,
    database: DatabaseDep,
    cursors: CursorsDep,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """List a system's deliveries."""
    async with database.reader() as reader:
        page = await service.read_deliveries(
            reader, system_id, status=status, limit=limit, cursor=cursor, cursors=cursors
        )
    return json_response(page, headers=NO_STORE)


@router.post(
    "/{system_id}/deliveries/{message_id}/retry",
    status_code=202,
    response_model=DeliveryRead,
    summary="Send a failed or exhausted message again",
    description=(
        "Sends a `failed` or `exhausted` message again now, with the whole retry schedule ahead "
        "of it (202). 409 for a message that is pending or delivered, or whose subject was "
        "erased (its body is gone); 404 for an unknown system or message. No body. Audited."
    ),
    responses={
        **_example(
            {
                **_DELIVERY,
                "status": "pending",
                "next_attempt_at": "2026-12-01T10:02:00.000000Z",
            },
            202,
            description="The message, due again at once.",
        ),
        **problem_responses(
            *READ_ERRORS,
            404,
            409,
            when={
                404: "No system has this id, or it has no message with this id.",
                409: "The message is pending or delivered, or its subject was erased (its "
                "body is gone).",
            },
        ),
    },
)
async def retry_delivery(
    system_id: SystemIdPath, message_id: MessageIdPath, caller: Admin, uow: UnitOfWorkDep
) -> Response:
    """Send a message again."""
    retried = await service.retry(uow, system_id, message_id, caller.name)
    return json_response(retried, 202, headers=NO_STORE)
