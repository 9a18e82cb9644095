"""Alembic owns the schema: upgrade from empty, no drift from the models, downgrade round-trips."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from consentry import migrations
from consentry.tables import Base


def _inspect(url: str, work: Any) -> Any:
    async def run() -> Any:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def test_upgrade_matches_models_and_round_trips(empty_database: str) -> None:
    migrations.upgrade(empty_database)
    expected = {table.name for table in Base.metadata.sorted_tables} | {"alembic_version"}
    assert _inspect(empty_database, _tables) == expected
    assert _inspect(empty_database, _differences) == []

    migrations.downgrade(empty_database, "base")
    assert _inspect(empty_database, _tables) <= {"alembic_version"}

    migrations.upgrade(empty_database)
    assert _inspect(empty_database, _differences) == []


def test_history_is_linear() -> None:
    script = ScriptDirectory(str(migrations.migrations_dir()))
    assert len(script.get_heads()) == 1
    assert len(script.get_bases()) == 1
    for revision in script.walk_revisions():
        path = Path(revision.path)
        # Files are named by date and slug: 2026_11_29_0001_consent_core.py
        assert path.name[:4].isdigit() and path.name[4] == "_", path.name
