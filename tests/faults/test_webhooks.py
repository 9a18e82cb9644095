"""Webhooks against real processes: a receiver down and back, a worker killed mid-delivery, two
workers on one database. Every message arrives, none is sent twice at once, and the reference
receiver acts on each once."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from consentry.app import create_app
from consentry.systems.delivery import LEASE
from tests.conftest import make_settings
from tests.faults.polling import until
from tests.helpers import ADMIN_KEY, admin, choice
from tests.processes import CONSENTRY, environment, free_port, server_process
from tests.systems.receiver import Reply, receiving
from tests.systems.support import deliver, register, verified

pytestmark = [pytest.mark.anyio, pytest.mark.postgresql_only]

REFERENCE_RECEIVER = Path(__file__).parents[2] / "examples" / "webhook_receiver.py"
# Short delays, so a receiver that comes back is tried again within the test.
FAST = {
    "CONSENTRY_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    "CONSENTRY_WEBHOOK_RETRY_SCHEDULE": "0.2,0.5,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1",
    "CONSENTRY_WEBHOOK_POLL_SECONDS": "0.1",
}


@pytest.fixture
async def app(pg_url: str) -> AsyncIterator[FastAPI]:
    """The service in this process, without a worker of its own: the workers are processes."""
    application = create_app(make_settings(pg_url, webhook_allow_hosts=["127.0.0.1"]))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("198.51.100.23", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def _changes(client: httpx.AsyncClient, count: int, prefix: str = "learner") -> None:
    for number in range(count):
        body = choice(performance=number % 2 == 0, functional=True)
        put = await client.put(
            f"/v1/subjects/{prefix}-{number}/consent", json=body, headers=admin()
        )
        assert put.status_code == 200, put.text


async def _statuses(client: httpx.AsyncClient, system_id: str) -> list[dict[str, Any]]:
    response = await client.get(
        f"/v1/systems/{system_id}/deliveries", params={"limit": 1000}, headers=admin()
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


@contextmanager
def _worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`consentry worker` until the block ends (killed if still running)."""
    with (
        log.open("wb") as output,
        subprocess.Popen([*CONSENTRY, "worker"], env=env, stdout=output, stderr=output) as worker,
    ):
        try:
            yield worker
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()


@contextmanager
def _reference_receiver(
    port: int, secret: str, database: Path, log: Path, *extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    """examples/webhook_receiver.py as its own process, until the block ends."""
    command = [
        sys.executable,
        str(REFERENCE_RECEIVER),
        "--port",
        str(port),
        "--secret",
        secret,
        "--database",
        str(database),
        *extra,
    ]
    with log.open("wb") as output, subprocess.Popen(command, stdout=output, stderr=output) as proc:
        try:
            yield proc
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def _query(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(database)) as db:
        return db.execute(sql).fetchall()


async def test_a_receiver_down_for_a_while_gets_every_message_once_it_is_up(
    pg_url: str, tmp_path: Path
) -> None:
    env = environment(CONSENTRY_DATABASE_URL=pg_url, CONSENTRY_ADMIN_KEY=ADMIN_KEY, **FAST)
    port = free_port()
    with server_process(env, tmp_path / "server.log") as server:
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            system = await register(client, "course-progress", f"http://127.0.0.1:{port}/hooks")
            await _changes(client, 30)

            async def all_failed() -> bool:
                items = await _statuses(client, "course-progress")
                return len(items) == 30 and all(
                    i["status"] == "failed" and i["last_status"] == "refused" for i in items
                )

            await until(all_failed, "every message failed while the receiver was down")
            database = tmp_path / "receiver.db"
            # Up, but answering 500 to its first five requests after acting on them: those are
            # sent again, and its deduplication must keep one effect of each.
            with _reference_receiver(
                port, system["secret"], database, tmp_path / "receiver.log", "--fail-first", "5"
            ):

                async def all_delivered() -> bool:
                    items = await _statuses(client, "course-progress")
                    return all(item["status"] == "delivered" for item in items)

                await until(all_delivered, "every message was delivered once the receiver was up")
            message_ids = {
                item["message_id"] for item in await _statuses(client, "course-progress")
            }
    receipts = _query(database, "SELECT webhook_id, verified FROM receipts")
    assert {webhook_id for webhook_id, _ in receipts} == message_ids
    assert all(verified for _, verified in receipts)  # every signature verified
    assert len(receipts) >= 35  # the five answered 500 came again
    processed = _query(database, "SELECT webhook_id FROM processed")
    assert len(processed) == 30 and {row[0] for row in processed} == message_ids
    consent = _query(database, "SELECT subject_id, revision FROM consent ORDER BY subject_id")
    assert consent == sorted((f"learner-{n}", 1) for n in range(30))


async def test_committed_changes_survive_a_worker_killed_mid_delivery(
    app: FastAPI, client: httpx.AsyncClient, pg_url: str, tmp_path: Path
) -> None:
    with receiving() as receiver:
        # The first attempt hangs in the receiver: the worker is killed while it waits.
        receiver.replies = [Reply(200, delay=10.0)]
        receiver.default = Reply(200)
        system = await register(client, "course-progress", f"{receiver.url}/hooks")
        # Committed with no worker running: a crash between commit and delivery loses nothing.
        await _changes(client, 1)
        env = environment(CONSENTRY_DATABASE_URL=pg_url, **FAST)
        with _worker(env, tmp_path / "worker.log") as worker:

            async def in_flight() -> bool:
                return len(receiver.received) == 1

            await until(in_flight, "the worker's first attempt reached the receiver")
            worker.send_signal(signal.SIGKILL)
            assert await asyncio.to_thread(worker.wait, 30) == -signal.SIGKILL
        [item] = await _statuses(client, "course-progress")
        # The attempt counted and leased: no other worker sends it while it might be under way.
        assert (item["status"], item["attempts"], item["delivered_at"]) == ("pending", 1, None)
        assert await deliver(app) == 0
        # Once the lease has run out, the next worker takes it over and delivers it.
        after = datetime.now(UTC) + LEASE
        assert await deliver(app, lambda: after) == 1
        [item] = await _statuses(client, "course-progress")
        assert (item["status"], item["attempts"]) == ("delivered", 2)
        ids = [request.headers["webhook-id"] for request in receiver.received]
        assert ids == [item["message_id"]] * 2  # at least once, under one id
        bodies = [verified(system["secret"], request) for request in receiver.received]
        assert bodies[0] == bodies[1]


async def test_two_worker_processes_never_send_one_attempt_twice_at_once(
    app: FastAPI, client: httpx.AsyncClient, pg_url: str, tmp_path: Path
) -> None:
    with receiving() as receiver:
        receiver.default = Reply(200, delay=0.02)
        await register(client, "course-progress", f"{receiver.url}/hooks")
        await _changes(client, 150)
        env = environment(CONSENTRY_DATABASE_URL=pg_url, **FAST)
        with _worker(env, tmp_path / "one.log"), _worker(env, tmp_path / "two.log"):

            async def drained() -> bool:
                items = await _statuses(client, "course-progress")
                return all(item["status"] == "delivered" for item in items)

            await until(drained, "both workers delivered everything", seconds=60)
        assert receiver.most_at_once == 1
        ids = [request.headers["webhook-id"] for request in receiver.received]
        assert len(ids) == len(set(ids)) == 150
        items = await _statuses(client, "course-progress")
        assert {item["attempts"] for item in items} == {1}
