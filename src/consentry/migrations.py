"""Alembic, driven from code: where the migrations live, upgrading, and the head revision."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory


def migrations_dir() -> Path:
    """The Alembic scripts: packaged inside a wheel, or at the top of a source checkout."""
    packaged = Path(__file__).with_name("_migrations")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration for `database_url`, independent of the working directory."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """Take the schema back to `revision`."""
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str | None:
    """The revision the code expects the schema to be at."""
    return ScriptDirectory(str(migrations_dir())).get_current_head()


def known_revisions() -> frozenset[str]:
    """Every revision this code carries; a schema at another was migrated by a newer release."""
    return frozenset(r.revision for r in ScriptDirectory(str(migrations_dir())).walk_revisions())
