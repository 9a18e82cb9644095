"""`consentry serve` as a real process, for the tests that need a real server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

CONSENTRY = [sys.executable, "-m", "consentry"]


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment(**settings: str) -> dict[str, str]:
    """This process's environment without its CONSENTRY_ settings, then `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    env.update(settings)
    return env


@dataclass(frozen=True)
class Server:
    """A running `consentry serve`: where it answers, its process, and its output."""

    base: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def serving(env: dict[str, str], log: Path, *args: str) -> Iterator[str]:
    """`consentry serve` with `env` until the block ends; yields its base URL once it is ready."""
    with server_process(env, log, *args) as server:
        yield server.base


@contextmanager
def server_process(
    env: dict[str, str], log: Path, *args: str, cwd: Path | None = None
) -> Iterator[Server]:
    """`consentry serve` as serving() starts it, for a test that signals the process itself.

    A process still running when the block ends is terminated.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [*CONSENTRY, "serve", "--port", str(port), *args]
    with (
        log.open("wb") as output,
        subprocess.Popen(
            command, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT
        ) as process,
    ):
        try:
            deadline = time.monotonic() + 30
            while not _ready(base):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log.read_text())
                time.sleep(0.1)
            yield Server(base, process, log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()  # rather than wait for ever on leaving the `with` above
                raise


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz").status_code == 200
    except httpx.TransportError:
        return False
