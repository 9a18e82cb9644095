"""Signed delivery of consent changes to a real receiver: what is sent, when, and how often."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from standardwebhooks import Webhook, WebhookVerificationError

from consentry.auth import Caller
from consentry.consent import service as consent
from consentry.consent.schemas import ConsentUpdate
from consentry.consent.service import ConsentChange, RequestFacts
from consentry.settings import Settings
from consentry.systems import delivery, urls
from consentry.systems.models import OutboxMessage, WebhookDelivery
from consentry.systems.worker import DeliverySignals, run_deliveries
from tests.faults.polling import until
from tests.helpers import admin, anon_id, choice
from tests.systems.receiver import Receiver, Reply
from tests.systems.support import SYSTEMS, deliver, deliveries, later, register, verified
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

LEARNER = "learner-5c1e"


async def _put(client: httpx.AsyncClient, subject: str = LEARNER, **categories: bool) -> Any:
    headers = {**admin(), "User-Agent": "agent-never-announced", "X-Forwarded-For": "203.0.113.9"}
    response = await client.put(
        f"/v1/subjects/{subject}/consent", json=choice(**categories), headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _count(app: FastAPI, table: Any) -> int:
    async with app.state.database.reader() as reader:
        return int(await reader.scalar(select(func.count()).select_from(table)))


async def test_a_learners_change_reaches_each_subscriber_signed_and_thin(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    first = await register(client, "recs", f"{receiver.url}/recs")
    second = await register(client, "analytics", f"{receiver.url}/analytics")
    await register(client, "erasure-only", f"{receiver.url}/none", events=[], erasure="notify")
    state = await _put(client, customization=True)
    assert await deliver(app) == 2

    by_path = {request.path: request for request in receiver.received}
    assert set(by_path) == {"/recs", "/analytics"}
    bodies = [
        verified(first["secret"], by_path["/recs"]),
        verified(second["secret"], by_path["/analytics"]),
    ]
    # One message: the same webhook-id to both, each signed with its own secret only.
    assert by_path["/recs"].headers["webhook-id"] == by_path["/analytics"].headers["webhook-id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(second["secret"]).verify(by_path["/recs"].body, by_path["/recs"].headers)
    body = bodies[0]
    assert body == bodies[1]
    assert body["type"] == "consent.changed"
    assert body["data"] == {
        "subject_id": LEARNER,
        "revision": 1,
        "categories": {
            "necessary": True,
            "performance": False,
            "functional": False,
            "customization": True,
        },
        "changed": body["data"]["changed"],
        "policy_version": state["policy_version"],
        "effective_at": state["updated_at"],
        "receipt_id": state["receipt_id"],
    }
    raw = by_path["/recs"].body.decode()
    assert "agent-never-announced" not in raw and "203.0.113" not in raw
    assert by_path["/recs"].headers["content-type"] == "application/json"
    listed = await deliveries(client, "recs")
    assert [(d["type"], d["status"], d["attempts"], d["last_status"]) for d in listed] == [
        ("consent.changed", "delivered", 1, "204")
    ]
    assert await deliver(app) == 0  # nothing is sent twice


async def test_anonymous_visitors_and_writes_that_change_nothing_are_not_announced(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await register(client, "recs", f"{receiver.url}/recs")
    await _put(client, anon_id(), performance=True)
    await _put(client, performance=True)
    await _put(client, performance=True)  # the same choice again: nothing recorded
    assert await _count(app, OutboxMessage) == 1
    assert await deliver(app) == 1
    assert [verified_type(r) for r in receiver.received] == ["consent.changed"]


def verified_type(request: Any) -> str:
    return str(orjson.loads(request.body)["type"])


async def test_a_rolled_back_change_announces_nothing(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await register(client, "recs", f"{receiver.url}/recs")
    state = app.state
    pseudonyms = await state.pseudonyms.get()
    change = ConsentChange(
        choice=ConsentUpdate.model_validate(choice(functional=True)),
        categories={"performance": False, "functional": True, "customization": False},
        caller=Caller(kind="key", name="admin", scopes=frozenset({"privacy:admin"})),
        facts=RequestFacts(region=None, gpc=False, ip=None, user_agent=None),
        if_match=None,
    )
    seen: list[int] = []

    async def write_then_fail() -> None:
        async with state.database.unit_of_work() as uow:
            await consent.record_choice(
                uow, state.policy, pseudonyms, state.consent_cache, LEARNER, change
            )
            seen.append(await uow.scalar(select(func.count()).select_from(OutboxMessage)))
            raise RuntimeError("the request failed after the write")

    with pytest.raises(RuntimeError):
        await write_then_fail()
    assert seen == [1]  # the message was written, in the transaction that rolled back
    assert await _count(app, OutboxMessage) == 0
    assert await _count(app, WebhookDelivery) == 0
    assert await deliver(app) == 0 and receiver.received == []
    # The same change committed is announced.
    async with state.database.unit_of_work() as uow:
        await consent.record_choice(
            uow, state.policy, pseudonyms, state.consent_cache, LEARNER, change
        )
    assert await deliver(app) == 1 and len(receiver.received) == 1


async def test_failures_follow_the_schedule_with_jitter_then_exhaust(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await register(client, "recs", f"{receiver.url}/recs")
    receiver.default = Reply(500)
    await _put(client, performance=True)
    elapsed = 0.0
    for attempt, delay in enumerate(delivery.SCHEDULE, start=1):
        before = datetime.now(UTC) + timedelta(seconds=elapsed)
        assert await deliver(app, lambda moment=before: moment) == 1
        [item] = await deliveries(client, "recs")
        assert (item["status"], item["attempts"], item["last_status"]) == ("failed", attempt, "500")
        waits = datetime.fromisoformat(item["next_attempt_at"]) - before
        assert delay * 0.9 <= waits.total_seconds() <= delay * 1.1
        # Not due before its time.
        early = before + waits * 0.85
        assert await deliver(app, lambda moment=early: moment) == 0
        elapsed += waits.total_seconds() + 0.001
    assert await deliver(app, later(elapsed)) == 1
    [item] = await deliveries(client, "recs")
    assert (item["status"], item["attempts"], item["next_attempt_at"]) == ("exhausted", 10, None)
    assert item["retryable"] is True
    assert await deliver(app, later(elapsed + 10 * 86400)) == 0
    ids = {request.headers["webhook-id"] for request in receiver.received}
    assert len(receiver.received) == 10 and len(ids) == 1  # one id on every attempt

    # By hand: sent again now, with the whole schedule ahead of it.
    receiver.default = Reply(200)
    url = f"{SYSTEMS}/recs/deliveries/{item['message_id']}/retry"
    retried = await client.post(url, headers=admin())
    assert retried.status_code == 202 and retried.json()["status"] == "pending"
    assert await deliver(app) == 1
    [item] = await deliveries(client, "recs", status="delivered")
    assert item["attempts"] == 11
    assert_problem(await client.post(url, headers=admin()), 409, "conflict")
    entry = (await client.get("/v1/audit-log", headers=admin())).json()["items"][0]
    assert entry["action"] == "delivery_retried"


async def test_the_retry_schedule_setting_shortens_it(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver, database_url: str
) -> None:
    from tests.conftest import make_settings

    app.state.settings = make_settings(
        database_url, webhook_allow_hosts=["127.0.0.1"], webhook_retry_schedule="1,2"
    )
    await register(client, "recs", f"{receiver.url}/recs")
    receiver.default = Reply(503)
    await _put(client, performance=True)
    assert await deliver(app) == 1
    [item] = await deliveries(client, "recs")
    waits = datetime.fromisoformat(item["next_attempt_at"]) - datetime.fromisoformat(
        item["last_attempt_at"]
    )
    assert 0.9 <= waits.total_seconds() <= 1.1
    assert await deliver(app, later(1.2)) == 1
    assert await deliver(app, later(3.5)) == 1
    assert (await deliveries(client, "recs"))[0]["status"] == "exhausted"


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, "120", 120.0),
        (503, "999999", 86400.0),  # capped at 24 h
        (500, "120", None),  # only 429 and 503 are asked to wait
    ],
)
async def test_retry_after_is_honoured_on_429_and_503(
    app: FastAPI,
    client: httpx.AsyncClient,
    receiver: Receiver,
    status: int,
    retry_after: str,
    expected: float | None,
) -> None:
    await register(client, "recs", f"{receiver.url}/recs")
    receiver.default = Reply(status, headers={"Retry-After": retry_after})
    await _put(client, performance=True)
    assert await deliver(app) == 1
    [item] = await deliveries(client, "recs")
    waits = (
        datetime.fromisoformat(item["next_attempt_at"])
        - datetime.fromisoformat(item["last_attempt_at"])
    ).total_seconds()
    if expected is None:
        assert 4.5 <= waits <= 5.5  # the schedule's first delay, with its jitter
    else:
        assert waits == pytest.approx(expected, abs=0.01)


async def test_a_410_disables_the_system_until_its_next_put(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    created = await register(client, "recs", f"{receiver.url}/recs")
    receiver.replies = [Reply(410)]
    await _put(client, performance=True)
    assert await deliver(app) == 1
    system = (await client.get(f"{SYSTEMS}/recs", headers=admin())).json()
    assert system["disabled"] is True and system["disabled_at"] is not None
    await _put(client, performance=False)
    # Nothing goes to a disabled system, however long one waits.
    assert await deliver(app, later(86400 * 3)) == 0
    assert len(receiver.received) == 1
    body = {k: created[k] for k in ("name", "webhook_url", "events", "erasure")}
    again = await client.put(f"{SYSTEMS}/recs", json=body, headers=admin())
    assert again.status_code == 200 and again.json()["disabled"] is False
    assert await deliver(app, later(86400)) == 2
    assert {d["status"] for d in await deliveries(client, "recs")} == {"delivered"}
    entry = (await client.get("/v1/audit-log", headers=admin())).json()["items"][0]
    assert entry["action"] == "system_changed" and entry["details"]["enabled"] is True


async def test_redirects_are_not_followed_and_answers_are_read_at_most_64_kib(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await register(client, "recs", f"{receiver.url}/recs")
    receiver.replies = [
        Reply(302, headers={"Location": f"{receiver.url}/elsewhere"}),
        Reply(200, body=b"x" * (8 * 1024 * 1024)),
    ]
    await _put(client, performance=True)
    assert await deliver(app) == 1
    [item] = await deliveries(client, "recs")
    assert (item["status"], item["last_status"]) == ("failed", "302")
    assert [request.path for request in receiver.received] == ["/recs"]
    assert await deliver(app, later(10)) == 1
    [item] = await deliveries(client, "recs")
    assert item["status"] == "delivered"
    # The sender stopped reading long before 8 MiB and closed the connection.
    for _ in range(100):
        if receiver.cut_short:
            break
        await asyncio.sleep(0.05)
    assert receiver.cut_short == 1


async def test_an_answer_whose_head_does_not_fit_in_64_kib_is_a_lost_connection(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await register(client, "recs", f"{receiver.url}/recs")
    receiver.replies = [Reply(204, headers={"X-Pad": "a" * (80 * 1024)})]
    await _put(client, performance=True)
    assert await deliver(app) == 1
    [item] = await deliveries(client, "recs")
    assert (item["status"], item["last_status"], item["last_error"]) == (
        "failed",
        "refused",
        "connection_lost",
    )


async def test_an_attempt_that_takes_too_long_times_out(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The contract's 15 s, shortened so the test waits less; the path is the same.
    monkeypatch.setattr(delivery, "TIMEOUT_SECONDS", 0.3)
    await register(client, "recs", f"{receiver.url}/recs")
    receiver.replies = [Reply(200, delay=2.0)]
    await _put(client, performance=True)
    assert await deliver(app) == 1
    [item] = await deliveries(client, "recs")
    assert (item["status"], item["last_status"]) == ("failed", "timeout")


async def test_every_attempt_checks_the_url_again_and_connects_to_the_address_it_checked(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A name only this test's resolver knows: a second lookup by the HTTP client would fail.
    lookups: list[str] = []

    async def resolve(host: str, port: int) -> list[urls.IPAddress]:
        lookups.append(host)
        return [urls.ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(urls, "resolve", resolve)
    await register(client, "recs", f"http://hooks.platform.test:{receiver.port}/recs")
    assert lookups == ["hooks.platform.test"]
    await _put(client, performance=True)
    assert await deliver(app) == 1
    assert lookups == ["hooks.platform.test"] * 2
    [request] = receiver.received
    assert request.headers["host"] == f"hooks.platform.test:{receiver.port}"
    assert (await deliveries(client, "recs"))[0]["status"] == "delivered"

    # Allowed at registration, refused at delivery once the rules say so (or DNS changed).
    await _put(client, performance=False)
    assert await deliver(app, allow=urls.AllowList.parse([])) == 1
    item = (await deliveries(client, "recs"))[0]
    assert (item["status"], item["last_status"], item["last_error"]) == (
        "failed",
        "refused",
        "url_not_allowed",
    )
    assert len(receiver.received) == 1


async def test_after_a_rotation_both_secrets_sign_for_a_day(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    created = await register(client, "recs", f"{receiver.url}/recs")
    rotated = (await client.post(f"{SYSTEMS}/recs/secret", headers=admin())).json()
    await _put(client, performance=True)
    assert await deliver(app) == 1
    [request] = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert verified(created["secret"], request) == verified(rotated["secret"], request)
    # A day later only the new one signs.
    await _put(client, performance=False)
    assert await deliver(app, later(86400 + 60)) == 1
    newest = receiver.received[-1]
    assert len(newest.headers["webhook-signature"].split(" ")) == 1
    assert verified(rotated["secret"], newest)["data"]["revision"] == 2
    with pytest.raises(WebhookVerificationError):
        verified(created["secret"], newest)


async def test_deliveries_list_filters_pages_and_refuses_what_it_does_not_know(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await register(client, "recs", f"{receiver.url}/recs")
    receiver.replies = [Reply(500)]
    for granted in (True, False, True):
        await _put(client, performance=granted)
    assert await deliver(app) == 3
    failed = await deliveries(client, "recs", status="failed")
    delivered = await deliveries(client, "recs", status="delivered")
    assert (len(failed), len(delivered)) == (1, 2)
    assert all("body" not in item and "data" not in item for item in failed + delivered)
    first = await client.get(f"{SYSTEMS}/recs/deliveries?limit=2", headers=admin())
    page = first.json()
    rest = await client.get(
        f"{SYSTEMS}/recs/deliveries",
        params={"limit": 2, "cursor": page["next_cursor"]},
        headers=admin(),
    )
    ids = [item["message_id"] for item in page["items"] + rest.json()["items"]]
    assert len(set(ids)) == 3 and rest.json()["next_cursor"] is None
    assert_problem(
        await client.get(f"{SYSTEMS}/nobody/deliveries", headers=admin()), 404, "not_found"
    )
    bad = await client.get(f"{SYSTEMS}/recs/deliveries?status=lost", headers=admin())
    assert_problem(bad, 422, "validation_error")
    unknown = f"{SYSTEMS}/recs/deliveries/msg_{'0' * 32}/retry"
    assert_problem(await client.post(unknown, headers=admin()), 404, "not_found")
    malformed = f"{SYSTEMS}/recs/deliveries/not-a-message/retry"
    assert_problem(await client.post(malformed, headers=admin()), 422, "validation_error")
    retried = await client.post(
        f"{SYSTEMS}/recs/deliveries/{failed[0]['message_id']}/retry", headers=admin()
    )
    assert retried.status_code == 202


async def test_metrics_show_each_systems_deliveries(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await register(client, "recs", f"{receiver.url}/recs")
    await register(client, "quiet", f"{receiver.url}/quiet", events=[])
    receiver.default = Reply(500)
    await _put(client, performance=True)
    await _put(client, performance=False)
    assert await deliver(app) == 2
    await _put(client, functional=True)
    text = (await client.get("/metrics")).text
    assert 'consentry_webhook_deliveries{status="failed",system="recs"} 2.0' in text
    assert 'consentry_webhook_deliveries{status="pending",system="recs"} 1.0' in text
    assert 'consentry_webhook_deliveries{status="exhausted",system="recs"} 0.0' in text
    assert 'consentry_webhook_deliveries{status="pending",system="quiet"} 0.0' in text
    assert 'consentry_webhook_system_disabled{system="recs"} 0.0' in text
    age = next(
        line
        for line in text.splitlines()
        if line.startswith('consentry_webhook_oldest_pending_age_seconds{system="recs"}')
    )
    assert float(age.rsplit(" ", 1)[1]) >= 0


async def test_two_workers_at_once_send_each_message_once(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await register(client, "recs", f"{receiver.url}/recs")
    receiver.default = Reply(200, delay=0.01)
    for number in range(40):
        await _put(client, f"learner-{number}", performance=True)
    claimed = await asyncio.gather(deliver(app), deliver(app))
    assert sum(claimed) == 40
    ids = [request.headers["webhook-id"] for request in receiver.received]
    assert len(ids) == len(set(ids)) == 40


async def test_the_worker_sends_a_backlog_a_batch_per_lane_at_once(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver, settings: Settings
) -> None:
    """One batch waiting on its slowest answer no longer holds back the rest of a backlog: the
    worker sent a batch, waited for all of it, recorded it, and only then claimed the next."""
    await register(client, "recs", f"{receiver.url}/recs")
    receiver.default = Reply(200, delay=0.5)
    backlog = delivery.BATCH + 16
    for number in range(backlog):
        await _put(client, f"learner-{number}", performance=True)
    signals = DeliverySignals()
    worker = asyncio.create_task(run_deliveries(settings, app.state.database, signals))

    async def all_received() -> bool:
        return len(receiver.received) >= backlog

    try:
        await until(all_received, f"{backlog} deliveries received")
    finally:
        signals.stop()
        await worker
    assert receiver.most_answering > delivery.BATCH
    ids = [request.headers["webhook-id"] for request in receiver.received]
    assert len(ids) == len(set(ids)) == backlog
