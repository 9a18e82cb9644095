"""Rate limits: one bucket per key, per user subject and per client address, answered with 429."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from consentry.errors import RateLimited
from consentry.ratelimit import Rate, RateLimiter
from consentry.settings import Settings
from tests.conftest import make_settings
from tests.helpers import admin, anon_id, bearer, choice, make_key, user_token
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

BURST = 3
SECOND = 1_000_000_000
LOW = {
    "rate_limit_key_per_second": 0.01,
    "rate_limit_key_burst": BURST,
    "rate_limit_user_per_second": 0.01,
    "rate_limit_user_burst": BURST,
    "rate_limit_address_per_second": 0.01,
    "rate_limit_address_burst": BURST,
}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000 * SECOND

    def __call__(self) -> int:
        return self.now


def _limiter(clock: Clock, capacity: int = 1000) -> RateLimiter:
    rates = {
        "key": Rate(per_second=10, burst=5),
        "user": Rate(per_second=1, burst=2),
        "address": Rate(per_second=0.5, burst=1),
    }
    return RateLimiter(rates, capacity, clock)  # type: ignore[arg-type]


def _refused(hit: Callable[[], None]) -> RateLimited:
    with pytest.raises(RateLimited) as refused:
        hit()
    return refused.value


def test_burst_then_steady_rate() -> None:
    clock = Clock()
    limiter = _limiter(clock)
    for _ in range(5):
        limiter.hit("key", "svc")
    assert _refused(lambda: limiter.hit("key", "svc")).headers == {"Retry-After": "1"}
    clock.now += SECOND // 10  # one interval at 10/s
    limiter.hit("key", "svc")
    _refused(lambda: limiter.hit("key", "svc"))
    clock.now += SECOND // 2  # a rest refills the bucket, never past its burst
    for _ in range(5):
        limiter.hit("key", "svc")
    _refused(lambda: limiter.hit("key", "svc"))


def test_a_costly_call_counts_as_many_requests_or_none() -> None:
    clock = Clock()
    limiter = _limiter(clock)  # keys: 10/s, burst 5
    limiter.hit("key", "svc", 3)
    refusal = _refused(lambda: limiter.hit("key", "svc", 3))  # 6 > 5: refused whole
    assert refusal.headers == {"Retry-After": "1"}
    limiter.hit("key", "svc", 2)  # the refused call took nothing: 5 fit
    _refused(lambda: limiter.hit("key", "svc"))
    clock.now += SECOND // 2  # five intervals: a whole burst again
    limiter.hit("key", "svc", 5)
    clock.now += SECOND  # rested to a full burst, and still:
    _refused(lambda: limiter.hit("key", "svc", 6))  # more than a burst never fits at once


def test_refused_requests_do_not_use_up_the_rate() -> None:
    clock = Clock()
    limiter = _limiter(clock)
    limiter.hit("user", "u-1")
    limiter.hit("user", "u-1")
    for _ in range(50):
        _refused(lambda: limiter.hit("user", "u-1"))
    clock.now += SECOND
    limiter.hit("user", "u-1")


def test_retry_after_is_the_whole_seconds_until_one_more_fits() -> None:
    clock = Clock()
    limiter = _limiter(clock)
    limiter.hit("address", "192.0.2.1")  # 0.5/s: the next fits two seconds later
    assert _refused(lambda: limiter.hit("address", "192.0.2.1")).headers["Retry-After"] == "2"
    clock.now += SECOND * 3 // 2
    assert _refused(lambda: limiter.hit("address", "192.0.2.1")).headers["Retry-After"] == "1"
    clock.now += SECOND // 2
    limiter.hit("address", "192.0.2.1")


def test_kinds_and_callers_have_their_own_buckets() -> None:
    limiter = _limiter(Clock())
    limiter.hit("address", "x")
    _refused(lambda: limiter.hit("address", "x"))
    limiter.hit("address", "y")
    limiter.hit("user", "x")
    limiter.hit("key", "x")


def test_table_is_bounded_and_forgets_the_least_recently_seen() -> None:
    clock = Clock()
    limiter = _limiter(clock, capacity=1000)
    limiter.hit("address", "offender")
    for number in range(5000):
        limiter.hit("address", f"10.0.{number // 256}.{number % 256}")
        if number % 500 == 0:
            # Seen again and again, the offender stays in the table and stays refused.
            _refused(lambda: limiter.hit("address", "offender"))
    assert len(limiter) == 1000
    _refused(lambda: limiter.hit("address", "offender"))


@pytest.fixture
def settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    """Low limits, so a test reaches them in a few requests; a test's parameter adds to them."""
    return make_settings(database_url, **{**LOW, **getattr(request, "param", {})})


def _client(app: FastAPI, address: str = "198.51.100.23") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def assert_limited(response: httpx.Response) -> None:
    """A 429 problem with an integer Retry-After of at least one second."""
    assert_problem(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) >= 1


async def test_user_token_is_limited_by_its_subject(app: FastAPI) -> None:
    async with _client(app) as client:
        own = bearer(user_token("learner-1"))
        for _ in range(BURST):
            response = await client.get("/v1/subjects/learner-1/consent", headers=own)
            assert response.status_code == 200, response.text
        assert_limited(await client.get("/v1/subjects/learner-1/consent", headers=own))
        # A fresh token of the same subject shares the bucket; a write refused records nothing.
        again = bearer(user_token("learner-1", jti="other"))
        limited = await client.put("/v1/subjects/learner-1/consent", json=choice(), headers=again)
        assert_limited(limited)
        other = bearer(user_token("learner-2"))
        response = await client.get("/v1/subjects/learner-2/consent", headers=other)
        assert response.status_code == 200
        history = await client.get("/v1/subjects/learner-1/consent/history", headers=admin())
        assert history.json()["items"] == []


async def test_key_is_limited_by_its_name(app: FastAPI) -> None:
    async with _client(app) as client:
        for _ in range(BURST):
            assert (await client.get("/v1/audit-log", headers=admin())).status_code == 200
        assert_limited(await client.get("/v1/audit-log", headers=admin()))
        key = await make_key(app, "reader", "consent:read")
        response = await client.get("/v1/subjects/learner-1/consent", headers=bearer(key))
        assert response.status_code == 200


async def test_anonymous_visitors_are_limited_by_address(app: FastAPI) -> None:
    async with _client(app) as client:
        # Fresh random ids from one address share that address's bucket.
        for _ in range(BURST):
            assert (await client.get(f"/v1/subjects/{anon_id()}/consent")).status_code == 200
        assert_limited(await client.get(f"/v1/subjects/{anon_id()}/consent"))
        assert_limited(await client.put(f"/v1/subjects/{anon_id()}/consent", json=choice()))
        async with _client(app, "203.0.113.9") as elsewhere:
            assert (await elsewhere.get(f"/v1/subjects/{anon_id()}/consent")).status_code == 200
        # A caller with a key is counted by its key, not by the address it shares.
        response = await client.get("/v1/subjects/learner-1/consent", headers=admin())
        assert response.status_code == 200


async def test_failed_credentials_are_limited_by_address(app: FastAPI) -> None:
    async with _client(app) as client:
        guesses = [bearer("csk_guess"), bearer("not-a-jwt"), {"Authorization": "Basic x"}]
        for headers in guesses:
            assert_problem(await client.get("/v1/audit-log", headers=headers), 401, "unauthorized")
        assert_limited(await client.get("/v1/audit-log", headers=bearer("csk_guess-again")))
        assert_limited(await client.get("/v1/audit-log"))
        assert (await client.get("/v1/audit-log", headers=admin())).status_code == 200


async def test_ipv6_clients_are_limited_by_their_64(app: FastAPI) -> None:
    for host in range(1, BURST + 1):
        async with _client(app, f"2001:db8:1:2::{host}") as client:
            assert (await client.get(f"/v1/subjects/{anon_id()}/consent")).status_code == 200
    async with _client(app, "2001:db8:1:2:ffff::1") as client:
        assert_limited(await client.get(f"/v1/subjects/{anon_id()}/consent"))
    async with _client(app, "2001:db8:1:3::1") as client:
        assert (await client.get(f"/v1/subjects/{anon_id()}/consent")).status_code == 200


@pytest.mark.parametrize("settings", [{"trusted_proxies": ["10.0.0.0/8"]}], indirect=True)
async def test_behind_a_trusted_proxy_the_forwarded_address_is_limited(app: FastAPI) -> None:
    async with _client(app, "10.1.2.3") as proxy:
        for _ in range(BURST):
            response = await proxy.get(
                f"/v1/subjects/{anon_id()}/consent", headers={"X-Forwarded-For": "192.0.2.7"}
            )
            assert response.status_code == 200
        forwarded = {"X-Forwarded-For": "192.0.2.7"}
        assert_limited(await proxy.get(f"/v1/subjects/{anon_id()}/consent", headers=forwarded))
        forwarded = {"X-Forwarded-For": "192.0.2.8"}
        assert (
            await proxy.get(f"/v1/subjects/{anon_id()}/consent", headers=forwarded)
        ).status_code == 200


@pytest.mark.parametrize("settings", [{"rate_limit_enabled": False}], indirect=True)
async def test_limits_can_be_switched_off(app: FastAPI) -> None:
    async with _client(app) as client:
        for _ in range(BURST * 5):
            assert (await client.get(f"/v1/subjects/{anon_id()}/consent")).status_code == 200


def test_a_refund_gives_back_one_request_and_never_more_than_the_burst() -> None:
    clock = Clock()
    limiter = _limiter(clock)
    for _ in range(5):
        limiter.hit("key", "svc")
    _refused(lambda: limiter.hit("key", "svc"))
    limiter.refund("key", "svc")
    limiter.hit("key", "svc")
    _refused(lambda: limiter.hit("key", "svc"))
    for _ in range(20):
        limiter.refund("key", "svc")
    for _ in range(5):
        limiter.hit("key", "svc")
    _refused(lambda: limiter.hit("key", "svc"))
    limiter.refund("key", "unseen")  # a caller never counted has nothing to give back
    assert len(limiter) == 1
