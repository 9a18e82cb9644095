"""`GET /v1/policy`: the policy in force, public and cacheable."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from consentry.etags import NOT_MODIFIED, none_match, strong_etag
from consentry.policy.rules import (
    CONSENT_MODE_ALWAYS,
    CONSENT_MODE_CATEGORIES,
    GPC_CATEGORIES,
    Policy,
)
from consentry.policy.schemas import PolicyRead
from consentry.routing import JSONRoute

router = APIRouter(prefix="/v1", tags=["policy"], route_class=JSONRoute)

_CACHE_CONTROL = "public, max-age=300"
_EXAMPLE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The policy in force.",
        "content": {
            "application/json": {
                "example": {
                    "version": "2026-11-01",
                    "url": "https://learn.example.edu/data-tracking-policy",
                    "versions": [
                        {
                            "version": "2026-11-01",
                            "published_at": "2026-11-01",
                            "summary": "Four tracking categories and the list of providers.",
                        }
                    ],
                    "categories": [
                        {
                            "id": "performance",
                            "name": "Performance",
                            "description": "Measures how the platform is used.",
                            "required": False,
                            "if_disabled": "We learn less about what works.",
                        }
                    ],
                    "regimes": {
                        "opt_in": {
                            "law": "GDPR",
                            "regions": ["DE", "FR"],
                            "optional_categories_default": False,
                        },
                        "opt_out": {
                            "law": "CCPA/CPRA",
                            "regions": ["US-CA", "US-CO"],
                            "optional_categories_default": True,
                        },
                    },
                    "unknown_region_regime": "opt_in",
                    "gpc_categories": ["customization", "performance"],
                    "consent_mode": {"analytics_storage": "performance"},
                }
            }
        },
    }
}


def render_policy(policy: Policy, url: str | None = None) -> bytes:
    """The body of `GET /v1/policy`, built once per process since the policy never changes.

    `url` is where people read the published policy (`CONSENTRY_POLICY_URL`).
    """
    document = policy.document
    regimes = {
        "opt_in": {
            "law": document.regimes["opt_in"].law,
            "regions": sorted(policy.opt_in_regions),
            "optional_categories_default": False,
        },
        "opt_out": {
            "law": document.regimes["opt_out"].law,
            "regions": sorted(policy.opt_out_regions),
            "optional_categories_default": True,
        },
    }
    body = PolicyRead.model_validate(
        {
            "version": policy.version,
            "url": url,
            "versions": [v.model_dump() for v in document.versions],
            "categories": [c.model_dump() for c in document.categories],
            "regimes": regimes,
            "unknown_region_regime": "opt_in",
            "gpc_categories": sorted(GPC_CATEGORIES),
            "consent_mode": {**CONSENT_MODE_ALWAYS, **CONSENT_MODE_CATEGORIES},
        }
    )
    return orjson.dumps(body.model_dump(mode="json"))


@router.get(
    "/policy",
    response_model=PolicyRead,
    summary="The policy in force",
    responses={**_EXAMPLE, **NOT_MODIFIED},
    # Read from the request, so that FastAPI declares no 422 this route cannot answer.
    openapi_extra={
        "parameters": [
            {
                "name": "if-none-match",
                "in": "header",
                "required": False,
                "description": "The `ETag` of a copy the client holds: 304 while it is current.",
                "schema": {"type": "string"},
            }
        ]
    },
)
async def get_policy(request: Request) -> Response:
    """Categories, regimes and versions of the published policy; public.

    `url` is where people read the published policy (`CONSENTRY_POLICY_URL`); the banner and
    the privacy settings link to it with the version in force.

    Cacheable: `Cache-Control: public, max-age=300` and a strong `ETag`; send it back as
    `If-None-Match` to get 304 while the policy is unchanged. No token needed.
    """
    body: bytes = request.app.state.policy_body
    etag = strong_etag(body)
    headers = {"ETag": etag, "Cache-Control": _CACHE_CONTROL}
    if none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
