"""HTTP endpoints of consent: read, record (PUT/PATCH) and history."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, cast

from fastapi import APIRouter, Body, Depends, Header, Request
from starlette.responses import Response

from consentry.apidoc import Access, problem_responses
from consentry.auth import Caller, subject_access, subject_caller
from consentry.consent import examples, service
from consentry.consent.facts import request_facts
from consentry.consent.rendered import RenderedReads
from consentry.consent.schemas import (
    REGION_DESCRIPTION,
    REGION_PATTERN,
    ConsentHistoryPage,
    ConsentPatch,
    ConsentRead,
    ConsentUpdate,
)
from consentry.db import DatabaseDep, UnitOfWorkDep, database_of
from consentry.errors import ValidationFailed
from consentry.etags import NOT_MODIFIED, none_match
from consentry.pagination import DEFAULT_LIMIT, Cursor, Limit
from consentry.policy import Policy
from consentry.pseudonyms import PseudonymsDep, pseudonyms_of
from consentry.routing import NO_STORE, JSONRoute, json_response
from consentry.subjects import SUBJECT_ID_DESCRIPTION, SUBJECT_ID_PATTERN, SubjectIdPath

router = APIRouter(
    prefix="/v1/subjects/{subject_id}",
    tags=["consent"],
    route_class=JSONRoute,
    # What every subject route can answer; writes add their own (a body, a precondition).
    responses=problem_responses(401, 403, 410, 422, 429, 503),
)
_WRITE_ERRORS = problem_responses(
    400, 412, 413, 415, 422, codes=("required_category", "unknown_policy_version")
)

ReadCaller = Annotated[Caller, Depends(subject_access("consent:read", anonymous=True))]
WriteCaller = Annotated[Caller, Depends(subject_access("consent:write", anonymous=True))]
IfMatch = Annotated[
    list[str] | None, Header(description="ETag of the state the change is based on, or `*`.")
]
_REGION = re.compile(REGION_PATTERN)


def _policy(request: Request) -> Policy:
    policy: Policy = request.app.state.policy
    return policy


def _vary(request: Request) -> str:
    region_header = request.app.state.settings.region_header
    return "Authorization, Sec-GPC" + (f", {region_header}" if region_header else "")


def _state_response(request: Request, state: dict[str, Any]) -> Response:
    return _body_response(request, *service.body_and_etag(state))


def _body_response(request: Request, body: bytes, etag: str) -> Response:
    headers = {**NO_STORE, "ETag": etag, "Vary": _vary(request)}
    if request.method == "GET" and none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


# The read takes the request alone, so FastAPI resolves no parameters for it: it serves every
# page load, and that resolution cost more than the database read. Its parameters are checked in
# the handler and described here for the OpenAPI document.
_READ_PARAMETERS = {
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
            "name": "region",
            "in": "query",
            "required": False,
            "description": REGION_DESCRIPTION,
            "schema": {"type": "string", "pattern": REGION_PATTERN},
        },
    ],
    **Access(scope="consent:read", own_token=True, anonymous=True).extra(),
}


def _region_query(request: Request) -> str | None:
    region = request.query_params.get("region")
    if region is not None and not _REGION.fullmatch(region):
        raise ValidationFailed(
            "The region is not an ISO 3166 code.",
            errors=[
                {
                    "loc": ["query", "region"],
                    "msg": f"String should match pattern '{REGION_PATTERN}'",
                    "type": "string_pattern_mismatch",
                }
            ],
        )
    return region


@router.get(
    "/consent",
    response_model=ConsentRead,
    summary="Read a subject's consent",
    responses={**examples.CONSENT_READ, **NOT_MODIFIED},
    openapi_extra=_READ_PARAMETERS,
)
async def get_consent(request: Request) -> Response:
    """The subject's consent now, or the defaults of its region when it has not chosen.

    Until the subject chooses, the categories are the defaults of this request's region
    (`?region=`, the region header, else the region recorded) and Global Privacy Control; in an
    opt-out region a category whose default differs from the last notice has `updated_at` null,
    which tells consent.js to record a notice before the scripts of that category run.

    Always 200 for a subject that is not erased, with a strong `ETag`: send it back as
    `If-None-Match` to get 304 while nothing changed, or as `If-Match` on the next write. Never
    cached by shared caches (`Cache-Control: no-store`).
    """
    await subject_caller(request, "consent:read", anonymous=True)
    # Most reads carry no query at all: nothing to parse then.
    region = _region_query(request) if request.scope["query_string"] else None
    subject_id: str = request.path_params["subject_id"]
    facts = request_facts(request, region, for_record=False)
    policy, cache = _policy(request), request.app.state.consent_cache
    pseudonyms = await pseudonyms_of(request)

    async def read_anew() -> dict[str, Any]:
        database = database_of(request)
        return await service.read_consent(database, cache, pseudonyms, policy, subject_id, facts)

    renders: RenderedReads = request.app.state.consent_renders
    body, etag = await renders.read(cache, policy, subject_id, facts, read_anew)
    return _body_response(request, body, etag)


async def _record(
    request: Request,
    pseudonyms: PseudonymsDep,
    uow: UnitOfWorkDep,
    subject_id: str,
    choice: ConsentUpdate | ConsentPatch,
    caller: Caller,
    if_match: list[str] | None,
) -> Response:
    change = service.ConsentChange(
        choice=choice,
        categories=cast(Mapping[str, bool], choice.categories),  # a TypedDict of booleans
        caller=caller,
        facts=request_facts(request, None, for_record=True),
        # Repeated If-Match lines form one list (RFC 9110 §5.3).
        if_match=", ".join(if_match) if if_match else None,
    )
    state = await service.record_choice(
        uow,
        _policy(request),
        pseudonyms,
        request.app.state.consent_cache,
        subject_id,
        change,
    )
    return _state_response(request, state)


async def record_consent(request: Request) -> Response:
    """PUT or PATCH of a subject's consent, answered directly (see shortcuts.DirectRoutes).

    Does what FastAPI does for the two routes below, in their order: the gate, then the body's
    type, size and JSON, the pseudonyms, the body's validation (FastAPI's own, so a 422 reads
    the same) and the unit of work, committed before the response is sent. Resolving their
    parameters and the unit of work's exit stacks cost more than the write's own decision.
    """
    route: JSONRoute = request.scope["route"]
    caller = await subject_caller(request, "consent:write", anonymous=True)
    await route.read_json(request)
    pseudonyms = await pseudonyms_of(request)
    choice: ConsentUpdate | ConsentPatch = await route.validated_body(request)
    subject_id: str = request.path_params["subject_id"]
    if_match = request.headers.getlist("if-match") or None
    async with database_of(request).unit_of_work() as uow:
        return await _record(request, pseudonyms, uow, subject_id, choice, caller, if_match)


@router.put(
    "/consent",
    response_model=ConsentRead,
    summary="Record a choice or a notice",
    responses={200: examples.CONSENT_READ[200], **_WRITE_ERRORS},
)
async def put_consent(
    subject_id: SubjectIdPath,
    choice: Annotated[ConsentUpdate, Body(openapi_examples=examples.CHOICE_BODY)],
    request: Request,
    caller: WriteCaller,
    pseudonyms: PseudonymsDep,
    uow: UnitOfWorkDep,
    if_match: IfMatch = None,
) -> Response:
    """Record the subject's choice for every optional category, or a notice of the defaults.

    A choice appends one history record when it changes a value or confirms the choice under
    another policy version; a subject's first choice is always recorded. `source: notice`
    (opt-out regions only, for exactly the defaults that apply after Global Privacy Control,
    without `method`) appends a record the event rule judges by, but is no choice: the
    categories keep source `default`/`gpc`, the banner still asks, and once the subject has
    chosen a notice changes nothing. 422 for a notice elsewhere or of other values.

    Idempotent: repeating a write that changes nothing appends nothing and answers the same
    state, with `receipt_id` the latest record's. Send `If-Match` with the ETag of the state the
    learner saw to refuse a change made meanwhile (412). `categories` must name every optional
    category; `necessary` may appear only as `true`.
    """
    return await _record(request, pseudonyms, uow, subject_id, choice, caller, if_match)


@router.patch(
    "/consent",
    response_model=ConsentRead,
    summary="Record a choice for some categories",
    responses={200: examples.CONSENT_READ[200], **_WRITE_ERRORS},
)
async def patch_consent(
    subject_id: SubjectIdPath,
    choice: Annotated[ConsentPatch, Body(openapi_examples=examples.PATCH_BODY)],
    request: Request,
    caller: WriteCaller,
    pseudonyms: PseudonymsDep,
    uow: UnitOfWorkDep,
    if_match: IfMatch = None,
) -> Response:
    """Record the subject's choice for some categories; the others keep their value.

    As a first choice, the categories it does not name take the defaults the subject was shown
    and keep their source; one that names no optional category accepts all it was shown. The
    rules of `PUT` apply, notices included, and so do `If-Match` and its 412.
    """
    return await _record(request, pseudonyms, uow, subject_id, choice, caller, if_match)


@router.get(
    "/consent/history",
    response_model=ConsentHistoryPage,
    summary="Read a subject's consent history",
    responses=examples.HISTORY,
)
async def get_history(
    subject_id: SubjectIdPath,
    request: Request,
    caller: ReadCaller,
    database: DatabaseDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """The subject's recorded changes, newest first, each chained to the one before.

    Every record carries `hash`, SHA-256 over `prev_hash` and the record's canonical JSON, so a
    client can verify the chain (the README defines the canonical JSON). Paginated: pass the
    answer's `next_cursor` as `?cursor=` until it is null; `?limit=` is 1-1000 (100 by default).
    """
    pseudonyms = await pseudonyms_of(request)
    async with database.reader() as reader:
        await service.ensure_live(reader, pseudonyms, subject_id)
        page = await service.read_history(reader, subject_id, limit, cursor, pseudonyms.cursors)
    return json_response(page, headers=NO_STORE)
