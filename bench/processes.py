"""The processes of a run: the CLI's one-off commands, the service and the floor app."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.errors import HarnessError

ROOT = Path(__file__).resolve().parent.parent
CONSENTRY = str(Path(sys.executable).parent / "consentry")
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0


@dataclass
class Server:
    """A server process started by the harness, and where it logs."""

    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_environment(**settings: str) -> dict[str, str]:
    """This process's environment without the caller's CONSENTRY_* settings, plus `settings`."""
    # A setting left in the shell (a pool size, a log level) would make runs incomparable.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    env.update(settings)
    return env


def consentry(env: dict[str, str], *args: str) -> str:
    """Run one `consentry` CLI command to completion; returns its standard output."""
    result = subprocess.run(  # noqa: S603 -- our own CLI, arguments built here
        [CONSENTRY, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise HarnessError(f"consentry {' '.join(args)} failed:\n{result.stderr.strip()}")
    return result.stdout


def start(name: str, command: list[str], env: dict[str, str], port: int, logs: Path) -> Server:
    """Start a server in its own session, so that only the harness decides when it stops."""
    log = logs / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 -- our own commands, arguments built here
            command,
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(name, process, f"http://127.0.0.1:{port}", log)


def start_service(env: dict[str, str], logs: Path) -> Server:
    """`consentry serve` with one worker, on a free port, without migrating."""
    port = free_port()
    command = [CONSENTRY, "serve", "--host", "127.0.0.1", "--port", str(port)]
    return start("service", [*command, "--workers", "1", "--no-migrate"], env, port, logs)


def start_floor(env: dict[str, str], logs: Path) -> Server:
    """The floor app (bench/floor.py) on a free port."""
    port = free_port()
    command = [sys.executable, "-m", "bench.floor", "--host", "127.0.0.1", "--port", str(port)]
    return start("floor", command, env, port, logs)


def wait_ready(server: Server, paths: tuple[str, ...]) -> None:
    """Wait until every path answers 200, in order; fail if the process dies or never does."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    with httpx.Client(base_url=server.base_url, timeout=2.0) as client:
        for path in paths:
            while not _answers(client, path):
                if server.process.poll() is not None or time.monotonic() > deadline:
                    raise HarnessError(f"{server.name} never answered {path}:\n{tail(server.log)}")
                time.sleep(0.1)


def _answers(client: httpx.Client, path: str) -> bool:
    try:
        return client.get(path).status_code == 200
    except httpx.TransportError:
        return False


def stop(server: Server) -> None:
    """SIGTERM, as an orchestrator would stop it; SIGKILL if it lingers."""
    if server.process.poll() is not None:
        return
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def tail(log: Path, lines: int = 30) -> str:
    """The last lines of a log, to show why a process failed."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
