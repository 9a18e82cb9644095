"""An erasure across the platform's systems: told from the outbox, confirmed, ended, cleared."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from consentry.privacy.retention import run_retention
from consentry.privacy.worker import run_once
from consentry.settings import Settings
from tests.conftest import make_settings
from tests.helpers import admin, bearer, choice
from tests.privacy.test_erasure import FULL_ERASURE, SUBJECT, _dump, _learner_with_data
from tests.systems.receiver import Receiver, Reply, receiving
from tests.systems.support import deliver, deliveries, register, verified
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

ERASURES = "/v1/erasure-requests"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, webhook_allow_hosts=["127.0.0.1"])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as live:
        yield live


def at(offset: timedelta = timedelta()) -> Callable[[], datetime]:
    moment = datetime.now(UTC) + offset
    return lambda: moment


async def work(app: FastAPI, clock: Callable[[], datetime] | None = None) -> int:
    state = app.state
    return await run_once(state.settings, state.database, state.pseudonyms, clock or at())


async def _erase(client: httpx.AsyncClient, subject: str = SUBJECT) -> str:
    body = {"subject_id": subject, "reason": "account_deleted"}
    response = await client.post(ERASURES, json=body, headers=admin())
    assert response.status_code == 202, response.text
    request_id: str = response.json()["id"]
    return request_id


async def _read(client: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    response = await client.get(f"{ERASURES}/{request_id}", headers=admin())
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def _systems(request: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {entry["id"]: (entry["mode"], entry["status"]) for entry in request["systems"]}


def _erasure_messages(receiver: Receiver, path: str) -> list[Any]:
    return [
        request
        for request in receiver.received
        if request.path == path and orjson.loads(request.body)["type"] == "erasure.requested"
    ]


async def _confirm(
    client: httpx.AsyncClient, request_id: str, token: str, system_id: str, **deleted: int
) -> httpx.Response:
    body = {"system_id": system_id, "deleted": deleted}
    return await client.post(
        f"{ERASURES}/{request_id}/confirmations", json=body, headers=bearer(token)
    )


async def test_every_system_told_of_erasures_hears_and_the_request_waits_for_them(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    progress = await register(client, "course-progress", f"{receiver.url}/progress", [], "confirm")
    support = await register(client, "support-desk", f"{receiver.url}/support", [], "notify")
    await register(client, "analytics", f"{receiver.url}/analytics", ["consent.changed"], "none")
    await _learner_with_data(client)
    request_id = await _erase(client)
    assert await work(app) == 1

    waiting = await _read(client, request_id)
    assert waiting["status"] == "awaiting_systems" and waiting["completed_at"] is None
    assert waiting["subject_id"] is None and waiting["erased_at"] is not None
    assert waiting["deleted"] == FULL_ERASURE
    assert _systems(waiting) == {
        "course-progress": ("confirm", "pending"),
        "support-desk": ("notify", "pending"),
    }
    # What was still to be said about the subject is not sent after its erasure.
    assert {i["status"] for i in await deliveries(client, "analytics")} == {"exhausted"}
    # Consentry's own part is done at once: the subject answers 410 already.
    gone = await client.get(f"/v1/subjects/{SUBJECT}/consent", headers=admin())
    assert_problem(gone, 410, "subject_erased")

    while await deliver(app):
        pass
    [to_progress] = _erasure_messages(receiver, "/progress")
    [to_support] = _erasure_messages(receiver, "/support")
    assert _erasure_messages(receiver, "/analytics") == []
    body = verified(progress["secret"], to_progress)
    assert body["data"] == {
        "request_id": request_id,
        "subject_id": SUBJECT,
        "due_by": waiting["due_by"],
        "mode": "confirm",
    }
    assert verified(support["secret"], to_support)["data"]["mode"] == "notify"
    token = to_progress.headers["webhook-confirm-token"]
    assert token.startswith("cct_") and len(token) >= 4 + 22  # at least 128 random bits
    assert token not in to_progress.body.decode()
    assert "webhook-confirm-token" not in to_support.headers

    # The notify system took its message; the confirm system has yet to answer.
    assert _systems(await _read(client, request_id)) == {
        "course-progress": ("confirm", "pending"),
        "support-desk": ("notify", "notified"),
    }
    assert SUBJECT in await _dump(app)  # kept, so that a failed message can be sent again

    confirmed = await _confirm(client, request_id, token, "course-progress", progress_rows=12)
    assert confirmed.status_code == 200, confirmed.text
    done = confirmed.json()
    assert done["status"] == "completed" and done["completed_at"] is not None
    entry = next(e for e in done["systems"] if e["id"] == "course-progress")
    assert entry["status"] == "confirmed" and entry["deleted"] == {"progress_rows": 12}
    assert entry["confirmed_at"] is not None
    # A repeat, even after the end, answers 200 and keeps the first answer.
    again = await _confirm(client, request_id, token, "course-progress", progress_rows=99)
    assert again.status_code == 200
    assert next(e for e in again.json()["systems"] if e["id"] == "course-progress")["deleted"] == {
        "progress_rows": 12
    }
    dump = await _dump(app)
    assert SUBJECT not in dump and token not in dump
    log = (await client.get("/v1/audit-log", headers=admin())).json()["items"]
    actions = [(entry["action"], entry["actor"]) for entry in reversed(log)]
    assert actions[-4:] == [
        ("erasure_requested", "admin"),
        ("erasure_awaiting_systems", "worker"),
        ("erasure_confirmed", "system:course-progress"),
        ("erasure_completed", "system:course-progress"),
    ]


async def test_without_systems_told_of_erasures_the_request_completes_at_once(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await register(client, "analytics", f"{receiver.url}/analytics", ["consent.changed"], "none")
    await _learner_with_data(client)
    request_id = await _erase(client)
    assert await work(app) == 1
    done = await _read(client, request_id)
    assert done["status"] == "completed" and done["systems"] == []
    assert done["completed_at"] == done["erased_at"]
    # The consent changes announced before the erasure are cleared and never sent now.
    assert SUBJECT not in await _dump(app)
    items = await deliveries(client, "analytics")
    assert {(i["status"], i["retryable"]) for i in items} == {("exhausted", False)}
    retry = await client.post(
        f"/v1/systems/analytics/deliveries/{items[0]['message_id']}/retry", headers=admin()
    )
    assert_problem(retry, 409, "conflict")
    assert await deliver(app) == 0 and receiver.received == []


async def test_confirm_tokens_are_fresh_per_attempt_and_fit_one_request_and_system(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await register(client, "course-progress", f"{receiver.url}/progress", [], "confirm")
    await register(client, "recommendations", f"{receiver.url}/recs", [], "confirm")
    receiver.replies = [Reply(500), Reply(500)]  # the first attempt to each fails
    await _learner_with_data(client)
    await _learner_with_data(client, "learner-other")
    first = await _erase(client)
    second = await _erase(client, "learner-other")
    assert await work(app) == 2
    assert await deliver(app) == 4
    assert await deliver(app, at(timedelta(seconds=10))) == 2
    tokens: dict[tuple[str, str], list[str]] = {}
    for request in receiver.received:
        data = orjson.loads(request.body)["data"]
        system = "course-progress" if request.path == "/progress" else "recommendations"
        key = (data["request_id"], system)
        tokens.setdefault(key, []).append(request.headers["webhook-confirm-token"])
    all_tokens = [token for found in tokens.values() for token in found]
    assert len(all_tokens) == len(set(all_tokens)) == 6  # a fresh one on every attempt

    failed_first = next(key for key, found in tokens.items() if len(found) == 2)
    request_id, system_id = failed_first
    other_system = "recommendations" if system_id == "course-progress" else "course-progress"
    other_request = second if request_id == first else first
    token = tokens[failed_first][0]  # the failed attempt's: still valid
    assert_problem(await _confirm(client, other_request, token, system_id), 403, "forbidden")
    assert_problem(await _confirm(client, request_id, token, other_system), 403, "forbidden")
    forged = "cct_" + "A" * 32
    assert_problem(await _confirm(client, request_id, forged, system_id), 403, "forbidden")
    assert_problem(
        await _confirm(client, request_id, "cct_" + "A" * 500, system_id), 403, "forbidden"
    )
    assert (await _confirm(client, request_id, token, system_id)).status_code == 200
    # A token is no key: it opens nothing else.
    assert_problem(await client.get(ERASURES, headers=bearer(token)), 401, "unauthorized")


async def test_failed_systems_show_and_the_privacy_team_confirms_by_hand(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver, database_url: str
) -> None:
    app.state.settings = make_settings(
        database_url, webhook_allow_hosts=["127.0.0.1"], webhook_retry_schedule="1"
    )
    created = await register(client, "course-progress", f"{receiver.url}/progress", [], "confirm")
    await register(client, "exports", f"{receiver.url}/exports", [], "confirm")
    await register(client, "archive", f"{receiver.url}/archive", [], "confirm")
    await register(client, "tutoring", f"{receiver.url}/tutoring", [], "notify")
    receiver.default = Reply(500)
    await _learner_with_data(client)
    request_id = await _erase(client)
    assert await work(app) == 1
    assert await deliver(app) == 4
    assert await deliver(app, at(timedelta(seconds=5))) == 4  # the last attempt: exhausted
    body = {k: created[k] for k in ("name", "webhook_url", "events")}
    # Another system's erasure changed, one is deleted: their entries read failed too.
    changed = await client.put(
        "/v1/systems/exports", json={**body, "erasure": "notify"}, headers=admin()
    )
    assert changed.status_code == 200
    assert (await client.delete("/v1/systems/archive", headers=admin())).status_code == 204
    failed = await _read(client, request_id)
    assert _systems(failed) == {
        "archive": ("confirm", "failed"),
        "course-progress": ("confirm", "failed"),
        "exports": ("confirm", "failed"),
        "tutoring": ("notify", "failed"),
    }
    assert failed["status"] == "awaiting_systems"

    url = f"{ERASURES}/{request_id}/confirmations"
    for system_id in ("course-progress", "exports", "archive"):
        note = f"Deleted by hand in the {system_id} console for {SUBJECT}."
        response = await client.post(
            url, json={"system_id": system_id, "note": note}, headers=admin()
        )
        assert response.status_code == 200, response.text
    unknown = await client.post(url, json={"system_id": "nobody"}, headers=admin())
    assert_problem(unknown, 404, "not_found")
    missing = f"{ERASURES}/00000000-0000-4000-8000-000000000000/confirmations"
    assert_problem(
        await client.post(missing, json={"system_id": "x"}, headers=admin()), 404, "not_found"
    )
    # A notify system whose message is sent again by hand and taken ends the request.
    receiver.default = Reply(204)
    [message] = await deliveries(client, "tutoring")
    retried = await client.post(
        f"/v1/systems/tutoring/deliveries/{message['message_id']}/retry", headers=admin()
    )
    assert retried.status_code == 202
    assert await deliver(app) == 1
    done = await _read(client, request_id)
    assert done["status"] == "completed"
    assert _systems(done)["tutoring"] == ("notify", "notified")
    assert _systems(done)["course-progress"] == ("confirm", "confirmed")
    log = (await client.get("/v1/audit-log?action=erasure_confirmed", headers=admin())).json()
    notes = [entry["details"]["note"] for entry in log["items"]]
    assert len(notes) == 3 and all("[erased subject]" in note for note in notes)
    # Manual confirmations, exhausted deliveries and registered systems: no copy of the id.
    assert SUBJECT not in await _dump(app)


async def test_a_request_past_due_reads_overdue_is_audited_once_and_counted(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await register(client, "course-progress", f"{receiver.url}/progress", [], "confirm")
    await _learner_with_data(client)
    request_id = await _erase(client)
    assert await work(app) == 1
    assert (await _read(client, request_id))["overdue"] is False
    late = at(timedelta(days=31))
    await work(app, late)
    await work(app, late)
    log = (await client.get("/v1/audit-log?action=erasure_overdue", headers=admin())).json()
    assert len(log["items"]) == 1
    assert log["items"][0]["details"]["waiting_for"] == ["course-progress"]
    text = (await client.get("/metrics")).text
    assert 'consentry_erasure_system_waiting{status="pending",system="course-progress"} 1.0' in text
    assert 'consentry_erasure_queue_depth{status="awaiting_systems"} 1.0' in text
    # Read now, the request is not past its due date: only the clock above said so.
    assert "consentry_erasure_overdue_requests 0.0" in text


async def test_the_retention_pass_ends_a_request_still_waiting_after_90_days(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await register(client, "course-progress", f"{receiver.url}/progress", [], "confirm")
    await register(client, "support-desk", f"{receiver.url}/support", [], "notify")
    receiver.default = Reply(503)
    await _learner_with_data(client)
    request_id = await _erase(client)
    assert await work(app) == 1
    assert await deliver(app) == 2
    state = app.state
    soon = await run_retention(
        state.database, now=datetime.now(UTC) + timedelta(days=89), retention_days=365
    )
    assert soon.erasures_ended == 0
    report = await run_retention(
        state.database, now=datetime.now(UTC) + timedelta(days=91), retention_days=365
    )
    assert report.erasures_ended == 1 and "ended 1 erasure requests" in report.describe()
    ended = await _read(client, request_id)
    assert ended["status"] == "completed"
    assert _systems(ended) == {
        "course-progress": ("confirm", "failed"),
        "support-desk": ("notify", "failed"),
    }
    entry = (await client.get("/v1/audit-log?action=erasure_ended", headers=admin())).json()
    assert entry["items"][0]["details"]["systems"] == {
        "course-progress": "failed",
        "support-desk": "failed",
    }
    assert SUBJECT not in await _dump(app)
    assert {i["status"] for i in await deliveries(client, "support-desk")} == {"exhausted"}


async def test_a_rolled_back_erasure_tells_no_system(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from consentry.privacy import repository

    await register(client, "course-progress", f"{receiver.url}/progress", [], "confirm")
    await _learner_with_data(client)
    request_id = await _erase(client)
    original = repository.finish

    async def fail_at_the_end(uow: Any, erased: Sequence[repository.Erased]) -> None:
        if any(done.status == "awaiting_systems" for done in erased):
            raise ConnectionResetError("lost the database at the last step")
        await original(uow, erased)

    monkeypatch.setattr(repository, "finish", fail_at_the_end)
    assert await work(app) == 0
    monkeypatch.undo()
    assert await deliver(app, at(timedelta(hours=1))) == 0 and receiver.received == []
    assert (await _read(client, request_id))["systems"] == []
    assert await work(app, at(timedelta(minutes=2))) == 1
    assert await deliver(app, at(timedelta(minutes=2))) == 1
    assert len(_erasure_messages(receiver, "/progress")) == 1
    consent = await client.get(f"/v1/subjects/{SUBJECT}/consent", headers=admin())
    assert consent.status_code == 410
    assert (
        await client.put(f"/v1/subjects/{SUBJECT}/consent", json=choice(), headers=admin())
    ).status_code == 410
