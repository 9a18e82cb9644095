"""How `consentry serve` readies the directory its workers share their metrics in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from consentry.observability import multiprocess
from consentry.observability.multiprocess import MULTIPROC_DIR


def test_a_configured_directory_is_created_and_emptied_of_a_previous_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_4242.db").write_bytes(b"from a process that is gone")
    (directory / "notes.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_DIR, str(directory))
    assert multiprocess.prepare(workers=4) is None
    assert sorted(p.name for p in directory.iterdir()) == ["notes.txt"]

    missing = tmp_path / "emptydir" / "metrics"
    monkeypatch.setenv(MULTIPROC_DIR, str(missing))
    assert multiprocess.prepare(workers=1) is None
    assert missing.is_dir()


def test_several_workers_get_a_temporary_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    # Set first, so that the variable prepare() sets is removed again after the test.
    monkeypatch.setenv(MULTIPROC_DIR, "")
    monkeypatch.delenv(MULTIPROC_DIR)
    created = multiprocess.prepare(workers=2)
    try:
        assert created is not None and created.is_dir()
        assert os.environ[MULTIPROC_DIR] == str(created)
    finally:
        if created is not None:
            created.rmdir()


def test_one_worker_without_a_directory_keeps_metrics_in_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(MULTIPROC_DIR, "")
    monkeypatch.delenv(MULTIPROC_DIR)
    assert multiprocess.prepare(workers=1) is None
    assert MULTIPROC_DIR not in os.environ


def test_gauges_of_processes_that_are_gone_are_found(tmp_path: Path) -> None:
    (tmp_path / f"gauge_liveall_{os.getpid()}.db").touch()
    (tmp_path / "gauge_liveall_999999999.db").touch()
    (tmp_path / "counter_999999999.db").touch()
    assert multiprocess.dead_pids(str(tmp_path)) == {999999999}
