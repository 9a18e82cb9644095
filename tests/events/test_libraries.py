"""Contract tests: Segment's and RudderStack's Python libraries, unmodified, against a server.

Each library points its `host` at a recording relay in front of a `consentry serve` process: the
relay forwards every request as it is, keeps what the library sent and what the server answered
(so a test counts requests where they arrive, never by waiting), and can drop an answer on the
floor, as a lost connection would, to make the library retry on its own.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from rudderstack.analytics import Client as RudderStackClient
from segment.analytics import Client as SegmentClient

from consentry.db import open_database
from consentry.keys.service import create_key
from consentry.settings import Settings
from tests.helpers import ADMIN_KEY, choice
from tests.processes import Server, environment, server_process

CATEGORIES = '{"lesson.viewed": "performance", "course.*": "customization"}'
FORWARDED = ("authorization", "content-type", "content-encoding", "user-agent")
LIBRARIES = ("segment", "rudderstack")


@dataclass
class Exchange:
    """One request a library sent, and what the server answered to it."""

    path: str
    headers: dict[str, str]
    status: int
    answer: Any
    delivered: bool


@dataclass
class Relay:
    """A recording HTTP relay in front of the server."""

    url: str = ""
    exchanges: list[Exchange] = field(default_factory=list)
    drop: int = 0  # answers still to drop, as a lost connection would
    lock: threading.Lock = field(default_factory=threading.Lock)

    def batches(self) -> list[Exchange]:
        """Every `/v1/batch` request so far, in the order they arrived."""
        with self.lock:
            return [exchange for exchange in self.exchanges if exchange.path == "/v1/batch"]

    def results(self) -> list[dict[str, Any]]:
        """The results of every message answered, in order (a library may split its queue)."""
        return [result for batch in self.batches() for result in batch.answer["results"]]


@contextmanager
def relaying(target: str) -> Iterator[Relay]:
    """A relay to `target` on a free port, in a thread, until the block ends."""
    relay = Relay()
    upstream = httpx.Client(base_url=target, timeout=30.0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items() if k.lower() in FORWARDED}
            response = upstream.post(self.path, content=body, headers=headers)
            with relay.lock:
                deliver = relay.drop == 0
                relay.drop = max(0, relay.drop - 1)
                exchange = Exchange(
                    self.path, headers, response.status_code, response.json(), deliver
                )
                relay.exchanges.append(exchange)
            if not deliver:
                self.close_connection = True  # no answer at all: the library sees it vanish
                return
            self.send_response(response.status_code)
            for name in ("content-type", "retry-after"):
                if name in response.headers:
                    self.send_header(name, response.headers[name])
            self.send_header("Content-Length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    relay.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        upstream.close()


@dataclass
class Service:
    """A `consentry serve` process, its keys by name, and its output."""

    server: Server
    keys: dict[str, str]

    @property
    def base(self) -> str:
        return self.server.base

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request with the admin key, waiting out its rate limit (low on one server)."""
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        for _ in range(10):
            response = httpx.request(
                method, self.base + path, headers=headers, timeout=30.0, **kwargs
            )
            if response.status_code != 429:
                assert response.status_code == 200, response.text
                return response
            threading.Event().wait(int(response.headers["retry-after"]))
        raise AssertionError("the admin key stayed rate-limited")

    def record(self, subject: str, **categories: bool) -> None:
        """The subject's choice, recorded through the API."""
        self.admin("PUT", f"/v1/subjects/{subject}/consent", json=choice(**categories))

    def stored(self, subject: str) -> list[dict[str, Any]]:
        """The subject's stored events."""
        items: list[dict[str, Any]] = self.admin(
            "GET", f"/v1/subjects/{subject}/events", params={"limit": 1000}
        ).json()["items"]
        return items


def _make_keys(settings: Settings, names: list[str]) -> dict[str, str]:
    """New `events:write` keys in the server's database, as `consentry keys create` makes them."""

    async def make() -> dict[str, str]:
        database = await open_database(settings)
        try:
            async with database.unit_of_work() as uow:
                return {name: (await create_key(uow, name, ["events:write"]))[0] for name in names}
        finally:
            await database.dispose()

    return asyncio.run(make())


@contextmanager
def service(folder: Path, keys: list[str], **settings: str) -> Iterator[Service]:
    """`consentry serve` with the operator's mapping, an admin key and `keys`."""
    mapping = folder / "categories.json"
    mapping.write_text(CATEGORIES)
    database = f"sqlite+aiosqlite:///{folder / 'serve.db'}"
    env = environment(
        CONSENTRY_DATABASE_URL=database,
        CONSENTRY_ADMIN_KEY=ADMIN_KEY,
        CONSENTRY_EVENT_CATEGORIES=str(mapping),
        **settings,
    )
    with server_process(env, folder / "serve.log") as server:
        yield Service(server, _make_keys(Settings(database_url=database), keys))


# Each test's own key per library: a retry's duplicate is never another test's event.
PURPOSES = ("tracking", "retrying", "gzip", "profiles")


@pytest.fixture(scope="module")
def consentry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One server for the module, with the default rate limits."""
    keys = [f"{kind}-{purpose}" for kind in LIBRARIES for purpose in PURPOSES]
    with service(tmp_path_factory.mktemp("libraries"), keys) as running:
        yield running


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A server allowing each key one request a second after a burst of two."""
    limits = {"CONSENTRY_RATE_LIMIT_KEY_PER_SECOND": "1", "CONSENTRY_RATE_LIMIT_KEY_BURST": "2"}
    folder = tmp_path_factory.mktemp("limited")
    with service(folder, [f"{kind}-limited" for kind in LIBRARIES], **limits) as running:
        yield running


@pytest.fixture
def relay(consentry: Service) -> Iterator[Relay]:
    with relaying(consentry.base) as running:
        yield running


@dataclass
class Library:
    """One library's client, pointed at the relay, and the errors it reported."""

    name: str
    client: Any
    errors: list[tuple[Exception, list[Any]]]

    def flush(self) -> None:
        """Send everything queued and wait for it, retries included."""
        self.client.flush()


@contextmanager
def library(name: str, key: str, host: str, **options: Any) -> Iterator[Library]:
    """The unmodified client of `name`, as a platform service would configure it."""
    errors: list[tuple[Exception, list[Any]]] = []

    def on_error(error: Exception, batch: list[Any]) -> None:
        errors.append((error, batch))

    settings: dict[str, Any] = {"host": host, "on_error": on_error, "upload_interval": 0.05}
    settings.update(options)
    if name == "segment":
        # Its backoff between retries starts at 0.5 s; a short total keeps a refused test short.
        client: Any = SegmentClient(write_key=key, max_total_backoff_duration=30, **settings)
    else:
        client = RudderStackClient(write_key=key, **settings)
    try:
        yield Library(name, client, errors)
    finally:
        client.shutdown()


def subject() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=LIBRARIES)
def kind(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def test_granted_is_stored_and_everything_else_is_not(
    consentry: Service, relay: Relay, kind: str
) -> None:
    key = consentry.keys[f"{kind}-tracking"]
    granted, denied, absent = subject(), subject(), subject()
    consentry.record(granted, performance=True)
    consentry.record(denied, performance=False)
    contradicting = {"consent": {"categoryPreferences": {"performance": True}}}
    with library(kind, key, relay.url) as analytics:
        analytics.client.track(granted, "lesson.viewed", {"course_id": "bio-101"})
        analytics.client.track(denied, "lesson.viewed", {"course_id": "bio-101"})
        analytics.client.track(denied, "lesson.viewed", context=contradicting)
        analytics.client.track(absent, "lesson.viewed")
        # The message's own consent data denies more than the stored consent.
        refused = {"consent": {"categoryPreferences": {"performance": False}}}
        analytics.client.track(granted, "lesson.viewed", {"n": 2}, context=refused)
        analytics.client.page(granted, name="Course overview", properties={"n": 3})
        analytics.flush()
        assert analytics.errors == []
    assert all(b.status == 200 and b.delivered for b in relay.batches())
    assert all(b.answer["success"] is True for b in relay.batches())
    reasons = [r.get("reason", r["status"]) for r in relay.results()]
    assert reasons == [
        "accepted",
        "consent_denied",
        "consent_denied",
        "consent_denied",
        "consent_denied",
        "unknown_category",  # `page` without a category of its own, and no mapping for it
    ]
    [kept] = consentry.stored(granted)
    assert (kept["name"], kept["category"]) == ("lesson.viewed", "performance")
    assert kept["properties"] == {"course_id": "bio-101"}
    assert consentry.stored(denied) == consentry.stored(absent) == []
    assert key not in consentry.server.log.read_text()


def test_a_library_retry_is_a_duplicate(consentry: Service, relay: Relay, kind: str) -> None:
    key = consentry.keys[f"{kind}-retrying"]
    learner = subject()
    consentry.record(learner, performance=True, customization=True)
    relay.drop = 1  # the first answer is lost after the server committed
    with library(kind, key, relay.url) as analytics:
        analytics.client.track(learner, "course.recommended")
        analytics.flush()
        assert analytics.errors == []
    first, retry = relay.batches()
    assert not first.delivered and retry.delivered
    assert first.answer["accepted"] == 1
    assert retry.answer["duplicates"] == 1 and retry.answer["accepted"] == 0
    [kept] = consentry.stored(learner)
    assert (kept["name"], kept["category"]) == ("course.recommended", "customization")


def test_gzip_bodies(consentry: Service, relay: Relay, kind: str) -> None:
    key = consentry.keys[f"{kind}-gzip"]
    learner = subject()
    consentry.record(learner, performance=True)
    # RudderStack's library compresses by default; Segment's when asked.
    with library(kind, key, relay.url, gzip=True) as analytics:
        for n in range(50):
            analytics.client.track(learner, "lesson.viewed", {"n": n, "text": "abc" * 50})
        analytics.flush()
        assert analytics.errors == []
    assert {batch.headers.get("content-encoding") for batch in relay.batches()} == {"gzip"}
    assert sum(batch.answer["accepted"] for batch in relay.batches()) == 50
    assert len(consentry.stored(learner)) == 50


def test_profile_calls_store_nothing(consentry: Service, relay: Relay, kind: str) -> None:
    key = consentry.keys[f"{kind}-profiles"]
    learner = subject()
    consentry.record(learner, performance=True, functional=True, customization=True)
    with library(kind, key, relay.url) as analytics:
        analytics.client.identify(learner, {"email": "learner@school.example", "plan": "pro"})
        analytics.client.group(learner, "school-42", {"name": "A school"})
        analytics.client.alias("old-id", learner)
        analytics.flush()
        assert analytics.errors == []
    assert [r["status"] for r in relay.results()] == ["ignored"] * 3
    assert consentry.stored(learner) == []
    assert "learner@school.example" not in consentry.server.log.read_text()


def test_a_wrong_key_is_given_up_on(consentry: Service, relay: Relay, kind: str) -> None:
    with library(kind, "csk_not-a-key-of-this-service", relay.url) as analytics:
        analytics.client.track(subject(), "lesson.viewed")
        analytics.flush()
        [(error, batch)] = analytics.errors
    [sent] = relay.batches()  # once, not eleven times
    assert sent.status == 401
    assert sent.answer["code"] == "unauthorized" and sent.answer["message"]
    assert getattr(error, "status", None) == 401
    assert len(batch) == 1


def test_the_rate_limit_is_waited_out_and_nothing_is_lost(limited: Service, kind: str) -> None:
    learner = subject()
    limited.record(learner, performance=True)
    key = limited.keys[f"{kind}-limited"]
    # One message a request, so that four messages are four requests in a row: the third comes
    # long before the key's next request fits.
    with (
        relaying(limited.base) as relay,
        library(kind, key, relay.url, upload_size=1) as analytics,
    ):
        for n in range(4):
            analytics.client.track(learner, "lesson.viewed", {"n": n})
        analytics.flush()
        assert analytics.errors == []
    statuses = [batch.status for batch in relay.batches()]
    assert 429 in statuses
    assert statuses.count(200) == 4
    refusal = next(batch.answer for batch in relay.batches() if batch.status == 429)
    assert refusal["code"] == "rate_limited" and refusal["message"]
    assert sorted(item["properties"]["n"] for item in limited.stored(learner)) == [0, 1, 2, 3]
