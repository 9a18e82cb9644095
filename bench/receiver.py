"""The webhook receiver of the delivery row: takes every POST and answers 204 at once.

A plain ASGI callable under uvicorn, so that the row measures the delivery worker rather than
the receiver: the platform's services answer in their own time, and are their own concern.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import uvicorn

Message = MutableMapping[str, Any]


async def app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """Read the whole body, then 204 (200 to a GET, so that readiness can be checked)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    status = 200 if scope["method"] == "GET" else 204
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def main(argv: Sequence[str] | None = None) -> None:
    """Serve on the port given."""
    parser = argparse.ArgumentParser(prog="bench.receiver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        "bench.receiver:app",
        host=args.host,
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,
        server_header=False,
        backlog=2048,
    )


if __name__ == "__main__":
    main()
