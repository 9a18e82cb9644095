"""HTTP endpoints of erasure requests and of a subject's export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from consentry.auth import ADMIN_SCOPE, Caller, require_scope, subject_access, token_caller
from consentry.consent.service import ensure_live
from consentry.db import DatabaseDep, UnitOfWorkDep, utcnow
from consentry.errors import problem_responses
from consentry.pagination import DEFAULT_LIMIT, Cursor, Limit
from consentry.privacy import erasure, export
from consentry.privacy.schemas import ErasureCreate, ErasurePage, ErasureRead, Status
from consentry.pseudonyms import PseudonymsDep, pseudonyms_of
from consentry.routing import NO_STORE, JSONRoute, json_response
from consentry.streaming import ReadAheadResponse
from consentry.subjects import SUBJECT_ID_PATTERN, SubjectIdPath

router = APIRouter(prefix="/v1/erasure-requests", tags=["erasure"], route_class=JSONRoute)

Admin = Annotated[Caller, Depends(require_scope(ADMIN_SCOPE))]
RequestId = Annotated[str, Path(max_length=36, pattern=r"^[0-9a-f-]{36}$")]


@router.post(
    "",
    status_code=202,
    response_model=ErasureRead,
    responses={
        200: {"description": "The subject's open or completed request.", "model": ErasureRead},
        **problem_responses(400, 401, 403, 413, 415, 422, 429, 503),
    },
)
async def post_erasure_request(
    body: ErasureCreate,
    request: Request,
    caller: Annotated[Caller, Depends(token_caller)],
    pseudonyms: PseudonymsDep,
    uow: UnitOfWorkDep,
) -> Response:
    """Ask for a subject's erasure: the privacy team, or the subject with its own JWT.

    A subject with an open or completed request gets that request back (200).
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


@router.get("", response_model=ErasurePage, responses=problem_responses(401, 403, 422, 429, 503))
async def list_erasure_requests(
    request: Request,
    caller: Admin,
    database: DatabaseDep,
    status: Annotated[Status | None, Query()] = None,
    subject_id: Annotated[
        str | None,
        Query(max_length=256, pattern=SUBJECT_ID_PATTERN, description="Hashed before the search."),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """Erasure requests, newest first; `subject_id` finds completed ones too."""
    pseudonyms = await pseudonyms_of(request)
    async with database.reader() as reader:
        page = await erasure.read_page(
            reader,
            status=status,
            subject_hash=pseudonyms.of(subject_id) if subject_id is not None else None,
            limit=limit,
            cursor=cursor,
            cursors=pseudonyms.cursors,
        )
    return json_response(page, headers=NO_STORE)


@router.get(
    "/{request_id}",
    response_model=ErasureRead,
    responses=problem_responses(401, 403, 404, 422, 429, 503),
)
async def get_erasure_request(
    request_id: RequestId, caller: Admin, database: DatabaseDep
) -> Response:
    """One erasure request."""
    async with database.reader() as reader:
        found = await erasure.read_one(reader, request_id)
    return json_response(found, headers=NO_STORE)


@router.delete(
    "/{request_id}",
    response_model=ErasureRead,
    responses=problem_responses(401, 403, 404, 409, 422, 429, 503),
)
async def cancel_erasure_request(
    request_id: RequestId, caller: Admin, uow: UnitOfWorkDep
) -> Response:
    """Cancel an erasure that has not started (the account was restored)."""
    return json_response(await erasure.cancel(uow, request_id, caller), headers=NO_STORE)


subjects = APIRouter(prefix="/v1/subjects/{subject_id}", tags=["export"], route_class=JSONRoute)
ExportCaller = Annotated[Caller, Depends(subject_access(ADMIN_SCOPE, anonymous=False))]


@subjects.get(
    "/export",
    responses={
        200: {"description": "The export document, streamed.", "content": {"application/json": {}}},
        **problem_responses(401, 403, 410, 422, 429, 503),
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

    The export is written to the audit log before its first byte is sent. Past the exports
    allowed at once for one subject: 429; past those of the process: 503.
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
