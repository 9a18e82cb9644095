"""An erasure across real processes: a `confirm` system down while the worker that ran the
erasure's own part is killed; once the system is up, the request completes when it confirms."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.polling import until
from tests.faults.test_webhooks import FAST, _query, _reference_receiver, _worker
from tests.helpers import ADMIN_KEY, admin, choice
from tests.processes import environment, free_port, server_process
from tests.systems.support import register

pytestmark = [pytest.mark.anyio, pytest.mark.postgresql_only]

LEARNER = "learner-erased-across-3f9e"


async def _request(client: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/erasure-requests/{request_id}", headers=admin())
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_a_confirm_system_down_then_up_completes_the_request_after_a_killed_worker(
    pg_url: str, tmp_path: Path
) -> None:
    # The service answers HTTP; the erasures and deliveries are the worker processes' work.
    env = environment(
        CONSENTRY_DATABASE_URL=pg_url,
        CONSENTRY_ADMIN_KEY=ADMIN_KEY,
        CONSENTRY_RUN_WORKER="false",
        CONSENTRY_WORKER_INTERVAL_SECONDS="0.2",
        **FAST,
    )
    port = free_port()
    with server_process(env, tmp_path / "server.log") as server:
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            system = await register(
                client, "course-progress", f"http://127.0.0.1:{port}/hooks", [], "confirm"
            )
            put = await client.put(
                f"/v1/subjects/{LEARNER}/consent", json=choice(True, True), headers=admin()
            )
            assert put.status_code == 200
            asked = await client.post(
                "/v1/erasure-requests", json={"subject_id": LEARNER}, headers=admin()
            )
            request_id = asked.json()["id"]

            with _worker(env, tmp_path / "first.log") as first:

                async def own_part_done_system_down() -> bool:
                    found = await _request(client, request_id)
                    items = (
                        await client.get("/v1/systems/course-progress/deliveries", headers=admin())
                    ).json()["items"]
                    erasing = [i for i in items if i["type"] == "erasure.requested"]
                    return found["status"] == "awaiting_systems" and any(
                        i["last_status"] == "refused" for i in erasing
                    )

                await until(own_part_done_system_down, "the own part ran; the system is down")
                first.send_signal(signal.SIGKILL)
                assert await asyncio.to_thread(first.wait, 30) == -signal.SIGKILL

            waiting = await _request(client, request_id)
            assert waiting["systems"] == [
                {
                    "id": "course-progress",
                    "mode": "confirm",
                    "status": "pending",
                    "confirmed_at": None,
                    "deleted": None,
                }
            ]
            consent = await client.get(f"/v1/subjects/{LEARNER}/consent", headers=admin())
            assert consent.status_code == 410  # Consentry's own part is committed

            database = tmp_path / "receiver.db"
            with (
                _reference_receiver(
                    port,
                    system["secret"],
                    database,
                    tmp_path / "receiver.log",
                    "--system-id",
                    "course-progress",
                    "--consentry",
                    server.base,
                ),
                _worker(env, tmp_path / "second.log"),
            ):

                async def completed() -> bool:
                    return (await _request(client, request_id))["status"] == "completed"

                await until(completed, "the system confirmed and the request completed")
            done = await _request(client, request_id)
    [entry] = done["systems"]
    assert (entry["status"], entry["deleted"]) == ("confirmed", {"consent_rows": 0})
    # Acted on once, though the message may have been sent more than once.
    assert _query(database, "SELECT request_id FROM erasures") == [(request_id,)]
    receipts = _query(database, "SELECT verified FROM receipts")
    assert receipts and all(verified for (verified,) in receipts)
