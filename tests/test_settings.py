"""Settings: environment parsing, and refusing to run production on weak secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from consentry.db import dialect_of
from consentry.settings import Settings

STRONG = "k" * 16 + "Q2x9vB7nM4pL8rT6"


def test_defaults() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite+aiosqlite:///./consentry.db"
    assert settings.env == "development"
    assert dialect_of(settings.database_url) == "sqlite"


def test_lists_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTRY_CORS_ORIGINS", "https://learn.example, https://www.example")
    monkeypatch.setenv("CONSENTRY_OPT_OUT_REGIONS", "us-co,US-VA")
    monkeypatch.setenv("CONSENTRY_TRUSTED_PROXIES", "10.0.0.0/8,fd00::/8")
    settings = Settings()
    assert settings.cors_origins == ["https://learn.example", "https://www.example"]
    assert settings.opt_out_regions == ["US-CO", "US-VA"]
    assert settings.trusted_proxies == ["10.0.0.0/8", "fd00::/8"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("CONSENTRY_OPT_OUT_REGIONS", "DE"), ("CONSENTRY_TRUSTED_PROXIES", "not-a-network")],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    "secrets",
    [
        {},
        {"jwt_secret": ""},
        {"jwt_secret": "short"},
        {"jwt_secret": "changeme-changeme-changeme-changeme"},
        {"jwt_secret": STRONG, "admin_key": "csk_changeme_please_0123456789abcdefgh"},
        {"jwt_secret": STRONG, "admin_key": "csk_short"},
        {"jwt_secret": STRONG, "pseudonym_key": None},
        {"jwt_secret": STRONG, "pseudonym_key": "short"},
    ],
)
def test_production_refuses_weak_secrets(secrets: dict[str, str | None]) -> None:
    values: dict[str, str | None] = {"pseudonym_key": "p" + STRONG, **secrets}
    with pytest.raises(ValidationError, match="refusing to start in production"):
        Settings(env="production", **values)


def test_production_starts_with_strong_secrets() -> None:
    keyed = {"pseudonym_key": "p" + STRONG}
    settings = Settings(env="production", jwt_secret=STRONG, admin_key="csk_" + STRONG, **keyed)
    assert settings.env == "production"
    assert Settings(env="production", jwks_url="https://idp.example/jwks.json", **keyed).jwks_url
