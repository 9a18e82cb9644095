"""Calls to the service's own HTTP API: the policy version, seeding, an acceptance sample."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.errors import HarnessError
from bench.plan import EVENT_AGE_SECONDS, Plan, Subject, as_message, batch_templates

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


async def read_each(base_url: str, subjects: Sequence[Subject]) -> None:
    """Read each subject's consent once with its own JWT: a page load of each learner."""
    queue: asyncio.Queue[Subject] = asyncio.Queue()
    for subject in subjects:
        queue.put_nowait(subject)
    limits = httpx.Limits(max_connections=SEED_CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) as client:
        await asyncio.gather(*(_reader(client, queue) for _ in range(SEED_CONCURRENCY)))


async def check_each(base_url: str, plan: Plan) -> None:
    """Check every subject's connection once with its own JWT, as a syncing service would."""
    queue: asyncio.Queue[Subject] = asyncio.Queue()
    for subject in plan.subjects:
        queue.put_nowait(subject)
    limits = httpx.Limits(max_connections=SEED_CONCURRENCY)
    path = f"integrations/{INTEGRATION}"
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) as client:
        await asyncio.gather(*(_reader(client, queue, path) for _ in range(SEED_CONCURRENCY)))


# A pooled connection can be closed by the server just as a request goes out on it, which then
# fails without an answer; every request sent through `_request` is idempotent, so it is sent
# again, up to this many times in all, rather than ending the run.
_ATTEMPTS = 3
_DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ConnectError)


async def _request(
    client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """The answer to an idempotent request, sent again when its connection dropped it."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return await client.request(method, url, **kwargs)
        except _DROPPED as error:
            if attempt == _ATTEMPTS:
                raise HarnessError(f"{method} {url}: {type(error).__name__}: {error}") from None
    raise AssertionError("unreachable")


async def _reader(
    client: httpx.AsyncClient, queue: asyncio.Queue[Subject], path: str = "consent"
) -> None:
    while not queue.empty():
        subject = queue.get_nowait()
        response = await _request(
            client,
            "GET",
            f"/v1/subjects/{subject.id}/{path}",
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
        response = await _request(client, "PUT", f"/v1/subjects/{subject.id}/consent", json=body)
        if response.status_code != 200:
            raise HarnessError(
                f"seeding {subject.id} answered {response.status_code}: {response.text}"
            )


# The integration the check scenario reads, and the provider that receives its data.
INTEGRATION = "bench-drive"
_PROVIDER = {
    "id": "bench-drive-inc",
    "name": "Bench drive",
    "kind": "technology",
    "purpose": "Keeps the files learners choose to store in their own drive.",
    "data_shared": ["assignments"],
    "category": "functional",
    "countries": ["US"],
}
_INTEGRATION = {
    "id": INTEGRATION,
    "name": "Bench drive",
    "kind": "cloud_storage",
    "provider_id": _PROVIDER["id"],
    "purpose": "Saves submitted assignments to the learner's own drive.",
    "data_shared": ["assignments"],
    "scopes": [{"id": "files.write", "description": "Save your assignments in your drive."}],
    "default": "ask",
}


async def seed_connections(base_url: str, admin_key: str, plan: Plan) -> None:
    """Declare the bench integration; ask two thirds of the subjects, and half of those approve."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    limits = httpx.Limits(max_connections=SEED_CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=30.0
    ) as client:
        for path, body in (("/v1/providers", _PROVIDER), ("/v1/integrations", _INTEGRATION)):
            response = await client.post(path, json=body)
            if response.status_code != 201:
                raise HarnessError(f"POST {path} answered {response.status_code}: {response.text}")
        queue: asyncio.Queue[Subject] = asyncio.Queue()
        for subject in plan.subjects:
            if subject.number % 3:
                queue.put_nowait(subject)
        await asyncio.gather(*(_connector(client, queue) for _ in range(SEED_CONCURRENCY)))


async def _connector(client: httpx.AsyncClient, queue: asyncio.Queue[Subject]) -> None:
    while not queue.empty():
        subject = queue.get_nowait()
        path = f"/v1/subjects/{subject.id}/integrations/{INTEGRATION}"
        request = {"scopes": ["files.write"]}
        answers = [await _request(client, "POST", f"{path}/requests", json=request)]
        if subject.number % 3 == 2:
            approval = {"decision": "approve", "scopes": ["files.write"]}
            own = {"Authorization": f"Bearer {subject.token}"}
            answers.append(await _request(client, "PUT", path, json=approval, headers=own))
        for response in answers:
            if response.status_code not in (200, 201):
                raise HarnessError(
                    f"connecting {subject.id} answered {response.status_code}: {response.text}"
                )


def sample_acceptance(
    base_url: str, events_key: str, plan: Plan, *, analytics: bool = False
) -> Acceptance:
    """Post a few batches exactly like the load's and count the service's verdicts.

    With `analytics`, as track messages through `/v1/batch` (the analytics libraries' route).
    """
    rng = random.Random(7)  # noqa: S311 -- picks test data, not a secret
    headers = {"Authorization": f"Bearer {events_key}"}
    occurred_at = datetime.now(UTC) - timedelta(seconds=EVENT_AGE_SECONDS)
    stamp = occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as client:
        for _ in range(SAMPLE_BATCHES):
            templates = batch_templates(plan, rng)
            if analytics:
                path = "/v1/batch"
                body: dict[str, object] = {
                    "batch": [
                        {"messageId": str(uuid.uuid4()), "timestamp": stamp, **as_message(t)}
                        for t in templates
                    ]
                }
            else:
                path = "/v1/events"
                body = {
                    "events": [
                        {"event_id": str(uuid.uuid4()), "occurred_at": stamp, **template}
                        for template in templates
                    ]
                }
            response = client.post(path, json=body)
            if response.status_code != 200:
                raise HarnessError(f"POST {path} answered {response.status_code}")
            answer = response.json()
            for name in totals:
                totals[name] += int(answer[name])
    return Acceptance(**totals)


def sample_decisions(base_url: str, key: str, plan: Plan, size: int, category: str) -> int:
    """Ask for `size` seeded subjects as the load does; how many decisions differ from the plan."""
    rng = random.Random(11)  # noqa: S311 -- picks test data, not a secret
    subjects = rng.sample(plan.subjects, size)
    body = {"subject_ids": [s.id for s in subjects], "categories": [category]}
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.post(
        f"{base_url}/v1/consent/decisions", json=body, headers=headers, timeout=30
    )
    if response.status_code != 200:
        raise HarnessError(f"POST /v1/consent/decisions answered {response.status_code}")
    items = response.json()["items"]
    return sum(
        item["subject_id"] != subject.id
        or item["erased"]
        or item["categories"][category] != subject.accepts(category)
        for item, subject in zip(items, subjects, strict=True)
    )


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
