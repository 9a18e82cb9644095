"""HTTP endpoints of erasure requests and of a subject's export."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from consentry.apidoc import READ_ERRORS, WRITE_ERRORS, Access, problem_responses
from consentry.auth import (
    ADMIN_SCOPE,
    Caller,
    admin_or_confirm_token,
    confirm_token_of,
    subject_access,
    token_caller,
)
from consentry.consent.service import ensure_live
from consentry.db import DatabaseDep, UnitOfWorkDep, utcnow
from consentry.pagination import DEFAULT_LIMIT, Cursor, Limit
from consentry.privacy import erasure, export, fanout
from consentry.privacy.schemas import (
    ConfirmationCreate,
    ErasureCreate,
    ErasurePage,
    ErasureRead,
    Status,
)
from consentry.pseudonyms import PseudonymsDep, pseudonyms_of
from consentry.routing import NO_STORE, JSONRoute, json_response
from consentry.streaming import ReadAheadResponse
from consentry.subjects import SUBJECT_ID_PATTERN, SubjectIdPath

router = APIRouter(prefix="/v1/erasure-requests", tags=["erasure"], route_class=JSONRoute)

RequestId = Annotated[
    str, Path(max_length=36, pattern=r"^[0-9a-f-]{36}$", description="The request's id.")
]
# The privacy team, or the learner with its own JWT; the route decides what each may reach.
_ADMIN_OR_OWN = Access(scope=ADMIN_SCOPE, own_token=True).extra()
_NO_REQUEST = {404: "No erasure request has this id."}

_REQUEST_EXAMPLE = {
    "id": "5f0c8a52-8d1e-4c1b-9a53-0c7d2e6f9b14",
    "subject_id": None,
    "status": "awaiting_systems",
    "reason": "account_deleted",
    "requested_at": "2026-12-01T09:30:00.000000Z",
    "due_by": "2026-12-31T09:30:00.000000Z",
    "completed_at": None,
    "deleted": {"events": 412, "consent_states": 1, "consent_records": 3},
    "retained_until": "2027-03-01T09:30:05.000000Z",
    "erased_at": "2026-12-01T09:30:05.000000Z",
    "starts_at": None,
    "overdue": False,
    "systems": [
        {
            "id": "course-progress",
            "mode": "confirm",
            "status": "confirmed",
            "confirmed_at": "2026-12-01T09:31:40.000000Z",
            "deleted": {"progress_rows": 12},
        },
        {
            "id": "recommendations",
            "mode": "confirm",
            "status": "pending",
            "confirmed_at": None,
            "deleted": None,
        },
    ],
}
_PENDING_EXAMPLE = {
    **_REQUEST_EXAMPLE,
    "subject_id": "u-123",
    "status": "pending",
    "deleted": None,
    "retained_until": None,
    "erased_at": None,
    "systems": [],
}
_READERS = (
    "A learner's own JWT reaches the requests about itself (matched by keyed hash, also after "
    "the erasure): a request about anyone else is 403."
)
_READ_403 = {403: "A learner's JWT asks for a request about another subject."}


def _example(body: object, status: int = 200, *, description: str) -> dict[int | str, Any]:
    return {
        status: {"description": description, "content": {"application/json": {"example": body}}}
    }


@router.post(
    "",
    status_code=202,
    response_model=ErasureRead,
    summary="Request a subject's erasure",
    responses={
        202: {
            "description": "The new request, pending (or started at once without a grace period).",
            "content": {"application/json": {"example": _PENDING_EXAMPLE}},
        },
        200: {
            "description": "The subject's open or completed request, returned again.",
            "model": ErasureRead,
            "content": {"application/json": {"example": _REQUEST_EXAMPLE}},
        },
        **problem_responses(
            *WRITE_ERRORS,
            when={403: "A learner's JWT asks for the erasure of another subject."},
        ),
    },
    openapi_extra={
        **_ADMIN_OR_OWN,
        "requestBody": {
            "content": {
                "application/json": {
                    "example": {"subject_id": "u-123", "reason": "account_deleted"}
                }
            }
        },
    },
)
async def post_erasure_request(
    body: ErasureCreate,
    request: Request,
    caller: Annotated[Caller, Depends(token_caller)],
    pseudonyms: PseudonymsDep,
    uow: UnitOfWorkDep,
) -> Response:
    """Ask for a subject's erasure (GDPR Art. 17): the privacy team, or the learner itself.

    202 with the new request, due within 30 days (`due_by`). Idempotent per subject: a subject
    has at most one open or completed request, however many arrive at once, and a repeat gets
    that request back (200). Without a grace period (`CONSENTRY_ERASURE_GRACE_DAYS`) the erasure
    starts at once; with one, `DELETE` cancels it until it starts. When it runs, Consentry
    erases its own data and tells every registered system (`systems` shows where each stands);
    from then on every `/v1/subjects/{subject_id}/...` route answers 410. Audited.
    """
    settings = request.app.state.settings
    found, created = await erasure.request_erasure(
        uow,
        pseudonyms,
        caller,
        body,
        now=utcnow(),
        grace_days=settings.erasure_grace_days,
    )
    if created:
        # Due at once unless a grace period applies; the worker looks once this commits.
        uow.on_commit(request.app.state.worker.wakeup.set)
    return json_response(found, status_code=202 if created else 200, headers=NO_STORE)


@router.get(
    "",
    response_model=ErasurePage,
    summary="List erasure requests",
    description=(
        "Erasure requests, newest first, each with where every system stands; `status` and "
        "`subject_id` filter (the subject id is hashed before the search, so completed requests "
        "are found too). " + _READERS + " A learner's list holds only its own requests; naming "
        "another subject is 403. Paginated: pass `next_cursor` as `?cursor=` until it is null."
    ),
    responses={
        **_example(
            {"items": [_REQUEST_EXAMPLE], "next_cursor": None},
            description="A page of erasure requests, newest first.",
        ),
        **problem_responses(
            *READ_ERRORS,
            when={403: "A learner's JWT names another subject in `?subject_id=`."},
        ),
    },
    openapi_extra=_ADMIN_OR_OWN,
)
async def list_erasure_requests(
    request: Request,
    caller: Annotated[Caller, Depends(token_caller)],
    database: DatabaseDep,
    status: Annotated[Status | None, Query()] = None,
    subject_id: Annotated[
        str | None,
        Query(max_length=256, pattern=SUBJECT_ID_PATTERN, description="Hashed before the search."),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """Erasure requests, newest first."""
    pseudonyms = await pseudonyms_of(request)
    subject_hash = erasure.readable_subject_hash(caller, pseudonyms, subject_id)
    async with database.reader() as reader:
        page = await erasure.read_page(
            reader,
            status=status,
            subject_hash=subject_hash,
            limit=limit,
            cursor=cursor,
            cursors=pseudonyms.cursors,
        )
    return json_response(page, headers=NO_STORE)


@router.get(
    "/{request_id}",
    response_model=ErasureRead,
    summary="Read an erasure request",
    description=(
        "One request: Consentry's own part (`deleted`, `retained_until`), where each system "
        "stands (`systems`), and `overdue` while it is unfinished past `due_by`. " + _READERS
    ),
    responses={
        **_example(_REQUEST_EXAMPLE, description="The erasure request."),
        **problem_responses(401, 403, 404, 422, 429, 503, when={**_READ_403, **_NO_REQUEST}),
    },
    openapi_extra=_ADMIN_OR_OWN,
)
async def get_erasure_request(
    request_id: RequestId,
    request: Request,
    caller: Annotated[Caller, Depends(token_caller)],
    database: DatabaseDep,
) -> Response:
    """One erasure request."""
    pseudonyms = await pseudonyms_of(request)
    async with database.reader() as reader:
        found = await erasure.read_one(reader, pseudonyms, request_id, caller)
    return json_response(found, headers=NO_STORE)


@router.delete(
    "/{request_id}",
    response_model=ErasureRead,
    summary="Cancel an erasure request",
    description=(
        "Cancels a request that has not started, during the grace period "
        "(`CONSENTRY_ERASURE_GRACE_DAYS`): the account is kept. 200 with the cancelled request "
        "(again 200 for one already cancelled), 409 once it has started. The privacy team "
        "(`privacy:admin`) may cancel any request; a learner, with its own token, only one it "
        "made itself (403 otherwise). Idempotent; audited."
    ),
    responses={
        **_example(
            {**_PENDING_EXAMPLE, "status": "cancelled"},
            description="The cancelled request.",
        ),
        **problem_responses(
            *READ_ERRORS,
            404,
            409,
            when={
                403: "A learner's JWT cancels a request it did not make itself.",
                **_NO_REQUEST,
                409: "The erasure has started: it can no longer be cancelled.",
            },
        ),
    },
    openapi_extra=_ADMIN_OR_OWN,
)
async def cancel_erasure_request(
    request_id: RequestId,
    caller: Annotated[Caller, Depends(token_caller)],
    pseudonyms: PseudonymsDep,
    uow: UnitOfWorkDep,
) -> Response:
    """Cancel an erasure that has not started (the account was restored)."""
    cancelled = await erasure.cancel(uow, pseudonyms, request_id, caller)
    return json_response(cancelled, headers=NO_STORE)


@router.post(
    "/{request_id}/confirmations",
    response_model=ErasureRead,
    summary="Confirm a system's erasure",
    description=(
        "Records that a system erased the subject. A `confirm` system calls it with the confirm "
        "token (`Authorization: Bearer cct_...`) that came with its `erasure.requested` webhook, "
        "for that request and itself only (another token is 403); a repeat, also after the "
        "request ended, answers 200 and keeps the first answer. The privacy team records a "
        "confirmation by hand with a `privacy:admin` key and a `note`, for any system of the "
        "request not yet confirmed (404 for a system the request does not wait for). When the "
        "last system is done the request is `completed`. Audited. No other caller may use it."
    ),
    responses={
        **_example(
            {
                **_REQUEST_EXAMPLE,
                "status": "completed",
                "completed_at": "2026-12-01T09:40:12.000000Z",
                "systems": [
                    _REQUEST_EXAMPLE["systems"][0],  # type: ignore[index]
                    {
                        "id": "recommendations",
                        "mode": "confirm",
                        "status": "confirmed",
                        "confirmed_at": "2026-12-01T09:40:12.000000Z",
                        "deleted": {"profiles": 1},
                    },
                ],
            },
            description="The request, with the system's entry confirmed.",
        ),
        **problem_responses(
            *WRITE_ERRORS,
            404,
            when={
                403: "A confirm token that was never issued, or was issued for another request "
                "or system; or an API key without `privacy:admin`.",
                404: "No erasure request has this id, or it does not wait for this system.",
            },
        ),
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "example": {"system_id": "recommendations", "deleted": {"profiles": 1}}
                }
            }
        }
    },
)
async def confirm_erasure(
    request_id: RequestId,
    body: ConfirmationCreate,
    request: Request,
    caller: Annotated[Caller, Depends(admin_or_confirm_token())],
    uow: UnitOfWorkDep,
) -> Response:
    """Record a system's confirmation."""
    now = utcnow()
    token = confirm_token_of(request)
    if token is not None:
        found = await fanout.confirm_by_system(uow, request_id, token, body, now)
    else:
        found = await fanout.confirm_by_hand(uow, request_id, body, caller.name, now)
    fresh = await erasure.read_after(uow, found.id)
    return json_response(fresh, headers=NO_STORE)


subjects = APIRouter(prefix="/v1/subjects/{subject_id}", tags=["export"], route_class=JSONRoute)
_EXPORT_EXAMPLE = {
    "subject_id": "u-123",
    "exported_at": "2026-12-01T09:30:00.000000Z",
    "policy_version": "2026-11-01",
    "consent": {"subject_id": "u-123", "revision": 1, "categories": {}, "...": "..."},
    "consent_history": [{"id": "5f0c2a4e-8d1b-4c7e-9a3f-2b6d8e1f4a90", "...": "..."}],
    "events": [{"event_id": "7d9a3c1e-5b2f-4e8a-9c6d-0f1e2d3c4b5a", "...": "..."}],
    "providers": [{"id": "video-cdn", "...": "..."}],
    "integrations": [{"integration_id": "cloud-drive", "status": "approved", "...": "..."}],
    "integration_history": [],
    "erasure_requests": [],
}
ExportCaller = Annotated[Caller, Depends(subject_access(ADMIN_SCOPE, anonymous=False))]


@subjects.get(
    "/export",
    summary="Export everything stored about a subject",
    responses={
        200: {
            "description": "The export document, streamed as an attachment.",
            "content": {"application/json": {"example": _EXPORT_EXAMPLE}},
        },
        **problem_responses(
            *READ_ERRORS,
            410,
            when={
                429: "The caller passed its rate limit, or this subject already has as many "
                "exports running as allowed; retry after the `Retry-After` seconds.",
                503: "The database cannot be reached, or the service runs as many exports as it "
                "allows at once; retry after the `Retry-After` seconds.",
            },
        ),
    },
)
async def get_export(
    subject_id: SubjectIdPath,
    request: Request,
    caller: ExportCaller,
    pseudonyms: PseudonymsDep,
    uow: UnitOfWorkDep,
    database: DatabaseDep,
) -> ReadAheadResponse:
    """Everything stored about the subject as one JSON document, streamed as it is read.

    GDPR Art. 15 and 20: consent and its history, events, the providers its data reaches,
    integration connections with their history, and erasure requests: what Consentry holds.
    Sent as an attachment (`Content-Disposition`), never cached. The export is written to the
    audit log before its first byte is sent. Past the exports allowed at once for one subject:
    429; past those of the process: 503.
    """
    settings = request.app.state.settings
    # Before any database work: a refusal costs nothing, and waits for nothing. A request that
    # fails before its response exists gives the slot back with its rolled-back unit of work.
    release = request.app.state.export_slots.take(subject_id)
    uow.on_rollback(release)
    await ensure_live(uow, pseudonyms, subject_id)
    # Committed when this function returns, before the first byte is sent.
    await export.record_export(uow, pseudonyms, caller, subject_id)
    now = utcnow()
    body = export.stream_export(database, pseudonyms, request.app.state.policy, subject_id, now)
    filename = f"consentry-export-{now:%Y%m%dT%H%M%SZ}.json"
    return ReadAheadResponse(
        body,
        buffer_bytes=settings.export_buffer_bytes,
        deadline_seconds=settings.export_timeout_seconds,
        on_close=release,
        media_type="application/json",
        headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )
