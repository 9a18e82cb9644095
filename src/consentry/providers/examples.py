"""Examples of the provider endpoints' requests and answers, for the OpenAPI document."""

from __future__ import annotations

from typing import Any

DESCRIPTION: dict[str, Any] = {
    "id": "usage-analytics",
    "name": "Usage analytics",
    "kind": "analytics",
    "purpose": "Counts which courses are popular and where pages load slowly.",
    "data_shared": ["pseudonymous_id", "usage_statistics"],
    "category": "performance",
    "countries": ["US"],
    "transfer_mechanism": "SCC",
    "opt_out_url": "https://analytics.example.com/opt-out",
    "translations": {
        "de": {
            "name": "Nutzungsanalyse",
            "purpose": "Zählt, welche Kurse beliebt sind und wo Seiten langsam laden.",
            "data_shared": {
                "pseudonymous_id": "pseudonyme Kennung",
                "usage_statistics": "Nutzungsstatistiken",
            },
        }
    },
}
_TIMES = {"created_at": "2026-11-29T00:00:00.000000Z", "updated_at": "2026-12-01T09:30:00.000000Z"}
PROVIDER: dict[str, Any] = {**DESCRIPTION, **_TIMES}
# The same provider read with `?language=de`.
PROVIDER_DE: dict[str, Any] = {
    **PROVIDER,
    "name": DESCRIPTION["translations"]["de"]["name"],
    "purpose": DESCRIPTION["translations"]["de"]["purpose"],
}


def one(description: str) -> dict[int | str, dict[str, Any]]:
    """A 200 answer holding one provider, in English and in German."""
    return {
        200: {
            "description": description,
            "content": {
                "application/json": {
                    "examples": {
                        "english": {"summary": "Without ?language=", "value": PROVIDER},
                        "german": {"summary": "With ?language=de", "value": PROVIDER_DE},
                    }
                }
            },
        }
    }


def page(description: str) -> dict[int | str, dict[str, Any]]:
    """A 200 answer holding a page of providers."""
    value = {"items": [PROVIDER_DE], "next_cursor": None}
    return {
        200: {
            "description": description,
            "content": {"application/json": {"example": value}},
        }
    }


CREATED: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "Created",
        "content": {"application/json": {"example": PROVIDER}},
    }
}
CREATE_BODY = {
    "analytics": {"summary": "A provider with a German translation", "value": DESCRIPTION}
}
REPLACE_BODY = {
    "analytics": {
        "summary": "The whole description; translations left out are removed",
        "value": {key: value for key, value in DESCRIPTION.items() if key != "id"},
    }
}
