"""HTTP endpoint of linking: a learner who just signed in takes over their banner choice."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from consentry.apidoc import WRITE_ERRORS, problem_responses
from consentry.auth import Caller, subject_access
from consentry.consent import linking, service
from consentry.consent.facts import request_facts
from consentry.consent.schemas import ConsentLinkCreate, ConsentRead
from consentry.db import UnitOfWorkDep, utcnow
from consentry.pseudonyms import PseudonymsDep
from consentry.routing import NO_STORE, JSONRoute
from consentry.subjects import SubjectIdPath

router = APIRouter(tags=["consent"], route_class=JSONRoute)

# The learner's own JWT, nothing else: no key may move a visitor's choice into an account.
OwnToken = Annotated[Caller, Depends(subject_access(None, anonymous=False))]

_STATE_EXAMPLE = {
    "subject_id": "u-123",
    "region": "DE",
    "regime": "opt_in",
    "policy_version": "2026-11-01",
    "stale": False,
    "revision": 1,
    "categories": {
        "necessary": {
            "granted": True,
            "required": True,
            "source": "required",
            "updated_at": "2026-11-28T12:00:00.000000Z",
        },
        "performance": {
            "granted": False,
            "required": False,
            "source": "user",
            "updated_at": "2026-11-28T12:00:00.000000Z",
        },
        "functional": {
            "granted": True,
            "required": False,
            "source": "user",
            "updated_at": "2026-11-28T12:00:00.000000Z",
        },
        "customization": {
            "granted": False,
            "required": False,
            "source": "user",
            "updated_at": "2026-11-28T12:00:00.000000Z",
        },
    },
    "consent_mode": {
        "ad_storage": "denied",
        "ad_user_data": "denied",
        "ad_personalization": "denied",
        "analytics_storage": "denied",
        "functionality_storage": "granted",
        "personalization_storage": "denied",
        "security_storage": "granted",
    },
    "language": "de",
    "updated_at": "2026-11-28T12:00:00.000000Z",
    "receipt_id": "5b0c7f1e-2d4a-4c8e-9f3b-6a1d2e3f4a5b",
}

_DESCRIPTION = """\
Call it once right after sign-in, with the learner's own JWT (no API key may call it), naming
the anonymous id the browser used before. `consent.js` does this by itself, then starts a
fresh anonymous id for that browser.

The visitor's latest choice is carried over only when the learner has no recorded choice (or
only one under an older policy version) and that choice is at most 24 hours old: one history
record is then appended for the learner, with `method: "linked"`, the visitor's `source` and
`policy_version`, and `linked_from`, the receipt id of the visitor's record. Otherwise nothing
changes. Either way the answer is the learner's state, and the anonymous id is used up: linking
it again, into anyone, answers 409. Erasing the learner later erases that visitor's data too.
"""


@router.post(
    "/v1/subjects/{subject_id}/consent/link",
    response_model=ConsentRead,
    summary="Carry a visitor's banner choice into the learner's account",
    description=_DESCRIPTION,
    responses={
        200: {
            "description": "The learner's consent, with the visitor's choice if it carried over.",
            "content": {"application/json": {"example": _STATE_EXAMPLE}},
        },
        **problem_responses(
            *WRITE_ERRORS,
            409,
            410,
            when={
                403: "The token is not the learner's own JWT for this subject (API keys may "
                "not link).",
                409: "The anonymous id was already used up by an earlier link call, into this "
                "learner or another.",
            },
        ),
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "example": {"anonymous_id": "anon:0b6e3f5c-8a41-4d2e-9c7b-1f2a3b4c5d6e"}
                }
            }
        }
    },
)
async def link_consent(
    subject_id: SubjectIdPath,
    body: ConsentLinkCreate,
    request: Request,
    caller: OwnToken,
    pseudonyms: PseudonymsDep,
    uow: UnitOfWorkDep,
) -> Response:
    """Carry a visitor's banner choice into the learner's account, once per anonymous id."""
    state = await linking.link(
        uow,
        request.app.state.policy,
        pseudonyms,
        request.app.state.consent_cache,
        caller,
        body.anonymous_id,
        request_facts(request, None, for_record=True),
        utcnow(),
    )
    payload, etag = service.body_and_etag(state)
    headers = {**NO_STORE, "ETag": etag, "Vary": "Authorization"}
    return Response(payload, media_type="application/json", headers=headers)
