"""Service configuration, read from `CONSENTRY_*` environment variables."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Values that show a secret was copied from an example instead of generated.
_PLACEHOLDERS = (
    "changeme",
    "change-me",
    "change_me",
    "changethis",
    "placeholder",
    "example",
    "your-",
    "xxxx",
)
_MIN_SECRET_LENGTH = 32
_US_STATE = re.compile(r"^US-[A-Z]{2}$")
_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?"
)
_ORIGIN = re.compile(r"https?://([a-z0-9.-]+|\[[0-9a-f:]+\])(:[0-9]{1,5})?")

CommaList = Annotated[list[str], NoDecode]


def _split(value: object) -> object:
    """Accept `a,b,c` from the environment as well as a real list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every setting of the service; the README lists them with their defaults."""

    model_config = SettingsConfigDict(env_prefix="CONSENTRY_", extra="ignore")

    env: Literal["development", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./consentry.db"
    database_pool_size: int = Field(default=10, ge=1, le=200)
    # Overflow connections are closed as soon as they are returned, so under steady load they
    # are opened and closed over and over; by default requests wait for a pooled one instead.
    database_max_overflow: int = Field(default=0, ge=0, le=200)
    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)
    # Database outages: how long to wait for PostgreSQL (to connect, for a statement, for a
    # pooled connection) before answering 503. A partition sends no reset; without a bound a
    # request would wait for the kernel's TCP timeouts, many minutes.
    database_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    consent_cache_size: int = Field(default=20_000, ge=0, le=10_000_000)
    connection_cache_size: int = Field(default=20_000, ge=0, le=10_000_000)

    admin_key: str | None = None
    jwt_secret: str | None = None
    jwks_url: str | None = None
    jwks_cache_seconds: int = Field(default=300, ge=0)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway_seconds: int = Field(default=0, ge=0, le=300)

    pseudonym_key: str | None = None
    erasure_grace_days: int = Field(default=0, ge=0, le=29)
    event_retention_days: int = Field(default=365, ge=1)
    # The worker inside each service process; off when it runs as its own `consentry worker`.
    run_worker: bool = True
    worker_interval_seconds: float = Field(default=5.0, gt=0, le=3600)

    # Platform systems: hosts (or networks) whose webhooks may use plain http or addresses that
    # are not globally routable (in-cluster services), and the retry delays after a failed
    # delivery attempt (seconds; the contract's schedule unless set, e.g. shorter for tests).
    webhook_allow_hosts: CommaList = Field(default_factory=list)
    webhook_retry_schedule: CommaList = Field(default_factory=list)
    # How often the delivery worker looks for due messages when nothing woke it.
    webhook_poll_seconds: float = Field(default=1.0, gt=0, le=3600)

    policy_file: Path | None = None
    # Event name (or `prefix.*`) → consent category, for analytics messages that name none.
    event_categories: Path | None = None
    # Where people read the published policy, and the platform that /privacy leads back to.
    policy_url: str | None = None
    platform_url: str | None = None
    opt_out_regions: CommaList = Field(default_factory=list)
    region_header: str | None = None
    trusted_proxies: CommaList = Field(default_factory=list)
    cors_origins: CommaList = Field(default_factory=list)

    max_body_bytes: int = Field(default=64 * 1024, ge=1024)

    # Exports: how many run at once per process and per subject, how much of a document is read
    # ahead of a slow client, and how long one may hold its database connection.
    export_concurrency: int = Field(default=4, ge=1, le=200)
    export_per_subject: int = Field(default=2, ge=1, le=200)
    export_buffer_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    export_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)

    # Hardening: rate limits per credential (per process), JSON depth, response headers, and
    # the limits of the HTTP server itself.
    rate_limit_enabled: bool = True
    rate_limit_key_per_second: float = Field(default=2000.0, gt=0)
    rate_limit_key_burst: int = Field(default=4000, ge=1)
    rate_limit_user_per_second: float = Field(default=20.0, gt=0)
    rate_limit_user_burst: int = Field(default=200, ge=1)
    rate_limit_address_per_second: float = Field(default=200.0, gt=0)
    rate_limit_address_burst: int = Field(default=1000, ge=1)
    rate_limit_tracked: int = Field(default=50_000, ge=1000)
    max_json_depth: int = Field(default=32, ge=2, le=512)
    hsts_seconds: int = Field(default=0, ge=0)
    server_http: Literal["auto", "h11", "httptools"] = "auto"
    server_limit_concurrency: int = Field(default=1024, ge=1)
    server_backlog: int = Field(default=2048, ge=1)
    server_keep_alive_seconds: int = Field(default=5, ge=1)
    server_max_incomplete_event_bytes: int = Field(default=16 * 1024, ge=1024)
    # A client that takes nothing of a response for this long is cut off: its unread bytes
    # would otherwise hold the connection, and the request's task, for ever.
    server_send_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Observability: one JSON object per log line, or readable text on a developer's terminal
    # (unset: text when stderr is a terminal outside production, JSON anywhere else); one line
    # per request at INFO unless turned off (the metrics count requests anyway).
    log_format: Literal["json", "text"] | None = None
    access_log: bool = True
    # The API docs pages (/docs, /redoc): unset means on, except in production.
    docs: bool | None = None

    _split_lists = field_validator(
        "opt_out_regions",
        "trusted_proxies",
        "cors_origins",
        "webhook_allow_hosts",
        "webhook_retry_schedule",
        mode="before",
    )(_split)

    @field_validator("opt_out_regions")
    @classmethod
    def _us_states_only(cls, value: list[str]) -> list[str]:
        regions = [v.upper() for v in value]
        for region in regions:
            if not _US_STATE.match(region):
                raise ValueError(f"{region!r} is not a US state code such as US-CO")
        return regions

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)
        return value

    @field_validator("webhook_allow_hosts")
    @classmethod
    def _hosts_or_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                if not _HOST_NAME.fullmatch(entry.lower()):
                    raise ValueError(f"{entry!r} is neither a host name nor a network") from None
        return [entry.lower() for entry in value]

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _delays(cls, value: list[str]) -> list[str]:
        for delay in value:
            try:
                seconds = float(delay)
            except ValueError:
                raise ValueError(f"{delay!r} is not a number of seconds") from None
            if not 0 <= seconds <= 86_400 * 7:
                raise ValueError(f"{delay!r} is not between 0 and a week")
        return value

    @property
    def retry_delays(self) -> tuple[float, ...] | None:
        """The delays of CONSENTRY_WEBHOOK_RETRY_SCHEDULE, or None for the contract's schedule."""
        return tuple(float(delay) for delay in self.webhook_retry_schedule) or None

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, value: list[str]) -> list[str]:
        # Browsers send the origin exactly (scheme, host, port): anything else would never match,
        # and "*" would let every site read personal data with a learner's token.
        for origin in value:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin such as https://learn.example")
        return value

    @field_validator("event_categories", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("policy_url", "platform_url")
    @classmethod
    def _page_address(cls, value: str | None) -> str | None:
        # Shown as a link to every learner: a web page, without credentials in it.
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname or "@" in parts.netloc:
            raise ValueError(f"{value!r} is not a web address such as https://learn.example/")
        return value

    @field_validator("admin_key", "jwt_secret", "jwt_audience", "jwt_issuer", "jwks_url")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("docs", "log_format", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        # `CONSENTRY_DOCS=` (as a chart or compose file leaves it) means the default, not an error.
        return None if value == "" else value

    @model_validator(mode="after")
    def _refuse_weak_secrets_in_production(self) -> Settings:
        if self.env != "production":
            return self
        problems = []
        if self.jwt_secret is None and self.jwks_url is None:
            problems.append("set CONSENTRY_JWT_SECRET or CONSENTRY_JWKS_URL")
        if self.pseudonym_key is None:
            problems.append("set CONSENTRY_PSEUDONYM_KEY")
        for name in ("admin_key", "jwt_secret", "pseudonym_key"):
            value = getattr(self, name)
            if value is not None and _is_weak(value):
                problems.append(
                    f"CONSENTRY_{name.upper()} is a placeholder or shorter than "
                    f"{_MIN_SECRET_LENGTH} characters"
                )
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def docs_enabled(self) -> bool:
        """Whether `/docs` and `/redoc` are served."""
        return self.docs if self.docs is not None else self.env != "production"

    def log_format_for(self, *, terminal: bool) -> Literal["json", "text"]:
        """CONSENTRY_LOG_FORMAT, else text on a terminal outside production, else JSON."""
        if self.log_format is not None:
            return self.log_format
        # A person reads a terminal; a log shipper reads everything else, production always.
        return "text" if terminal and self.env != "production" else "json"


def _is_weak(secret: str) -> bool:
    lowered = secret.strip().lower()
    return len(secret) < _MIN_SECRET_LENGTH or any(p in lowered for p in _PLACEHOLDERS)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
