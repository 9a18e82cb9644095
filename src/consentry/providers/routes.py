"""HTTP endpoints of the provider registry, and of the providers a subject's data may reach."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from starlette.responses import Response

from consentry.apidoc import READ_ERRORS, WRITE_ERRORS, problem_responses
from consentry.auth import ADMIN_SCOPE, Caller, require_scope, subject_access
from consentry.consent.facts import request_facts
from consentry.consent.schemas import LANGUAGE_PATTERN, REGION_DESCRIPTION, REGION_PATTERN
from consentry.db import DatabaseDep, UnitOfWorkDep
from consentry.pagination import DEFAULT_LIMIT, Cursor, Limit
from consentry.providers import examples, service
from consentry.providers.schemas import (
    PROVIDER_ID_DESCRIPTION as ID_DESCRIPTION,
)
from consentry.providers.schemas import (
    PROVIDER_ID_PATTERN,
    ProviderCreate,
    ProviderPage,
    ProviderRead,
    ProviderReplace,
)
from consentry.pseudonyms import CursorsDep, pseudonyms_of
from consentry.routing import NO_STORE, JSONRoute, json_response
from consentry.subjects import SubjectIdPath

router = APIRouter(tags=["providers"], route_class=JSONRoute)

Admin = Annotated[Caller, Depends(require_scope(ADMIN_SCOPE))]
SubjectReader = Annotated[Caller, Depends(subject_access("consent:read", anonymous=True))]
ProviderIdPath = Annotated[
    str,
    Path(min_length=1, max_length=64, pattern=PROVIDER_ID_PATTERN, description=ID_DESCRIPTION),
]
Region = Annotated[str | None, Query(pattern=REGION_PATTERN, description=REGION_DESCRIPTION)]
Language = Annotated[
    str | None,
    Query(
        max_length=35,
        pattern=LANGUAGE_PATTERN,
        description="A language tag (`de`, `de-AT`): names and purposes in that language where "
        "a translation exists (`de-AT` falls back to `de`), English otherwise.",
    ),
]

# The registry is public and changes seldom; a few minutes' delay after a change is harmless.
_PUBLIC = {"Cache-Control": "public, max-age=300"}
_MISSING = {404: "No provider has this id."}
_TAKEN = {409: "A provider with this id exists already: PUT replaces it."}


def _created(provider: dict[str, Any]) -> Response:
    return json_response(provider, 201, headers={"Location": f"/v1/providers/{provider['id']}"})


@router.get(
    "/v1/providers",
    response_model=ProviderPage,
    summary="List the service providers",
    responses={**examples.page("A page of providers."), **problem_responses(422, 503)},
)
async def list_providers(
    database: DatabaseDep,
    cursors: CursorsDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    language: Language = None,
) -> Response:
    """Every third party that receives data, ordered by id; public.

    Each names what it receives, why, where it is processed, the transfer safeguard, the
    consent category that lets data flow to it, and an opt-out page where it has one. With
    `?language=` the name and purpose are a translation where one exists, English otherwise;
    `translations` always holds them all.
    """
    async with database.reader() as reader:
        page = await service.read_page(
            reader, limit=limit, cursor=cursor, cursors=cursors, language=language
        )
    return json_response(page, headers=_PUBLIC)


@router.post(
    "/v1/providers",
    status_code=201,
    response_model=ProviderRead,
    summary="Add a service provider",
    responses={**examples.CREATED, **problem_responses(*WRITE_ERRORS, 409, when=_TAKEN)},
)
async def create_provider(
    provider: Annotated[ProviderCreate, Body(openapi_examples=examples.CREATE_BODY)],
    caller: Admin,
    uow: UnitOfWorkDep,
) -> Response:
    """Add a provider, with translations if given; 409 when its id is taken. Audited.

    A translation's `data_shared` labels may name only items the provider receives.
    """
    created = await service.create(uow, provider, caller.name)
    return _created(created)


@router.get(
    "/v1/providers/{provider_id}",
    response_model=ProviderRead,
    summary="Read a service provider",
    responses={**examples.one("The provider."), **problem_responses(404, 422, 503, when=_MISSING)},
)
async def get_provider(
    provider_id: ProviderIdPath, database: DatabaseDep, language: Language = None
) -> Response:
    """One provider; public. `?language=` picks the translation of its name and purpose."""
    async with database.reader() as reader:
        provider = await service.read_one(reader, provider_id, language)
    return json_response(provider, headers=_PUBLIC)


@router.put(
    "/v1/providers/{provider_id}",
    response_model=ProviderRead,
    summary="Replace or create a service provider",
    responses={
        **examples.one("The provider, replaced."),
        201: {"model": ProviderRead, **examples.CREATED[201]},
        **problem_responses(*WRITE_ERRORS),
    },
)
async def put_provider(
    provider_id: ProviderIdPath,
    provider: Annotated[ProviderReplace, Body(openapi_examples=examples.REPLACE_BODY)],
    caller: Admin,
    uow: UnitOfWorkDep,
) -> Response:
    """Replace a provider's description (200), or create it (201). Audited when it changes.

    The body is the whole description: translations it leaves out are removed.
    """
    stored, created = await service.replace(uow, provider_id, provider, caller.name)
    return _created(stored) if created else json_response(stored)


@router.delete(
    "/v1/providers/{provider_id}",
    status_code=204,
    response_class=Response,
    summary="Remove a service provider",
    responses={
        204: {"description": "Removed; the answer has no body."},
        **problem_responses(
            *READ_ERRORS,
            404,
            409,
            when={**_MISSING, 409: "An integration names this provider: change it first."},
        ),
    },
)
async def delete_provider(
    provider_id: ProviderIdPath, caller: Admin, uow: UnitOfWorkDep
) -> Response:
    """Remove a provider; 404 when there is none, 409 while an integration names it. Audited."""
    await service.delete(uow, provider_id, caller.name)
    return Response(status_code=204)


@router.get(
    "/v1/subjects/{subject_id}/providers",
    response_model=ProviderPage,
    summary="List the providers receiving a subject's data",
    responses={
        **examples.page("The providers the subject's consent lets data reach now."),
        **problem_responses(401, 403, 410, 422, 429, 503),
    },
)
async def get_subject_providers(
    subject_id: SubjectIdPath,
    request: Request,
    caller: SubjectReader,
    database: DatabaseDep,
    region: Region = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    language: Language = None,
) -> Response:
    """The providers that may receive the subject's data now: those its consent grants, and those
    of the integrations its connections approve or inform of.

    A subject with no recorded choice is judged by the defaults its consent read shows (region,
    GPC); `necessary` providers are always listed. `?language=` as on the registry's list.
    """
    state = request.app.state
    # The consent read answers 410 for an erased subject, as the consent route does.
    page = await service.read_for_subject(
        database,
        state.consent_cache,
        await pseudonyms_of(request),
        state.policy,
        subject_id,
        request_facts(request, region, for_record=False),
        limit=limit,
        cursor=cursor,
        connected=state.connected_providers,
        language=language,
    )
    return json_response(page, headers=NO_STORE)
