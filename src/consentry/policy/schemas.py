"""Response shapes of the policy endpoint."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class CategoryRead(BaseModel):
    """A category as the frontend shows it."""

    id: str = Field(description="The category's id, as used everywhere in the API.")
    name: str = Field(description="Its name, as the banner shows it.")
    description: str = Field(description="What it covers, as the banner shows it.")
    required: bool = Field(description="True for `necessary`: always granted, cannot be withdrawn.")
    if_disabled: str = Field(description="What the learner loses by refusing it.")


class PolicyVersionRead(BaseModel):
    """A published edition of the policy."""

    version: str = Field(description="The version id a choice names in `policy_version`.")
    published_at: date = Field(description="When it was published.")
    summary: str = Field(description="What changed in this edition.")


class RegimeRead(BaseModel):
    """A regime, the law behind it and the regions it covers."""

    law: str = Field(description="The law behind it, e.g. GDPR or CCPA/CPRA.")
    regions: list[str] = Field(description="The ISO 3166 regions it covers.")
    optional_categories_default: bool = Field(
        description="Whether optional categories are granted until the learner chooses."
    )


class PolicyRead(BaseModel):
    """The policy in force."""

    version: str = Field(
        description="The version in force: a choice under an older one reads `stale`."
    )
    url: str | None = Field(
        description="Where people read the published policy (`CONSENTRY_POLICY_URL`), or null."
    )
    versions: list[PolicyVersionRead] = Field(description="Every published edition, newest first.")
    categories: list[CategoryRead] = Field(
        description="The consent categories, in the order the banner shows them."
    )
    regimes: dict[str, RegimeRead] = Field(
        description="`opt_in` and `opt_out`, with their regions."
    )
    unknown_region_regime: str = Field(
        description="The regime of a region no regime lists: `opt_in`."
    )
    gpc_categories: list[str] = Field(
        description="The categories Global Privacy Control (`Sec-GPC: 1`) turns to denied by "
        "default."
    )
    consent_mode: dict[str, str] = Field(
        description="Google Consent Mode v2 storage types, each mapped to the category that grants "
        "it (or to `granted`/`denied` always)."
    )
