"""The analytics libraries' tracking API through the app: mapping, the one rule, auth, bodies."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from consentry.events.analytics import NAMESPACE
from consentry.privacy.worker import run_once
from consentry.settings import Settings
from tests.conftest import make_settings
from tests.events.support import count_rows, new_subject, now, record, stored
from tests.helpers import ADMIN_KEY, admin, bearer, make_key, rfc3339
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

JSON = {"Content-Type": "application/json"}
MIB = 1024 * 1024
CATEGORIES = {"lesson.viewed": "performance", "quiz.*": "necessary", "quiz.hint.*": "customization"}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The operator maps a few event names to categories."""
    mapping = tmp_path / "categories.json"
    mapping.write_text(json.dumps(CATEGORIES))
    return make_settings(database_url, event_categories=mapping)


def basic(key: str, password: str = "") -> dict[str, str]:
    """HTTP Basic credentials as the libraries send their write key."""
    encoded = base64.b64encode(f"{key}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def track(subject: str | None, name: str = "lesson.viewed", **fields: Any) -> dict[str, Any]:
    """A track message as segment-analytics-python builds it, happening now."""
    message: dict[str, Any] = {
        "type": "track",
        "messageId": str(uuid.uuid4()),
        "event": name,
        "properties": {},
        "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
        "timestamp": rfc3339(now()),
        "integrations": {},
    }
    if subject is not None:
        message["userId"] = subject
    message.update(fields)
    return message


async def send(
    client: httpx.AsyncClient,
    messages: list[Any],
    headers: dict[str, str] | None = None,
    **envelope: Any,
) -> httpx.Response:
    body = {"batch": messages, "sentAt": rfc3339(now()), **envelope}
    return await client.post(
        "/v1/batch", json=body, headers=basic(ADMIN_KEY) if headers is None else headers
    )


async def taken(client: httpx.AsyncClient, messages: list[Any], **envelope: Any) -> list[str]:
    """Each message's outcome: its status, or the reason of its rejection."""
    response = await send(client, messages, **envelope)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["success"] is True
    assert len(answer["results"]) == len(messages)
    return [r["reason"] if r["status"] == "rejected" else r["status"] for r in answer["results"]]


async def test_granted_is_stored_denied_and_unrecorded_are_not(client: httpx.AsyncClient) -> None:
    granted, denied, unrecorded = new_subject(), new_subject(), new_subject()
    await record(client, granted, performance=True)
    await record(client, denied, performance=False)
    messages = [track(granted), track(denied), track(unrecorded), track(unrecorded, "quiz.done")]
    assert await taken(client, messages) == [
        "accepted",
        "consent_denied",
        "consent_denied",  # fail closed: no record is the opt_in defaults
        "accepted",  # `quiz.*` is necessary
    ]
    [kept] = await stored(client, granted)
    expected_id = str(uuid.uuid5(NAMESPACE, f"admin:{messages[0]['messageId']}"))
    assert kept["event_id"] == expected_id
    assert kept["category"] == "performance"
    assert kept["name"] == "lesson.viewed"
    assert kept["context"]["library"]["name"] == "analytics-python"
    assert await stored(client, denied) == []


async def test_a_resent_message_is_a_duplicate_and_keys_never_collide(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    subject = new_subject()
    await record(client, subject, performance=True)
    message = track(subject)
    assert await taken(client, [message, message]) == ["accepted", "duplicate"]
    assert await taken(client, [message]) == ["duplicate"]
    # The same messageId from another key is another event.
    other = await make_key(app, "course-service", "events:write")
    response = await send(client, [message], basic(other))
    assert response.json()["results"][0]["status"] == "accepted"
    assert len(await stored(client, subject)) == 2


async def test_where_the_category_comes_from(client: httpx.AsyncClient) -> None:
    subject = new_subject()
    await record(client, subject, performance=True, customization=True)
    messages = [
        track(subject, "unmapped", properties={"consent_category": "performance"}),
        track(subject, "unmapped", context={"consentry": {"category": "customization"}}),
        # The message's own word comes before the operator's mapping.
        track(subject, "quiz.done", properties={"consent_category": "functional"}),
        track(subject, "quiz.hint.shown"),  # the longest prefix wins
        track(subject, "quiz"),  # `quiz.*` covers names below `quiz.` only
        track(subject, "unmapped"),
        track(subject, "unmapped", properties={"consent_category": "marketing"}),
    ]
    assert await taken(client, messages) == [
        "accepted",
        "accepted",
        "consent_denied",
        "accepted",
        "unknown_category",
        "unknown_category",
        "unknown_category",
    ]
    categories = sorted(item["category"] for item in await stored(client, subject))
    assert categories == ["customization", "customization", "performance"]


@pytest.mark.parametrize(
    "context",
    [
        {"consent": {"categoryPreferences": {"performance": False}}},
        {"consent": {"categoryPreferences": {"Analytics_Storage": False}}},
        {"consentManagement": {"deniedConsentIds": ["performance"], "provider": "custom"}},
    ],
    ids=["segment-preferences", "consent-mode-name", "rudderstack-denied-ids"],
)
async def test_the_message_may_deny_more(
    client: httpx.AsyncClient, context: dict[str, Any]
) -> None:
    subject = new_subject()
    await record(client, subject, performance=True)
    assert await taken(client, [track(subject, context=context)]) == ["consent_denied"]
    assert await stored(client, subject) == []


async def test_the_message_never_allows_more(client: httpx.AsyncClient) -> None:
    subject = new_subject()
    await record(client, subject, performance=False)
    allowing = {
        "consent": {"categoryPreferences": {"performance": True}},
        "consentManagement": {"allowedConsentIds": ["performance"], "deniedConsentIds": []},
    }
    assert await taken(client, [track(subject, context=allowing)]) == ["consent_denied"]
    assert await taken(client, [track(new_subject(), context=allowing)]) == ["consent_denied"]


async def test_profile_calls_store_nothing(app: FastAPI, client: httpx.AsyncClient) -> None:
    subject = new_subject()
    await record(client, subject, performance=True)
    profile = [
        {"type": "identify", "messageId": "m-1", "userId": subject, "traits": {"email": "x@y"}},
        {"type": "group", "messageId": "m-2", "userId": subject, "groupId": "school"},
        {"type": "alias", "messageId": "m-3", "userId": subject, "previousId": "old"},
    ]
    response = await send(client, profile)
    answer = response.json()
    assert answer["ignored"] == 3 and answer["accepted"] == 0
    assert [r["message_id"] for r in answer["results"]] == ["m-1", "m-2", "m-3"]
    assert await count_rows(app) == 0


async def test_anonymous_ids_and_invalid_messages(client: httpx.AsyncClient) -> None:
    anonymous = str(uuid.uuid4()).upper()
    subject = new_subject()
    await record(client, f"anon:{anonymous.lower()}", performance=True)
    messages: list[Any] = [
        track(None, anonymousId=anonymous),
        track(None, anonymousId="device-42"),
        track(None),
        track("not a subject id"),
        track(subject, messageId=None),
        track(subject, type="purchase"),
        track(subject, timestamp="yesterday"),
        track(subject, properties={"blob": "x" * (33 * 1024)}),
        "not a message",
    ]
    response = await send(client, messages)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0]["status"] == "accepted"
    assert all(r["reason"] == "invalid" for r in results[1:]), results
    details = [r["detail"] for r in results[1:]]
    assert details[0].startswith("anonymousId:")
    assert details[1].startswith("userId or anonymousId:")
    assert details[2].startswith("userId:")
    assert details[3].startswith("messageId:") and results[4]["message_id"] is None
    assert details[4].startswith("type:")
    assert details[5].startswith("timestamp:")
    assert details[6].startswith("message:")
    assert results[8]["message_id"] is None
    [kept] = await stored(client, f"anon:{anonymous.lower()}")
    assert kept["subject_id"] == f"anon:{anonymous.lower()}"


async def test_sent_at_corrects_the_clock(client: httpx.AsyncClient) -> None:
    subject = new_subject()
    await record(client, subject, performance=True)
    # The sender's clock is an hour behind: its "now" is an hour ago.
    behind = now().replace(microsecond=0).timestamp() - 3600
    stamp = rfc3339(now().fromtimestamp(behind, now().tzinfo))
    message = track(subject, timestamp=stamp)
    assert await taken(client, [message], sentAt=stamp) == ["accepted"]
    [kept] = await stored(client, subject)
    assert abs(now().timestamp() - now().fromisoformat(kept["occurred_at"]).timestamp()) < 60


async def test_single_message_routes(client: httpx.AsyncClient) -> None:
    subject = new_subject()
    await record(client, subject, performance=True)
    message = {key: value for key, value in track(subject).items() if key != "type"}
    response = await client.post("/v1/track", json=message, headers=basic(ADMIN_KEY))
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [
        {"message_id": message["messageId"], "status": "accepted"}
    ]
    page = {"messageId": "p-1", "userId": subject, "name": "lesson.viewed"}
    answer = (await client.post("/v1/page", json=page, headers=bearer(ADMIN_KEY))).json()
    assert answer["accepted"] == 1
    identify = {"messageId": "i-1", "userId": subject, "traits": {}}
    answer = (await client.post("/v1/identify", json=identify, headers=basic(ADMIN_KEY))).json()
    assert answer["ignored"] == 1
    assert len(await stored(client, subject)) == 2
    bad = await client.post(
        "/v1/track", json={**message, "sentAt": "soon"}, headers=basic(ADMIN_KEY)
    )
    assert assert_problem(bad, 422, "validation_error")["message"]


async def test_write_key_must_be_the_header_key(app: FastAPI, client: httpx.AsyncClient) -> None:
    subject = new_subject()
    await record(client, subject, performance=True)
    matching = await send(client, [track(subject)], writeKey=ADMIN_KEY)
    assert matching.status_code == 200
    for wrong in ("csk_another", 42, "", None):
        response = await send(client, [track(subject)], writeKey=wrong)
        body = assert_problem(response, 401, "unauthorized")
        assert body["message"] == body["detail"]
        assert "csk_" not in body["detail"]
    assert len(await stored(client, subject)) == 1
    assert await count_rows(app) == 1


async def test_credentials(app: FastAPI, client: httpx.AsyncClient) -> None:
    writer = await make_key(app, "tracker", "events:write")
    reader = await make_key(app, "reader", "consent:read")
    for headers in (basic(writer), bearer(writer)):
        assert (await send(client, [], headers)).status_code == 200
    refused = {
        "none": ({}, 401),
        "password": (basic(writer, "secret"), 401),
        "not-base64": ({"Authorization": "Basic ***"}, 401),
        "no-colon": ({"Authorization": "Basic " + base64.b64encode(writer.encode()).decode()}, 401),
        "unknown": (basic("csk_unknown"), 401),
        "scope": (basic(reader), 403),
    }
    for name, (headers, status) in refused.items():
        response = await send(client, [], headers)
        body = assert_problem(response, status, "forbidden" if status == 403 else "unauthorized")
        assert body["message"], name
    # Basic is for the libraries' routes only.
    elsewhere = await client.get("/v1/audit-log", headers=basic(ADMIN_KEY))
    assert_problem(elsewhere, 401, "unauthorized")
    assert "message" not in elsewhere.json()


async def test_envelope_errors_carry_message(client: httpx.AsyncClient) -> None:
    problems = [
        (await client.post("/v1/batch", json={"messages": []}, headers=basic(ADMIN_KEY)), 422),
        (await client.post("/v1/batch", json=[], headers=basic(ADMIN_KEY)), 422),
        (await send(client, [track("u-1")] * 2501), 422),
        (await send(client, [], sentAt="2026-01-01"), 422),
        (
            await client.post("/v1/batch", content=b"{", headers={**JSON, **basic(ADMIN_KEY)}),
            400,
        ),
        (
            await client.post(
                "/v1/batch",
                content=b"batch",
                headers={"Content-Type": "text/plain", **basic(ADMIN_KEY)},
            ),
            415,
        ),
        (await client.get("/v1/batch", headers=basic(ADMIN_KEY)), 405),
    ]
    for response, status in problems:
        assert response.status_code == status, response.text
        body = response.json()
        assert body["message"] == body["detail"]


def gzipped(body: Any) -> bytes:
    return gzip.compress(json.dumps(body).encode())


async def test_gzip_bodies(app: FastAPI, client: httpx.AsyncClient) -> None:
    subject = new_subject()
    await record(client, subject, performance=True)
    headers = {**JSON, **basic(ADMIN_KEY), "Content-Encoding": "gzip"}
    response = await client.post(
        "/v1/batch", content=gzipped({"batch": [track(subject)]}), headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    assert len(await stored(client, subject)) == 1


async def test_gzip_members_may_follow_each_other(client: httpx.AsyncClient) -> None:
    subject = new_subject()
    await record(client, subject, performance=True)
    text = json.dumps({"batch": [track(subject)]}).encode()
    body = gzip.compress(text[:10]) + gzip.compress(text[10:])
    headers = {**JSON, **basic(ADMIN_KEY), "Content-Encoding": "gzip"}
    response = await client.post("/v1/batch", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1


def _bomb(size: int) -> bytes:
    """A valid gzip body of `size` bytes of JSON whitespace, compressed about a thousandfold."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [compressor.compress(b'{"batch": [')]
    chunk = b" " * MIB
    for _ in range(size // MIB):
        parts.append(compressor.compress(chunk))
    parts.append(compressor.compress(b"]}"))
    parts.append(compressor.flush())
    return b"".join(parts)


async def test_decompressed_size_counts_against_the_limit(client: httpx.AsyncClient) -> None:
    headers = {**JSON, **basic(ADMIN_KEY), "Content-Encoding": "gzip"}
    fits = await client.post("/v1/batch", content=_bomb(3 * MIB), headers=headers)
    assert fits.status_code == 200, fits.text
    bomb = _bomb(64 * MIB)  # 64 MiB decompressed, about 64 KiB sent
    assert len(bomb) < MIB // 8
    response = await client.post("/v1/batch", content=bomb, headers=headers)
    body = assert_problem(response, 413, "payload_too_large")
    assert "decompressed" in body["message"]


async def test_bad_codings(client: httpx.AsyncClient) -> None:
    headers = {**JSON, **basic(ADMIN_KEY)}
    plain = json.dumps({"batch": []}).encode()
    cases = [
        ({"Content-Encoding": "gzip"}, plain, 400),
        ({"Content-Encoding": "gzip"}, gzip.compress(plain)[:-8], 400),
        ({"Content-Encoding": "br"}, plain, 415),
        ({"Content-Encoding": "gzip, gzip"}, gzip.compress(gzip.compress(plain)), 415),
        ({"Content-Encoding": "identity"}, plain, 200),
    ]
    for extra, content, status in cases:
        response = await client.post("/v1/batch", content=content, headers={**headers, **extra})
        assert response.status_code == status, (extra, response.text)
        if status != 200:
            assert response.json()["message"]


async def test_batches_up_to_four_mebibytes(client: httpx.AsyncClient) -> None:
    headers = {**JSON, **basic(ADMIN_KEY)}
    padding = " " * (4 * MIB - 64)
    fits = f'{{"batch": []{padding}}}'.encode()
    assert len(fits) < 4 * MIB
    assert (await client.post("/v1/batch", content=fits, headers=headers)).status_code == 200
    over = b'{"batch": []' + b" " * (4 * MIB) + b"}"
    response = await client.post("/v1/batch", content=over, headers=headers)
    assert assert_problem(response, 413, "payload_too_large")["message"]


async def test_each_message_meets_the_native_limits(client: httpx.AsyncClient) -> None:
    subject = new_subject()
    await record(client, subject, performance=True)
    messages = [
        track(subject, properties={"blob": "x" * (9 * 1024)}),  # 8 KiB per object, as natively
        track(subject, name="n" * 129),
        track(subject, properties={"deep": _nested(40)}),
    ]
    response = await send(client, messages)
    assert [r["reason"] for r in response.json()["results"]] == ["invalid"] * 3
    assert await stored(client, subject) == []


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


async def test_erased_subjects_keep_nothing(app: FastAPI, client: httpx.AsyncClient) -> None:
    subject = new_subject()
    await record(client, subject, performance=True)
    body = {"subject_id": subject, "reason": "account_deleted"}
    response = await client.post("/v1/erasure-requests", json=body, headers=admin())
    assert response.status_code == 202, response.text
    state = app.state
    await run_once(state.settings, state.database, state.pseudonyms, lambda: now())
    assert await taken(client, [track(subject, "quiz.done")]) == ["subject_erased"]
    assert await count_rows(app) == 0


def test_a_bad_mapping_refuses_to_start(tmp_path: Path) -> None:
    from consentry.app import create_app
    from consentry.events.categories import CategoryMapError

    cases = {
        "missing.json": None,
        "list.json": "[]",
        "category.json": '{"lesson.viewed": "marketing"}',
        "star.json": '{"*": "performance"}',
        "middle.json": '{"quiz.*.done": "necessary"}',
        "json.json": "{",
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_text(content)
        settings = make_settings("sqlite+aiosqlite:///:memory:", event_categories=path)
        with pytest.raises(CategoryMapError, match=name):
            create_app(settings)
