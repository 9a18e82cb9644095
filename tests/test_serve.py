"""`consentry serve` as a real process: migrates, serves, and refuses bad configuration."""

from __future__ import annotations

import json
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


def test_a_mapping_it_cannot_use_refuses_to_start(tmp_path: Path) -> None:
    mapping = tmp_path / "categories.json"
    mapping.write_text('{"lesson.viewed": "performance", "quiz.*": "marketing"}')
    result = subprocess.run(
        [*CONSENTRY, "serve"],
        env=_environment(tmp_path, CONSENTRY_EVENT_CATEGORIES=str(mapping)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "CONSENTRY_EVENT_CATEGORIES" in result.stderr
    assert "'quiz.*': 'marketing' is not one of necessary" in result.stderr
    assert "Traceback" not in result.stderr
    # Refused before migrating: the database was not touched.
    assert not (tmp_path / "serve.db").exists()


def _exchange(base: str, request: bytes) -> tuple[socket.socket, bytes]:
    """Send raw bytes on a new connection; the open socket and the answer's head and body."""
    host, port = base.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=10)
    connection.sendall(request)
    return connection, _answer(connection)


def _answer(connection: socket.socket) -> bytes:
    """One answer read from a connection: its head, and its body by its Content-Length."""
    answer = b""
    while b"\r\n\r\n" not in answer and (chunk := connection.recv(65536)):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
    while length and len(body) < int(length[1]) and (chunk := connection.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


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


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


@pytest.mark.parametrize("parser", [None, "httptools", "h11"], ids=["default", "httptools", "h11"])
def test_request_heads_are_capped_whatever_the_parser(tmp_path: Path, parser: str | None) -> None:
    extra = {} if parser is None else {"CONSENTRY_SERVER_HTTP": parser}
    start = b"GET /v1/audit-log HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer csk_"
    with serving(_environment(tmp_path, **extra), tmp_path / "serve.log") as base:
        # A head still unfinished past the default 16 KiB is refused by the server itself.
        connection, answer = _exchange(base, start + b"a" * 20 * 1024)
        with closing(connection):
            if parser == "h11":
                assert answer.startswith(b"HTTP/1.1 400"), answer  # uvicorn's own answer
            else:
                assert answer.startswith(b"HTTP/1.1 431 "), answer
                head, _, body = answer.partition(b"\r\n\r\n")
                assert b"content-type: application/problem+json" in head.lower()
                assert b"connection: close" in head.lower()
                problem = json.loads(body)
                assert problem["status"] == 431
                assert problem["code"] == "request_header_fields_too_large"
                assert "16384" in problem["detail"]
        if parser != "h11":
            # Counted across reads: two pieces of 9 KiB are one head of 18 KiB. (h11 bounds only
            # what is still unfinished, so there a head completed by its last read passes.)
            connection = _connect(base)
            with closing(connection):
                connection.sendall(start + b"a" * 9 * 1024)
                connection.sendall(b"a" * 9 * 1024 + b"\r\n\r\n")
                assert connection.recv(65536).startswith(b"HTTP/1.1 431 ")
        # A head within the limit reaches the service, which refuses a token past 8 KiB itself.
        connection, answer = _exchange(base, start + b"a" * 12 * 1024 + b"\r\n\r\n")
        with closing(connection):
            assert answer.startswith(b"HTTP/1.1 401 "), answer
        assert httpx.get(f"{base}/healthz").status_code == 200


def test_a_20_mb_token_is_cut_off_and_the_server_keeps_answering(server: str) -> None:
    connection = _connect(server)
    pad = b"a" * 65536
    cut_off = False
    with closing(connection):
        connection.sendall(b"GET /v1/audit-log HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer csk_")
        try:
            for _ in range(20_000_000 // len(pad)):
                connection.sendall(pad)
        except (BrokenPipeError, ConnectionResetError):
            cut_off = True  # the server closed the connection long before 20 MB
        if not cut_off:
            connection.sendall(b"\r\n\r\n")
            cut_off = connection.recv(65536).startswith(b"HTTP/1.1 431 ")
    assert cut_off
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}


def test_a_token_past_8_kib_within_the_head_limit_is_401(server: str) -> None:
    response = httpx.get(
        f"{server}/v1/audit-log", headers={"Authorization": "Bearer csk_" + "a" * 9 * 1024}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert "8192" in response.json()["detail"]


def test_the_head_cap_counts_each_head_and_never_a_body(server: str) -> None:
    token = b"csk_" + b"a" * 8000
    head = b"GET /v1/audit-log HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + b"\r\n"
    connection = _connect(server)
    with closing(connection):
        # Two heads of 8 KiB on one keep-alive connection: each is within 16 KiB.
        for _ in range(2):
            connection.sendall(head + b"X-Pad: " + b"p" * 4000 + b"\r\n\r\n")
            assert _answer(connection).startswith(b"HTTP/1.1 401 ")
    # A small head and a 60 KiB body in one write: only the head is counted.
    body = json.dumps({"categories": {}, "pad": "x" * 60_000}).encode()
    request = (
        f"PUT /v1/subjects/{anon_id()}/consent HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    connection, answer = _exchange(server, request + body)
    with closing(connection):
        assert answer.startswith(b"HTTP/1.1 422 "), answer[:200]
