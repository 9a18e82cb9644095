"""The published policy: categories, regimes, versions, and `GET /v1/policy`."""

from consentry.policy.rules import (
    CATEGORIES,
    OPTIONAL_CATEGORIES,
    REQUIRED_CATEGORY,
    Policy,
    Regime,
    consent_mode,
    load_policy,
    normalize_region,
)

__all__ = [
    "CATEGORIES",
    "OPTIONAL_CATEGORIES",
    "REQUIRED_CATEGORY",
    "Policy",
    "Regime",
    "consent_mode",
    "load_policy",
    "normalize_region",
]
