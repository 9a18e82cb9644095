"""`GET /metrics`: request, event, erasure-queue and pool metrics, read as Prometheus reads them."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from consentry.app import create_app
from consentry.settings import Settings
from tests.helpers import admin, anon_id, choice, event, samples, value

pytestmark = pytest.mark.anyio

CONSENT_ROUTE = "/v1/subjects/{subject_id}/consent"


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_requests_are_counted_by_route_template_never_by_path(
    client: httpx.AsyncClient,
) -> None:
    subjects = [anon_id() for _ in range(3)]
    for subject in subjects:
        assert (await client.get(f"/v1/subjects/{subject}/consent")).status_code == 200
    written = await client.put(f"/v1/subjects/{subjects[0]}/consent", json=choice())
    assert written.status_code == 200
    assert (await client.get(f"/v1/nothing-here/{subjects[1]}")).status_code == 404

    response = await client.get("/metrics")
    scraped = samples(response.text)
    route = {"route": CONSENT_ROUTE}
    assert value(scraped, "consentry_http_requests_total", method="GET", status="200", **route) == 3
    assert value(scraped, "consentry_http_requests_total", method="PUT", status="200", **route) == 1
    assert (
        value(
            scraped, "consentry_http_requests_total", method="GET", route="unmatched", status="404"
        )
        == 1
    )
    count = "consentry_http_request_duration_seconds_count"
    assert value(scraped, count, method="GET", status="200", **route) == 3
    infinite = value(
        scraped,
        "consentry_http_request_duration_seconds_bucket",
        method="GET",
        status="200",
        le="+Inf",
        **route,
    )
    assert infinite == 3
    for subject in subjects:
        assert subject not in response.text


async def test_a_method_no_route_knows_gets_one_label(client: httpx.AsyncClient) -> None:
    for method in ("BREW", "PROPFIND"):
        await client.request(method, "/healthz")
    scraped = await scrape(client)
    assert (
        value(
            scraped, "consentry_http_requests_total", method="other", route="/healthz", status="405"
        )
        == 2
    )


async def test_events_are_counted_by_status_and_reason(client: httpx.AsyncClient) -> None:
    subject = f"u-{uuid.uuid4().hex[:12]}"
    batch = [event(subject), event(subject, "performance"), event(subject, "unknown")]
    response = await client.post("/v1/events", json={"events": batch}, headers=admin())
    assert response.status_code == 200
    scraped = await scrape(client)
    assert value(scraped, "consentry_events_total", status="accepted", reason="") == 1
    assert value(scraped, "consentry_events_total", status="rejected", reason="consent_denied") == 1
    assert (
        value(scraped, "consentry_events_total", status="rejected", reason="unknown_category") == 1
    )


async def test_the_erasure_queue_is_read_from_the_database(client: httpx.AsyncClient) -> None:
    empty = await scrape(client)
    assert value(empty, "consentry_database_up") == 1
    assert value(empty, "consentry_erasure_queue_depth", status="pending") == 0
    assert ("consentry_erasure_queue_depth", frozenset({("status", "pending")})) in empty
    assert value(empty, "consentry_erasure_queue_oldest_age_seconds") == 0


async def test_a_pending_erasure_shows_in_depth_and_age(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    for _ in range(2):
        body = {"subject_id": f"u-{uuid.uuid4().hex[:12]}", "reason": "account_deleted"}
        response = await client.post("/v1/erasure-requests", json=body, headers=admin())
        assert response.status_code == 202
    scraped = await scrape(client)
    assert value(scraped, "consentry_erasure_queue_depth", status="pending") == 2
    assert value(scraped, "consentry_erasure_queue_depth", status="failed") == 0
    assert value(scraped, "consentry_erasure_queue_oldest_age_seconds") > 0


async def test_pool_gauges_name_the_one_pool(client: httpx.AsyncClient) -> None:
    scraped = await scrape(client)
    pools = {labels for name, labels in scraped if name == "consentry_database_connections_in_use"}
    assert pools == {frozenset({("pool", "database")})}
    assert value(scraped, "consentry_database_connections_max", pool="database") >= 1


async def test_no_event_batch_is_pending_once_every_batch_was_answered(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/events", json={"events": [event("u-1")]}, headers=admin())
    assert response.status_code == 200
    # Counted while a batch waits or is written: tests/faults/test_drain.py sees it count them.
    assert ("consentry_event_batches_pending", frozenset()) in (scraped := await scrape(client))
    assert value(scraped, "consentry_event_batches_pending") == 0


async def test_metrics_answer_while_the_database_is_away() -> None:
    app = create_app(
        Settings(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none", run_worker=False)
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        scraped = await scrape(client)
    assert value(scraped, "consentry_database_up") == 0
    assert not any(name.startswith("consentry_erasure") for name, _ in scraped)
