"""The consent write answered directly gives the answers of FastAPI's route, refusals too."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
import pytest

from tests.helpers import admin, anon_id, bearer, choice, user_token

pytestmark = pytest.mark.anyio

# Headers that differ from one request to the next whoever answers.
_VARYING = {"date", "x-request-id", "etag", "content-length"}


def _answer(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k not in _VARYING}
    if not response.content:
        return response.status_code, headers, None
    body = response.json()
    if response.status_code == 200:
        # A new receipt and new stamps each time.
        body["receipt_id"] = body["updated_at"] = None
        for category in body["categories"].values():
            category["updated_at"] = None
    return response.status_code, headers, body


def _requests(subject: str) -> list[tuple[str, dict[str, str], bytes]]:
    """Requests to write `subject`'s consent: (method, headers, body)."""
    own = {**bearer(user_token(subject)), "content-type": "application/json"}
    json = {"content-type": "application/json"}

    def body(value: Any) -> bytes:
        return httpx.Request("PUT", "http://t", json=value).content

    return [
        ("PUT", own, body(choice(performance=True))),
        ("PATCH", own, body({**choice(), "categories": {"functional": True}})),
        ("PATCH", own, body({**choice(), "categories": {}})),
        # Bodies that do not fit the schema, and the service's own 422s.
        ("PUT", own, body({})),
        ("PATCH", own, body([])),
        ("PATCH", own, body("choice")),
        ("PUT", own, body({**choice(), "categories": {"performance": True}})),
        ("PUT", own, body({**choice(), "categories": {"performance": "yes"}})),
        ("PATCH", own, body({**choice(), "categories": {"cookies": True}})),
        ("PUT", own, body({**choice(), "extra": 1})),
        ("PATCH", own, body({**choice(), "method": "all", "source": "mail"})),
        ("PATCH", own, body({**choice(), "policy_version": "1999-01-01"})),
        (
            "PUT",
            own,
            body({**choice(), "categories": {**choice()["categories"], "necessary": False}}),
        ),
        ("PUT", own, body({**choice(), "region": "Germany"})),
        ("PUT", own, body({**choice(), "source": "notice", "method": None})),
        # Bodies refused before they are validated.
        ("PUT", own, b'{"categories": '),
        ("PUT", own, b""),
        ("PATCH", {**own, "content-type": "text/plain"}, body(choice())),
        ("PATCH", {**own, "content-encoding": "gzip"}, gzip.compress(body(choice()))),
        ("PUT", own, b"[" * 40 + b"]" * 40),
        ("PUT", own, b" " * (2 * 1024 * 1024)),
        # Callers refused, before the body is read.
        ("PUT", json, body(choice())),
        ("PUT", {**bearer(user_token("someone-else")), **json}, body(choice())),
        ("PUT", {**bearer("not-a-token"), **json}, b"not json"),
        # A precondition.
        ("PUT", {**own, "if-match": '"nothing-like-it"'}, body(choice())),
        ("PUT", {**own, "if-match": "*"}, body(choice(functional=True))),
    ]


async def test_each_answer_is_the_routes(
    client: httpx.AsyncClient, routed: httpx.AsyncClient
) -> None:
    answers: dict[str, list[Any]] = {}
    for name, http in (("direct", client), ("routed", routed)):
        # A subject each, in the same state before each request.
        subject = f"learner-{name}"
        answers[name] = []
        for method, headers, content in _requests(subject):
            response = await http.request(
                method, f"/v1/subjects/{subject}/consent", headers=headers, content=content
            )
            answer = _answer(response)
            if answer[2] and "instance" in answer[2]:
                answer[2]["instance"] = answer[2]["instance"].replace(subject, "<subject>")
            if answer[0] == 200:
                answer[2]["subject_id"] = "<subject>"
            answers[name].append(answer)
    for direct, through_router in zip(answers["direct"], answers["routed"], strict=True):
        assert direct == through_router
    assert {status for status, _, _ in answers["direct"]} >= {
        200,
        400,
        401,
        403,
        412,
        413,
        415,
        422,
    }


async def test_an_anonymous_visitor_and_a_key_write_alike(
    client: httpx.AsyncClient, routed: httpx.AsyncClient
) -> None:
    for headers in ({}, admin()):
        answers = []
        for http in (client, routed):
            subject = anon_id()
            response = await http.patch(
                f"/v1/subjects/{subject}/consent", headers=headers, json=choice(customization=True)
            )
            answer = _answer(response)
            answer[2]["subject_id"] = "<subject>"
            answers.append(answer)
        assert answers[0] == answers[1]
        assert answers[0][0] == 200
