"""Where the workers of one `consentry serve` share their metrics (prometheus-client's files).

Only the standard library here: `consentry serve` prepares the directory before any worker
imports prometheus-client, which reads `PROMETHEUS_MULTIPROC_DIR` once, at import.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def shared_directory() -> str | None:
    """The directory the workers of this server write their metrics to, if there is one."""
    return os.environ.get(MULTIPROC_DIR) or None


def prepare(workers: int) -> Path | None:
    """Ready the metrics directory for a server about to start `workers` processes.

    An existing `PROMETHEUS_MULTIPROC_DIR` is created if missing and emptied of a previous
    run's files (their processes are gone; a restarted container keeps its emptyDir). Without
    one, several workers get a fresh temporary directory, which is returned for removal at
    exit; a single worker keeps its metrics in memory.
    """
    configured = shared_directory()
    if configured is not None:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink(missing_ok=True)
        return None
    if workers <= 1:
        return None
    created = Path(tempfile.mkdtemp(prefix="consentry-metrics-"))
    os.environ[MULTIPROC_DIR] = str(created)
    return created


def dead_pids(directory: str) -> set[int]:
    """Processes that left per-process gauge files (`gauge_live*_<pid>.db`) and are gone."""
    dead = set()
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid_text = path.stem.rpartition("_")[2]
        if pid_text.isdigit() and not _is_alive(int(pid_text)):
            dead.add(int(pid_text))
    return dead


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
