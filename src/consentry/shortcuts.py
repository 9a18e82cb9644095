"""Hot routes dispatched directly, ahead of the router's walk and FastAPI's request handling.

The consent read serves every page load. Finding its route among all the others, then
FastAPI's handling around an endpoint that takes the request alone (a dependency pass with
nothing to resolve, telemetry, exit stacks) cost more than the read itself; for the consent
write, FastAPI's dependency solving, exit stacks and the router's walk cost more than its
decision. A route named here is matched first, by its own path pattern and methods, and an
endpoint called with the request; the
app's exception handlers answer its errors as the router's route would, and everything outside
the router (security headers, request ids, metrics, CORS, body limits, the 500 handler) is
passed through as for any route.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence

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
    other method.
    """

    def __init__(
        self,
        app: ASGIApp,
        fastapi: FastAPI,
        routes: Sequence[tuple[APIRoute, Endpoint | None]],
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
        self._by_method: dict[str, list[tuple[re.Pattern[str], APIRoute, ASGIApp]]] = {}
        for route, endpoint in routes:
            if endpoint is None:
                _check_takes_request_alone(route)
                endpoint = route.endpoint
            answer = ExceptionMiddleware(_calling(endpoint), handlers)
            for method in route.methods or ():
                self._by_method.setdefault(method, []).append((route.path_regex, route, answer))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (routes := self._by_method.get(scope["method"])):
            path = get_route_path(scope)
            for pattern, route, answer in routes:
                match = pattern.match(path)
                if match is not None:
                    scope["route"] = route
                    scope["endpoint"] = route.endpoint
                    scope["path_params"] = match.groupdict()
                    await answer(scope, receive, send)
                    return
        await self.app(scope, receive, send)


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
