"""Routes answered directly, ahead of the router: the same answers, errors included."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import JSONResponse, Response

from consentry.errors import NotFound, install_error_handlers
from consentry.shortcuts import DirectRoutes, route_of

pytestmark = pytest.mark.anyio

router = APIRouter(prefix="/things/{thing_id}")


@router.get("/state")
async def read_state(request: Request) -> Response:
    """Echoes what the endpoint sees; `missing` is not found, `bug` fails."""
    thing = request.path_params["thing_id"]
    if thing == "missing":
        raise NotFound("No such thing.")
    if thing == "bug":
        raise RuntimeError("a bug")
    return JSONResponse(
        {
            "thing": thing,
            "route": request.scope["route"].path,
            "query": request.query_params.get("q"),
            # Set by the innermost layer of FastAPI's stack, before the router: absent here.
            "routed": "fastapi_middleware_astack" in request.scope,
        }
    )


@router.post("/state")
async def write_state(request: Request) -> Response:
    """Reached through the router only."""
    return JSONResponse(
        {
            "written": request.path_params["thing_id"],
            "routed": "fastapi_middleware_astack" in request.scope,
        }
    )


@router.get("/by-parameter")
async def with_parameter(thing_id: str) -> Response:
    """An endpoint FastAPI must resolve parameters for."""
    return JSONResponse({"thing": thing_id})


@router.put("/by-parameter")
async def put_with_parameter(thing_id: str) -> Response:
    """Reached through the router only: the direct endpoint below stands in for it."""
    return JSONResponse({"put": thing_id, "routed": True})


async def put_directly(request: Request) -> Response:
    """Stands in for `put_with_parameter`, doing its parameter's work itself."""
    return JSONResponse(
        {
            "put": request.path_params["thing_id"],
            "route": request.scope["route"].path,
            "routed": "fastapi_middleware_astack" in request.scope,
        }
    )


@router.get("/parts/history")
async def parts_history(thing_id: str) -> Response:
    """Declared before the template below, which matches its path too: the router's."""
    return JSONResponse({"history": thing_id})


@router.get("/parts/{part}")
async def read_part(request: Request) -> Response:
    """Answered directly, except where a route before it matches."""
    return JSONResponse(
        {
            "part": request.path_params["part"],
            "routed": "fastapi_middleware_astack" in request.scope,
        }
    )


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    routes = [
        (route_of(router, "/things/{thing_id}/state", "GET"), None),
        (route_of(router, "/things/{thing_id}/by-parameter", "PUT"), put_directly),
        (route_of(router, "/things/{thing_id}/parts/{part}", "GET"), None),
    ]
    app.add_middleware(DirectRoutes, fastapi=app, routes=routes, routers=[router])
    return app


async def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_a_direct_route_answers_with_its_template_and_parameters() -> None:
    async with await _client(_app()) as client:
        response = await client.get("/things/a%20b/state?q=1")
    assert response.status_code == 200
    assert response.json() == {
        "thing": "a b",
        "route": "/things/{thing_id}/state",
        "query": "1",
        "routed": False,
    }


async def test_its_errors_are_answered_by_the_apps_handlers() -> None:
    async with await _client(_app()) as client:
        missing = await client.get("/things/missing/state")
        bug = await client.get("/things/bug/state")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "No such thing."
    assert bug.status_code == 500
    assert bug.headers["content-type"] == "application/problem+json"


async def test_other_methods_and_paths_go_through_the_router() -> None:
    async with await _client(_app()) as client:
        written = await client.post("/things/a/state")
        deeper = await client.get("/things/a/state/more")
        head = await client.head("/things/a/state")
    assert written.json() == {"written": "a", "routed": True}
    assert deeper.status_code == 404
    # The router's own answer for a method the route does not take.
    assert head.status_code == 405


async def test_an_endpoint_may_stand_in_for_a_route_with_parameters() -> None:
    async with await _client(_app()) as client:
        put = await client.put("/things/a/by-parameter")
        read = await client.get("/things/a/by-parameter")
    assert put.json() == {"put": "a", "route": "/things/{thing_id}/by-parameter", "routed": False}
    # Only the methods it was given: the route's other methods go through the router.
    assert read.json() == {"thing": "a"}


async def test_a_path_of_a_route_the_router_tries_first_stays_that_routes() -> None:
    async with await _client(_app()) as client:
        history = await client.get("/things/a/parts/history")
        wheel = await client.get("/things/a/parts/wheel")
    assert history.json() == {"history": "a"}
    assert wheel.json() == {"part": "wheel", "routed": False}


def test_a_route_of_none_of_the_routers_is_refused() -> None:
    app = FastAPI()
    route = route_of(router, "/things/{thing_id}/state", "GET")
    with pytest.raises(LookupError, match="not a route of the routers given"):
        DirectRoutes(app, fastapi=app, routes=[(route, None)], routers=[APIRouter()])


def test_a_route_that_needs_fastapis_parameters_is_refused() -> None:
    app = FastAPI()
    route = route_of(router, "/things/{thing_id}/by-parameter", "GET")
    with pytest.raises(RuntimeError, match="must take the request alone"):
        DirectRoutes(app, fastapi=app, routes=[(route, None)], routers=[router])


def test_a_route_that_does_not_exist_is_refused() -> None:
    with pytest.raises(LookupError):
        route_of(router, "/things/{thing_id}/state", "DELETE")
