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
from midas.calendar.google import GoogleCalendarClient, GooglePusher
from midas.calendar.poller import CalendarPoller, PollerConfig
from midas.config import Settings
from midas.domain.registry import AGGREGATES
from midas.eventstore import Database, EventStore, EventTypes, Repository
from midas.eventstore.migrate import migrate
from midas.eventstore.notifier import Notifier
from midas.eventstore.store import EVENTS_CHANNEL
from midas.housekeeping import Housekeeper
from midas.http import system
from midas.http.api import Endpoint
from midas.http.consistency import POSITION_HEADER, ConsistencyGate
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
    PROJECTORS,
    REPOSITORY,
    SCHEDULER,
    SETTINGS,
    STORE,
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
from midas.payments.process import PaymentsProcess
from midas.payments.stripe_gateway import StripeGateway
from midas.projection import CHECKPOINTS_CHANNEL, ProjectionRunner, Projector
from midas.scheduler import Scheduler
from midas.security.access import ACCESS_CHANNEL, AccessCache
from midas.security.google import GoogleVerifier
from midas.security.passwords import warm_up
from midas.security.pii import PiiCodec, configure_master_key
from projections.loyalty import LoyaltyProcess

VERSION = "0.1.0"


def all_endpoints() -> list[Endpoint]:
    apis = [system.api, *commands.APIS, *queries.APIS]
    return [endpoint for api in apis for endpoint in api.endpoints]


def create_app(
    settings: Settings,
    *,
    projectors: Callable[[], list[Projector]] = projections.all_projectors,
) -> web.Application:
    if settings.database_dsn() is None:
        raise ValueError("create_app needs a database URL (the CLI starts the embedded one)")
    settings.check_secrets()
    endpoints = all_endpoints()
    unguarded = missing_rules((e.method, e.path) for e in endpoints)
    if unguarded:
        raise ValueError(f"routes without a permission rule: {', '.join(unguarded)}")
    registry = CollectorRegistry()
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            request_id_middleware(),
            metrics_middleware(HttpMetrics(registry)),
            problem_middleware(on_error=commands.errors.record_server_error),
            auth_middleware(settings),
            idempotency_middleware(endpoints, timedelta(seconds=settings.idempotency_stale_s)),
        ],
    )
    app[SETTINGS] = settings
    app[METRICS] = registry
    app[CLOCK] = system_clock
    app[commands.customers.SEGMENT_MEMBERS] = queries.customers.segment_members  # issue 7
    for endpoint in endpoints:
        app.router.add_route(endpoint.method, endpoint.path, endpoint.handler,
                             name=endpoint.handler.__name__)
    app[system.OPENAPI] = openapi_document(endpoints, title="Midas", version=VERSION)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_housekeeping)
    app.cleanup_ctx.append(_accounts)
    app.cleanup_ctx.append(_event_store)
    app.cleanup_ctx.append(_process_managers)  # payments and loyalty
    app.cleanup_ctx.append(_projections(projectors))
    app.cleanup_ctx.append(_scheduler)
    app.cleanup_ctx.append(_notifications)  # issue 6: email delivery, reminders, alerts
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
    yield
    await db.close()


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
    keeper = Housekeeper(app[DATABASE], every_s=settings.housekeeping_every_s,
                         keep=timedelta(seconds=settings.housekeeping_keep_s))
    keeper.start()
    yield
    await keeper.stop()


async def _event_store(app: web.Application) -> AsyncIterator[None]:
    settings, db = app[SETTINGS], app[DATABASE]
    notifier = Notifier(db, [EVENTS_CHANNEL, CHECKPOINTS_CHANNEL, ACCESS_CHANNEL])
    app[ACCESS] = AccessCache(db, notifier)
    notifier.start()
    store = EventStore(db, max_batch=settings.group_commit_max_batch, notifier=notifier)
    store.start()
    app[STORE] = store
    configure_master_key(settings.pii_master_key)  # process-wide: projectors unwrap with it
    app[REPOSITORY] = Repository(
        store, EventTypes(AGGREGATES), snapshot_every=settings.snapshot_every,
        field_codec=PiiCodec(db, store=store),  # personal fields encrypted per subject (GDPR)
    )
    app[GATE] = ConsistencyGate(db, notifier, settings.consistency_timeout_s)
    yield
    await store.close()  # in-flight appends finish first
    await notifier.stop()


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    """Lifecycle timers (hold expiry, automatic check-out/in), from the due_tasks table."""
    settings = app[SETTINGS]
    scheduler = Scheduler(
        app[DATABASE],
        {**commands.bookings.scheduler_tasks(app), **commands.payments.scheduler_tasks(app)},
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
    """The process managers, led together by one runner apart from the read models (a
    Stripe call must not hold a read model back): payments (issue 5: payment succeeded ->
    confirm; refund requested -> refund; cancelled -> refund) with the Stripe gateway and
    the PayPal IPN tasks, and loyalty (issue 7: points and tier raises, Account commands)."""
    settings = app[SETTINGS]
    app[commands.payments.STRIPE] = StripeGateway(settings)
    app[commands.webhooks.IPN_TASKS] = set()
    managers: list[Projector] = [PaymentsProcess(commands.payments.process_handlers(app))]
    if settings.loyalty_enabled:
        managers.append(LoyaltyProcess(
            commands.customers.AccountLoyalty(lambda: app[REPOSITORY],
                                              settings.loyalty_multipliers),
            settings.tier_thresholds, settings.tier_currency))
    runner = _runner(app, managers)
    if settings.projections_enabled:
        runner.start()
    yield
    await runner.stop()
    await commands.webhooks.drain_ipn_tasks(app)


async def _calendar_poller(app: web.Application) -> AsyncIterator[None]:
    """External calendars (issue 9): polled by every process, claimed with SKIP LOCKED."""
    settings = app[SETTINGS]
    poller = CalendarPoller(app[DATABASE], app[REPOSITORY], lambda: app[CLOCK](), PollerConfig(
        horizon=timedelta(days=settings.calendar_horizon_days),
        timeout_s=settings.calendar_fetch_timeout_s,
        max_bytes=settings.calendar_max_bytes,
        max_occurrences=settings.calendar_max_occurrences,
        poll_interval_s=settings.calendar_poll_interval_s,
    ))
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
    """A projection runner with the settings' batching: size, poll, linger and pace."""
    settings = app[SETTINGS]
    return ProjectionRunner(
        app[DATABASE], projectors, app[STORE].notifier,
        batch_size=settings.projection_batch_size, poll_interval_s=settings.poll_interval_s,
        linger_s=settings.projection_linger_s,
        batch_interval_s=settings.projection_batch_interval_s,
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
