"""Hot routes dispatched directly, ahead of the router's walk and FastAPI's request handling.

The consent read serves every page load, and the integration check every exchange of data.
Finding its route among all the others, then FastAPI's handling around an endpoint that takes
the request alone (a dependency pass with nothing to resolve, telemetry, exit stacks) cost more
than the read itself; for the consent write, FastAPI's dependency solving, exit stacks and the
router's walk cost more than its decision. A route named here is matched first, by its own path
pattern and methods (unless a route the router tries before it matches the path too), and an
endpoint is called with the request; the app's exception handlers answer its errors as the
router's route would, and everything outside the router (security headers, request ids,
metrics, CORS, body limits, the 500 handler) is passed through as for any route.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoutes:
    """Answers requests for the given routes by calling an endpoint directly.

    `routes` pairs each route with the endpoint that answers it directly, or with None for a
    route whose own endpoint takes the request alone. Such an endpoint takes the request and returns
    a response: nothing of FastAPI's parameter handling is run for it, so one standing in for a
    route that has parameters does that route's work itself. A route answers only the methods
    it declares. The routes stay in their routers too, for the OpenAPI document and for every
    other method. `routers` are the app's, in the order it includes them: a path that a route
    tried before a direct one matches too is left to the router.
    """

    def __init__(
        self,
        app: ASGIApp,
        fastapi: FastAPI,
        routes: Sequence[tuple[APIRoute, Endpoint | None]],
        routers: Sequence[APIRouter],
    ) -> None:
        self.app = app
        # The app's handlers, as the router's own ExceptionMiddleware takes them (500 and
        # Exception are the outer error middleware's). The stack is built at the first request,
        # once every handler is installed.
        handlers = {
            key: handler
            for key, handler in fastapi.exception_handlers.items()
            if key not in (500, Exception)
        }
        self._by_method: dict[str, list[_Direct]] = {}
        for route, endpoint in routes:
            if endpoint is None:
                _check_takes_request_alone(route)
                endpoint = route.endpoint
            answer = ExceptionMiddleware(_calling(endpoint), handlers)
            for method in route.methods or ():
                earlier = _tried_before(routers, route, method)
                direct = _Direct(route.path_regex, earlier, route, answer)
                self._by_method.setdefault(method, []).append(direct)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (routes := self._by_method.get(scope["method"])):
            path = get_route_path(scope)
            for direct in routes:
                match = direct.pattern.match(path)
                if match is not None:
                    if any(pattern.match(path) for pattern in direct.earlier):
                        break  # the router's walk would stop at another route: it answers
                    scope["route"] = direct.route
                    scope["endpoint"] = direct.route.endpoint
                    scope["path_params"] = match.groupdict()
                    await direct.answer(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class _Direct(NamedTuple):
    """A route answered directly for one method, and the patterns the router tries first."""

    pattern: re.Pattern[str]
    earlier: tuple[re.Pattern[str], ...]
    route: APIRoute
    answer: ASGIApp


def _tried_before(
    routers: Sequence[APIRouter], route: APIRoute, method: str
) -> tuple[re.Pattern[str], ...]:
    """The path patterns of the routes the router tries before `route` for `method`:
    `/integrations/history` is its own route, though `/integrations/{id}` matches it too."""
    earlier: list[re.Pattern[str]] = []
    for router in routers:
        for other in router.routes:
            if other is route:
                return tuple(earlier)
            if isinstance(other, APIRoute) and method in (other.methods or ()):
                earlier.append(other.path_regex)
    raise LookupError(f"{method} {route.path} is not a route of the routers given")


def route_of(router: APIRouter, path: str, method: str) -> APIRoute:
    """The route of `router` that answers `method` at the template `path`."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path == path and method in (route.methods or ()):
            return route
    raise LookupError(f"no {method} {path} route")


def _calling(endpoint: Endpoint) -> ASGIApp:
    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    return answer


def _check_takes_request_alone(route: APIRoute) -> None:
    dependant = route.dependant
    if (
        dependant.dependencies
        or dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.request_param_name is None
    ):
        raise RuntimeError(f"{route.path} must take the request alone to be answered directly")
