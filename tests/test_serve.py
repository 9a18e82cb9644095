"""`consentry serve` as a real process: migrates, serves, and refuses bad configuration."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import anon_id, choice

CONSENTRY = [sys.executable, "-m", "consentry"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    env["CONSENTRY_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    env.update(extra)
    return env


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A `consentry serve` process on a fresh SQLite file; yields its base URL."""
    port = _free_port()
    log = tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}"
    with (
        log.open("wb") as output,
        subprocess.Popen(
            [*CONSENTRY, "serve", "--port", str(port)],
            env=_environment(tmp_path),
            stdout=output,
            stderr=subprocess.STDOUT,
        ) as process,
    ):
        try:
            deadline = time.monotonic() + 30
            while not _ready(base):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log.read_text())
                time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=15)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz").status_code == 200
    except httpx.TransportError:
        return False


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
