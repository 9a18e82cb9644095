"""What the schema-driven fuzzing found, each kept as a test that would have caught it."""

from __future__ import annotations

import httpx
import pytest

from consentry.app import create_app
from consentry.settings import Settings
from tests.helpers import admin, event
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("value", ["0.5", "1764331200", "-1", "2026-11-28", "12:00:00Z"])
@pytest.mark.parametrize("path", ["/v1/subjects/learner-1/events?until=", "/v1/audit-log?since="])
async def test_a_number_is_not_a_timestamp_in_a_query(
    client: httpx.AsyncClient, path: str, value: str
) -> None:
    """`?until=0.5` was read as half a second past 1970, where the document says date-time."""
    body = assert_problem(await client.get(path + value, headers=admin()), 422, "validation_error")
    assert body["errors"][0]["loc"][0] == "query"


@pytest.mark.parametrize("value", ["1764331200", "1764331200.5"])
async def test_a_number_is_not_an_event_time(client: httpx.AsyncClient, value: str) -> None:
    """Text holding a Unix time was taken as `occurred_at`; the contract speaks of RFC 3339."""
    batch = {"events": [event("learner-1", occurred_at=value)]}
    response = await client.post("/v1/events", json=batch, headers=admin())
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["reason"] == "invalid"


@pytest.mark.parametrize(
    "value", ["2026-11-28T12:00:00Z", "2026-11-28t12:00:00.123456z", "2026-11-28T12:00+01:00"]
)
async def test_rfc3339_timestamps_still_pass(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get(f"/v1/audit-log?since={value.replace('+', '%2B')}", headers=admin())
    assert response.status_code == 200, response.text


async def test_the_document_admits_every_item_the_envelope_admits(
    client: httpx.AsyncClient,
) -> None:
    """The document said each item must be an Event, yet any item gets a 200 and its result."""
    document = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:")).openapi()
    batch = document["components"]["schemas"]["EventBatch"]["properties"]["events"]
    branches = batch["items"]["anyOf"]
    assert {"description"} in [set(branch) for branch in branches]  # the branch that takes all
    response = await client.post("/v1/events", json={"events": [42, {}]}, headers=admin())
    assert response.status_code == 200
    assert [r["reason"] for r in response.json()["results"]] == ["invalid", "invalid"]


async def test_unknown_query_parameters_are_ignored(client: httpx.AsyncClient) -> None:
    """Flagged as accepted bad data: pages and proxies add cache busters and campaign tags, and
    API.md refuses unknown fields in bodies only, so the same answer comes back."""
    plain = await client.get("/v1/subjects/learner-1/consent", headers=admin())
    tagged = await client.get(
        "/v1/subjects/learner-1/consent?_=1732792800&utm_source=mail", headers=admin()
    )
    assert tagged.status_code == plain.status_code == 200
    assert tagged.headers["etag"] == plain.headers["etag"]
