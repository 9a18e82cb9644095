"""`consentry serve` as a real process: migrates, serves, and refuses bad configuration."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.helpers import anon_id, choice
from tests.processes import CONSENTRY, environment, serving


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    database = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    return environment(CONSENTRY_DATABASE_URL=database, **extra)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A `consentry serve` process on a fresh SQLite file; yields its base URL."""
    with serving(_environment(tmp_path), tmp_path / "serve.log") as base:
        yield base


def test_serve_migrates_and_answers(server: str) -> None:
    subject = anon_id()
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    written = httpx.put(f"{server}/v1/subjects/{subject}/consent", json=choice(performance=True))
    assert written.status_code == 200
    read = httpx.get(f"{server}/v1/subjects/{subject}/consent")
    assert read.json()["categories"]["performance"]["granted"] is True
    assert "server" not in read.headers


def test_production_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CONSENTRY, "serve", "--no-migrate"],
        env=_environment(tmp_path, CONSENTRY_ENV="production"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "refusing to start in production" in result.stderr


def _exchange(base: str, request: bytes) -> tuple[socket.socket, bytes]:
    """Send raw bytes on a new connection; the open socket and the answer's head and body."""
    host, port = base.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=10)
    connection.sendall(request)
    answer = b""
    while b"\r\n\r\n" not in answer and (chunk := connection.recv(65536)):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
    while length and len(body) < int(length[1]) and (chunk := connection.recv(65536)):
        body += chunk
    return connection, head + b"\r\n\r\n" + body


def test_server_limits_come_from_settings(tmp_path: Path) -> None:
    env = _environment(
        tmp_path,
        CONSENTRY_SERVER_HTTP="h11",
        CONSENTRY_SERVER_LIMIT_CONCURRENCY="2",
        CONSENTRY_SERVER_KEEP_ALIVE_SECONDS="1",
        CONSENTRY_SERVER_MAX_INCOMPLETE_EVENT_BYTES="4096",
    )
    small = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with serving(env, tmp_path / "serve.log") as base:
        # Headers still unfinished past the incomplete-event limit are refused by the server.
        connection, answer = _exchange(base, small[:-4] + b"\r\nX-Pad: " + b"a" * 8192)
        with closing(connection):
            assert answer.startswith(b"HTTP/1.1 4"), answer
        # An idle keep-alive connection is closed after one second, not uvicorn's five.
        connection, answer = _exchange(base, small)
        with closing(connection):
            assert answer.startswith(b"HTTP/1.1 200"), answer
            connection.settimeout(3)
            assert connection.recv(1) == b""
        # With one connection held open, a second one is the process's limit of two: 503.
        connection, answer = _exchange(base, small)
        with closing(connection):
            assert answer.startswith(b"HTTP/1.1 200"), answer
            assert httpx.get(f"{base}/healthz").status_code == 503
