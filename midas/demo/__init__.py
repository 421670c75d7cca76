"""`midas demo`: a believable luxury business, loaded through the service's own commands.

The demo starts the service in this process (its HTTP routes on a free 127.0.0.1 port,
with a local Stripe of its own, `midas.payment_providers.local_stripe`) on a clock set `months` ago,
and is then a client like any other: it signs staff and customers up, registers the
fleet, and lives a year of bookings, payments, cancellations, refunds, deposits and
disputes (midas/demo/history.py). Nothing is written to the database but by the
service's commands. It never runs in production, nor beside a running service (it would
share its read models and process managers); a second run finds the demo's owner account
and changes nothing.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from midas.config import STRIPE_KEY_UNSET, Settings
from midas.demo.business import CUSTOMERS, FLEET, OWNER, PASSWORD, STAFF, Fleet, Person
from midas.demo.client import Client, DemoError
from midas.demo.history import History
from midas.eventstore import Database
from midas.http.keys import CLOCK, DATABASE, REPOSITORY, SETTINGS
from midas.payment_providers.local_stripe import embedded_payments
from midas.scheduler import ManualClock

__all__ = ["DemoError", "DemoOutcome", "load_demo"]
CONSENT = {"version": "demo", "accepted": True}
LOUD_LIMITS = 1_000_000  # the demo is one client doing a business's year in minutes


@dataclass
class DemoOutcome:
    loaded: bool  # False: it was there already and nothing changed
    tally: Counter[str] = field(default_factory=Counter)

    def report(self) -> str:
        lines = ["The demo business is loaded." if self.loaded else
                 f"The demo business is already loaded ({OWNER.email} exists): nothing"
                 " changed."]
        if self.tally:
            lines.append("Bookings: " + ", ".join(f"{n} {what}" for what, n in
                                                  sorted(self.tally.items())))
        lines.append(f"\nSign in (POST /api/v1/auth/login) with the password {PASSWORD!r}:")
        for person in (OWNER, *STAFF, *CUSTOMERS):
            role = person.role if person.role != "customer" else f"customer, {person.tier}"
            lines.append(f"  {person.email:<42} {role}")
        return "\n".join(lines)


async def load_demo(settings: Settings, *, months: int = 12,
                    now: datetime | None = None) -> DemoOutcome:
    if settings.environment == "production":
        raise DemoError("the demo never runs in production")
    if await _loaded_already(settings):
        return DemoOutcome(loaded=False)
    end = now or datetime.now(UTC)
    start = (end - timedelta(days=round(months * 365 / 12))).replace(
        hour=9, minute=0, second=0, microsecond=0)
    with embedded_payments(_demo_settings(settings)) as demo_settings:
        return await _live(demo_settings, start, end)


def _demo_settings(settings: Settings) -> Settings:
    """Its own local Stripe on a free port, timers run by the demo itself, limits for
    one busy client, and tokens that outlive the demo's run."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return settings.model_copy(update={
        "host": "127.0.0.1", "port": port, "public_base_url": f"http://127.0.0.1:{port}",
        "stripe_secret_key": SecretStr(STRIPE_KEY_UNSET), "local_stripe": True,
        "scheduler_enabled": False, "email_delivery_enabled": False,
        "calendar_poller_enabled": False, "access_token_ttl_s": 24 * 3600,
        "login_rate_limit": LOUD_LIMITS, "register_rate_limit": LOUD_LIMITS,
        "payment_rate_limit": LOUD_LIMITS, "poll_interval_s": 0.2,
        "projection_batch_interval_s": 0.0,
    })


async def _loaded_already(settings: Settings) -> bool:
    from midas.app import read_models
    from midas.projection import projection_status
    from midas.security.credentials import by_email

    db = Database(settings.database_dsn() or "", settings.database_schema)
    await db.open()
    try:
        async with db.acquire() as conn:
            if await by_email(conn, OWNER.email) is not None:
                return True
        led = [s.name for s in await projection_status(db, read_models()) if s.leader]
    finally:
        await db.close()
    if led:
        raise DemoError(f"a running service leads {', '.join(led)}: stop it first (the"
                        " demo runs the service itself)")
    return False


async def _live(settings: Settings, start: datetime, end: datetime) -> DemoOutcome:
    from midas.app import create_app

    app = create_app(settings)
    clock = ManualClock()
    clock.set(start)
    now: Callable[[], datetime] = clock
    app[CLOCK] = now
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        base = f"http://{settings.host}:{settings.port}"
        async with aiohttp.ClientSession(base_url=base) as session:
            client = Client(session)
            outcome = DemoOutcome(loaded=True)
            tokens, accounts = await _people(app, client, settings, outcome)
            items = await _fleet(client, tokens["marcus.hale"], start)
            history = History(app, client, clock, tokens, accounts, items, start=start,
                              end=end)
            outcome.tally = (await history.live()).bookings
            return outcome
    finally:
        await runner.cleanup()


async def _people(app: web.Application, client: Client, settings: Settings,
                  outcome: DemoOutcome) -> tuple[dict[str, str], dict[str, str]]:
    """The owner (as `midas users create-admin` makes one), then everyone else signs up;
    the owner grants the staff roles and the admin sets the customers' tiers."""
    from midas.app import create_account

    owner_id, _ = await create_account(
        app[REPOSITORY], email=OWNER.email, name=OWNER.name, password=PASSWORD,
        rounds=settings.bcrypt_rounds, role=OWNER.role,
        metadata={"actor": "demo", "actor_role": "system"})
    accounts = {OWNER.key: str(owner_id)}

    async def sign_up(person: Person) -> None:
        body = {"email": person.email, "name": person.name, "password": PASSWORD,
                "consent": CONSENT, **({"phone": person.phone} if person.phone else {})}
        accounts[person.key] = (await client.call("POST", "/api/v1/auth/register",
                                                  json=body))[1]["id"]

    await _side_by_side(sign_up, (*STAFF, *CUSTOMERS))  # password hashing: on threads
    tokens = {OWNER.key: await _login(client, OWNER)}
    for person in STAFF:
        await client.call("PUT", f"/api/v1/accounts/{accounts[person.key]}/role",
                          tokens[OWNER.key], json={"role": person.role})

    async def sign_in(person: Person) -> None:
        tokens[person.key] = await _login(client, person)
        await client.call("POST", "/api/v1/auth/verify-email", tokens[person.key],
                          json={"token": await _emailed_token(app, accounts[person.key])})

    await _side_by_side(sign_in, (*STAFF, *CUSTOMERS))
    for person in CUSTOMERS:
        if person.tier != "standard":
            await client.call("PUT", f"/api/v1/customers/{accounts[person.key]}/tier",
                              tokens["marcus.hale"], json={"tier": person.tier,
                                                           "reason": TIER_REASONS[person.tier]})
    return tokens, accounts


TIER_REASONS = {"premium": "a returning client since 2019",
                "vvip": "family office account, introduced by the owner"}


async def _side_by_side(run: Callable[[Person], Awaitable[None]], people: Iterable[Person],
                        at_once: int = 4) -> None:
    gate = asyncio.Semaphore(at_once)

    async def one(person: Person) -> None:
        async with gate:
            await run(person)

    await asyncio.gather(*(one(person) for person in people))


async def _emailed_token(app: web.Application, account_id: str) -> str:
    """The token of the verification link the account was sent at sign-up (derived as the
    email's is: the demo confirms every address as its owner would, by that link)."""
    from midas.security.verification import TABLE, token_for

    async with app[DATABASE].acquire() as conn:
        verification_id = await conn.fetchval(
            f"SELECT id FROM {TABLE} WHERE account_id = $1 AND used_at IS NULL"
            " AND revoked_at IS NULL", UUID(account_id))
    return token_for(app[SETTINGS], verification_id)


async def _login(client: Client, person: Person) -> str:
    _, body = await client.call("POST", "/api/v1/auth/login",
                                json={"email": person.email, "password": PASSWORD})
    return str(body["access_token"])


async def _fleet(client: Client, admin: str, start: datetime) -> list[tuple[str, Fleet]]:
    """The thirty items, and a maintenance window early in the year for the boats and
    planes (their annual survey)."""
    items = []
    for n, fleet in enumerate(FLEET):
        _, body = await client.call("POST", "/api/v1/items", admin, json={
            "name": fleet.name, "category": fleet.category, "location": fleet.location,
            "rate": fleet.rate, "attributes": fleet.attributes})
        items.append((str(body["id"]), fleet))
        if fleet.category in ("yacht", "jet"):
            survey = start + timedelta(days=20 + 9 * n)
            await client.call("POST", f"/api/v1/items/{body['id']}/maintenance", admin, json={
                "start": survey.isoformat(), "end": (survey + timedelta(days=4)).isoformat(),
                "note": "annual survey"})
    return items
