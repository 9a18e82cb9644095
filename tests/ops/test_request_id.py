"""`X-Request-ID` on every answer, and in every log line written while handling the request."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

from consentry.app import create_app
from consentry.observability.logs import JSONFormatter, TextFormatter, logging_config
from consentry.settings import Settings
from tests.helpers import anon_id

pytestmark = pytest.mark.anyio

GENERATED = re.compile(r"[0-9a-f]{32}")


class Lines(logging.Handler):
    """Formats each record as the service would (at emit time, as a stream handler does)."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def json_lines() -> Iterator[Lines]:
    handler = Lines(JSONFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
async def lenient(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that receives a 500 answer instead of the app's exception."""

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.router.add_api_route("/boom", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/v1/subjects/anon:not-a-uuid/consent", 401),
        ("GET", "/no/such/path", 404),
        ("DELETE", "/v1/policy", 405),
        ("PUT", "/v1/subjects/{subject}/consent", 400),
    ],
)
async def test_every_answer_carries_a_fresh_id(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    url = path.format(subject=anon_id())
    json_type = {"Content-Type": "application/json"}
    first = await client.request(method, url, content=b"{", headers=json_type)
    second = await client.request(method, url, content=b"{", headers=json_type)
    assert first.status_code == status
    assert GENERATED.fullmatch(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_a_safe_incoming_id_is_kept(client: httpx.AsyncClient) -> None:
    incoming = "edge-01.Trace_9f3a" + "x" * 46  # 64 characters
    response = await client.get("/healthz", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        "x" * 65,
        "has space",
        'quote"d',
        "semi;colon",
        "anon:0f8fad5b-d9cb-469f-a165-70867728950e",
        "",
    ],
)
async def test_an_unsafe_incoming_id_is_replaced(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": incoming})
    assert GENERATED.fullmatch(response.headers["x-request-id"])


async def test_the_access_line_and_the_500_handler_name_the_request(
    lenient: httpx.AsyncClient, json_lines: Lines
) -> None:
    response = await lenient.get("/boom", headers={"X-Request-ID": "trace-500"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "trace-500"
    # The security headers wrap Starlette's error middleware too.
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    records = [json.loads(line) for line in json_lines.lines]
    failure = next(r for r in records if r["logger"] == "consentry.errors")
    assert failure["level"] == "error"
    assert failure["request_id"] == "trace-500"
    # The class and the stack, never the message: messages may quote the request's data.
    assert "builtins.RuntimeError [message withheld]" in failure["exception"]
    assert "in boom" in failure["exception"] and "RuntimeError: a bug" not in failure["exception"]
    access = next(r for r in records if r["logger"] == "consentry.access")
    assert access["request_id"] == "trace-500"
    assert (access["method"], access["route"], access["status"]) == ("GET", "/boom", 500)
    assert access["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", access["time"])


async def test_the_access_line_has_the_template_not_the_path(
    client: httpx.AsyncClient, json_lines: Lines
) -> None:
    subject = anon_id()
    response = await client.get(f"/v1/subjects/{subject}/consent")
    (line,) = [line for line in json_lines.lines if '"consentry.access"' in line]
    assert subject not in line
    access = json.loads(line)
    assert access["route"] == "/v1/subjects/{subject_id}/consent"
    assert access["request_id"] == response.headers["x-request-id"]


def test_the_text_format_carries_the_same_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "consentry.access", "levelname": "INFO", "msg": "request", "route": "/healthz"}
    )
    line = TextFormatter().format(record)
    assert re.fullmatch(r"\S+Z info consentry\.access \[-\] request route=/healthz", line)


@pytest.mark.parametrize(("access_log", "level"), [(True, "NOTSET"), (False, "WARNING")])
def test_the_access_line_follows_the_root_level_unless_turned_off(
    access_log: bool, level: str
) -> None:
    config = logging_config("warning", "json", access_log=access_log)
    assert config["root"]["level"] == "WARNING"
    # NOTSET: the access logger takes the root's level, so `warning` silences it too.
    assert config["loggers"]["consentry.access"]["level"] == level


# A read of the consent's own hot path, and one through the seam's plainest reader.
@pytest.mark.parametrize("path", ["/v1/subjects/{subject}/consent", "/v1/providers"])
async def test_the_database_warning_names_the_request(json_lines: Lines, path: str) -> None:
    app = create_app(
        Settings(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none", run_worker=False)
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.get(path.format(subject=anon_id()))
    assert response.status_code == 503
    request_id = response.headers["x-request-id"]
    records = [json.loads(line) for line in json_lines.lines]
    warning = next(r for r in records if r["message"].startswith("database unavailable"))
    assert (warning["level"], warning["request_id"]) == ("warning", request_id)
    access = next(r for r in records if r["logger"] == "consentry.access")
    assert (access["request_id"], access["status"]) == (request_id, 503)
