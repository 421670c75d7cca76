"""Shared fixtures: a real PostgreSQL, a clean schema per test."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from midas.config import ROOT, Settings
from midas.eventstore import Database, EventStore
from midas.eventstore.migrate import migrate
from midas.http.auth import Role, issue_access_token
from midas.loop import event_loop_factory

MIGRATIONS = ROOT / "migrations"


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Tests run on the event loop the service runs on."""
    return {"uvloop": event_loop_factory(Settings.model_fields["event_loop"].default)}


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """MIDAS_TEST_DATABASE_URL, else a throwaway embedded server under the temp folder
    (removed when the run ends)."""
    url = os.environ.get("MIDAS_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from midas.eventstore.embedded import temporary_embedded

    with temporary_embedded() as dsn:
        yield dsn


@pytest.fixture
async def schema(pg_dsn: str) -> AsyncIterator[str]:
    """A fresh schema name, dropped with everything in it after the test."""
    name = f"t_{uuid4().hex[:16]}"
    yield name
    await drop_schema(pg_dsn, name)


@pytest.fixture
async def db(pg_dsn: str, schema: str) -> AsyncIterator[Database]:
    database = Database(pg_dsn, schema, max_size=20)
    await migrate(database, MIGRATIONS)
    await database.open()
    yield database
    await database.close()


async def drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def store(db: Database) -> AsyncIterator[EventStore]:
    event_store = EventStore(db)
    event_store.start()
    yield event_store
    await event_store.close()


@pytest.fixture
def settings(pg_dsn: str, schema: str) -> Settings:
    return Settings(
        database_url=pg_dsn,
        database_schema=schema,
        environment="test",
        log_json=False,
        poll_interval_s=0.2,
        consistency_timeout_s=3.0,
        bcrypt_rounds=4,
    )


@pytest.fixture
async def app_client(aiohttp_client: Any, settings: Settings, pg_dsn: str, schema: str) -> Any:
    """The whole service over real HTTP (aiohttp's test client), on a clean schema."""
    from midas.app import create_app

    client = await aiohttp_client(create_app(settings))
    yield client
    await client.close()


@pytest.fixture
def auth(settings: Settings, pg_dsn: str, schema: str) -> Callable[..., dict[str, str]]:
    """Authorization headers for a role (and optionally a given account id).

    The auth middleware checks every token's account, so this also records a sign-in row
    for the account (role, active, a verified email) in the test's schema, migrating it if
    need be. An account that exists already keeps its email and whether it is verified.
    """

    migrated: list[bool] = []

    def headers(role: str = "admin", account_id: UUID | None = None) -> dict[str, str]:
        account_id = account_id or uuid4()
        _run_in_thread(_ensure_account(pg_dsn, schema, account_id, role, not migrated))
        migrated.append(True)
        token = issue_access_token(settings, account_id, Role(role))
        return {"Authorization": f"Bearer {token}"}

    return headers


def _run_in_thread(coroutine: Any) -> None:
    """Run a coroutine to the end from sync code, even inside a running event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


async def _ensure_account(
    dsn: str, schema: str, account_id: UUID, role: str, migrate_first: bool
) -> None:
    if migrate_first:
        await migrate(Database(dsn, schema), MIGRATIONS)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        await conn.execute(
            "INSERT INTO auth_accounts (account_id, email, role, email_verified)"
            " VALUES ($1, $2, $3, true)"
            " ON CONFLICT (account_id) DO UPDATE SET role = EXCLUDED.role",
            account_id, f"{account_id}@fixture.test", role,
        )
    finally:
        await conn.close()


class FakeClock:
    """An injectable clock for lockout and rate-limit tests (app[CLOCK] before startup)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(service: Callable[..., Any]) -> Callable[..., Any]:
    """Start service instances on the test's schema, optionally with a clock."""

    async def make(clock: Callable[[], datetime] | None = None) -> Any:
        return await service(clock=clock)

    return make


# -- bookings: a service with a manual clock and the scheduler worker off ---------


@pytest.fixture
def booking_clock() -> Any:
    """A manual clock set to 2026-11-01 12:00 UTC (tests move it)."""
    from midas.scheduler import ManualClock

    clock = ManualClock()
    clock.set(datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    return clock


@pytest.fixture
def booking_services(service: Callable[..., Any], booking_clock: Any) -> Callable[..., Any]:
    """Start service processes on the test's schema sharing `booking_clock`; the
    scheduler worker is off so tests run due tasks themselves (`app[SCHEDULER].run_due`)."""

    async def start(**overrides: Any) -> Any:
        return await service(clock=booking_clock, scheduler_enabled=False, **overrides)

    return start


@pytest.fixture
async def booking_client(booking_services: Callable[..., Any]) -> Any:
    return await booking_services()


@pytest.fixture
async def service(settings: Settings, aiohttp_client: Any) -> Callable[..., Any]:
    """Start the service on the test's schema: ``await service(clock=..., **overrides)``.

    Several may share the schema (as several processes would). It depends on ``settings``
    first, so the apps stop before the ``schema`` fixture drops their schema.
    """
    from midas.app import create_app
    from midas.http.keys import CLOCK

    async def start(*, clock: Callable[[], datetime] | None = None, **overrides: Any) -> Any:
        app = create_app(settings.model_copy(update=overrides))
        if clock is not None:
            app[CLOCK] = clock
        return await aiohttp_client(app)

    return start


# -- payments: local Stripe and PayPal stand-ins, a service pointed at them ---------


@pytest.fixture
async def fake_stripe(aiohttp_server: Any) -> Any:
    from tests.support.fake_stripe import FakeStripe

    fake = FakeStripe()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
async def fake_paypal(aiohttp_server: Any) -> Any:
    from tests.support.fake_paypal import FakePayPal

    fake = FakePayPal()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("/cgi-bin/webscr"))
    fake.base = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
def payment_services(
    booking_services: Callable[..., Any], fake_stripe: Any, fake_paypal: Any
) -> Callable[..., Any]:
    """Like `booking_services`, with Stripe and PayPal pointed at the local fakes."""
    from pydantic import SecretStr

    from tests.support.fake_paypal import CLIENT_ID as PAYPAL_CLIENT_ID
    from tests.support.fake_paypal import CLIENT_SECRET as PAYPAL_CLIENT_SECRET
    from tests.support.fake_stripe import API_KEY, PAYPAL_RECEIVER, WEBHOOK_SECRET

    async def start(**overrides: Any) -> Any:
        return await booking_services(**{
            "stripe_api_base": fake_stripe.url,
            "stripe_secret_key": SecretStr(API_KEY),
            "stripe_webhook_secret": SecretStr(WEBHOOK_SECRET),
            "paypal_verify_url": fake_paypal.url, "paypal_receiver_email": PAYPAL_RECEIVER,
            "paypal_api_base": fake_paypal.base, "paypal_client_id": PAYPAL_CLIENT_ID,
            "paypal_client_secret": SecretStr(PAYPAL_CLIENT_SECRET),
            **overrides,
        })

    return start


# -- customers, loyalty and KPIs --------------------------------------------------


def history_events(
    customer: UUID, *, rental: int, insurance: int = 0, currency: str = "USD",
    start: datetime = datetime(2026, 12, 1, 10, tzinfo=UTC), complete: bool = True,
    refund: int = 0, booking: UUID | None = None, item: UUID | None = None,
) -> tuple[UUID, list[list[Any]]]:
    """One paid booking's events (its completion, a refund) in the order they happen, as
    appends (lists of StreamAppend) for tests to write straight into the store."""
    from midas.domain.payments import payment_id
    from midas.eventstore import NewEvent, StreamAppend

    booking = booking or uuid4()
    payment = payment_id(booking)
    total = rental + insurance
    held = start - timedelta(days=10)
    quote = {"category": "car", "location_code": "NYC", "time_zone": "America/New_York",
             "currency": currency, "start": start.isoformat(),
             "end": (start + timedelta(days=1)).isoformat(), "rental": rental,
             "insurance": insurance, "tax": 0, "total_due": total, "security_deposit": 0}
    money = {"booking_id": str(booking), "customer_id": str(customer), "currency": currency,
             "provider": "stripe"}
    appends = [
        [StreamAppend(booking, 0, [NewEvent("Booking.Held", {
            "item_id": str(item or uuid4()), "customer_id": str(customer),
            "start": quote["start"], "end": quote["end"], "service_level": "standard",
            "delivered_level": "standard", "quote": quote, "policy_version": 1,
            "held_at": held.isoformat(),
            "hold_expires_at": (held + timedelta(minutes=30)).isoformat()})])],
        [StreamAppend(payment, 0, [
            NewEvent("Payment.Requested", {**money, "amount": total, "reference": "pi",
                                           "at": held.isoformat(), "deposit_amount": 0,
                                           "start": quote["start"]}),
            NewEvent("Payment.Succeeded", {**money, "amount": total, "reference": "pi",
                                           "at": held.isoformat(), "deposit_amount": 0,
                                           "start": quote["start"]})])],
        [StreamAppend(booking, 1, [NewEvent("Booking.Confirmed", {
            "at": held.isoformat(), "amount_paid": total, "start": quote["start"],
            "late": False})])],
    ]
    if complete:
        appends.append([StreamAppend(booking, 2, [
            NewEvent("Booking.CheckedOut", {"at": quote["start"], "end": quote["end"]}),
            NewEvent("Booking.CheckedIn", {"at": quote["end"]})])])
    if refund:
        appends.append([StreamAppend(payment, 2, [NewEvent("Payment.Refunded", {
            **money, "amount": refund, "reference": "re", "key": None,
            "at": quote["end"]})])])
    return booking, appends
