"""Readable lines on a developer's terminal, JSON everywhere else: what `consentry serve` picks."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from consentry.settings import Settings
from tests.helpers import JWT_SECRET
from tests.processes import CONSENTRY, environment, free_port

STARTED = b"Application startup complete"


@pytest.mark.parametrize(
    ("env", "log_format", "terminal", "chosen"),
    [
        ("development", None, True, "text"),
        ("development", None, False, "json"),
        ("production", None, True, "json"),
        ("production", None, False, "json"),
        ("development", "json", True, "json"),
        ("production", "text", False, "text"),
    ],
)
def test_the_setting_wins_else_the_terminal_outside_production(
    env: str, log_format: str | None, terminal: bool, chosen: str
) -> None:
    settings = Settings(
        env=env,  # type: ignore[arg-type]
        log_format=log_format,  # type: ignore[arg-type]
        jwt_secret=JWT_SECRET,
        pseudonym_key="a-pseudonym-key-of-at-least-32-characters-0123",
    )
    assert settings.log_format_for(terminal=terminal) == chosen


def test_an_empty_setting_means_unset() -> None:
    assert Settings(log_format="").log_format is None  # type: ignore[arg-type]


def _serve_on_a_terminal(tmp_path: Path, **settings: str) -> list[str]:
    """The lines `consentry serve` writes to a terminal until started, then for one request."""
    port = free_port()
    env = environment(
        CONSENTRY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}", **settings
    )
    controller, terminal = pty.openpty()
    output = b""
    with subprocess.Popen(
        [*CONSENTRY, "serve", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    ) as process:
        os.close(terminal)
        try:
            deadline = time.monotonic() + 60
            while STARTED not in output:
                assert time.monotonic() < deadline, output.decode(errors="replace")
                if select.select([controller], [], [], 0.5)[0]:
                    output += os.read(controller, 65536)
            assert httpx.get(f"http://127.0.0.1:{port}/v1/policy").status_code == 200
            while b"/v1/policy" not in output:
                assert time.monotonic() < deadline, output.decode(errors="replace")
                if select.select([controller], [], [], 0.5)[0]:
                    output += os.read(controller, 65536)
        finally:
            process.terminate()
            process.wait(timeout=15)
            os.close(controller)
    return output.decode().splitlines()


def test_a_terminal_gets_readable_lines_in_development(tmp_path: Path) -> None:
    lines = _serve_on_a_terminal(tmp_path)
    assert not any(line.startswith("{") for line in lines)
    assert any(" info uvicorn.error [-] Application startup complete" in line for line in lines), (
        lines
    )
    [access] = [line for line in lines if " consentry.access " in line]
    assert "method=GET route=/v1/policy status=200" in access


def test_a_terminal_in_production_still_gets_json(tmp_path: Path) -> None:
    lines = _serve_on_a_terminal(
        tmp_path,
        CONSENTRY_ENV="production",
        CONSENTRY_JWT_SECRET=JWT_SECRET,
        CONSENTRY_PSEUDONYM_KEY="a-pseudonym-key-of-at-least-32-characters-0123",
    )
    entries = [json.loads(line) for line in lines if line.strip()]
    assert any(entry["message"] == "Application startup complete." for entry in entries)
    [access] = [entry for entry in entries if entry["logger"] == "consentry.access"]
    assert access["route"] == "/v1/policy"
