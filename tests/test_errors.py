"""Every refusal is RFC 9457 problem+json with the code API.md names, and records nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from sqlalchemy import select, union
from sqlalchemy.engine import make_url

from consentry.app import create_app
from consentry.consent.models import ConsentRecord, ConsentState
from tests.conftest import make_settings
from tests.helpers import admin, choice

pytestmark = pytest.mark.anyio

PROBLEM_JSON = "application/problem+json"
SUBJECT = "learner-1"
CONSENT = f"/v1/subjects/{SUBJECT}/consent"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem with this status and code; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "Traceback" not in response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith("/" + code)
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    if code == "validation_error":
        assert body["errors"], body
        assert all(set(error) == {"loc", "msg", "type"} for error in body["errors"])
    return body


async def history(client: httpx.AsyncClient, subject: str = SUBJECT) -> list[dict[str, Any]]:
    """The subject's consent history, read with the admin key."""
    response = await client.get(f"/v1/subjects/{subject}/consent/history", headers=admin())
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def stored_subjects(app: FastAPI) -> set[str]:
    """Every subject with a state row or a history record, read straight from the database."""
    query = union(select(ConsentState.subject_id), select(ConsentRecord.subject_id))
    async with app.state.database.reader() as reader:
        return {row["subject_id"] for row in await reader.all(query)}


def lenient(app: FastAPI) -> httpx.AsyncClient:
    """A client that receives a 500 as a response instead of the app's exception."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def send(
    client: httpx.AsyncClient, content: bytes, content_type: str = "application/json"
) -> httpx.Response:
    """A PUT of raw bytes to the consent of SUBJECT, as the admin."""
    headers = {**admin(), "Content-Type": content_type}
    return await client.put(CONSENT, content=content, headers=headers)


def body_of(**fields: Any) -> bytes:
    """A valid PUT body with `fields` replaced, as bytes."""
    return json.dumps(choice(**fields)).encode()


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/nope",
        "/v1",
        "/v1/subjects",
        f"/v1/subjects/{SUBJECT}",
        f"/v1/subjects/{SUBJECT}/nope",
        f"{CONSENT}/history/x",
        "/V1/policy",
        "/v2/policy",
    ],
)
@pytest.mark.parametrize("method", ["GET", "PUT"])
async def test_unknown_route_is_404(client: httpx.AsyncClient, path: str, method: str) -> None:
    response = await client.request(method, path, headers=admin(), json=choice())
    assert_problem(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", CONSENT, {"GET", "PUT", "PATCH"}),
        ("DELETE", CONSENT, {"GET", "PUT", "PATCH"}),
        ("PUT", f"{CONSENT}/history", {"GET"}),
        ("POST", "/v1/policy", {"GET"}),
        ("DELETE", "/healthz", {"GET"}),
    ],
)
async def test_wrong_method_is_405_listing_every_allowed_method(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path, headers=admin(), content=body_of())
    assert_problem(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].split(", ")) == allowed
    assert await history(client) == []


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"content": body_of()},
        {"content": body_of(), "headers": {"Content-Type": "text/plain"}},
        {"data": {"categories": "all"}},
        {"files": {"body": body_of()}},
        {"content": body_of(), "headers": {"Content-Type": "application/merge-patch+json"}},
        {"content": body_of(), "headers": {"Content-Type": "application/jsonx"}},
        {"content": body_of(), "headers": {"Content-Type": "application/json; charset=latin-1"}},
        {
            "content": body_of(),
            "headers": [("Content-Type", "application/json"), ("Content-Type", "text/plain")],
        },
        {
            "content": body_of(),
            "headers": [("Content-Type", "text/plain"), ("Content-Type", "application/json")],
        },
    ],
    ids=[
        "none",
        "text",
        "form",
        "multipart",
        "merge-patch",
        "jsonx",
        "latin-1",
        "json-and-text",
        "text-and-json",
    ],
)
async def test_body_of_another_media_type_is_415(
    client: httpx.AsyncClient, method: str, kwargs: dict[str, Any]
) -> None:
    headers = httpx.Headers(kwargs.get("headers", {}))
    headers.update(admin())
    rest = {key: value for key, value in kwargs.items() if key != "headers"}
    response = await client.request(method, CONSENT, headers=headers, **rest)
    assert_problem(response, 415, "unsupported_media_type")
    assert await history(client) == []


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        'application/json;charset="UTF-8"',
        "application/json; charset=utf-8; profile=consent",
    ],
)
async def test_json_media_type_with_parameters_is_accepted(
    client: httpx.AsyncClient, content_type: str
) -> None:
    response = await send(client, body_of(), content_type)
    assert response.status_code == 200, response.text
    assert len(await history(client)) == 1


@pytest.mark.parametrize(
    "content",
    [
        b"{",
        b'{"categories": {"perfor',
        b"",
        b" ",
        b'{"source": "\xff\xfe"}',
        b"\xc3\x28",
        b'{"x": NaN}',
        b'{"x": Infinity}',
        b'{"x": -Infinity}',
        b"{'source': 'api'}",
        b'{"source": "api",}',
        b'{"source": "api"} // note',
        b"{}{}",
        b'{"language": "\\ud800"}',
        b"\xef\xbb\xbf" + body_of(),
        body_of().replace(b'"banner"', b'"ban\x00ner"'),
    ],
)
async def test_body_that_is_not_json_is_400(client: httpx.AsyncClient, content: bytes) -> None:
    assert_problem(await send(client, content), 400, "malformed_request")
    assert await history(client) == []


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b"[" * 100_000,
        b'{"categories": ' + b'{"a": ' * 100_000 + b"true" + b"}" * 100_001,
    ],
    ids=["arrays", "unclosed", "objects"],
)
async def test_nesting_100000_deep_is_400(
    app: FastAPI, client: httpx.AsyncClient, content: bytes
) -> None:
    app.state.max_body_bytes = 1024 * 1024  # room for the depth, so the depth is what is refused
    assert_problem(await send(client, content), 400, "malformed_request")
    assert await history(client) == []


async def test_nesting_within_the_depth_limit_is_422(client: httpx.AsyncClient) -> None:
    # The body is one level, categories two: 30 more make 32, CONSENTRY_MAX_JSON_DEPTH.
    deep = body_of().replace(b"false", b"[" * 30 + b"]" * 30, 1)
    body = assert_problem(await send(client, deep), 422, "validation_error")
    assert body["errors"][0]["loc"] == ["body", "categories", "performance"]


@pytest.mark.parametrize("levels", [31, 1000])
async def test_nesting_past_the_depth_limit_is_400(client: httpx.AsyncClient, levels: int) -> None:
    deep = body_of().replace(b"false", b"[" * levels + b"]" * levels, 1)
    body = assert_problem(await send(client, deep), 400, "malformed_request")
    assert "deeper than 32 levels" in body["detail"]
    assert await history(client) == []


@pytest.mark.parametrize(
    "content", [b"[]", b'"consent"', b"42", b"null", b"true", b"[" + body_of() + b"]"]
)
async def test_body_that_is_not_an_object_is_422(client: httpx.AsyncClient, content: bytes) -> None:
    body = assert_problem(await send(client, content), 422, "validation_error")
    assert [error["loc"] for error in body["errors"]] == [["body"]]
    assert await history(client) == []


async def test_unknown_field_is_422_naming_it(client: httpx.AsyncClient) -> None:
    body = assert_problem(await send(client, body_of(surprise=1)), 422, "validation_error")
    assert body["errors"] == [
        {
            "loc": ["body", "surprise"],
            "msg": "Extra inputs are not permitted",
            "type": "extra_forbidden",
        }
    ]
    assert await history(client) == []


@pytest.mark.parametrize(
    "fields",
    [
        {"performance": "true"},
        {"performance": 1},
        {"functional": None},
        {"customization": []},
        {"categories": None},
        {"categories": ["performance"]},
        {"categories": "all"},
        {"categories": {}},
        {"categories": {"performance": True, "ads": True}},
        {"policy_version": "x" * 60_000},
        {"policy_version": 20261101},
        {"policy_version": ""},
        {"source": "newsletter"},
        {"source": None},
        {"method": "accept"},
        {"method": 1},
        {"region": "Germany"},
        {"region": "DE-BAYERN"},
        {"region": ""},
        {"region": 49},
        {"language": "de_DE"},
        {"language": "d" * 40},
        {"language": ""},
    ],
    ids=lambda fields: ",".join(f"{key}={value!r}"[:24] for key, value in fields.items()),
)
async def test_wrong_value_is_422(client: httpx.AsyncClient, fields: dict[str, Any]) -> None:
    assert_problem(await send(client, body_of(**fields)), 422, "validation_error")
    assert await history(client) == []


async def test_missing_field_is_422(client: httpx.AsyncClient) -> None:
    content = json.dumps({"categories": choice()["categories"]}).encode()
    body = assert_problem(await send(client, content), 422, "validation_error")
    assert ["body", "source"] in [error["loc"] for error in body["errors"]]
    assert await history(client) == []


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"categories": {**choice()["categories"], "necessary": False}}, "required_category"),
        ({"policy_version": "1999-01-01"}, "unknown_policy_version"),
    ],
)
async def test_rule_violation_is_422_with_its_code(
    client: httpx.AsyncClient, fields: dict[str, Any], code: str
) -> None:
    assert_problem(await send(client, body_of(**fields)), 422, code)
    assert await history(client) == []


async def test_missing_token_is_401_with_challenge(client: httpx.AsyncClient) -> None:
    response = await client.put(CONSENT, json=choice())
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert await history(client) == []


async def test_unexpected_exception_is_500_problem_without_internals(app: FastAPI) -> None:
    async def explode() -> None:
        raise RuntimeError("secret internals at /srv/consentry")

    app.add_api_route("/explode", explode)
    async with lenient(app) as http:
        response = await http.get("/explode")
    assert_problem(response, 500, "internal_error")
    assert "secret" not in response.text


@pytest.mark.parametrize(
    ("raised", "status", "code"),
    [
        (409, 409, "conflict"),
        (412, 412, "precondition_failed"),
        (429, 429, "rate_limited"),
        (418, 400, "malformed_request"),  # a status outside API.md's table has no code to keep
    ],
)
async def test_http_exception_keeps_its_status_and_gets_its_code(
    app: FastAPI, client: httpx.AsyncClient, raised: int, status: int, code: str
) -> None:
    async def refuse() -> None:
        raise HTTPException(raised, detail={"not": "a string"})

    app.add_api_route("/refuse", refuse)
    assert_problem(await client.get("/refuse"), status, code)


@pytest.mark.parametrize(
    "change",
    [{"port": 1}, {"database": "consentry_no_such_db"}, {"username": "consentry_no_such_role"}],
    ids=["refused", "no-database", "no-role"],
)
async def test_unreachable_database_is_503_with_retry_after(
    pg_base_url: str | None, change: dict[str, Any]
) -> None:
    if pg_base_url is None:
        pytest.skip("PostgreSQL is unreachable")
    url = make_url(pg_base_url).set(**change).render_as_string(hide_password=False)
    app = create_app(make_settings(url))
    async with app.router.lifespan_context(app), lenient(app) as http:
        response = await http.get(CONSENT, headers=admin())
    assert_problem(response, 503, "service_unavailable")
    assert response.headers["retry-after"] == "5"
