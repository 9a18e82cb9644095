"""Static routes: `/sdk/consent.js`, its stylesheet and the erasure's deadlines, the `/privacy`
page, and the API docs."""

from __future__ import annotations

import gzip
import html
from dataclasses import dataclass
from functools import cache
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


# Compressing a file that shrinks by less than this is not worth a second representation.
_WORTH_GZIP = 0.9


@dataclass(frozen=True)
class Asset:
    """One packaged file, read once, with its type and validator, and gzipped where it pays.

    Each representation has its own strong ETag (RFC 9110 §8.8.3): the gzipped bytes are not
    the plain ones, and a cache must never answer one with the other.
    """

    body: bytes
    media_type: str
    etag: str
    # The gzipped bytes and their ETag, or None.
    gzipped: tuple[bytes, str] | None = None

    @classmethod
    def read(cls, path: str) -> Asset:
        """The file at `path` (`/`-separated) in the package's `static/` folder."""
        return _read(path)

    @classmethod
    def of(cls, body: bytes, media_type: str) -> Asset:
        """An asset of these bytes; gzipped once, here, at the highest level (mtime 0: stable)."""
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        if len(packed) > len(body) * _WORTH_GZIP:
            return cls(body, media_type, strong_etag(body))
        return cls(body, media_type, strong_etag(body), (packed, strong_etag(packed)))


@cache
def _read(path: str) -> Asset:
    # The packaged files never change while the process runs; each is read and compressed once.
    body = files(__package__).joinpath("static", *path.split("/")).read_bytes()
    if path.endswith(".js") and not path.startswith("vendor/"):
        body = compact_script(body)
    return Asset.of(body, _TYPES[path.rpartition(".")[2]])


def compact_script(source: bytes) -> bytes:
    """Our own script as it is sent: without indentation, blank lines and whole-line comments.

    The file in the package stays readable and there is no build step; line breaks are kept, so
    the code means exactly what it says (no line of these files continues a string or a
    template literal across lines). It keeps consent.js within its 15 KB (gzipped) budget.
    """
    lines = (line.strip() for line in source.decode().splitlines())
    kept = [line for line in lines if line and not line.startswith("//")]
    return ("\n".join(kept) + "\n").encode()


def accepts_gzip(header: str | None) -> bool:
    """Whether `Accept-Encoding` admits gzip (RFC 9110 §12.5.3): named, or `*`, with q > 0."""
    if not header:
        return False
    weights: dict[str, float] = {}
    for part in header.split(","):
        coding, _, parameters = part.strip().partition(";")
        weight = 1.0
        name, _, value = parameters.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value)
            except ValueError:
                weight = 0.0
        weights[coding.strip().lower()] = weight
    for coding in ("gzip", "x-gzip"):
        if coding in weights:
            return weights[coding] > 0
    return weights.get("*", 0.0) > 0


def _serve(request: Request, asset: Asset, headers: dict[str, str]) -> Response:
    body, etag = asset.body, asset.etag
    all_headers = dict(headers)
    packed = asset.gzipped is not None and accepts_gzip(request.headers.get("accept-encoding"))
    if asset.gzipped is not None:
        all_headers["Vary"] = "Accept-Encoding"
        if packed:
            body, etag = asset.gzipped
    all_headers["ETag"] = etag
    if none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=all_headers)
    if packed:
        all_headers["Content-Encoding"] = "gzip"
    return Response(body, headers={**all_headers, "Content-Type": asset.media_type})


def _privacy_page(platform_url: str | None) -> Asset:
    """The /privacy page, telling its script where the platform is (no inline code needed)."""
    page = _read("privacy.html")
    if platform_url is None:
        return page
    meta = f'<meta name="consentry-platform" content="{html.escape(platform_url)}">\n'
    body = page.body.replace(b"<title>", meta.encode() + b"<title>", 1)
    return Asset.of(body, page.media_type)


def erasure_facts(grace_days: int) -> Asset:
    """`/sdk/erasure.json`: what the learner's pages tell before a deletion is asked for."""
    body = orjson.dumps(
        {
            "grace_days": grace_days,
            "due_days": ERASURE_DUE.days,
            "kept_days": ERASURE_KEEPS_RECORDS.days,
        }
    )
    return Asset.of(body, "application/json")


def build_router(
    *, docs: bool, platform_url: str | None = None, erasure_grace_days: int = 0
) -> APIRouter:
    """The routes, with every file read once per process; the API docs if `docs`.

    `/privacy` links back to `platform_url` when it is given.
    """
    router = APIRouter(include_in_schema=False)
    # Fetched cross-origin by the platform's pages, including those isolated with COEP.
    sdk_headers = {**_SDK_CACHE, "Cross-Origin-Resource-Policy": "cross-origin"}
    sdk = {name: Asset.read(name) for name in ("consent.js", "consent.css")}
    # The grace period and the deadlines, so that the dialog says them before anything is asked.
    sdk["erasure.json"] = erasure_facts(erasure_grace_days)
    page_assets = {name: Asset.read(name) for name in ("privacy.js", "privacy.css", "icon.svg")}
    page = _privacy_page(platform_url)

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
