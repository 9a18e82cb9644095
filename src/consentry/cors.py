"""CORS for the frontend's origins, with refused preflights answered as problem+json."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp

from consentry.errors import Forbidden, problem_response

ALLOWED_METHODS = ("GET", "PUT", "PATCH", "POST", "DELETE")
ALLOWED_HEADERS = ("Authorization", "Content-Type", "If-Match", "If-None-Match")
EXPOSED_HEADERS = ("ETag", "Retry-After")


class StrictCORS(CORSMiddleware):
    """Starlette's CORS, answering a refused preflight like every other error."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        super().__init__(
            app,
            allow_origins=origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            # Bearer tokens travel in a header, never in cookies, so credentials stay off.
            allow_credentials=False,
            max_age=600,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        problem = problem_response(Forbidden(f"Cross-origin request refused: {refused}."))
        problem.headers.update({k: v for k, v in response.headers.items() if k.startswith("vary")})
        return problem
