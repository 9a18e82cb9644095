"""The floor: the least a FastAPI route can do, served exactly as `consentry serve` serves.

One GET route returns a fixed pydantic model held in memory: no auth, no database. Its rate is
what this machine, this Python and this server stack give any endpoint, so the service's rows
are read as shares of it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

PATH = "/floor"


class FloorCategory(BaseModel):
    """One category, shaped like the consent read's."""

    granted: bool
    required: bool
    source: str
    updated_at: str | None


class FloorState(BaseModel):
    """A body of about the consent read's size and shape, so both serialize similar work."""

    subject_id: str
    region: str | None
    regime: str
    policy_version: str
    stale: bool
    revision: int
    categories: dict[str, FloorCategory]
    consent_mode: dict[str, str]
    updated_at: str | None


_STAMP = "2026-11-28T12:00:00.000000Z"
STATE = FloorState(
    subject_id="bench-00001",
    region=None,
    regime="opt_in",
    policy_version="2026-11-01",
    stale=False,
    revision=1,
    categories={
        name: FloorCategory(
            granted=True, required=name == "necessary", source="user", updated_at=_STAMP
        )
        for name in ("necessary", "performance", "functional", "customization")
    },
    consent_mode={
        "security_storage": "granted",
        "analytics_storage": "granted",
        "functionality_storage": "granted",
        "personalization_storage": "granted",
        "ad_storage": "denied",
        "ad_user_data": "denied",
        "ad_personalization": "denied",
    },
    updated_at=_STAMP,
)


def create_app() -> FastAPI:
    """The floor app: one route, the fixed state."""
    app = FastAPI(title="floor", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get(PATH, response_model=FloorState)
    async def floor() -> FloorState:
        """The same model instance every time."""
        return STATE

    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the floor app with the server settings of `consentry serve` (see cli.py)."""
    parser = argparse.ArgumentParser(prog="bench.floor")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    uvicorn.run(
        "bench.floor:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=1,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
        access_log=False,
    )


if __name__ == "__main__":
    main()
