"""Running `consentry ...` in process against the test database, as the tests of commands do."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import anyio.to_thread
import pytest
from fastapi import FastAPI

from consentry.cli import main
from consentry.settings import get_settings


@dataclass
class Run:
    """What one CLI invocation did."""

    code: int
    out: str
    err: str


Cli = Callable[..., Awaitable[Run]]


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse refusing the arguments
        return exit_.code if isinstance(exit_.code, int) else 1


@pytest.fixture
def cli_env() -> dict[str, str]:
    """Settings the commands of a test module run with, beside the database."""
    return {}


@pytest.fixture
def cli(
    app: FastAPI,
    database_url: str,
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Cli]:
    """Runs `consentry ...` against the test database; `app` empties the tables afterwards."""
    for name in os.environ:
        if name.startswith("CONSENTRY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CONSENTRY_DATABASE_URL", database_url)
    for name, value in cli_env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()

    async def run(*argv: str) -> Run:
        capsys.readouterr()
        # In a worker thread: the CLI runs its own event loop with asyncio.run().
        code = await anyio.to_thread.run_sync(_exit_code, list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    yield run
    get_settings.cache_clear()
