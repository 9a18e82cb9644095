"""Fixtures of the fault tests: each test gets a PostgreSQL database of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import migrated_pg_database


@pytest.fixture
def pg_url(pg_base_url: str | None) -> Iterator[str]:
    """A new PostgreSQL database migrated to head, dropped after the test."""
    if pg_base_url is None:
        pytest.skip("PostgreSQL is unreachable (see the summary at the end)")
    with migrated_pg_database(pg_base_url) as url:
        yield url
