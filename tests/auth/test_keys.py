"""`consentry keys create | list | revoke`: shown once, stored as SHA-256 only, revoked at once."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, select

from consentry.keys.models import ApiKey
from tests.cli import Cli
from tests.helpers import bearer, choice

pytestmark = pytest.mark.anyio


async def _create(cli: Cli, name: str, *scopes: str) -> str:
    """Create a key through the CLI and return the one line it printed."""
    run = await cli("keys", "create", "--name", name, "--scope", *scopes)
    assert run.code == 0, run.err
    return run.out.strip()


async def _rows(app: FastAPI) -> list[dict[str, Any]]:
    """Every column of every stored key."""
    async with app.state.database.reader() as reader:
        return [dict(row) for row in await reader.all(select(ApiKey.__table__))]


async def _read_status(client: httpx.AsyncClient, key: str) -> int:
    return (await client.get("/v1/subjects/learner-1/consent", headers=bearer(key))).status_code


async def test_create_prints_the_key_once(cli: Cli, client: httpx.AsyncClient) -> None:
    run = await cli(
        "keys", "create", "--name", "reporting", "--scope", "consent:read", "events:write"
    )
    assert run.code == 0, run.err
    [key] = run.out.splitlines()
    assert key.startswith("csk_")
    assert len(key) >= 40
    assert "reporting" in run.err
    assert key not in run.err
    assert await _read_status(client, key) == 200
    write = await client.put("/v1/subjects/learner-1/consent", json=choice(), headers=bearer(key))
    assert write.status_code == 403


async def test_only_the_sha256_is_stored(cli: Cli, app: FastAPI) -> None:
    key = await _create(cli, "relay", "consent:write")
    [row] = await _rows(app)
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["name"] == "relay"
    for column, value in row.items():
        assert key not in str(value), column


async def test_list_never_prints_the_key(cli: Cli) -> None:
    kept = await _create(cli, "frontend", "consent:read", "consent:write")
    dropped = await _create(cli, "old-importer", "privacy:admin")
    assert (await cli("keys", "revoke", "old-importer")).code == 0

    table = await cli("keys", "list")
    as_json = await cli("keys", "list", "--json")

    for run in (table, as_json):
        assert run.code == 0, run.err
        assert kept not in run.out + run.err
        assert dropped not in run.out + run.err
    lines = table.out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("frontend\t") and lines[0].endswith("\tactive")
    assert lines[1].startswith("old-importer\t") and "\trevoked " in lines[1]
    listed = {entry["name"]: entry for entry in json.loads(as_json.out)}
    assert listed["frontend"]["scopes"] == ["consent:read", "consent:write"]
    assert listed["frontend"]["revoked_at"] is None
    assert listed["old-importer"]["revoked_at"] is not None


async def test_revoke_answers_401_at_once(cli: Cli, client: httpx.AsyncClient) -> None:
    key = await _create(cli, "batch", "consent:read")
    assert await _read_status(client, key) == 200

    run = await cli("keys", "revoke", "batch")

    assert run.code == 0, run.err
    assert run.out.strip() == "revoked batch"
    response = await client.get("/v1/subjects/learner-1/consent", headers=bearer(key))
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert (await cli("keys", "revoke", "batch")).code == 1


async def test_revoke_takes_the_name_as_option_too(cli: Cli, client: httpx.AsyncClient) -> None:
    key = await _create(cli, "batch", "consent:read")
    run = await cli("keys", "revoke", "--name", "batch")
    assert run.code == 0, run.err
    assert await _read_status(client, key) == 401


async def test_revoke_unknown_name_fails(cli: Cli) -> None:
    run = await cli("keys", "revoke", "nobody")
    assert run.code == 1
    assert "nobody" in run.err


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--name", "ok", "--scope", "consent:delete"], 2),
        (["--name", "ok", "--scope", "privacy"], 2),
        (["--name", "ok"], 2),
        (["--name", "has space", "--scope", "consent:read"], 1),
        (["--name", "", "--scope", "consent:read"], 1),
        (["--name", ".hidden", "--scope", "consent:read"], 1),
        (["--name", "trailing-newline\n", "--scope", "consent:read"], 1),
        (["--name", "x" * 65, "--scope", "consent:read"], 1),
        (["--name", "scope:like", "--scope", "consent:read"], 1),
    ],
    ids=[
        "unknown-scope",
        "partial-scope",
        "no-scope",
        "space",
        "empty",
        "leading-dot",
        "trailing-newline",
        "too-long",
        "colon",
    ],
)
async def test_invalid_scope_or_name_is_refused(
    cli: Cli, app: FastAPI, args: list[str], code: int
) -> None:
    run = await cli("keys", "create", *args)
    assert run.code == code
    assert run.out == ""
    assert run.err
    assert await _rows(app) == []


async def test_duplicate_name_is_refused(cli: Cli, app: FastAPI, client: httpx.AsyncClient) -> None:
    first = await _create(cli, "frontend", "consent:read")

    run = await cli("keys", "create", "--name", "frontend", "--scope", "privacy:admin")

    assert run.code == 1
    assert run.out == ""
    assert "already exists" in run.err
    [row] = await _rows(app)
    assert row["scopes"] == ["consent:read"]
    assert await _read_status(client, first) == 200


RESERVED = ["admin", "subject", "worker", "cli", "Admin", "SUBJECT", "Worker", "CLI"]
SYSTEM = ["system:retention", "System:worker", "SYSTEM:", "system:"]


@pytest.mark.parametrize("name", RESERVED + SYSTEM)
async def test_reserved_names_are_refused(cli: Cli, app: FastAPI, name: str) -> None:
    run = await cli("keys", "create", "--name", name, "--scope", "consent:read")

    assert run.code == 1
    assert run.out == ""
    assert "reserved" in run.err
    assert repr(name) in run.err
    assert await _rows(app) == []
    # Nothing was stored, so nothing is listed.
    assert (await cli("keys", "list")).out == ""


@pytest.mark.parametrize("name", ["admins", "subject-sync", "cli-tools", "my-worker", "systems"])
async def test_names_that_only_contain_a_reserved_word_are_allowed(cli: Cli, name: str) -> None:
    assert (await _create(cli, name, "consent:read")).startswith("csk_")


async def _insert_key(app: FastAPI, name: str, *scopes: str) -> str:
    """A key stored directly, as one made before names were reserved would be."""
    key = "csk_" + hashlib.sha256(name.encode()).hexdigest()
    async with app.state.database.unit_of_work() as uow:
        await uow.execute(
            insert(ApiKey).values(
                id=str(uuid.uuid4()),
                name=name,
                key_hash=hashlib.sha256(key.encode()).hexdigest(),
                prefix=key[:10],
                scopes=list(scopes),
                created_at=datetime.now(UTC),
            )
        )
    return key


async def test_existing_keys_with_reserved_names_keep_working_and_are_flagged(
    cli: Cli, app: FastAPI, client: httpx.AsyncClient
) -> None:
    old = await _insert_key(app, "subject", "consent:read", "consent:write")
    system = await _insert_key(app, "system:import", "consent:read")
    await _create(cli, "frontend", "consent:read")

    assert await _read_status(client, old) == 200
    assert await _read_status(client, system) == 200
    write = await client.put("/v1/subjects/learner-1/consent", json=choice(), headers=bearer(old))
    assert write.status_code == 200, write.text

    table = await cli("keys", "list")
    as_json = await cli("keys", "list", "--json")

    assert table.code == 0 and as_json.code == 0
    lines = {line.split("\t")[0]: line for line in table.out.splitlines()}
    assert lines["subject"].endswith("\tactive\treserved name")
    assert lines["system:import"].endswith("\tactive\treserved name")
    assert lines["frontend"].endswith("\tactive")
    assert "'subject'" in table.err and "'system:import'" in table.err
    listed = {entry["name"]: entry for entry in json.loads(as_json.out)}
    assert listed["subject"]["reserved_name"] is True
    assert listed["system:import"]["reserved_name"] is True
    assert listed["frontend"]["reserved_name"] is False
    # Still revocable by its name.
    assert (await cli("keys", "revoke", "subject")).code == 0
    assert await _read_status(client, old) == 401
