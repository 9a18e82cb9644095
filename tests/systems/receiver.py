"""A real HTTP server in the test process that records every webhook and answers as told."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    """One request as the receiver got it."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    """How to answer one request."""

    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    # Read the request, then close the connection without a word.
    hang_up: bool = False


class Receiver:
    """Records requests; answers each with the next queued Reply, else the default one."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.replies: list[Reply] = []
        self.default = Reply()
        # Set when the sender closed the connection before taking the whole answer.
        self.cut_short = 0
        # Connections the sender opened.
        self.connections = 0
        # Requests of one webhook-id being answered at the same moment, and the most ever seen.
        self.in_flight: dict[str, int] = {}
        self.most_at_once = 0
        # Requests of any webhook-id being answered at the same moment, and the most ever seen.
        self.answering = 0
        self.most_answering = 0
        self._lock = threading.Lock()
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL it answers on."""
        return f"http://127.0.0.1:{self.port}"

    def next_reply(self, request: Received) -> Reply:
        with self._lock:
            self.received.append(request)
            webhook_id = request.headers.get("webhook-id", "")
            self.in_flight[webhook_id] = self.in_flight.get(webhook_id, 0) + 1
            self.most_at_once = max(self.most_at_once, self.in_flight[webhook_id])
            self.answering += 1
            self.most_answering = max(self.most_answering, self.answering)
            return self.replies.pop(0) if self.replies else self.default

    def done(self, request: Received) -> None:
        with self._lock:
            self.in_flight[request.headers.get("webhook-id", "")] -= 1
            self.answering -= 1


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with receiver._lock:
                receiver.connections += 1

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = Received(self.path, headers, body)
            reply = receiver.next_reply(request)
            if reply.delay:
                time.sleep(reply.delay)
            receiver.done(request)
            if reply.hang_up:
                self.close_connection = True
                return
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                with receiver._lock:
                    receiver.cut_short += 1

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 refuses the connections of a worker sending a batch at once.
    request_queue_size = 256
    daemon_threads = True


@contextmanager
def receiving(tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """A receiver on a free port of 127.0.0.1 until the block ends (over TLS, if given)."""
    receiver = Receiver()
    server = _Server(("127.0.0.1", 0), _handler(receiver))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
