"""`consentry serve --workers 2`: one scrape, whichever worker answers it, sums both workers."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.multiprocess import MultiProcessCollector

from consentry.observability.multiprocess import MULTIPROC_DIR
from tests.helpers import anon_id
from tests.ops.test_metrics import samples, value
from tests.processes import environment, serving

CONSENT = {"method": "GET", "route": "/v1/subjects/{subject_id}/consent", "status": "200"}
SCRAPE = {"method": "GET", "route": "/metrics", "status": "200"}
# Connections go to whichever worker accepts first; this many tries reach both in practice.
TRIES = 400


def _per_worker(directory: Path, labels: dict[str, str]) -> dict[int, float]:
    """Requests with `labels` each worker counted, read from its own file."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.rpartition("_")[2])
        counts[pid] = sum(
            sample.value
            for metric in MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
            for sample in metric.samples
            if sample.name == "consentry_http_requests_total" and sample.labels == labels
        )
    return counts


def _both(counts: dict[int, float]) -> bool:
    return len(counts) == 2 and min(counts.values()) > 0


def _scrape(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    # No client: each call opens a connection of its own, which either worker may accept.
    response = httpx.get(f"{base}/metrics")
    assert response.status_code == 200
    return samples(response.text)


def _workers_up(base: str) -> set[str]:
    """The pids of the workers that have written their pool gauges."""
    return {
        dict(labels)["pid"]
        for name, labels in _scrape(base)
        if name == "consentry_database_connections_in_use"
    }


def test_every_scrape_sums_the_requests_of_both_workers(tmp_path: Path) -> None:
    # A directory that does not exist yet, as in a container whose emptyDir is mounted at /tmp.
    directory = tmp_path / "run" / "metrics"
    env = environment(
        CONSENTRY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        CONSENTRY_RUN_WORKER="false",
        **{MULTIPROC_DIR: str(directory)},
    )
    with serving(env, tmp_path / "serve.log", "--workers", "2") as base:
        deadline = time.monotonic() + 30
        while len(_workers_up(base)) < 2:
            assert time.monotonic() < deadline, "the second worker did not start"
            time.sleep(0.2)

        made = 0
        while made < TRIES and not _both(_per_worker(directory, CONSENT)):
            assert httpx.get(f"{base}/v1/subjects/{anon_id()}/consent").status_code == 200
            made += 1
        assert _both(_per_worker(directory, CONSENT)), "one worker answered every request"

        for _ in range(TRIES):
            scraped = _scrape(base)
            assert value(scraped, "consentry_http_requests_total", **CONSENT) == made
            assert (
                value(scraped, "consentry_http_request_duration_seconds_count", **CONSENT) == made
            )
            if _both(_per_worker(directory, SCRAPE)):
                break
        assert _both(_per_worker(directory, SCRAPE)), "one worker answered every scrape"


def test_a_single_worker_without_a_directory_keeps_its_metrics_in_memory(
    tmp_path: Path,
) -> None:
    env = environment(CONSENTRY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}")
    env.pop(MULTIPROC_DIR, None)
    with serving(env, tmp_path / "serve.log") as base:
        for _ in range(3):
            httpx.get(f"{base}/v1/subjects/{anon_id()}/consent")
        scraped = _scrape(base)
    assert value(scraped, "consentry_http_requests_total", **CONSENT) == 3
    assert ("consentry_database_connections_in_use", frozenset({("pool", "database")})) in scraped
