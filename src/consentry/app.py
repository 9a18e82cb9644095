"""create_app(): settings, lifespan, middleware, routers and error handlers — no logic."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

from consentry import __version__
from consentry.apidoc import build_openapi
from consentry.audit.routes import router as audit_router
from consentry.clientip import parse_networks
from consentry.consent.cache import ConsentCache, listen
from consentry.consent.decision_routes import router as decisions_router
from consentry.consent.link_routes import router as link_router
from consentry.consent.rendered import RenderedReads
from consentry.consent.routes import record_consent
from consentry.consent.routes import router as consent_router
from consentry.cors import StrictCORS
from consentry.db import open_database
from consentry.errors import install_error_handlers
from consentry.events.analytics_routes import ingest_batch
from consentry.events.analytics_routes import router as analytics_router
from consentry.events.categories import load_category_map
from consentry.events.counters import EventCounts
from consentry.events.routes import ingest_events
from consentry.events.routes import router as events_router
from consentry.events.service import event_writer
from consentry.headers import SecurityHeaders
from consentry.integrations.cache import LISTENER_NAME as CONNECTIONS_LISTENER
from consentry.integrations.cache import ConnectionCache
from consentry.integrations.cache import listen as listen_for_connections
from consentry.integrations.routes import router as integrations_router
from consentry.integrations.service import flowing_provider_ids
from consentry.keys.cache import KeyCache
from consentry.keys.cache import listen as listen_for_keys
from consentry.migrations import head_revision, known_revisions
from consentry.observability.metrics import Metrics, sample_gauges_forever
from consentry.observability.middleware import ObservabilityMiddleware
from consentry.ops.routes import router as ops_router
from consentry.policy import load_policy
from consentry.policy.routes import render_policy
from consentry.policy.routes import router as policy_router
from consentry.privacy import fanout
from consentry.privacy.export_slots import ExportSlots
from consentry.privacy.metrics import erasure_metrics
from consentry.privacy.repository import UNFINISHED as ERASURE_UNFINISHED
from consentry.privacy.repository import open_by_status
from consentry.privacy.routes import router as erasure_router
from consentry.privacy.routes import subjects as export_router
from consentry.privacy.worker import Signals, run_worker
from consentry.providers.routes import router as providers_router
from consentry.pseudonyms import PseudonymSource
from consentry.ratelimit import rate_limiter
from consentry.routing import BodyLimit, body_limits
from consentry.settings import Settings, get_settings
from consentry.shortcuts import DirectRoutes, route_of
from consentry.systems.metrics import delivery_metrics
from consentry.systems.routes import router as systems_router
from consentry.systems.urls import AllowList
from consentry.systems.worker import DeliverySignals, run_deliveries
from consentry.tokens import TokenVerifier
from consentry.web.routes import build_router as build_web_router

log = logging.getLogger(__name__)
# How long shutdown waits for an erasure under way to commit before cancelling it (it would be
# rolled back and run again by the next worker).
_WORKER_STOP_SECONDS = 20
# Active API keys kept per process: far more than a deployment issues.
_KEY_CACHE_SIZE = 1024
# The collector's thresholds while serving (CPython's are 700, 10, 10). A request allocates
# hundreds of objects and frees nearly all of them itself; at the defaults the collector ran a
# full pass every 100 young ones, and a full pass walks everything the caches hold: under the
# bench's writes and events (a minute), 33 full passes of up to 49 ms each, and 5 % of the
# process's time in the collector; with these, no full pass, and 0.2 %.
_GC_THRESHOLDS = (10_000, 50, 100)

DESCRIPTION = (
    "Consent and tracking service of an education platform: each learner's consent with a "
    "verifiable history, consent-gated tracking events, and the privacy team's operations."
)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    database = await open_database(settings)
    app.state.database = database
    pseudonyms = PseudonymSource(settings, database)
    app.state.pseudonyms = pseudonyms
    signals = Signals()
    app.state.worker = signals
    cache = ConsentCache(settings.consent_cache_size)
    app.state.consent_cache = cache
    # The bodies of reads from that cache, kept while the state they show is cached.
    app.state.consent_renders = RenderedReads(settings.consent_cache_size)
    app.state.event_writer = writer = event_writer(database, settings.database_pool_size)
    tasks: list[asyncio.Task[None]] = []
    if database.announces_changes and settings.consent_cache_size > 0:
        tasks.append(asyncio.create_task(listen(database.listener, cache)))
    connections = ConnectionCache(settings.connection_cache_size)
    app.state.connection_cache = connections
    if database.announces_changes and settings.connection_cache_size > 0:
        listener = partial(database.listener, CONNECTIONS_LISTENER)
        tasks.append(asyncio.create_task(listen_for_connections(listener, connections)))
    key_cache = KeyCache(_KEY_CACHE_SIZE)
    app.state.key_cache = key_cache
    if database.announces_changes:
        tasks.append(asyncio.create_task(listen_for_keys(database, key_cache)))
    # Metrics: this process's gauges, for whichever worker answers the scrape.
    metrics: Metrics = app.state.metrics
    tasks.append(asyncio.create_task(sample_gauges_forever(metrics, database, writer)))
    worker = None
    delivery_signals = DeliverySignals()
    app.state.delivery_worker = delivery_signals
    deliveries = None
    if settings.run_worker:
        worker = asyncio.create_task(run_worker(settings, database, pseudonyms, signals))
        deliveries = asyncio.create_task(
            run_deliveries(
                settings,
                database,
                delivery_signals,
                prepare=fanout.prepare_attempt,
                settle=fanout.settle_attempts,
            )
        )
    # Everything built so far (the libraries, the app, its schemas) lives as long as the process:
    # leaving it out of the collector's full passes shortens the pauses that every request in
    # flight would wait for (they set the read's p99 under load).
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)
    try:
        yield
    finally:
        if worker is not None and deliveries is not None:
            signals.stop()
            delivery_signals.stop()
            try:
                await asyncio.wait_for(asyncio.gather(worker, deliveries), _WORKER_STOP_SECONDS)
            except TimeoutError:
                log.warning("the worker did not finish its pass in time; it was cancelled")
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await writer.drain()
        await database.dispose()
        metrics.retire()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ASGI application; refuses to start on invalid settings, policy or mapping."""
    settings = settings or get_settings()
    policy = load_policy(settings.policy_file, settings.opt_out_regions)
    event_categories = load_category_map(settings.event_categories)
    app = FastAPI(
        title="Consentry",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan,
        # The docs pages are the web router's, served from the service's own files.
        docs_url=None,
        redoc_url=None,
        # Starlette would answer `/v1/policy/` with a redirect to an absolute URL built from the
        # request's Host header, which a client chooses: such paths are not found instead.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.policy = policy
    app.state.policy_body = render_policy(policy, settings.policy_url)
    app.state.trusted_proxies = parse_networks(settings.trusted_proxies)
    app.state.token_verifier = TokenVerifier(settings)
    app.state.max_body_bytes = settings.max_body_bytes
    app.state.schema_head = head_revision()
    app.state.schema_revisions = known_revisions()
    app.state.metrics = metrics = Metrics(
        ERASURE_UNFINISHED, open_by_status, [delivery_metrics, erasure_metrics]
    )
    app.state.webhook_allow = AllowList.parse(settings.webhook_allow_hosts)
    app.state.event_counts = EventCounts(metrics.events)
    app.state.event_categories = event_categories
    # Hardening: per-credential rate limits (None when switched off), and the JSON depth limit.
    app.state.rate_limiter = rate_limiter(settings)
    app.state.max_json_depth = settings.max_json_depth
    app.state.export_slots = ExportSlots(settings.export_concurrency, settings.export_per_subject)
    # The providers list of a subject counts its connections without providers knowing of them.
    app.state.connected_providers = flowing_provider_ids

    # The innermost middleware: the consent read and write, the integration check and the event
    # intake, answered ahead of the router's walk.
    consent_path = "/v1/subjects/{subject_id}/consent"
    check_path = "/v1/subjects/{subject_id}/integrations/{integration_id}"
    direct = [
        (route_of(consent_router, consent_path, "GET"), None),
        (route_of(consent_router, consent_path, "PUT"), record_consent),
        (route_of(consent_router, consent_path, "PATCH"), record_consent),
        # The check a connecting service makes before every exchange.
        (route_of(integrations_router, check_path, "GET"), None),
        # Every tracking event of the platform's services, natively or through their libraries.
        (route_of(events_router, "/v1/events", "POST"), ingest_events),
        (route_of(analytics_router, "/v1/batch", "POST"), ingest_batch),
    ]
    # The API's routers, in the order the router walks them.
    routers = [
        policy_router,
        consent_router,
        # Routes are matched in order, at a cost each: the check before a data exchange is a
        # hot path like the consent read, so it comes right after it.
        integrations_router,
        link_router,
        decisions_router,
        events_router,
        analytics_router,
        providers_router,
        systems_router,
        audit_router,
        erasure_router,
        export_router,
        ops_router,
    ]
    app.add_middleware(DirectRoutes, fastapi=app, routes=direct, routers=routers)
    if settings.cors_origins:
        app.add_middleware(StrictCORS, origins=settings.cors_origins)
    install_error_handlers(app)
    for api_router in routers:
        app.include_router(api_router)
    # The frontend's consent.js, banner and preference center, the /privacy page, the API docs.
    app.include_router(
        build_web_router(
            docs=settings.docs_enabled,
            platform_url=settings.platform_url,
            erasure_grace_days=settings.erasure_grace_days,
        )
    )
    # Hardening: bodies refused past their limit before any route (the event intakes and bulk
    # decisions have limits of their own).
    limits = body_limits(
        [*events_router.routes, *analytics_router.routes, *decisions_router.routes]
    )
    app.add_middleware(BodyLimit, limits=limits)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    # Outside Starlette's error middleware (which add_middleware cannot reach), so that 500
    # answers, refusals and CORS preflights get them too: security headers on every response,
    # then request ids, request metrics and the access line.
    build_stack = app.build_middleware_stack
    hsts_seconds = settings.hsts_seconds

    def _outer_stack() -> ASGIApp:
        secured = SecurityHeaders(build_stack(), hsts_seconds=hsts_seconds)
        return ObservabilityMiddleware(secured, metrics)

    app.build_middleware_stack = _outer_stack  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, built once."""
    if app.openapi_schema is None:
        app.openapi_schema = build_openapi(app)
    return app.openapi_schema
