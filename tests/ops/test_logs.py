"""The log of a real `consentry serve` at INFO: JSON lines, request ids, and no personal data."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import ADMIN_KEY, JWT_SECRET, bearer, choice, event, user_token
from tests.processes import environment, serving

# Values that must never reach the log, each easy to find in it.
SUBJECT = f"u-logcheck-{uuid.uuid4().hex[:8]}"
OTHER_SUBJECT = f"u-logcheck-{uuid.uuid4().hex[:8]}"
FORWARDED_FOR = "203.0.113.77"
STORED_NETWORK = "203.0.113.0"
PROPERTY = f"property-value-{uuid.uuid4().hex[:8]}"
ECHO = f"echo-me-{uuid.uuid4().hex[:8]}"
BAD_TOKEN = f"not-a-token-{uuid.uuid4().hex}"


def _requests(base: str, token: str) -> list[httpx.Response]:
    """A learner's day, with mistakes: every response, for the request ids it carries."""
    mine = {**bearer(token), "X-Forwarded-For": FORWARDED_FOR}
    consent = f"{base}/v1/subjects/{SUBJECT}/consent"
    events = [event(SUBJECT, properties={"lesson": PROPERTY}, context={"page": PROPERTY})]
    with httpx.Client() as client:
        return [
            client.put(consent, json=choice(performance=True), headers=mine),
            client.get(consent, headers=mine),
            client.get(f"{consent}/history", headers=mine),
            client.get(consent, headers=bearer(BAD_TOKEN)),
            client.get(f"{base}/v1/subjects/{SUBJECT}/events", headers=bearer(ADMIN_KEY)),
            client.post(f"{base}/v1/events", json={"events": events}, headers=bearer(ADMIN_KEY)),
            # Input a careless error message would repeat.
            client.put(consent, json={**choice(), "source": ECHO}, headers=mine),
            client.put(consent, json={"categories": {ECHO: True}}, headers=mine),
            client.put(
                consent,
                content=f'{{"policy_version": "{ECHO}"'.encode(),
                headers={**mine, "Content-Type": "application/json"},
            ),
            client.post(
                f"{base}/v1/events",
                json={"events": [{**events[0], "occurred_at": ECHO}]},
                headers=bearer(ADMIN_KEY),
            ),
            client.get(f"{base}/v1/subject/{OTHER_SUBJECT}/consent"),
            client.get(f"{base}/{SUBJECT}", headers={"X-Request-ID": SUBJECT + " spaced"}),
            client.post(
                f"{base}/v1/erasure-requests",
                json={"subject_id": OTHER_SUBJECT, "reason": "account_deleted"},
                headers=bearer(ADMIN_KEY),
            ),
        ]


def test_the_log_holds_json_lines_with_request_ids_and_no_personal_data(tmp_path: Path) -> None:
    env = environment(
        CONSENTRY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        CONSENTRY_LOG_LEVEL="info",
        CONSENTRY_ADMIN_KEY=ADMIN_KEY,
        CONSENTRY_JWT_SECRET=JWT_SECRET,
        CONSENTRY_TRUSTED_PROXIES="127.0.0.1/32",
        CONSENTRY_WORKER_INTERVAL_SECONDS="0.2",
    )
    log_file = tmp_path / "serve.log"
    token = user_token(SUBJECT)
    with serving(env, log_file) as base:
        responses = _requests(base, token)
        # The erasure runs in the worker while the server is up, so its lines are read too.
        erasure = responses[-1].json()["id"]
        for _ in range(100):
            status = httpx.get(f"{base}/v1/erasure-requests/{erasure}", headers=bearer(ADMIN_KEY))
            if status.json()["status"] == "completed":
                break
        assert status.json()["status"] == "completed"
    assert [r.status_code for r in responses] == [
        200, 200, 200, 401, 200, 200, 422, 422, 400, 200, 404, 404, 202,
    ]  # fmt: skip
    text = log_file.read_text()
    for secret in (SUBJECT, OTHER_SUBJECT, token, BAD_TOKEN, ADMIN_KEY, JWT_SECRET):
        assert secret not in text
    for value in (FORWARDED_FOR, STORED_NETWORK, PROPERTY, ECHO):
        assert value not in text

    lines: list[dict[str, Any]] = [json.loads(line) for line in text.splitlines()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    access = {line["request_id"]: line for line in lines if line["logger"] == "consentry.access"}
    for response in responses:
        line = access[response.headers["x-request-id"]]
        assert line["status"] == response.status_code
        assert line["method"] == response.request.method
        assert "{" in line["route"] or line["route"] in (
            "/v1/events",
            "/v1/erasure-requests",
            "unmatched",
        )
    assert (
        access[responses[0].headers["x-request-id"]]["route"] == "/v1/subjects/{subject_id}/consent"
    )
    assert {line["logger"] for line in lines} >= {"uvicorn.error", "alembic.runtime.migration"}
