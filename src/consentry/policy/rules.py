"""The published policy as rules: categories, regimes, defaults, GPC and the Consent Mode map."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

Regime = Literal["opt_in", "opt_out"]
DefaultSource = Literal["required", "default", "gpc"]

# Fixed by the HTTP contract: clients and stored data depend on exactly these ids.
CATEGORIES: tuple[str, ...] = ("necessary", "performance", "functional", "customization")
REQUIRED_CATEGORY = "necessary"
OPTIONAL_CATEGORIES: tuple[str, ...] = CATEGORIES[1:]
# Global Privacy Control objects to sale/sharing and profiling, not to remembered settings.
GPC_CATEGORIES = frozenset({"performance", "customization"})

_REGION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")

CONSENT_MODE_ALWAYS = {
    "security_storage": "granted",
    "ad_storage": "denied",
    "ad_user_data": "denied",
    "ad_personalization": "denied",
}
CONSENT_MODE_CATEGORIES = {
    "analytics_storage": "performance",
    "functionality_storage": "functional",
    "personalization_storage": "customization",
}


class CategoryInfo(BaseModel):
    """One tracking category as the policy describes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    required: bool
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    if_disabled: str = Field(min_length=1)


class PolicyVersion(BaseModel):
    """One published edition of the policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(pattern=r"^[A-Za-z0-9._-]{1,32}$")
    published_at: date
    summary: str = ""


class RegimeInfo(BaseModel):
    """The law behind a regime and the regions it covers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    law: str
    regions: list[str]


class PolicyDocument(BaseModel):
    """The policy file: the current version, earlier ones, categories and regimes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    versions: list[PolicyVersion] = Field(min_length=1)
    categories: list[CategoryInfo]
    regimes: dict[Regime, RegimeInfo]

    @model_validator(mode="after")
    def _consistent(self) -> PolicyDocument:
        if self.version not in {v.version for v in self.versions}:
            raise ValueError(f"current version {self.version!r} is not among versions")
        if tuple(c.id for c in self.categories) != CATEGORIES:
            raise ValueError(f"categories must be exactly {', '.join(CATEGORIES)}, in that order")
        if [c.id for c in self.categories if c.required] != [REQUIRED_CATEGORY]:
            raise ValueError(f"only {REQUIRED_CATEGORY!r} may be required")
        if set(self.regimes) != {"opt_in", "opt_out"}:
            raise ValueError("regimes must be opt_in and opt_out")
        return self


def normalize_region(value: str) -> str | None:
    """Upper-case an ISO 3166-1 alpha-2 or 3166-2 code; None when it is not one."""
    region = value.strip().upper()
    return region if _REGION.match(region) else None


@dataclass(frozen=True)
class Policy:
    """The policy in force, with the service's configured additions."""

    document: PolicyDocument
    opt_out_regions: frozenset[str]
    opt_in_regions: frozenset[str]

    @property
    def version(self) -> str:
        """The current policy version."""
        return self.document.version

    def knows(self, version: str) -> bool:
        """Whether `version` is the current or an earlier published version."""
        return any(v.version == version for v in self.document.versions)

    def regime_for(self, region: str | None) -> Regime:
        """Opt-out only where the law says so; everything else, unknown included, is opt-in."""
        if region is not None and region in self.opt_out_regions:
            return "opt_out"
        return "opt_in"

    def defaults(self, regime: Regime, gpc: bool) -> dict[str, tuple[bool, DefaultSource]]:
        """Each category's granted flag and its source for a subject with no recorded choice."""
        result: dict[str, tuple[bool, DefaultSource]] = {REQUIRED_CATEGORY: (True, "required")}
        for category in OPTIONAL_CATEGORIES:
            granted = regime == "opt_out"
            if granted and gpc and category in GPC_CATEGORIES:
                result[category] = (False, "gpc")
            else:
                result[category] = (granted, "default")
        return result


def consent_mode(granted: dict[str, bool]) -> dict[str, str]:
    """Google Consent Mode v2 signals for a set of granted categories."""
    signals = {
        signal: "granted" if granted[category] else "denied"
        for signal, category in CONSENT_MODE_CATEGORIES.items()
    }
    return {**CONSENT_MODE_ALWAYS, **signals}


def load_policy(path: Path | None, extra_opt_out_regions: list[str]) -> Policy:
    """Read the policy file (the packaged one unless a path is given) and validate it."""
    if path is None:
        raw = resources.files("consentry.policy").joinpath("default_policy.json").read_bytes()
    else:
        raw = path.read_bytes()
    document = PolicyDocument.model_validate(orjson.loads(raw))
    opt_out = {*document.regimes["opt_out"].regions, *extra_opt_out_regions}
    return Policy(
        document=document,
        opt_out_regions=frozenset(opt_out),
        opt_in_regions=frozenset(document.regimes["opt_in"].regions),
    )
