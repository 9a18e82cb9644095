"""Static routes: `/sdk/consent.js`, its stylesheet and the erasure's deadlines, the `/privacy`
page, and the API docs."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from consentry.errors import NotFound
from consentry.etags import none_match, strong_etag
from consentry.privacy.erasure import DUE_IN as ERASURE_DUE
from consentry.privacy.erasure import KEEP_RECORDS_FOR as ERASURE_KEEPS_RECORDS

# The script and its stylesheet are not versioned in their URL: browsers keep them five minutes,
# then revalidate with the ETag (a 304 without the body).
_SDK_CACHE = {"Cache-Control": "public, max-age=300"}
# The page runs the learner's token: it loads only this origin's own files and is never framed.
# The rest of its headers (no-store, nosniff, no referrer, no framing) are every response's,
# from consentry.headers.SecurityHeaders.
PRIVACY_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {"Content-Security-Policy": PRIVACY_CSP}
# The API docs (Swagger UI, ReDoc) load only the service's own copies of their scripts and
# fetch only this origin's OpenAPI document; Swagger UI draws its icons from data: URLs.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# ReDoc creates <style> elements and fills them through the CSSOM, which a script of this origin
# may do anyway: allowed are an empty one (the first hash) and the one fixed stylesheet it
# bundles (its scrollbar's, the second), never inline styles in general. Its search runs in a
# worker it builds from a blob.
REDOC_CSP = (
    "default-src 'none'; script-src 'self'; worker-src blob:; style-src 'self' "
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=' "
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_DOCS_HEADERS = {"Content-Security-Policy": DOCS_CSP}
# The files the docs pages load, by the name they have under /docs/.
_DOCS_FILES = {
    "docs.js": "docs.js",
    "docs.css": "docs.css",
    "icon.svg": "icon.svg",
    "swagger-ui-bundle.js": "vendor/swagger-ui/swagger-ui-bundle.js",
    "swagger-ui.css": "vendor/swagger-ui/swagger-ui.css",
    "redoc.standalone.js": "vendor/redoc/redoc.standalone.js",
}
_TYPES = {
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "svg": "image/svg+xml; charset=utf-8",
}


@dataclass(frozen=True)
class Asset:
    """One packaged file, read once, with its type and validator."""

    body: bytes
    media_type: str
    etag: str

    @classmethod
    def read(cls, path: str) -> Asset:
        """The file at `path` (`/`-separated) in the package's `static/` folder."""
        body = files(__package__).joinpath("static", *path.split("/")).read_bytes()
        return cls(body, _TYPES[path.rpartition(".")[2]], strong_etag(body))


def _serve(request: Request, asset: Asset, headers: dict[str, str]) -> Response:
    all_headers = {**headers, "ETag": asset.etag}
    if none_match(request.headers.get("if-none-match"), asset.etag):
        return Response(status_code=304, headers=all_headers)
    return Response(asset.body, headers={**all_headers, "Content-Type": asset.media_type})


def erasure_facts(grace_days: int) -> Asset:
    """`/sdk/erasure.json`: what the learner's pages tell before a deletion is asked for."""
    body = orjson.dumps(
        {
            "grace_days": grace_days,
            "due_days": ERASURE_DUE.days,
            "kept_days": ERASURE_KEEPS_RECORDS.days,
        }
    )
    return Asset(body, "application/json", strong_etag(body))


def build_router(*, docs: bool, erasure_grace_days: int = 0) -> APIRouter:
    """The routes, with every file read once when the app is built; the API docs if `docs`."""
    router = APIRouter(include_in_schema=False)
    # Fetched cross-origin by the platform's pages, including those isolated with COEP.
    sdk_headers = {**_SDK_CACHE, "Cross-Origin-Resource-Policy": "cross-origin"}
    sdk = {name: Asset.read(name) for name in ("consent.js", "consent.css")}
    # The grace period and the deadlines, so that the dialog says them before anything is asked.
    sdk["erasure.json"] = erasure_facts(erasure_grace_days)
    page_assets = {name: Asset.read(name) for name in ("privacy.js", "privacy.css", "icon.svg")}
    page = Asset.read("privacy.html")

    @router.get("/sdk/{name}")
    async def get_sdk(name: str, request: Request) -> Response:
        """consent.js or its stylesheet; public."""
        asset = sdk.get(name)
        if asset is None:
            raise NotFound("There is no such file.")
        return _serve(request, asset, sdk_headers)

    @router.get("/privacy")
    async def get_privacy(request: Request) -> Response:
        """The preference center as a page of its own; public."""
        return _serve(request, page, _PAGE_HEADERS)

    @router.get("/privacy/{name}")
    async def get_privacy_asset(name: str, request: Request) -> Response:
        """A script, stylesheet or icon of the /privacy page; public."""
        asset = page_assets.get(name)
        if asset is None:
            raise NotFound("There is no such file.")
        return _serve(request, asset, {**_SDK_CACHE, "Content-Security-Policy": PRIVACY_CSP})

    if docs:
        _add_docs(router)
    return router


def _add_docs(router: APIRouter) -> None:
    """`/docs` (Swagger UI) and `/redoc` (ReDoc), and the files they load from `/docs/`."""
    swagger_ui = Asset.read("docs.html")
    redoc = Asset.read("redoc.html")
    assets = {name: Asset.read(path) for name, path in _DOCS_FILES.items()}
    asset_headers = {**_SDK_CACHE, **_DOCS_HEADERS}

    @router.get("/docs")
    async def get_swagger_ui(request: Request) -> Response:
        """Swagger UI on the OpenAPI document; public, like the document."""
        return _serve(request, swagger_ui, _DOCS_HEADERS)

    @router.get("/redoc")
    async def get_redoc(request: Request) -> Response:
        """ReDoc on the OpenAPI document; public, like the document."""
        return _serve(request, redoc, {"Content-Security-Policy": REDOC_CSP})

    @router.get("/docs/{name}")
    async def get_docs_asset(name: str, request: Request) -> Response:
        """A script, stylesheet or icon of the API docs pages; public."""
        asset = assets.get(name)
        if asset is None:
            raise NotFound("There is no such file.")
        return _serve(request, asset, asset_headers)
