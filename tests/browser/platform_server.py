"""The platform's test pages, served from an origin of their own as the platform would."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PAGES = Path(__file__).parent / "platform"


class PlatformServer(ThreadingHTTPServer):
    """The platform's pages, with the service's address written into the test page."""

    service = ""
    requests: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: PlatformServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.server.requests.append(path)
        name = "index.html" if path == "/" else path.lstrip("/")
        file = PAGES / name
        if "/" in name or not file.is_file():
            self.send_error(404)
            return
        body = file.read_bytes()
        if name.endswith(".html"):
            body = body.replace(b"{service}", self.server.service.encode())
        self.send_response(200)
        kind = "text/html" if name.endswith(".html") else "text/javascript"
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read `requests` instead."""


def start_platform(port: int = 0) -> PlatformServer:
    """The platform's server on 127.0.0.1:`port` (any free port for 0), serving in a thread."""
    server = PlatformServer(("127.0.0.1", port), _Handler)
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def platform_origin(server: PlatformServer) -> str:
    """The platform's origin as the browser sees it: `localhost`, where the service is 127.0.0.1."""
    return f"http://localhost:{server.server_address[1]}"
