"""Calls to the service's own HTTP API: the policy version, seeding, an acceptance sample."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from bench.errors import HarnessError
from bench.plan import EVENT_AGE_SECONDS, Plan, Subject, batch_templates

SEED_CONCURRENCY = 16
SAMPLE_BATCHES = 3


@dataclass(frozen=True)
class Acceptance:
    """What the service answered to sample batches shaped like the load's."""

    accepted: int
    duplicates: int
    rejected: int

    @property
    def share(self) -> float:
        """The accepted share of every event judged."""
        judged = self.accepted + self.duplicates + self.rejected
        return self.accepted / judged if judged else 0.0


def policy_version(base_url: str) -> str:
    """The policy version the service has in force."""
    response = httpx.get(f"{base_url}/v1/policy", timeout=10.0)
    if response.status_code != 200:
        raise HarnessError(f"GET /v1/policy answered {response.status_code}: {response.text}")
    version: str = response.json()["version"]
    return version


async def seed(base_url: str, admin_key: str, plan: Plan, version: str) -> None:
    """Record every planned choice through PUT, SEED_CONCURRENCY requests at a time."""
    queue: asyncio.Queue[Subject] = asyncio.Queue()
    for subject in plan.recorded:
        queue.put_nowait(subject)
    headers = {"Authorization": f"Bearer {admin_key}"}
    limits = httpx.Limits(max_connections=SEED_CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=30.0
    ) as client:
        await asyncio.gather(*(_seeder(client, queue, version) for _ in range(SEED_CONCURRENCY)))


async def read_each(base_url: str, plan: Plan) -> None:
    """Read every subject's consent once with its own JWT: each learner's first page load."""
    queue: asyncio.Queue[Subject] = asyncio.Queue()
    for subject in plan.subjects:
        queue.put_nowait(subject)
    limits = httpx.Limits(max_connections=SEED_CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) as client:
        await asyncio.gather(*(_reader(client, queue) for _ in range(SEED_CONCURRENCY)))


async def _reader(client: httpx.AsyncClient, queue: asyncio.Queue[Subject]) -> None:
    while not queue.empty():
        subject = queue.get_nowait()
        response = await client.get(
            f"/v1/subjects/{subject.id}/consent",
            headers={"Authorization": f"Bearer {subject.token}"},
        )
        if response.status_code != 200:
            raise HarnessError(f"reading {subject.id} answered {response.status_code}")


async def _seeder(client: httpx.AsyncClient, queue: asyncio.Queue[Subject], version: str) -> None:
    while not queue.empty():
        subject = queue.get_nowait()
        body = {
            "categories": subject.choice,
            "policy_version": version,
            "source": "banner",
            "method": "custom",
        }
        response = await client.put(f"/v1/subjects/{subject.id}/consent", json=body)
        if response.status_code != 200:
            raise HarnessError(
                f"seeding {subject.id} answered {response.status_code}: {response.text}"
            )


def sample_acceptance(base_url: str, events_key: str, plan: Plan) -> Acceptance:
    """Post a few batches exactly like the load's and count the service's verdicts."""
    rng = random.Random(7)  # noqa: S311 -- picks test data, not a secret
    headers = {"Authorization": f"Bearer {events_key}"}
    occurred_at = datetime.now(UTC) - timedelta(seconds=EVENT_AGE_SECONDS)
    stamp = occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as client:
        for _ in range(SAMPLE_BATCHES):
            events = [
                {"event_id": str(uuid.uuid4()), "occurred_at": stamp, **template}
                for template in batch_templates(plan, rng)
            ]
            response = client.post("/v1/events", json={"events": events})
            if response.status_code != 200:
                raise HarnessError(f"POST /v1/events answered {response.status_code}")
            answer = response.json()
            for name in totals:
                totals[name] += int(answer[name])
    return Acceptance(**totals)


def register_systems(base_url: str, admin_key: str, receiver: str, ids: Sequence[str]) -> None:
    """Register systems subscribed to consent.changed, each at its own path of the receiver."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10.0) as client:
        for system_id in ids:
            body = {
                "id": system_id,
                "name": system_id,
                "webhook_url": f"{receiver}/{system_id}",
                "events": ["consent.changed"],
            }
            response = client.post("/v1/systems", json=body)
            if response.status_code != 201:
                raise HarnessError(
                    f"POST /v1/systems answered {response.status_code}: {response.text}"
                )
