"""A reference receiver of Consentry's webhooks: verify, deduplicate, act, confirm erasures.

It shows what a platform service does with the messages Consentry sends it, in one file with
one dependency (`pip install standardwebhooks`):

- every request is verified with the Standard Webhooks library (401 when it does not verify);
- each message is acted on once, however often it arrives: its `webhook-id` is recorded in the
  same SQLite transaction as its effect, and a repeat is answered 200 without acting again;
- `consent.changed` keeps the newest state per learner (an older `revision` is ignored, since
  messages are not ordered);
- `erasure.requested` deletes what it holds about the learner and, when its mode is `confirm`,
  confirms to Consentry with the token that came with the attempt; a `consent.changed` about
  that learner arriving later (messages are not ordered) is ignored, so nothing comes back. It
  remembers the erased learner only as a SHA-256 hash.

    python examples/webhook_receiver.py --port 9000 --secret whsec_... --database receiver.db \\
        --system-id course-progress --consentry http://127.0.0.1:8000

`--fail-first N` answers 500 to the first N requests after acting on them, as a service that
crashes before it answers would: Consentry sends them again, and the deduplication shows.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sqlite3
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (webhook_id TEXT NOT NULL, verified INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS processed (webhook_id TEXT PRIMARY KEY, type TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS consent (
    subject_id TEXT PRIMARY KEY, revision INTEGER NOT NULL, categories TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS erasures (request_id TEXT NOT NULL, removed INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS erased (subject_hash TEXT PRIMARY KEY);
"""


class Receiver:
    """The receiver's state: its secrets, its database, and how it answers."""

    def __init__(self, args: argparse.Namespace) -> None:
        # During a rotation Consentry signs with both secrets: either one verifies.
        self.hooks = [Webhook(secret) for secret in args.secret]
        self.database = args.database
        self.system_id = args.system_id
        self.consentry = args.consentry.rstrip("/") if args.consentry else None
        self.fail_first = args.fail_first
        self.lock = threading.Lock()
        with self.connect() as db:
            db.executescript(_SCHEMA)

    def connect(self) -> contextlib.closing[sqlite3.Connection]:
        """A connection of its own (one per request thread), closed after the block."""
        return contextlib.closing(sqlite3.connect(self.database, timeout=30, isolation_level=None))

    def verify(self, body: bytes, headers: dict[str, str]) -> Any:
        for hook in self.hooks:
            try:
                return hook.verify(body, headers)
            except WebhookVerificationError:
                continue
        raise WebhookVerificationError("no secret verifies the signature")

    def handle(self, body: bytes, headers: dict[str, str]) -> int:
        """Act on one request; the HTTP status to answer."""
        webhook_id = headers.get("webhook-id", "")
        try:
            message = self.verify(body, headers)
        except WebhookVerificationError:
            self.record_receipt(webhook_id, verified=False)
            return 401
        self.record_receipt(webhook_id, verified=True)
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                first = db.execute(
                    "INSERT OR IGNORE INTO processed (webhook_id, type) VALUES (?, ?)",
                    (webhook_id, message["type"]),
                ).rowcount
                if first:
                    self.act(db, message, headers)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        with self.lock:
            if self.fail_first > 0:
                self.fail_first -= 1
                return 500
        return 200

    def record_receipt(self, webhook_id: str, *, verified: bool) -> None:
        with self.connect() as db:
            db.execute(
                "INSERT INTO receipts (webhook_id, verified) VALUES (?, ?)",
                (webhook_id, int(verified)),
            )

    def act(self, db: sqlite3.Connection, message: dict[str, Any], headers: dict[str, str]) -> None:
        data = message["data"]
        if message["type"] == "consent.changed":
            if db.execute(
                "SELECT 1 FROM erased WHERE subject_hash = ?", (_hashed(data["subject_id"]),)
            ).fetchone():
                return  # erased already: a late message must not bring the learner back
            # Messages are not ordered: only a newer revision replaces what is kept.
            db.execute(
                "INSERT INTO consent (subject_id, revision, categories) VALUES (?, ?, ?) "
                "ON CONFLICT (subject_id) DO UPDATE SET revision = excluded.revision, "
                "categories = excluded.categories WHERE excluded.revision > consent.revision",
                (data["subject_id"], data["revision"], json.dumps(data["categories"])),
            )
        elif message["type"] == "erasure.requested":
            removed = db.execute(
                "DELETE FROM consent WHERE subject_id = ?", (data["subject_id"],)
            ).rowcount
            db.execute(
                "INSERT INTO erasures (request_id, removed) VALUES (?, ?)",
                (data["request_id"], removed),
            )
            db.execute(
                "INSERT OR IGNORE INTO erased (subject_hash) VALUES (?)",
                (_hashed(data["subject_id"]),),
            )
            if data.get("mode") == "confirm":
                # Inside the transaction: if Consentry cannot be told, nothing is marked done
                # and the 500 makes Consentry send the message again (with a fresh token).
                self.confirm(data["request_id"], headers["webhook-confirm-token"], removed)

    def confirm(self, request_id: str, token: str, removed: int) -> None:
        if self.consentry is None or self.system_id is None:
            raise RuntimeError("--consentry and --system-id are needed to confirm erasures")
        request = urllib.request.Request(  # noqa: S310 -- the operator's own Consentry URL
            f"{self.consentry}/v1/erasure-requests/{request_id}/confirmations",
            data=json.dumps(
                {"system_id": self.system_id, "deleted": {"consent_rows": removed}}
            ).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            answer.read()


def _hashed(subject_id: str) -> str:
    return hashlib.sha256(subject_id.encode()).hexdigest()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                status = receiver.handle(body, headers)
            except (KeyError, ValueError, TypeError, urllib.error.URLError, RuntimeError) as exc:
                print(f"receiver: failed to act on a message: {exc!r}", file=sys.stderr)
                status = 500
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", action="append", required=True, help="whsec_...; repeatable")
    parser.add_argument("--database", required=True, help="the receiver's SQLite file")
    parser.add_argument("--system-id", help="this system's id in Consentry (to confirm)")
    parser.add_argument("--consentry", help="Consentry's base URL (to confirm erasures)")
    parser.add_argument("--fail-first", type=int, default=0)
    args = parser.parse_args(argv)
    server = _Server((args.host, args.port), _handler(Receiver(args)))
    print(f"receiver: listening on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
