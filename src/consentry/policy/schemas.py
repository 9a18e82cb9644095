"""Response shapes of the policy endpoint."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class CategoryRead(BaseModel):
    """A category as the frontend shows it."""

    id: str
    name: str
    description: str
    required: bool
    if_disabled: str


class PolicyVersionRead(BaseModel):
    """A published edition of the policy."""

    version: str
    published_at: date
    summary: str


class RegimeRead(BaseModel):
    """A regime, the law behind it and the regions it covers."""

    law: str
    regions: list[str]
    optional_categories_default: bool


class PolicyRead(BaseModel):
    """The policy in force."""

    version: str
    url: str | None = Field(
        description="Where people read the published policy (`CONSENTRY_POLICY_URL`), or null."
    )
    versions: list[PolicyVersionRead]
    categories: list[CategoryRead]
    regimes: dict[str, RegimeRead]
    unknown_region_regime: str
    gpc_categories: list[str]
    consent_mode: dict[str, str]
