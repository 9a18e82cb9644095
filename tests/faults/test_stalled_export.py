"""Clients that open exports and never read them: the rest of the service keeps answering.

A real `consentry serve` on PostgreSQL, raw sockets with a 4 KiB receive buffer that send the
export request and read nothing, and the database itself asked what holds its connections.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import uuid
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _asyncpg_dsn
from tests.faults.polling import until
from tests.helpers import ADMIN_KEY, JWT_SECRET, bearer, choice, user_token
from tests.processes import environment, serving

pytestmark = pytest.mark.anyio

# Small, so that the test sees each bound pass within seconds; the defaults are larger.
DATABASE_TIMEOUT = 2
SEND_TIMEOUT = 3
EXPORT_TIMEOUT = 4
PER_SUBJECT = 2
CONCURRENCY = 4
# Each big subject's document (several MB) is larger than the kernel's socket buffers and the
# export's read-ahead together, so a client that never reads stalls the response.
EVENTS_PER_SUBJECT = 6000
PADDING = 1000


async def _insert_events(pg_url: str, subjects: list[str]) -> None:
    """Several MB of events per subject, written by PostgreSQL itself in one statement each."""
    connection = await asyncpg.connect(_asyncpg_dsn(pg_url), timeout=10)
    try:
        for subject in subjects:
            await connection.execute(
                """
                INSERT INTO events (subject_id, event_id, category, name, occurred_at,
                                    received_at, properties, context)
                SELECT $1, gen_random_uuid()::text, 'necessary', 'page_view',
                       now() - make_interval(secs => n), now(),
                       jsonb_build_object('n', n, 'padding', repeat('x', $2)), '{}'::jsonb
                FROM generate_series(1, $3) AS n
                """,
                subject,
                PADDING,
                EVENTS_PER_SUBJECT,
            )
    finally:
        await connection.close()


async def _idle_in_transaction(pg_url: str) -> int:
    """Connections to the test's database that sit in an open transaction doing nothing."""
    connection = await asyncpg.connect(_asyncpg_dsn(pg_url), timeout=10)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = $1 AND state LIKE 'idle in transaction%'",
            make_url(pg_url).database,
        )
    finally:
        await connection.close()
    return count


def _stalled_export(base: str, subject: str, token: str) -> socket.socket:
    """A connection that asks for `subject`'s export, then reads nothing."""
    address = urlsplit(base)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(20)
    sock.connect((address.hostname, address.port))
    sock.sendall(
        f"GET /v1/subjects/{subject}/export HTTP/1.1\r\n"
        f"Host: {address.netloc}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    return sock


def _status(sock: socket.socket) -> int:
    """The response's status, peeked at: the socket's receive queue stays as full as it was."""
    head = b""
    while len(head) < 12:
        head = sock.recv(12, socket.MSG_PEEK)
        if not head:
            raise AssertionError("the server closed the connection without an answer")
    return int(head[9:12])


def _whole_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or resets it)."""
    received = bytearray()
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return bytes(received)


def _refusal(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, object]]:
    """A small complete answer: its status, headers and JSON body."""
    data = bytearray()
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    length = int(headers["content-length"])
    while len(body) < length:
        body += sock.recv(65536)
    return int(lines[0][9:12]), headers, json.loads(body)


def _opened(stack: ExitStack, base: str, subject: str, count: int) -> list[socket.socket]:
    """`count` stalled exports of `subject`, with its own JWT, closed when `stack` ends."""
    token = user_token(subject)
    return [stack.enter_context(_stalled_export(base, subject, token)) for _ in range(count)]


@pytest.mark.postgresql_only
async def test_stalled_exports_never_starve_other_requests(pg_url: str, tmp_path: Path) -> None:
    await _insert_events(pg_url, ["learner-big-a", "learner-big-b"])
    env = environment(
        CONSENTRY_DATABASE_URL=pg_url,
        CONSENTRY_ADMIN_KEY=ADMIN_KEY,
        CONSENTRY_JWT_SECRET=JWT_SECRET,
        CONSENTRY_DATABASE_TIMEOUT_SECONDS=str(DATABASE_TIMEOUT),
        CONSENTRY_SERVER_SEND_TIMEOUT_SECONDS=str(SEND_TIMEOUT),
        CONSENTRY_EXPORT_TIMEOUT_SECONDS=str(EXPORT_TIMEOUT),
        CONSENTRY_EXPORT_PER_SUBJECT=str(PER_SUBJECT),
        CONSENTRY_EXPORT_CONCURRENCY=str(CONCURRENCY),
        CONSENTRY_EXPORT_BUFFER_BYTES=str(1024 * 1024),
    )
    # Generous: anything slower than this is a hang.
    prompt = httpx.Timeout(3 * DATABASE_TIMEOUT + 5)
    with (
        serving(env, tmp_path / "serve.log", "--no-migrate") as base,
        ExitStack() as stack,
    ):
        # Eleven exports of one learner: as many as the per-subject cap proceed, and stall.
        sockets_a = _opened(stack, base, "learner-big-a", 11)
        statuses_a = [_status(sock) for sock in sockets_a]
        assert sorted(statuses_a).count(200) == PER_SUBJECT
        for sock, status in zip(sockets_a, statuses_a, strict=True):
            if status != 200:
                code, headers, body = _refusal(sock)
                assert (code, body["code"]) == (429, "rate_limited")
                assert int(headers["retry-after"]) > 0
        # Another learner fills the process's export slots; past them, 503.
        sockets_b = _opened(stack, base, "learner-big-b", PER_SUBJECT)
        assert [_status(sock) for sock in sockets_b] == [200] * PER_SUBJECT
        (sock_c,) = _opened(stack, base, "learner-small", 1)
        code, headers, body = _refusal(sock_c)
        assert (code, body["code"]) == (503, "service_unavailable")
        assert int(headers["retry-after"]) > 0
        stalled = [s for s, status in zip(sockets_a, statuses_a, strict=True) if status == 200]
        stalled += sockets_b

        # Meanwhile another learner reads and writes its consent, promptly.
        other = bearer(user_token("learner-other"))
        async with httpx.AsyncClient(base_url=base, timeout=prompt, headers=other) as client:
            path = "/v1/subjects/learner-other/consent"
            written = await client.put(path, json=choice(performance=True))
            assert written.status_code == 200, written.text
            read = await client.get(path)
            assert read.status_code == 200, read.text
            assert read.json()["categories"]["performance"]["granted"] is True

        # The stalled exports let go of the database within their bounds.
        window = SEND_TIMEOUT + EXPORT_TIMEOUT + 10
        await until(
            lambda: _no_open_transactions(pg_url),
            "the stalled exports' transactions ended",
            seconds=window,
        )
        # And their connections were cut: each got less than its whole document.
        for sock in stalled:
            sock.settimeout(window)
            received = await asyncio.to_thread(_whole_response, sock)
            # A chunked body that was sent whole ends with its last, empty chunk.
            assert not received.endswith(b"0\r\n\r\n"), "a stalled export was sent whole"

        # The slots are free again: the learner's export arrives whole, with every event.
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            token = bearer(user_token("learner-big-a"))
            response = await client.get("/v1/subjects/learner-big-a/export", headers=token)
            assert response.status_code == 200, response.text
            assert len(response.json()["events"]) == EVENTS_PER_SUBJECT


async def _no_open_transactions(pg_url: str) -> bool:
    return await _idle_in_transaction(pg_url) == 0


def _insert_sqlite_events(path: Path, subject: str) -> None:
    """Several MB of events for `subject` in a SQLite file the server has migrated."""
    rows = [
        (
            subject,
            str(uuid.uuid4()),
            "necessary",
            "page_view",
            f"2026-01-01 00:{n // 600 % 60:02d}:{n // 10 % 60:02d}.{n % 10:06d}",
            "2026-01-01 01:00:00.000000",
            json.dumps({"n": n, "padding": "x" * PADDING}),
            "{}",
        )
        for n in range(EVENTS_PER_SUBJECT)
    ]
    with sqlite3.connect(path) as connection:
        connection.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _snapshot_free(path: Path) -> bool:
    """Whether no reader holds a snapshot of the SQLite file (a truncating checkpoint completes)."""
    with sqlite3.connect(path, timeout=0) as connection:
        busy: int = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    return busy == 0


async def test_a_stalled_export_on_sqlite_is_cut_off_and_lets_go(tmp_path: Path) -> None:
    """The other database and the other HTTP parser: the same bounds."""
    path = tmp_path / "consentry.db"
    env = environment(
        CONSENTRY_DATABASE_URL=f"sqlite+aiosqlite:///{path}",
        CONSENTRY_ADMIN_KEY=ADMIN_KEY,
        CONSENTRY_JWT_SECRET=JWT_SECRET,
        CONSENTRY_SERVER_HTTP="h11",
        CONSENTRY_SERVER_SEND_TIMEOUT_SECONDS=str(SEND_TIMEOUT),
        CONSENTRY_EXPORT_BUFFER_BYTES=str(1024 * 1024),
    )
    with serving(env, tmp_path / "serve.log") as base, ExitStack() as stack:
        _insert_sqlite_events(path, "learner-big")
        (sock,) = _opened(stack, base, "learner-big", 1)
        assert _status(sock) == 200
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            other = bearer(user_token("learner-other"))
            path_other = "/v1/subjects/learner-other/consent"
            written = await client.put(path_other, json=choice(), headers=other)
            assert written.status_code == 200, written.text
        # The database is done with the export while the client still reads nothing.
        await until(lambda: asyncio.to_thread(_snapshot_free, path), "the snapshot ended")
        # The server cuts the client off once it has taken nothing for the send timeout.
        sock.settimeout(SEND_TIMEOUT + 20)
        received = await asyncio.to_thread(_whole_response, sock)
        assert not received.endswith(b"0\r\n\r\n"), "a stalled export was sent whole"
