"""`consentry serve | migrate | worker | keys | tokens | retention | openapi`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging.config
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from importlib.util import find_spec
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError

from consentry import migrations, tokens
from consentry.db import Database, UnitOfWork, format_timestamp, open_database, utcnow
from consentry.errors import ConsentryError, ValidationFailed
from consentry.events.categories import CategoryMapError, load_category_map
from consentry.keys import service as keys
from consentry.keys.format import SCOPES
from consentry.observability import multiprocess
from consentry.observability.logs import logging_config
from consentry.privacy import fanout
from consentry.privacy.retention import RetentionReport, run_retention
from consentry.privacy.worker import Signals, run_worker
from consentry.pseudonyms import PseudonymSource
from consentry.settings import Settings, get_settings
from consentry.systems.worker import DeliverySignals, run_deliveries

T = TypeVar("T")
log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="consentry", description="Consent and tracking service.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate, then serve HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--no-migrate", action="store_true", help="do not migrate before serving")

    commands.add_parser("migrate", help="bring the database schema to the latest revision")
    commands.add_parser(
        "worker",
        help="run due erasures, webhook deliveries and retention passes until stopped (SIGTERM)",
    )
    commands.add_parser("openapi", help="print the OpenAPI document")

    key_commands = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = key_commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scope", dest="scopes", action="extend", nargs="+", required=True, choices=SCOPES
    )
    listing = key_commands.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--json", action="store_true", help="one JSON document")
    revoke = key_commands.add_parser("revoke", help="revoke a key at once")
    # `keys revoke NAME` and `keys revoke --name NAME`, to match `keys create --name`.
    named = revoke.add_mutually_exclusive_group(required=True)
    named.add_argument("name", nargs="?")
    named.add_argument("--name", dest="name_option", metavar="NAME")

    token_commands = commands.add_parser(
        "tokens", help="learner tokens, for trying the service out"
    ).add_subparsers(dest="tokens_command", required=True)
    mint = token_commands.add_parser(
        "mint", help="print an HS256 learner JWT signed with CONSENTRY_JWT_SECRET"
    )
    mint.add_argument("--subject", required=True, help="the learner's subject id (the `sub`)")
    mint.add_argument(
        "--minutes",
        type=int,
        default=60,
        choices=range(1, 24 * 60 + 1),
        metavar="1-1440",
        help="how long the token is valid (default 60)",
    )
    mint.add_argument("--name", help="the learner's name, shown on /privacy")
    mint.add_argument(
        "--secret-file",
        type=Path,
        help="a file holding the secret to sign with; required in production",
    )

    retention = commands.add_parser("retention", help="apply the retention rules")
    retention_commands = retention.add_subparsers(dest="retention_command", required=True)
    retention_run = retention_commands.add_parser(
        "run", help="one pass: roll old analytics into daily counts, purge expired records"
    )
    retention_run.add_argument("--dry-run", action="store_true", help="report, change nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:
        print(f"consentry: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    if args.command in ("serve", "openapi"):
        # Before anything else (migrations, uvicorn's workers): a mapping that cannot be used is
        # a configuration error, reported as one rather than as a worker's traceback.
        try:
            load_category_map(settings.event_categories)
        except CategoryMapError as exc:
            print(
                f"consentry: invalid configuration: CONSENTRY_EVENT_CATEGORIES: {exc}",
                file=sys.stderr,
            )
            return 2
    try:
        return _run(args, settings)
    except ConsentryError as exc:
        print(f"consentry: {exc.detail}", file=sys.stderr)
        return 1
    except (OSError, OperationalError, InterfaceError) as exc:
        print(f"consentry: the database cannot be reached: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "migrate":
        migrations.upgrade(settings.database_url)
        print(f"database schema at {migrations.head_revision()}")
    elif args.command == "serve":
        _serve(args, settings)
    elif args.command == "openapi":
        from consentry.app import create_app

        print(json.dumps(create_app(settings).openapi(), indent=2, sort_keys=True))
    elif args.command == "worker":
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_work(settings))
    elif args.command == "retention":
        _run_retention(settings, dry_run=args.dry_run)
    elif args.command == "tokens":
        print(_mint_token(settings, args))
    elif args.keys_command == "create":
        _create_key(settings, args.name, args.scopes)
    elif args.keys_command == "list":
        _list_keys(settings, as_json=args.json)
    else:
        name = args.name or args.name_option
        _with_database(settings, lambda database: keys.revoke_everywhere(database, name))
        print(f"revoked {name}")
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    # Log lines from the first one on (migrations log too); uvicorn applies the same in workers.
    log_format = settings.log_format_for(terminal=sys.stderr.isatty())
    log_config = logging_config(settings.log_level, log_format, access_log=settings.access_log)
    logging.config.dictConfig(log_config)
    # Before any worker imports prometheus-client, which reads the directory's name at import.
    metrics_directory = multiprocess.prepare(args.workers)
    try:
        if not args.no_migrate:
            migrations.upgrade(settings.database_url)
        _run_uvicorn(args, settings, log_config)
    finally:
        if metrics_directory is not None:
            shutil.rmtree(metrics_directory, ignore_errors=True)


def _run_uvicorn(args: argparse.Namespace, settings: Settings, log_config: dict[str, Any]) -> None:
    import uvicorn

    # uvicorn drains the requests under way on SIGTERM or SIGINT, shuts the app down, then
    # raises the signal again, which would end the process as killed by it. A stop that was
    # asked for and completed is a success, as for `consentry worker`.
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, _stopped)
    uvicorn.run(
        "consentry.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level,
        log_config=log_config,
        # The service decides itself which proxies to believe (CONSENTRY_TRUSTED_PROXIES).
        proxy_headers=False,
        server_header=False,
        # Access lines carry subject ids in their paths: personal data stays out of logs. The
        # service logs its own, with the route template (consentry.observability.middleware).
        access_log=False,
        # Hardening: what one process takes on before it refuses (503) or drops connections.
        http=_http_protocol(settings.server_http),
        limit_concurrency=settings.server_limit_concurrency,
        backlog=settings.server_backlog,
        timeout_keep_alive=settings.server_keep_alive_seconds,
        h11_max_incomplete_event_size=settings.server_max_incomplete_event_bytes,
    )


def _http_protocol(parser: str) -> str:
    """What uvicorn runs for `CONSENTRY_SERVER_HTTP`: each bounds heads and stalled sends.

    `auto` picks httptools when it is installed, as uvicorn's `auto` does, else h11.
    """
    # By name: each worker process imports it for itself (and only httptools' needs httptools).
    if parser == "h11" or (parser == "auto" and find_spec("httptools") is None):
        return "consentry.serving:GuardedH11Protocol"
    return "consentry.serving:GuardedHttpToolsProtocol"


def _stopped(signal_number: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed, as `serve` runs on: the worker's deliveries are a socket
    each, and the standard loop's selector cost it a tenth of its time."""
    if find_spec("uvloop") is None:
        return None
    import uvloop

    return uvloop.new_event_loop


async def _work(settings: Settings) -> None:
    """The worker on its own, as a separate deployment; SIGTERM lets the pass under way finish."""
    log_format = settings.log_format_for(terminal=sys.stderr.isatty())
    logging.config.dictConfig(logging_config(settings.log_level, log_format, access_log=False))
    database = await open_database(settings)
    signals = Signals()
    delivery_signals = DeliverySignals()
    loop = asyncio.get_running_loop()

    def stop() -> None:
        signals.stop()
        delivery_signals.stop()

    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop)
    log.info("consentry worker: running")
    try:
        await asyncio.gather(
            run_worker(settings, database, PseudonymSource(settings, database), signals),
            run_deliveries(
                settings,
                database,
                delivery_signals,
                prepare=fanout.prepare_attempt,
                settle=fanout.settle_attempts,
            ),
        )
    finally:
        await database.dispose()
    log.info("consentry worker: stopped")


def _in_unit_of_work(settings: Settings, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """`work` in one transaction, committed when it returns, as a request's would be."""

    async def in_transaction(database: Database) -> T:
        async with database.unit_of_work() as uow:
            return await work(uow)

    return _with_database(settings, in_transaction)


def _with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """`work` with the database open, closed again when it returns."""

    async def run() -> T:
        database = await open_database(settings)
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(run())


def _create_key(settings: Settings, name: str, scopes: list[str]) -> None:
    plaintext, key = _in_unit_of_work(settings, lambda uow: keys.create_key(uow, name, scopes))
    print(plaintext)
    scopes_text = " ".join(key.scopes)
    print(f"created {key.name} with {scopes_text}; the key is shown only now", file=sys.stderr)


def _mint_token(settings: Settings, args: argparse.Namespace) -> str:
    """A learner token the service accepts, signed with its own HS256 secret."""
    if args.secret_file is not None:
        secret = args.secret_file.read_text().strip()
    elif settings.env == "production":
        # Whoever holds the service's secret can speak for any learner: in production that
        # takes a deliberate act, not a command run in the wrong shell.
        raise ValidationFailed(
            "refusing to mint a token with the service's secret in production; "
            "give the secret with --secret-file"
        )
    elif settings.jwt_secret is not None:
        secret = settings.jwt_secret
    else:
        raise ValidationFailed(
            "set CONSENTRY_JWT_SECRET (the service verifies learner tokens with it), "
            "or give --secret-file"
        )
    if not secret:
        raise ValidationFailed("the secret file is empty")
    return tokens.mint(
        secret,
        args.subject,
        lifetime_seconds=args.minutes * 60,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        name=args.name,
    )


def _list_keys(settings: Settings, *, as_json: bool) -> None:
    rows: list[dict[str, Any]] = [
        {
            "name": key.name,
            "prefix": key.prefix,
            "scopes": key.scopes,
            "created_at": format_timestamp(key.created_at),
            "revoked_at": format_timestamp(key.revoked_at) if key.revoked_at else None,
            "reserved_name": keys.is_reserved(key.name),
        }
        for key in _in_unit_of_work(settings, keys.list_keys)
    ]
    for row in rows:
        if row["reserved_name"] and not row["revoked_at"]:
            print(
                f"consentry: the key {row['name']!r} has a reserved name: its writes cannot be "
                "told from that actor's; create a key under another name and revoke this one",
                file=sys.stderr,
            )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        flag = "\treserved name" if row["reserved_name"] else ""
        print(f"{row['name']}\t{row['prefix']}...\t{' '.join(row['scopes'])}\t{state}{flag}")


def _run_retention(settings: Settings, *, dry_run: bool) -> None:
    async def run() -> RetentionReport:
        database = await open_database(settings)
        try:
            return await run_retention(
                database,
                now=utcnow(),
                retention_days=settings.event_retention_days,
                dry_run=dry_run,
            )
        finally:
            await database.dispose()

    print(asyncio.run(run()).describe())
