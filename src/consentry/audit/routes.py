"""HTTP endpoint of the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from consentry.apidoc import problem_responses
from consentry.audit import service
from consentry.audit.schemas import AuditLogPage
from consentry.audit.service import Action
from consentry.auth import ADMIN_SCOPE, Caller, require_scope
from consentry.db import DatabaseDep
from consentry.pagination import DEFAULT_LIMIT, Cursor, Limit
from consentry.pseudonyms import pseudonyms_of
from consentry.routing import NO_STORE, JSONRoute, json_response
from consentry.subjects import SUBJECT_ID_PATTERN
from consentry.text import StorableText
from consentry.timestamps import Timestamp

router = APIRouter(tags=["audit"], route_class=JSONRoute)

Admin = Annotated[Caller, Depends(require_scope(ADMIN_SCOPE))]
_ENTRY = {
    "id": 4812,
    "at": "2026-12-01T09:30:00.000000Z",
    "action": "export",
    "actor": "privacy-team",
    "subject_hash": "b1946ac92492d2347c6235b4d2611184e0f1c9a2d3b4c5d6e7f8091a2b3c4d5e",
    "target": None,
    "details": {},
}


@router.get(
    "/v1/audit-log",
    response_model=AuditLogPage,
    summary="Read the audit log",
    responses={
        200: {
            "description": "A page of the log, newest first.",
            "content": {"application/json": {"example": {"items": [_ENTRY], "next_cursor": None}}},
        },
        **problem_responses(401, 403, 422, 429, 503),
    },
)
async def get_audit_log(
    request: Request,
    caller: Admin,
    database: DatabaseDep,
    action: Annotated[Action | None, Query()] = None,
    actor: Annotated[StorableText | None, Query(max_length=64)] = None,
    subject_id: Annotated[
        str | None,
        Query(max_length=256, pattern=SUBJECT_ID_PATTERN, description="Hashed before the search."),
    ] = None,
    since: Annotated[Timestamp | None, Query(description="At or after.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """Who did what, newest first: exports, erasure requests, provider, integration and system
    changes, key creation. Append-only.

    Subjects appear only as keyed hashes, so erasure never rewrites the log; `?subject_id=` is
    hashed the same way before the search. `action`, `actor` and `since` filter. Paginated:
    pass `next_cursor` as `?cursor=` until it is null (`?limit=` 1-1000, 100 by default).
    """
    pseudonyms = await pseudonyms_of(request)
    async with database.reader() as reader:
        page = await service.read(
            reader,
            action=action,
            actor=actor,
            subject_hash=pseudonyms.of(subject_id) if subject_id is not None else None,
            since=since,
            limit=limit,
            cursor=cursor,
            cursors=pseudonyms.cursors,
        )
    return json_response(page, headers=NO_STORE)
