"""Hostile ids, parameters, headers, sizes and random bodies: never a 500, nothing stored."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers import admin, choice
from tests.test_errors import (
    CONSENT,
    assert_problem,
    body_of,
    history,
    lenient,
    send,
    stored_subjects,
)

pytestmark = pytest.mark.anyio

LIMIT = 64 * 1024  # the default of CONSENTRY_MAX_BODY_BYTES


@pytest.mark.parametrize(
    ("subject", "status"),
    [
        ("a" * 257, 422),
        ("-learner", 422),
        (".learner", 422),
        ("learner 1", 422),
        ("léarner", 422),
        ("learner\N{RIGHT-TO-LEFT OVERRIDE}1", 422),
        ("learner%00", 422),
        ("%FF", 422),
        ("%2E%2E", 422),
        ("learner;1", 422),
        ("a%2Fb", 404),
        ("a/b", 404),
        ("..", 404),
        ("", 404),
    ],
)
async def test_invalid_subject_id_is_refused_before_anything_is_stored(
    app: FastAPI, client: httpx.AsyncClient, subject: str, status: int
) -> None:
    base = f"/v1/subjects/{subject}/consent"
    code = "validation_error" if status == 422 else "not_found"
    assert_problem(await client.get(base, headers=admin()), status, code)
    assert_problem(await client.get(f"{base}/history", headers=admin()), status, code)
    assert_problem(await client.put(base, json=choice(), headers=admin()), status, code)
    assert await stored_subjects(app) == set()


async def test_longest_subject_id_is_accepted(client: httpx.AsyncClient) -> None:
    subject = "a" * 256
    response = await client.put(f"/v1/subjects/{subject}/consent", json=choice(), headers=admin())
    assert response.status_code == 200, response.text
    assert len(await history(client, subject)) == 1


def foreign(value: Any) -> str:
    """A cursor this service never issued: valid base64url around arbitrary JSON."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("limit", "0"),
        ("limit", "1001"),
        ("limit", "-1"),
        ("limit", "abc"),
        ("limit", "1.5"),
        ("limit", ""),
        ("limit", "9" * 40),
        ("cursor", "garbage"),
        ("cursor", "!!!"),
        ("cursor", "x" * 513),
        ("cursor", base64.urlsafe_b64encode(b"\xff\xfe\x00").decode()),
        ("cursor", {"v": 1, "id": "other"}),
        ("cursor", {"v": 2, "seq": 1}),
        ("cursor", {"seq": 1}),
        ("cursor", {"v": 1, "seq": "1"}),
        ("cursor", {"v": 1, "seq": -1}),
        ("cursor", {"v": 1, "seq": 1.5}),
        ("cursor", {"v": 1, "seq": True}),
        ("cursor", {"v": 1, "seq": 1, "limit": 5}),
        ("cursor", [1]),
        ("cursor", None),
        ("cursor", {"v": 1, "seq": 2**31}),
        ("cursor", {"v": 1, "seq": 2**63}),
    ],
    ids=lambda value: repr(value)[:32],
)
async def test_bad_page_parameter_is_422(
    client: httpx.AsyncClient, field: str, value: object
) -> None:
    sent = value if isinstance(value, str) else foreign(value)  # JSON goes in as a cursor
    response = await client.get(f"{CONSENT}/history", params={field: sent}, headers=admin())
    body = assert_problem(response, 422, "validation_error")
    assert [error["loc"] for error in body["errors"]] == [["query", field]]


async def test_issued_cursor_pages_on(client: httpx.AsyncClient) -> None:
    for performance in (True, False):
        response = await client.put(CONSENT, json=choice(performance), headers=admin())
        assert response.status_code == 200
    first = await client.get(f"{CONSENT}/history", params={"limit": 1}, headers=admin())
    cursor = first.json()["next_cursor"]
    second = await client.get(f"{CONSENT}/history", params={"cursor": cursor}, headers=admin())
    assert second.status_code == 200
    assert [item["categories"]["performance"] for item in second.json()["items"]] == [True]


async def test_very_long_header_values(client: httpx.AsyncClient) -> None:
    long = "x" * 100_000
    headers = {**admin(), "User-Agent": long, "Sec-GPC": long, "X-Junk": long}
    response = await client.put(CONSENT, json=choice(), headers=headers)
    assert response.status_code == 200, response.text
    [record] = await history(client)
    assert record["user_agent"] == "x" * 512
    assert record["gpc"] is False


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"Authorization": "Bearer " + "x" * 100_000}, 401, "unauthorized"),
        ({"Authorization": "Bearer csk_" + "x" * 100_000}, 401, "unauthorized"),
        ({"Authorization": "Basic " + "x" * 100_000}, 401, "unauthorized"),
        ({**admin(), "If-Match": '"' + "x" * 100_000 + '"'}, 412, "precondition_failed"),
        ({**admin(), "Content-Type": "text/" + "x" * 100_000}, 415, "unsupported_media_type"),
    ],
    ids=["bearer", "api-key", "basic", "if-match", "content-type"],
)
async def test_very_long_header_value_is_refused(
    client: httpx.AsyncClient, headers: dict[str, str], status: int, code: str
) -> None:
    response = await client.put(CONSENT, json=choice(), headers=headers)
    assert_problem(response, status, code)
    assert await history(client) == []


async def test_a_thousand_headers(client: httpx.AsyncClient) -> None:
    junk = [(f"X-Junk-{i}", "y") for i in range(1000)]
    response = await client.put(CONSENT, json=choice(), headers=[*admin().items(), *junk])
    assert response.status_code == 200, response.text


async def test_duplicated_user_agent_keeps_the_first(client: httpx.AsyncClient) -> None:
    headers = [*admin().items(), ("User-Agent", "first"), ("User-Agent", "second")]
    assert (await client.put(CONSENT, json=choice(), headers=headers)).status_code == 200
    assert [record["user_agent"] for record in await history(client)] == ["first"]


@pytest.mark.parametrize(
    ("if_match", "status"),
    [
        ("*", 200),
        ("{etag}", 200),
        ('"other", {etag}', 200),
        ('W/"x"', 412),
        ("W/{etag}", 412),  # If-Match compares strongly: a weak tag never matches
        ("garbage", 412),
        ('""', 412),
        (",,,", 412),
        ('"{etag}"', 412),
    ],
)
async def test_odd_if_match_on_put(client: httpx.AsyncClient, if_match: str, status: int) -> None:
    etag = (await client.get(CONSENT, headers=admin())).headers["etag"]
    headers = {**admin(), "If-Match": if_match.format(etag=etag)}
    response = await client.put(CONSENT, json=choice(performance=True), headers=headers)
    assert response.status_code == status, response.text
    if status == 412:
        assert_problem(response, 412, "precondition_failed")
        assert await history(client) == []
    else:
        assert len(await history(client)) == 1


async def test_control_characters_in_user_agent_are_dropped(client: httpx.AsyncClient) -> None:
    headers = {**admin(), "User-Agent": "agent\x00\x07/1.0"}
    response = await client.put(CONSENT, json=choice(), headers=headers)
    assert response.status_code == 200, response.text
    [record] = await history(client)
    assert record["user_agent"] == "agent/1.0"


async def test_second_authorization_header_is_refused(client: httpx.AsyncClient) -> None:
    headers = [("Authorization", admin()["Authorization"]), ("Authorization", "Bearer garbage")]
    response = await client.get(CONSENT, headers=headers)
    assert_problem(response, 401, "unauthorized")


async def test_repeated_if_match_lines_form_one_list(client: httpx.AsyncClient) -> None:
    etag = (await client.get(CONSENT, headers=admin())).headers["etag"]
    headers = [*admin().items(), ("If-Match", '"other"'), ("If-Match", etag)]
    response = await client.put(CONSENT, json=choice(), headers=headers)
    assert response.status_code == 200, response.text


def padded(size: int) -> bytes:
    """A valid PUT body padded with whitespace to exactly `size` bytes."""
    content = body_of()
    return content + b" " * (size - len(content))


async def test_body_at_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    response = await send(client, padded(LIMIT))
    assert response.status_code == 200, response.text


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await send(client, padded(LIMIT + 1))
    assert response.request.headers["content-length"] == str(LIMIT + 1)
    assert_problem(response, 413, "payload_too_large")
    assert await history(client) == []


async def test_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        content = padded(LIMIT + 1)
        for start in range(0, len(content), 4096):
            yield content[start : start + 4096]

    response = await client.put(
        CONSENT, content=chunks(), headers={**admin(), "Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")
    assert await history(client) == []


@pytest.mark.parametrize(
    ("declared", "status", "code"),
    [
        ([b"abc"], 400, "malformed_request"),
        ([b"\xb2"], 400, "malformed_request"),  # "²": a digit to str.isdigit(), not to int()
        ([b"-1"], 400, "malformed_request"),
        ([b"+300"], 400, "malformed_request"),
        ([b"1e3"], 400, "malformed_request"),
        ([b""], 400, "malformed_request"),
        ([b"300", b"301"], 400, "malformed_request"),
        ([b"9" * 5000], 413, "payload_too_large"),  # past int()'s 4300 digits
        ([b"0" * 30 + b"70000"], 413, "payload_too_large"),
        ([b"10"], 413, "payload_too_large"),  # the stream is counted, whatever was declared
    ],
)
async def test_content_length_that_lies(
    client: httpx.AsyncClient, declared: list[bytes], status: int, code: str
) -> None:
    headers = [(name.encode(), value.encode()) for name, value in admin().items()]
    headers += [(b"Content-Type", b"application/json")]
    headers += [(b"Content-Length", value) for value in declared]
    content = padded(LIMIT + 1) if code == "payload_too_large" else body_of()
    response = await client.put(CONSENT, content=content, headers=headers)
    assert_problem(response, status, code)
    assert await history(client) == []


_JUNK: tuple[Any, ...] = (None, True, 0, -1, 1.5, 2**64, "", "true", "x" * 300, [], {}, [True])
_NAMES = ("surprise", "necessary", "Performance", "\x00", "__proto__")
_NEST = "__nest__"


def mutate(rng: random.Random) -> bytes:
    """A valid PUT body after one to three random mutations; often no longer JSON."""
    body: dict[str, Any] = choice(region="DE", language="de")
    depth = 0
    for _ in range(rng.randint(1, 3)):
        categories = body.get("categories")
        target = categories if isinstance(categories, dict) and rng.random() < 0.5 else body
        key = rng.choice(sorted(target) or ["categories"])
        action = rng.choice(("drop", "swap", "add", "nest"))
        if action == "drop":
            target.pop(key, None)
        elif action == "swap":
            target[key] = rng.choice(_JUNK)
        elif action == "add":
            target[rng.choice(_NAMES)] = rng.choice((*_JUNK, False))
        elif not depth:
            target[key], depth = _NEST, rng.randint(2, 2000)
    opener, closer = rng.choice(((b"[", b"]"), (b'{"a": ', b"}")))
    nest = opener * depth + b"true" + closer * depth
    raw = json.dumps(body).encode().replace(f'"{_NEST}"'.encode(), nest)
    at = rng.randrange(len(raw) + 1)
    damage = rng.choice(("none", "none", "insert", "truncate"))
    if damage == "insert":
        raw = raw[:at] + rng.randbytes(rng.randint(1, 8)) + raw[at:]
    elif damage == "truncate":
        raw = raw[:at]
    return raw


_CODES = {
    400: {"malformed_request"},
    422: {"validation_error", "required_category", "unknown_policy_version"},
}


async def test_random_mutations_never_fail_the_server(app: FastAPI) -> None:
    rng = random.Random(20261128)
    accepted: set[str] = set()
    seen: set[int] = set()
    async with lenient(app) as http:
        for i in range(300):
            subject, content = f"fuzz-{i}", mutate(rng)
            method = rng.choice(["PUT", "PATCH"])
            headers = {**admin(), "Content-Type": "application/json"}
            response = await http.request(
                method, f"/v1/subjects/{subject}/consent", content=content, headers=headers
            )
            status = response.status_code
            seen.add(status)
            if status == 200:
                accepted.add(subject)
                continue
            assert status in _CODES, f"{method} {content[:300]!r} -> {status} {response.text}"
            body = assert_problem(response, status, response.json().get("code"))
            assert body["code"] in _CODES[status], content[:300]
    assert seen == {200, 400, 422}
    assert await stored_subjects(app) == accepted


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/policy"),
        ("GET", "/healthz"),
        ("GET", CONSENT),
        ("DELETE", "/v1/providers/video-cdn"),
        ("DELETE", "/v1/erasure-requests/00000000-0000-4000-8000-000000000000"),
        ("POST", "/v1/nowhere"),
        ("PUT", CONSENT),
    ],
)
async def test_every_route_refuses_a_declared_body_past_the_limit_first(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    """Before routing, authentication or parsing: no token is sent, yet the answer is 413."""
    headers = [(b"Content-Length", str(LIMIT + 1).encode()), (b"Content-Type", b"text/plain")]
    response = await client.request(method, path, content=b" " * (LIMIT + 1), headers=headers)
    assert_problem(response, 413, "payload_too_large")
    assert response.headers["cache-control"] == "no-store"
    bad = [(b"Content-Length", b"12x")]
    assert_problem(await client.request(method, path, headers=bad), 400, "malformed_request")


async def test_the_event_intake_keeps_its_own_limit(client: httpx.AsyncClient) -> None:
    """Past the default limit yet within 1 MiB, a batch reaches its route (which wants a key)."""
    headers = [(b"Content-Length", str(LIMIT + 1).encode()), (b"Content-Type", b"application/json")]
    response = await client.post("/v1/events", content=b" " * (LIMIT + 1), headers=headers)
    assert_problem(response, 401, "unauthorized")
    headers = [(b"Content-Length", str(2**20 + 1).encode())]
    response = await client.post("/v1/events", content=b" " * (2**20 + 1), headers=headers)
    assert_problem(response, 413, "payload_too_large")
