"""HTTP endpoints of the analytics libraries' tracking API: `/v1/batch` and one per message type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import TypeAdapter, ValidationError, WithJsonSchema
from starlette.responses import Response

from consentry.apidoc import WRITE_ERRORS, problem_responses
from consentry.auth import Caller, require_scope, sent_token_is
from consentry.errors import (
    MessageProblem,
    Unauthorized,
    ValidationFailed,
    speak_plainly_on,
    validation_errors,
)
from consentry.events import analytics
from consentry.events.schemas import (
    MAX_MESSAGES_BYTES,
    MESSAGE_BODY_SCHEMA,
    AnalyticsBatch,
    AnalyticsResult,
)
from consentry.pseudonyms import PseudonymsDep, pseudonyms_of
from consentry.routing import NO_STORE, JSONRoute, json_response
from consentry.timestamps import Timestamp


class AnalyticsRoute(JSONRoute):
    """Bodies of up to 4 MiB, gzip-compressed or not (counted decompressed); keys only."""

    body_limit = MAX_MESSAGES_BYTES
    takes_gzip = True
    # Each message's stored objects are checked for depth on their own, as native events' are;
    # the fields a message carries beside them are never read.
    walks_depth = False


router = APIRouter(tags=["analytics libraries"], route_class=AnalyticsRoute)
_analytics_writer = require_scope("events:write", basic=True)
AnalyticsWriter = Annotated[Caller, Depends(_analytics_writer)]

_ERRORS = problem_responses(
    *WRITE_ERRORS,
    model=MessageProblem,
    when={
        400: "The body is not valid JSON or valid gzip, or nests JSON deeper than 32 levels.",
        401: "No key, an unknown or revoked key, Basic credentials with a password, or a "
        "`writeKey` in the body that is not the key of the `Authorization` header.",
        413: "The body passes 4 MiB, sent or decompressed.",
        415: "The body is not `application/json`, or is compressed otherwise than once with gzip.",
        422: "The body is not a JSON object, a batch has no `batch` list or more than 2,500 "
        "messages, or `sentAt` is not an RFC 3339 timestamp. A bad message inside a valid "
        "body is not a 422: it gets its own result, `rejected`.",
        503: "The database cannot be reached; the libraries retry, and the retry's repeats "
        "come back `duplicate`.",
    },
)
_SENT_AT = TypeAdapter(Timestamp | None)

_WHO = (
    "For a platform service that keeps its Segment or RudderStack library and points its "
    "`host` at Consentry; the library's write key is an API key with `events:write`."
)
_RULE = (
    "Each track, page and screen message becomes an event and is judged exactly as by "
    "`POST /v1/events`: kept only when its subject's stored consent grants its category "
    "(`properties.consent_category`, else `context.consentry.category`, else the operator's "
    "mapping of its name), never because the message says so; consent data in the message "
    "can only deny more. `identify`, `group` and `alias` carry profile data: nothing of them is "
    "kept (`ignored`). A retry of a message is a `duplicate`. 200 whenever the body parses, "
    "sent once the accepted events are committed; every error answer also carries `message`. "
    "The body may be gzip-compressed; at most 4 MiB decompressed, 32 KiB per message."
)

_EXAMPLE_TRACK: dict[str, Any] = {
    "type": "track",
    "messageId": "4c9f8a7e-3b1d-4e55-9d0a-7f2b8c6e1a93",
    "userId": "u-123",
    "event": "lesson.viewed",
    "properties": {"course_id": "bio-101", "consent_category": "performance"},
    "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
    "timestamp": "2026-11-28T12:00:00.000+00:00",
}
_EXAMPLE_IDENTIFY: dict[str, Any] = {
    "type": "identify",
    "messageId": "0e7d2c51-8a4b-4f3e-b6c9-2d1a5e8f7b40",
    "userId": "u-123",
    "traits": {"plan": "school"},
    "timestamp": "2026-11-28T12:00:00.000+00:00",
}


def _answer(results: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {
        status: sum(1 for result in results if result["status"] == status)
        for status in ("accepted", "duplicate", "rejected", "ignored")
    }
    return {
        "success": True,
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "ignored": counts["ignored"],
        "results": results,
    }


def _ok(example: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": "One result per message, in the order sent.",
            "content": {"application/json": {"example": example}},
        }
    }


def _check_write_key(request: Request, body: dict[str, Any] | AnalyticsBatch) -> None:
    """A write key in the body, even a null one, must be the key the request was admitted with."""
    if isinstance(body, AnalyticsBatch):
        sent, write_key = "writeKey" in body.model_fields_set, body.writeKey
    else:
        sent, write_key = "writeKey" in body, body.get("writeKey")
    if sent and not sent_token_is(request, write_key):
        raise Unauthorized("The writeKey in the body is not the key of the Authorization header.")


async def _ingest(
    request: Request,
    caller: Caller,
    pseudonyms: PseudonymsDep,
    messages: list[Any],
    sent_at: Any,
    kind: str | None = None,
) -> Response:
    state = request.app.state
    result = await analytics.ingest_messages(
        state.event_writer,
        pseudonyms,
        state.event_counts,
        messages,
        sent_at,
        source=caller.key_id or caller.name,
        categories=state.event_categories,
        max_depth=state.max_json_depth,
        kind=kind,
    )
    return json_response(result, headers=NO_STORE)


@router.post(
    "/v1/batch",
    response_model=AnalyticsResult,
    summary="Send analytics messages in a batch (Segment / RudderStack)",
    description=f"{_WHO}\n\nUp to 2,500 messages. {_RULE}",
    responses={
        **_ok(
            _answer(
                [
                    {"message_id": _EXAMPLE_TRACK["messageId"], "status": "accepted"},
                    {"message_id": _EXAMPLE_IDENTIFY["messageId"], "status": "ignored"},
                ]
            )
        ),
        **_ERRORS,
    },
)
async def post_batch(
    body: Annotated[
        AnalyticsBatch,
        Body(
            openapi_examples={
                "segment": {
                    "summary": "A batch as segment-analytics-python sends it",
                    "value": {
                        "batch": [_EXAMPLE_TRACK, _EXAMPLE_IDENTIFY],
                        "sentAt": "2026-11-28T12:00:01.250000+00:00",
                        "writeKey": "csk_...",
                    },
                }
            }
        ),
    ],
    request: Request,
    caller: AnalyticsWriter,
    pseudonyms: PseudonymsDep,
) -> Response:
    """Keep each tracked event its subject's consent allows; one result per message, in order."""
    _check_write_key(request, body)
    return await _ingest(request, caller, pseudonyms, body.batch, body.sentAt)


async def ingest_batch(request: Request) -> Response:
    """POST /v1/batch, answered directly (see shortcuts.DirectRoutes), as
    `events.routes.ingest_events` answers the native intake: what FastAPI does for
    `post_batch`, in its order, then what `post_batch` does."""
    route: JSONRoute = request.scope["route"]
    caller = await _analytics_writer(request)
    await route.read_json(request)
    pseudonyms = await pseudonyms_of(request)
    body: AnalyticsBatch = await route.validated_body(request)
    return await post_batch(body, request, caller, pseudonyms)


MessageBody = Annotated[dict[str, Any], WithJsonSchema(MESSAGE_BODY_SCHEMA)]


def _single_route(kind: str) -> Callable[..., Awaitable[Response]]:
    """The endpoint of `/v1/<kind>`: one message, judged as in a batch."""

    async def post_message(
        message: MessageBody,
        request: Request,
        caller: AnalyticsWriter,
        pseudonyms: PseudonymsDep,
    ) -> Response:
        _check_write_key(request, message)
        try:
            sent_at = _SENT_AT.validate_python(message.get("sentAt"))
        except ValidationError as error:
            raise ValidationFailed(
                "sentAt is not an RFC 3339 timestamp.",
                errors=[
                    {**problem, "loc": ["body", "sentAt"]}
                    for problem in validation_errors(error.errors(include_url=False))
                ],
            ) from None
        return await _ingest(request, caller, pseudonyms, [message], sent_at, kind)

    # The example names the route's type: set here, as an annotation naming a local would not
    # resolve (annotations are text until FastAPI reads them).
    example = _EXAMPLE_IDENTIFY if kind == "identify" else _example(kind)
    post_message.__annotations__["message"] = Annotated[
        MessageBody,
        Body(openapi_examples={kind: {"summary": f"A {kind} message", "value": example}}),
    ]
    post_message.__name__ = f"post_{kind}"
    post_message.__doc__ = f"One {kind} message, judged as in a batch."
    return post_message


def _example(kind: str) -> dict[str, Any]:
    example = {key: value for key, value in _EXAMPLE_TRACK.items() if key != "event"}
    if kind == "track":
        example["event"] = _EXAMPLE_TRACK["event"]
    elif kind in ("page", "screen"):
        example["name"] = "Course overview"
    else:
        example = {key: value for key, value in _EXAMPLE_IDENTIFY.items() if key not in ("traits",)}
        example["groupId" if kind == "group" else "previousId"] = "school-42"
    example["type"] = kind
    return example


for _kind in analytics.MESSAGE_TYPES:
    _profile = _kind in analytics.PROFILE_TYPES
    router.add_api_route(
        f"/v1/{_kind}",
        _single_route(_kind),
        methods=["POST"],
        response_model=AnalyticsResult,
        summary=f"Send one {_kind} message (Segment / RudderStack)",
        description=(
            f"{_WHO}\n\nOne message, the body itself. "
            + (
                f"A {_kind} message carries profile data, not a tracking event: nothing of it "
                "is stored, and its result is `ignored`. "
                if _profile
                else ""
            )
            + _RULE
        ),
        responses={
            **_ok(
                _answer(
                    [
                        {
                            "message_id": _example(_kind)["messageId"],
                            "status": "ignored" if _profile else "accepted",
                        }
                    ]
                )
            ),
            **_ERRORS,
        },
    )

speak_plainly_on(f"/v1/{kind}" for kind in ("batch", *analytics.MESSAGE_TYPES))
