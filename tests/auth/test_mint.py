"""`consentry tokens mint`: learner tokens for trying things out, refused in production."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import pytest

from consentry.settings import get_settings
from tests.cli import Cli, Run
from tests.helpers import JWT_SECRET, bearer, choice

pytestmark = pytest.mark.anyio

PRODUCTION = {
    "CONSENTRY_ENV": "production",
    "CONSENTRY_JWT_SECRET": JWT_SECRET,
    "CONSENTRY_PSEUDONYM_KEY": "a-pseudonym-key-of-at-least-32-characters-0123",
}


@pytest.fixture
def cli_env() -> dict[str, str]:
    """The secret the test app verifies learner tokens with."""
    return {"CONSENTRY_JWT_SECRET": JWT_SECRET}


def _assert_refused(run: Run, reason: str) -> None:
    """The command printed no token and said why."""
    assert run.code == 1
    assert run.out == ""
    assert reason in run.err


def _settings_from(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Run the next commands with `env` on top of the test's settings."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


async def test_a_minted_token_reaches_its_own_subject_only(
    cli: Cli, client: httpx.AsyncClient
) -> None:
    run = await cli("tokens", "mint", "--subject", "u-mint-1")
    assert run.code == 0, run.err
    [token] = run.out.splitlines()
    mine = "/v1/subjects/u-mint-1/consent"
    assert (await client.put(mine, json=choice(functional=True), headers=bearer(token))).is_success
    read = await client.get(mine, headers=bearer(token))
    assert read.json()["categories"]["functional"]["granted"] is True
    other = await client.get("/v1/subjects/u-mint-2/consent", headers=bearer(token))
    assert other.status_code == 403


async def test_the_token_carries_its_lifetime_and_name(cli: Cli) -> None:
    run = await cli("tokens", "mint", "--subject", "u-mint-1", "--minutes", "5", "--name", "Ada")
    assert run.code == 0, run.err
    claims = jwt.decode(run.out.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "u-mint-1"
    assert claims["name"] == "Ada"
    assert claims["exp"] - claims["iat"] == 300
    assert abs(claims["iat"] - time.time()) < 60


@pytest.mark.parametrize("minutes", ["0", "1441", "soon"])
async def test_a_lifetime_outside_a_day_is_refused(cli: Cli, minutes: str) -> None:
    run = await cli("tokens", "mint", "--subject", "u-mint-1", "--minutes", minutes)
    assert run.code == 2
    assert run.out == ""


async def test_a_malformed_subject_is_refused(cli: Cli) -> None:
    _assert_refused(await cli("tokens", "mint", "--subject", "u mint"), "not a valid subject id")


async def test_without_a_secret_it_says_which_to_set(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONSENTRY_JWT_SECRET")
    get_settings.cache_clear()
    _assert_refused(await cli("tokens", "mint", "--subject", "u-mint-1"), "CONSENTRY_JWT_SECRET")


async def test_production_refuses_the_services_own_secret(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings_from(monkeypatch, PRODUCTION)
    run = await cli("tokens", "mint", "--subject", "u-mint-1")
    _assert_refused(run, "refusing to mint")
    assert "--secret-file" in run.err


async def test_production_signs_with_a_secret_given_explicitly(
    cli: Cli, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _settings_from(monkeypatch, PRODUCTION)
    secret_file = tmp_path / "secret"
    secret_file.write_text(JWT_SECRET + "\n")
    run = await cli("tokens", "mint", "--subject", "u-mint-1", "--secret-file", str(secret_file))
    assert run.code == 0, run.err
    read = await client.get("/v1/subjects/u-mint-1/consent", headers=bearer(run.out.strip()))
    assert read.status_code == 200


async def test_an_empty_secret_file_is_refused(cli: Cli, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("\n")
    run = await cli("tokens", "mint", "--subject", "u-mint-1", "--secret-file", str(secret_file))
    _assert_refused(run, "empty")
