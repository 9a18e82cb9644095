"""Security headers on every response, where the route did not set its own."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Responses hold consent choices, histories, events and errors naming subjects: no shared or
# browser cache keeps them unless a route says otherwise (the public policy does).
_DEFAULTS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
# JSON never needs to load anything or be framed; pages (the API docs) bring their own policy.
_API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


class SecurityHeaders:
    """Adds the service's default security headers to each response that lacks them."""

    def __init__(self, app: ASGIApp, hsts_seconds: int) -> None:
        self.app = app
        defaults = list(_DEFAULTS)
        if hsts_seconds > 0:
            defaults.append((b"strict-transport-security", b"max-age=%d" % hsts_seconds))
        self._defaults = tuple(defaults)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self._complete(list(message.get("headers", ())))
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _complete(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        # ASGI has response header names lowercased, so they are compared as they are. Plain
        # loops: this runs on every response, and generator expressions cost more here.
        present = set()
        html = False
        for name, value in headers:
            present.add(name)
            if name == b"content-type" and value.startswith(b"text/html"):
                html = True
        for header in self._defaults:
            if header[0] not in present:
                headers.append(header)
        if not html and b"content-security-policy" not in present:
            headers.append(_API_CSP)
        return headers
