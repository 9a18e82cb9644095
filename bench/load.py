"""Driving a server with wrk, and reading back what each run measured."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import HarnessError

LUA_DIR = Path(__file__).resolve().parent
# Requests that queue past wrk's 2 s default would be dropped from the latency figures.
TIMEOUT = "10s"
INSTALL_HINT = "wrk is not installed: apt-get install wrk (Debian and Ubuntu)"


@dataclass(frozen=True)
class Load:
    """The shape of every wrk run: how many threads and connections, for how long."""

    threads: int
    connections: int
    duration: int
    warmup: int


@dataclass(frozen=True)
class Measurement:
    """What one wrk run measured."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def rate(self) -> float:
        """Requests per second over the whole run."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def problems(self) -> list[str]:
        """Why the run's numbers do not describe successful requests, if they do not."""
        found = []
        if self.non_2xx:
            found.append(f"{self.non_2xx} non-2xx responses")
        if self.socket_errors:
            found.append(f"{self.socket_errors} socket errors or timeouts")
        if not self.requests:
            found.append("no request completed")
        return found


def ensure_wrk() -> str:
    """The path of wrk; installs it with apt-get when running as root, or fails saying how."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise HarnessError(INSTALL_HINT)
    print(f"bench: {INSTALL_HINT}; running as root, so installing it", file=sys.stderr)
    if not _apt_get("install", "-y", "wrk"):
        # A machine whose package lists were never fetched knows no wrk yet.
        _apt_get("update")
        _apt_get("install", "-y", "wrk")
    found = shutil.which("wrk")
    if not found:
        raise HarnessError(f"apt-get could not install wrk; {INSTALL_HINT}")
    return found


def _apt_get(*args: str) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "-q", *args]
    # Its output goes to the terminal: an install is worth seeing.
    return subprocess.run(command, env=env, check=False).returncode == 0  # noqa: S603


def run_wrk(
    wrk: str, script: str, url: str, seconds: int, load: Load, env: dict[str, str], result: Path
) -> Measurement:
    """One wrk run of `script` against `url`.

    Its Lua `done()` writes the summary to `result` (JSON); wrk's own text report, with the
    latency distribution, is kept beside it as `.txt`.
    """
    command = [
        wrk,
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{seconds}s",
        f"--timeout={TIMEOUT}",
        "--latency",
        "-s",
        str(LUA_DIR / script),
        url,
    ]
    run_env = {
        **env,
        "BENCH_LUA_DIR": str(LUA_DIR),
        "BENCH_THREADS": str(load.threads),
        "BENCH_RESULT": str(result),
    }
    result.unlink(missing_ok=True)
    completed = subprocess.run(  # noqa: S603 -- wrk from PATH, arguments built here
        command, env=run_env, capture_output=True, text=True, check=False
    )
    result.with_suffix(".txt").write_text(completed.stdout + completed.stderr)
    if completed.returncode != 0 or not result.exists():
        output = (completed.stdout + completed.stderr).strip()
        raise HarnessError(f"wrk {script} failed (exit {completed.returncode}):\n{output}")
    return _measurement(json.loads(result.read_text()))


def _measurement(summary: dict[str, Any]) -> Measurement:
    errors = summary["errors"]
    return Measurement(
        requests=int(summary["requests"]),
        seconds=summary["duration_us"] / 1e6,
        p50_ms=summary["p50_us"] / 1e3,
        p99_ms=summary["p99_us"] / 1e3,
        # wrk counts every status >= 400 here; the service answers no 3xx to these requests.
        non_2xx=int(errors["status"]),
        socket_errors=sum(int(errors[k]) for k in ("connect", "read", "write", "timeout")),
    )
