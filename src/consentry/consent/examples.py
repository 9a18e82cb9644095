"""Examples of the consent endpoints' requests and answers, for the OpenAPI document."""

from __future__ import annotations

from typing import Any

_TIME = "2026-12-01T09:30:00.000000Z"

STATE: dict[str, Any] = {
    "subject_id": "u-123",
    "region": "DE",
    "regime": "opt_in",
    "policy_version": "2026-11-01",
    "stale": False,
    "revision": 3,
    "categories": {
        "necessary": {"granted": True, "required": True, "source": "required", "updated_at": _TIME},
        "performance": {"granted": False, "required": False, "source": "user", "updated_at": _TIME},
        "functional": {"granted": True, "required": False, "source": "user", "updated_at": _TIME},
        "customization": {
            "granted": False,
            "required": False,
            "source": "default",
            "updated_at": _TIME,
        },
    },
    "consent_mode": {
        "security_storage": "granted",
        "ad_storage": "denied",
        "ad_user_data": "denied",
        "ad_personalization": "denied",
        "analytics_storage": "denied",
        "functionality_storage": "granted",
        "personalization_storage": "denied",
    },
    "language": "de",
    "updated_at": _TIME,
    "receipt_id": "5f0c2a4e-8d1b-4c7e-9a3f-2b6d8e1f4a90",
}

# An anonymous visitor in California, the defaults recorded as a notice (not a choice).
NOTICED: dict[str, Any] = {
    **STATE,
    "subject_id": "anon:0b7f3c1e-2d4a-4f6b-8c9d-1e2f3a4b5c6d",
    "region": "US-CA",
    "regime": "opt_out",
    "revision": 1,
    "categories": {
        name: {**entry, "granted": True, "source": "required" if name == "necessary" else "default"}
        for name, entry in STATE["categories"].items()
    },
    "consent_mode": {
        **STATE["consent_mode"],
        "analytics_storage": "granted",
        "functionality_storage": "granted",
        "personalization_storage": "granted",
    },
    "language": "en",
}

CONSENT_READ: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The subject's consent, or the defaults that apply to it.",
        "content": {
            "application/json": {
                "examples": {
                    "chosen": {"summary": "A learner's recorded choice", "value": STATE},
                    "notice": {
                        "summary": "Opt-out region, defaults recorded as a notice",
                        "value": NOTICED,
                    },
                }
            }
        },
    }
}

CHOICE_BODY: dict[str, Any] = {
    "choice": {
        "summary": "A choice in the preference center",
        "value": {
            "categories": {"performance": False, "functional": True, "customization": False},
            "policy_version": "2026-11-01",
            "source": "preference_center",
            "method": "custom",
            "region": "DE",
            "language": "de",
        },
    },
    "notice": {
        "summary": "The defaults consent.js applies in an opt-out region",
        "value": {
            "categories": {"performance": True, "functional": True, "customization": True},
            "policy_version": "2026-11-01",
            "source": "notice",
            "region": "US-CA",
            "language": "en",
        },
    },
}

PATCH_BODY: dict[str, Any] = {
    "withdraw": {
        "summary": "Withdraw one category",
        "value": {
            "categories": {"performance": False},
            "policy_version": "2026-11-01",
            "source": "preference_center",
            "method": "custom",
        },
    }
}

_RECORD: dict[str, Any] = {
    "id": STATE["receipt_id"],
    "recorded_at": _TIME,
    "categories": {
        "necessary": True,
        "performance": False,
        "functional": True,
        "customization": False,
    },
    "changed": ["functional"],
    "source": "preference_center",
    "method": "custom",
    "actor": "subject",
    "policy_version": "2026-11-01",
    "region": "DE",
    "language": "de",
    "gpc": False,
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    "ip": "203.0.113.0",
    "hash": "9c1f0e5b7a2d4c8e6f3a1b0d9e8c7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e",
    "prev_hash": "4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d",
}

HISTORY: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A page of the subject's history, newest first.",
        "content": {"application/json": {"example": {"items": [_RECORD], "next_cursor": None}}},
    }
}
