"""`consentry serve` as a real process: migrates, serves, and refuses bad configuration."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
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
