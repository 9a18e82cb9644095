"""HTTP endpoint of bulk decisions: backend jobs ask about many learners in one call."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from consentry.apidoc import WRITE_ERRORS, problem_responses
from consentry.auth import Caller, charge, require_scope
from consentry.consent import decisions
from consentry.consent.schemas import MAX_DECISIONS_BYTES, DecisionsQuery, DecisionsRead
from consentry.db import DatabaseDep
from consentry.pseudonyms import pseudonyms_of
from consentry.routing import NO_STORE, JSONRoute, json_response

# Subjects per request counted as one against the caller's rate limit.
SUBJECTS_PER_REQUEST = 100


class DecisionsRoute(JSONRoute):
    """A thousand subject ids need a larger body than other routes allow (512 KiB)."""

    body_limit = MAX_DECISIONS_BYTES


router = APIRouter(tags=["consent"], route_class=DecisionsRoute)

Reader = Annotated[Caller, Depends(require_scope("consent:read"))]

_DESCRIPTION = """\
For backend jobs that must filter many learners at once (a recommendation e-mail, a nightly
sync): an API key with `consent:read` (or `privacy:admin`); user tokens may not call it.

1 to 1,000 subject ids and 1 to 4 categories; the body may hold up to 512 KiB, and one invalid
subject id refuses the whole request (422). The answer has one item per id, in request order
(not paginated), each judged as the event rule judges an event happening now, from the
database, never from a cached copy: `necessary` is always allowed; another category when the
learner's consent grants it now. A subject with no recorded choice gets the `opt_in` defaults
(only `necessary`), whatever its region: fail closed. An erased subject reads `erased: true`
with every category false. A call counts ⌈n/100⌉ requests against the key's rate limit.
"""


@router.post(
    "/v1/consent/decisions",
    response_model=DecisionsRead,
    summary="Decide for many learners at once",
    description=_DESCRIPTION,
    responses={
        200: {
            "description": "One decision per requested subject id, in request order.",
            "content": {
                "application/json": {
                    "example": {
                        "items": [
                            {
                                "subject_id": "u-1",
                                "erased": False,
                                "categories": {"customization": True},
                            },
                            {
                                "subject_id": "u-2",
                                "erased": False,
                                "categories": {"customization": False},
                            },
                            {
                                "subject_id": "u-3",
                                "erased": True,
                                "categories": {"customization": False},
                            },
                        ]
                    }
                }
            },
        },
        **problem_responses(
            *WRITE_ERRORS,
            when={
                413: "The body passes 512 KiB.",
                422: "The body does not fit the schema: no or more than 1000 subject ids, an "
                "invalid subject id (the whole request is refused), or an unknown category.",
                429: "The key passed its rate limit; the call counts one request per 100 "
                "subjects. Retry after the `Retry-After` seconds.",
            },
        ),
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "example": {
                        "subject_ids": ["u-1", "u-2", "u-3"],
                        "categories": ["customization"],
                    }
                }
            }
        }
    },
)
async def post_decisions(
    body: DecisionsQuery, request: Request, caller: Reader, database: DatabaseDep
) -> Response:
    """What each of many subjects allows now, in request order."""
    # The call was counted once when its key was checked; it costs one per 100 subjects.
    charge(request, caller, -(-len(body.subject_ids) // SUBJECTS_PER_REQUEST) - 1)
    pseudonyms = await pseudonyms_of(request)
    async with database.reader() as reader:
        items = await decisions.decide(reader, pseudonyms, body.subject_ids, body.categories)
    return json_response({"items": items}, headers=NO_STORE)
