"""Hot routes dispatched directly, ahead of the router's walk and FastAPI's request handling.

The consent read serves every page load. Finding its route among all the others, then
FastAPI's handling around an endpoint that takes the request alone (a dependency pass with
nothing to resolve, telemetry, exit stacks) cost more than the read itself. A route named here
is matched first, by its own path pattern, and its endpoint called with the request; the
app's exception handlers answer its errors as the router's route would, and everything outside
the router (security headers, request ids, metrics, CORS, body limits, the 500 handler) is
passed through as for any route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoutes:
    """Answers GET requests for the given routes by calling their endpoints directly.

    Each route's endpoint must take the request alone and return a response: nothing of
    FastAPI's parameter handling is run for it. The routes stay in their routers too, for the
    OpenAPI document and for every other method.
    """

    def __init__(self, app: ASGIApp, fastapi: FastAPI, routes: Sequence[APIRoute]) -> None:
        self.app = app
        for route in routes:
            _check_takes_request_alone(route)
        # The app's handlers, as the router's own ExceptionMiddleware takes them (500 and
        # Exception are the outer error middleware's). The stack is built at the first request,
        # once every handler is installed.
        handlers = {
            key: handler
            for key, handler in fastapi.exception_handlers.items()
            if key not in (500, Exception)
        }
        self._routes = [
            (route.path_regex, route, ExceptionMiddleware(_calling(route.endpoint), handlers))
            for route in routes
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = get_route_path(scope)
            for pattern, route, answer in self._routes:
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
