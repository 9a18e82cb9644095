"""The access line built as text and written in batches: the same line, and never a lost one."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import threading
from pathlib import Path

import httpx
import pytest

from consentry.observability.access import AccessLines
from consentry.observability.logs import REQUEST_ID, JSONFormatter, TextFormatter
from consentry.observability.writer import BatchedStreamHandler
from tests.helpers import JWT_SECRET, bearer, user_token
from tests.processes import environment, server_process

# More requests at once than a worker takes in one pass of its loop, from many connections.
REQUESTS = 600
CONNECTIONS = 48


class Writes(io.StringIO):
    """A stream that keeps each write apart, to see how lines were grouped."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


ROUTE = "/v1/subjects/{subject_id}/consent"


@pytest.mark.parametrize("formatter", [JSONFormatter, TextFormatter])
def test_the_built_line_is_the_formatters_line(
    formatter: type[logging.Formatter], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = logging.getLogger("test.access")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    access = AccessLines(logger)
    built = Writes()
    batched = BatchedStreamHandler(built)
    batched.setFormatter(formatter())
    expected = io.StringIO()
    plain = logging.StreamHandler(expected)
    plain.setFormatter(formatter())
    token = REQUEST_ID.set("rid-1")
    try:
        logger.handlers = [plain]
        access.log("rid-1", "GET", ROUTE, 200, 0.001482)
        # The batched handler alone takes the built line, without a record.
        monkeypatch.setattr(access, "_records", None)
        logger.handlers = [batched]
        access.log("rid-1", "GET", ROUTE, 200, 0.001482)
    finally:
        REQUEST_ID.reset(token)
        logger.handlers = []
    batched.close()
    # The same line but for the time, taken a moment apart.
    if formatter is JSONFormatter:
        built_fields, expected_fields = (
            json.loads(built.getvalue()),
            json.loads(expected.getvalue()),
        )
        assert list(built_fields) == list(expected_fields)
        assert {**built_fields, "time": None} == {**expected_fields, "time": None}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", built_fields["time"])
    else:
        assert built.getvalue().split(" ", 1)[1] == expected.getvalue().split(" ", 1)[1]
        assert built.getvalue().endswith(" duration_ms=1.482\n")


def test_the_writer_loses_no_line_and_writes_whole_lines_in_small_groups() -> None:
    stream = Writes()
    handler = BatchedStreamHandler(stream)
    lines_per_thread = 5_000

    def write(n: int) -> None:
        for i in range(lines_per_thread):
            handler.put(f'{{"thread":{n},"line":{i},"pad":"{"x" * (i % 300)}"}}\n')

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handler.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4 * lines_per_thread
    seen = {(entry["thread"], entry["line"]) for entry in map(json.loads, lines)}
    assert len(seen) == 4 * lines_per_thread
    # Each write ends a line and fits a pipe's atomic write, so processes never interleave.
    assert all(text.endswith("\n") and len(text.encode()) <= 4096 for text in stream.writes)
    # Batched: far fewer writes than lines.
    assert len(stream.writes) < len(lines) / 4


def test_a_line_waits_only_a_moment() -> None:
    stream = Writes()
    handler = BatchedStreamHandler(stream)
    handler.put("one\n")
    for _ in range(200):
        if stream.getvalue():
            break
        threading.Event().wait(0.01)
    assert stream.getvalue() == "one\n"
    handler.close()


async def _read_all(base: str, token: str, subject: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        return await asyncio.gather(
            *(
                client.get(
                    f"/v1/subjects/{subject}/consent",
                    headers={**bearer(token), "X-Request-ID": f"load-{n:04d}"},
                )
                for n in range(REQUESTS)
            )
        )


def test_every_request_under_load_has_its_line_when_the_server_stops(tmp_path: Path) -> None:
    env = environment(
        CONSENTRY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        CONSENTRY_LOG_LEVEL="info",
        CONSENTRY_JWT_SECRET=JWT_SECRET,
        # One subject sends every request: its own limit must not refuse any of them.
        CONSENTRY_RATE_LIMIT_USER_BURST=str(REQUESTS * 2),
        # On a busy machine a connection may wait past the default 5 s for its next request,
        # and one closed just as the client reuses it would fail a request the log never saw.
        CONSENTRY_SERVER_KEEP_ALIVE_SECONDS="120",
    )
    log = tmp_path / "serve.log"
    subject = "u-access-load"
    with server_process(env, log) as server:
        responses = asyncio.run(_read_all(server.base, user_token(subject), subject))
        # Stopped at once, as an orchestrator would: the lines still waiting are written too.
        server.process.terminate()
        assert server.process.wait(timeout=15) == 0
    assert [r.status_code for r in responses] == [200] * REQUESTS
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    # The readiness probes that waited for the server to start have lines of their own.
    access = [line for line in lines if line["logger"] == "consentry.access"]
    access = [line for line in access if line["route"] != "/readyz"]
    ids = sorted(line["request_id"] for line in access)
    assert ids == [f"load-{n:04d}" for n in range(REQUESTS)]
    for line in access:
        assert list(line) == [
            "time",
            "level",
            "logger",
            "message",
            "request_id",
            "method",
            "route",
            "status",
            "duration_ms",
        ]
        assert (line["level"], line["message"], line["method"], line["status"]) == (
            "info",
            "request",
            "GET",
            200,
        )
        assert line["route"] == "/v1/subjects/{subject_id}/consent"
    # The lines after the last request, shutdown's own, are there too.
    assert lines[-1]["logger"] == "uvicorn.error"
