"""create_app(settings): the one place where Midas is wired together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import aiohttp_cors
from aiohttp import web
from prometheus_client import CollectorRegistry

import commands
import projections
import queries
from commands.accounts import change_account, create_account
from midas import console, error_tracking, tracing
from midas.calendar.google import GoogleCalendarClient, GooglePusher
from midas.calendar.poller import CalendarPoller, PollerConfig
from midas.clock import CLOCK_CHANNEL, MovableClock
from midas.config import Settings
from midas.domain.registry import AGGREGATES
from midas.error_reports import alert_projection_failure
from midas.eventstore import Database, EventStore, EventTypes, Repository
from midas.eventstore.migrate import migrate
from midas.eventstore.notifier import Notifier
from midas.eventstore.replicas import Replicas
from midas.eventstore.store import EVENTS_CHANNEL
from midas.housekeeping import Housekeeper
from midas.http import security_events, system
from midas.http.api import Endpoint
from midas.http.consistency import POSITION_HEADER, ConsistencyGate
from midas.http.headers import on_response_prepare
from midas.http.idempotency import idempotency_middleware
from midas.http.keys import (
    ACCESS,
    CALENDAR_POLLER,
    CLOCK,
    DATABASE,
    GATE,
    GOOGLE,
    GOOGLE_CALENDAR,
    LIMITER,
    METRICS,
    NOTIFICATIONS,
    PAYPAL,
    PROJECTORS,
    REPLICAS,
    REPOSITORY,
    SCHEDULER,
    SETTINGS,
    STORE,
    STRIPE,
)
from midas.http.middlewares import (
    REQUEST_ID_HEADER,
    HttpMetrics,
    auth_middleware,
    metrics_middleware,
    problem_middleware,
    request_id_middleware,
)
from midas.http.openapi import openapi_document
from midas.http.permissions import missing_rules
from midas.http.ratelimit import RateLimiter, system_clock
from midas.notifications.delivery import NotificationWorker
from midas.notifications.retention import archive_finished_emails
from midas.payment_providers.paypal_gateway import PayPalGateway
from midas.payment_providers.stripe_gateway import StripeGateway
from midas.projection import CHECKPOINTS_CHANNEL, ProjectionRunner, Projector
from midas.projection_failures import ProjectionFailure
from midas.scheduler import Scheduler
from midas.security.access import ACCESS_CHANNEL, AccessCache
from midas.security.google import GoogleVerifier
from midas.security.outbound import OutboundGuard
from midas.security.passwords import warm_up
from midas.security.pii import PiiCodec, configure_master_key
from process_managers import apa, changes, instalments, lifecycle, loyalty, payments, points
from queries.metrics import BusinessMetrics, ReplicaMetrics

VERSION = "0.1.0"
# The account commands the command line runs (`midas users`), wired here like the rest.
__all__ = ["VERSION", "change_account", "create_account", "create_app", "read_models"]


def read_models() -> list[Projector]:
    """Every read model's projector: what `midas projections` lists, rebuilds and
    verifies, and what a service keeps."""
    return projections.all_projectors()


def all_endpoints() -> list[Endpoint]:
    apis = [system.api, *commands.APIS, *queries.APIS]
    return [endpoint for api in apis for endpoint in api.endpoints]


def create_app(
    settings: Settings,
    *,
    projectors: Callable[[], list[Projector]] = read_models,
) -> web.Application:
    if settings.database_dsn() is None:
        raise ValueError("create_app needs a database URL (the CLI starts the embedded one)")
    settings.check_secrets()
    settings.check_payments()
    endpoints = all_endpoints()
    unguarded = missing_rules((e.method, e.path) for e in endpoints)
    if unguarded:
        raise ValueError(f"routes without a permission rule: {', '.join(unguarded)}")
    registry = CollectorRegistry()
    middlewares = [
        request_id_middleware(),
        metrics_middleware(HttpMetrics(registry)),
        problem_middleware(on_error=commands.error_reports.record_server_error,
                           on_refusal=security_events.permission_refused),
        auth_middleware(settings),
        idempotency_middleware(endpoints, timedelta(seconds=settings.idempotency_stale_s)),
    ]
    if tracing.start(settings, owner=registry):  # off: no middleware, nothing per request
        middlewares.insert(0, tracing.server_middleware())
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=middlewares)
    app.on_response_prepare.append(on_response_prepare)  # security headers, every answer
    app.cleanup_ctx.append(tracing.app_context(registry))  # stopped last, after the rest
    error_tracking.start(settings, owner=registry, release=f"midas@{VERSION}")
    app.cleanup_ctx.append(error_tracking.app_context(registry))
    app[SETTINGS] = settings
    app[METRICS] = registry
    # Outside production, a clock admins can move forward (replaceable before start-up).
    app[CLOCK] = system_clock if settings.environment == "production" else MovableClock()
    app[commands.customers.SEGMENT_MEMBERS] = queries.customers.segment_members
    for endpoint in endpoints:
        app.router.add_route(endpoint.method, endpoint.path, endpoint.handler,
                             name=endpoint.handler.__name__)
    app[system.OPENAPI] = openapi_document(endpoints, title="Midas", version=VERSION)
    console.setup(app)  # the staff console's pages, over the routes above
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_business_metrics)
    app.cleanup_ctx.append(_housekeeping)
    app.cleanup_ctx.append(_accounts)
    app.cleanup_ctx.append(_event_store)
    app.cleanup_ctx.append(_process_managers)  # process_managers/, one runner
    app.cleanup_ctx.append(_projections(projectors))
    app.cleanup_ctx.append(_scheduler)
    app.cleanup_ctx.append(_notifications)  # email delivery, reminders, alerts
    app.cleanup_ctx.append(_calendar_poller)
    _enable_cors(app, settings.cors_origins)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = Database(
        settings.database_dsn() or "",
        settings.database_schema,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        statement_timeout_s=settings.statement_timeout_s,
    )
    await migrate(db, settings.migrations_dir)
    await db.open()
    app[DATABASE] = db
    replicas = _replicas(settings, db)
    if replicas is not None:
        await replicas.open()
        replicas.start()
        app[REPLICAS] = replicas
    yield
    if replicas is not None:
        await replicas.close()
    await db.close()


def _replicas(settings: Settings, db: Database) -> Replicas | None:
    """The read replicas queries read from (MIDAS_READ_DATABASE_URLS), if any."""
    if not settings.read_database_urls:
        return None
    return Replicas(db, [url.get_secret_value() for url in settings.read_database_urls],
                    max_lag=settings.read_replica_max_lag,
                    check_s=settings.read_replica_check_s,
                    pool_max_size=settings.pool_max_size,
                    statement_timeout_s=settings.statement_timeout_s)


async def _business_metrics(app: web.Application) -> AsyncIterator[None]:
    """Business series in /metrics, read from the database at scrape time, and the
    state of this process's read replicas."""
    collectors = [BusinessMetrics(app[DATABASE], lambda: app[CLOCK](),
                                  app[SETTINGS].business_metrics_cache_s),
                  ReplicaMetrics(app.get(REPLICAS))]
    for collector in collectors:
        app[METRICS].register(collector)
    app[system.SCRAPED] = collectors
    yield


async def _accounts(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[LIMITER] = RateLimiter(app[DATABASE], clock=lambda: app[CLOCK]())
    app[GOOGLE] = GoogleVerifier(
        settings.google_jwks_url, settings.google_client_id, settings.google_jwks_ttl_s
    )
    await warm_up(settings.bcrypt_rounds)
    yield
    await app[GOOGLE].close()


async def _housekeeping(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    emails_kept = timedelta(days=settings.email_retention_days)

    async def archive_emails() -> int:  # the repository exists once the service has started
        return await archive_finished_emails(app[DATABASE], app[REPOSITORY], emails_kept)

    keeper = Housekeeper(app[DATABASE], every_s=settings.housekeeping_every_s,
                         keep=timedelta(seconds=settings.housekeeping_keep_s),
                         webhook_keep=timedelta(days=settings.webhook_dedupe_days),
                         also=[archive_emails])
    keeper.start()
    yield
    await keeper.stop()


async def _event_store(app: web.Application) -> AsyncIterator[None]:
    settings, db = app[SETTINGS], app[DATABASE]
    notifier = Notifier(db, [EVENTS_CHANNEL, CHECKPOINTS_CHANNEL, ACCESS_CHANNEL,
                             CLOCK_CHANNEL])
    app[ACCESS] = AccessCache(db, notifier)
    clock = app[CLOCK]
    if isinstance(clock, MovableClock):
        await clock.attach(db, notifier)
    notifier.start()
    store = EventStore(db, max_batch=settings.group_commit_max_batch, notifier=notifier)
    store.start()
    app[STORE] = store
    configure_master_key(settings.pii_master_key)  # process-wide: projectors unwrap with it
    app[REPOSITORY] = Repository(
        store, EventTypes(AGGREGATES), snapshot_every=settings.snapshot_every,
        field_codec=PiiCodec(db, store=store),  # personal fields encrypted per subject (GDPR)
        conflict_attempts=settings.conflict_retry_attempts,
        lock_wait_s=settings.aggregate_lock_wait_s,
        snapshot_vacuum_every=settings.snapshot_vacuum_every,
    )
    app[GATE] = ConsistencyGate(db, notifier, settings.consistency_timeout_s,
                                replicas=app.get(REPLICAS))
    yield
    await app[REPOSITORY].close()  # the snapshots that wait
    await store.close()  # in-flight appends finish first
    await notifier.stop()


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    """Lifecycle timers (hold expiry, automatic check-out/in), from the due_tasks table."""
    settings = app[SETTINGS]
    scheduler = Scheduler(
        app[DATABASE],
        {**lifecycle.timers(app), **payments.timers(app), **changes.timers(app),
         **instalments.timers(app)},
        lambda: app[CLOCK](),
        delays={"check_in": timedelta(minutes=settings.auto_check_in_after_minutes),
                **_deposit_delays(settings)},
        poll_interval_s=settings.scheduler_poll_interval_s,
    )
    app[SCHEDULER] = scheduler
    if settings.scheduler_enabled:
        scheduler.start()
    yield
    await scheduler.stop()


def _deposit_delays(settings: Settings) -> dict[str, timedelta]:
    return {
        "deposit_authorise": -timedelta(days=settings.deposit_authorise_days_before),
        "deposit_reauthorise": -timedelta(hours=settings.deposit_reauthorise_before_hours),
        "deposit_release": timedelta(hours=settings.deposit_release_after_hours),
        "refund_retry": timedelta(seconds=settings.refund_retry_after_s),
    }


async def _process_managers(app: web.Application) -> AsyncIterator[None]:
    """The process managers (`process_managers`), led together by one runner apart from
    the read models (a Stripe call must not hold a read model back), with the Stripe and
    PayPal gateways their commands call and the PayPal IPN tasks."""
    settings = app[SETTINGS]
    app[STRIPE] = StripeGateway(settings)
    app[PAYPAL] = PayPalGateway(settings)
    app[commands.webhooks.IPN_TASKS] = set()
    managers: list[Projector] = [payments.manager(app), points.manager(app),
                                 changes.manager(app), instalments.manager(app),
                                 apa.manager(app)]
    if settings.loyalty_enabled:
        managers.append(loyalty.manager(app))
    runner = _runner(app, managers)
    if settings.projections_enabled:
        runner.start()
    yield
    await runner.stop()
    await commands.webhooks.drain_ipn_tasks(app)


async def _calendar_poller(app: web.Application) -> AsyncIterator[None]:
    """External calendars: polled by every process, claimed with SKIP LOCKED."""
    settings = app[SETTINGS]
    poller = CalendarPoller(app[DATABASE], app[REPOSITORY], lambda: app[CLOCK](), PollerConfig(
        horizon=timedelta(days=settings.calendar_horizon_days),
        timeout_s=settings.calendar_fetch_timeout_s,
        max_bytes=settings.calendar_max_bytes,
        max_occurrences=settings.calendar_max_occurrences,
        poll_interval_s=settings.calendar_poll_interval_s,
    ), guard=OutboundGuard(settings.outbound_allowed_hosts))
    app[CALENDAR_POLLER] = poller
    client = None
    if settings.google_service_account_email and settings.google_service_account_key:
        client = GoogleCalendarClient(
            settings.google_calendar_api_base, settings.google_oauth_token_url,
            settings.google_service_account_email,
            settings.google_service_account_key.get_secret_value())
    pusher = GooglePusher(app[DATABASE], app[REPOSITORY], client, lambda: app[CLOCK](),
                          interval_s=settings.google_calendar_sync_interval_s)
    app[GOOGLE_CALENDAR] = pusher
    if settings.calendar_poller_enabled:
        poller.start()
        pusher.start()
    yield
    await pusher.stop()
    await poller.stop()


async def _notifications(app: web.Application) -> AsyncIterator[None]:
    """Email delivery workers (one per process; rows claimed with SKIP LOCKED)."""
    settings = app[SETTINGS]
    worker = NotificationWorker(app[DATABASE], settings, lambda: app[CLOCK]())
    app[NOTIFICATIONS] = worker
    if settings.email_delivery_enabled:
        worker.start()
    yield
    await worker.stop()


def _runner(app: web.Application, projectors: list[Projector]) -> ProjectionRunner:
    """A projection runner with the settings' batching (size, poll, linger and pace) and
    back-off, alerting once per projection failing on an event."""
    settings = app[SETTINGS]

    async def alert(failure: ProjectionFailure) -> None:
        await alert_projection_failure(app[DATABASE], settings, failure.name,
                                       failure.position, failure.error, app[CLOCK]())

    return ProjectionRunner(
        app[DATABASE], projectors, app[STORE].notifier,
        batch_size=settings.projection_batch_size, poll_interval_s=settings.poll_interval_s,
        retry_s=settings.projection_retry_s, max_retry_s=settings.projection_retry_max_s,
        linger_s=settings.projection_linger_s,
        batch_interval_s=settings.projection_batch_interval_s, on_failure=alert,
    )


def _projections(
    projectors: Callable[[], list[Projector]],
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        app[PROJECTORS] = projectors()
        runner = _runner(app, app[PROJECTORS])
        if settings.projections_enabled:
            runner.start()
        yield
        await runner.stop()

    return context


def _enable_cors(app: web.Application, origins: list[str]) -> None:
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=True,
        allow_headers="*",
        expose_headers=(POSITION_HEADER, REQUEST_ID_HEADER),
    )
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in origins})
    for route in list(app.router.routes()):
        cors.add(route)
