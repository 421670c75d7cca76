"""`midas demo`: a business loaded through the service's own commands, seen afterwards by
the service on its dashboards, reports, calendars and audit log; once only; never in
production, never beside a running service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from midas.config import Settings
from midas.demo import DemoError, load_demo
from midas.demo.business import CUSTOMERS, OWNER, PASSWORD
from midas.eventstore import Database
from midas.eventstore.migrate import migrate
from midas.http.keys import DATABASE
from midas.projection import projection_status
from projections import all_projectors
from tests.conftest import MIGRATIONS
from tests.support.fake_stripe import wait_until

pytestmark = pytest.mark.slow
MONTHS = 2


@pytest.fixture
def demo_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"data_dir": tmp_path, "bcrypt_rounds": 4})


async def _head(settings: Settings) -> tuple[int, int]:
    db = Database(settings.database_dsn() or "", settings.database_schema)
    await db.open()
    try:
        async with db.acquire() as conn:
            return (await conn.fetchval("SELECT coalesce(max(position), 0) FROM events"),
                    await conn.fetchval("SELECT count(*) FROM auth_accounts"))
    finally:
        await db.close()


async def _login(client: Any, email: str) -> dict[str, str]:
    response = await client.post("/api/v1/auth/login",
                                 json={"email": email, "password": PASSWORD})
    assert response.status == 200, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['access_token']}"}


async def test_the_demo_business_is_loaded_once_and_seen_everywhere(
    demo_settings: Settings, service: Callable[..., Any]
) -> None:
    await migrate(Database(demo_settings.database_dsn() or "", demo_settings.database_schema),
                  MIGRATIONS)
    assert await _head(demo_settings) == (0, 0)
    outcome = await load_demo(demo_settings, months=MONTHS)
    assert outcome.loaded
    assert outcome.tally["paid"] > 10 and outcome.tally["held"] > outcome.tally["paid"]
    head = await _head(demo_settings)

    again = await load_demo(demo_settings, months=MONTHS)
    assert not again.loaded
    assert "already loaded" in again.report() and "nothing changed" in again.report()
    assert await _head(demo_settings) == head  # not one event, not one account more

    client = await service()  # the service started afterwards, as `midas serve` would be
    admin = await _login(client, "marcus.hale@demo.midas.example")
    owner = await _login(client, OWNER.email)
    customer = await _login(client, CUSTOMERS[0].email)
    items = await (await client.get("/api/v1/items", params={"limit": 100})).json()
    listed = items["items"] if isinstance(items, dict) else items
    assert len(listed) == 30
    assert {i["category"] for i in listed} == {"car", "yacht", "jet", "property"}
    assert all(i["attributes"] for i in listed)

    dashboard = await (await client.get("/api/v1/admin/dashboard", headers=admin)).json()
    month = {r["currency"]: r for r in dashboard["this_month"]}
    assert month["USD"]["gross"] > 0 and dashboard["live"]["revenue_today"][0]["gross"] > 0
    assert dashboard["live"]["pending_holds"] >= 1
    today = datetime.now(UTC).date()
    report = await client.get("/api/v1/reports/financial", headers=admin, params={
        "from": (today - timedelta(days=31 * MONTHS)).isoformat(),
        "to": (today + timedelta(days=1)).isoformat(), "group": "month"})
    assert report.status == 200, await report.text()
    rows = (await report.json())["rows"]
    assert len(rows) >= MONTHS and sum(r["gross"] for r in rows) > 0
    assert sum(r["refunds"] for r in rows) > 0  # cancellations and goodwill

    tiers = await (await client.get("/api/v1/customers", headers=admin,
                                     params={"limit": 100})).json()
    assert {c["tier"] for c in tiers["customers"]} >= {"standard", "premium", "vvip"}
    mine = await (await client.get("/api/v1/bookings", headers=customer)).json()
    assert mine["bookings"]
    audit = await client.get("/api/v1/audit/events", headers=owner, params={"limit": 5})
    assert audit.status == 200 and (await audit.json())["events"]

    async with client.server.app[DATABASE].acquire() as conn:
        kinds = dict(await conn.fetch(
            "SELECT type, count(*) FROM events GROUP BY type"))
        first = await conn.fetchval("SELECT min((data->>'held_at')::timestamptz) FROM events"
                                    " WHERE type = 'Booking.Held'")
        replayed = await conn.fetchval(  # not one row written around the commands
            "SELECT count(*) FROM events WHERE metadata->>'actor' IS NULL")
    for kind in ("Booking.Confirmed", "Booking.CheckedOut", "Booking.CheckedIn",
                 "Booking.Expired", "Payment.Succeeded", "Payment.DepositAuthorised",
                 "Payment.DepositReleased", "Payment.DepositCaptured", "Payment.Refunded",
                 "Payment.DisputeOpened", "Payment.Failed", "Booking.Cancelled",
                 "Booking.ConciergeAssigned", "Account.TierSet", "Item.MaintenanceScheduled"):
        assert kinds.get(kind, 0) > 0, kind
    assert datetime.now(UTC) - first > timedelta(days=28 * MONTHS)  # history, not today
    assert replayed == 0


async def test_the_demo_refuses_production_and_a_running_service(
    demo_settings: Settings, service: Callable[..., Any]
) -> None:
    production = demo_settings.model_copy(update={"environment": "production"})
    with pytest.raises(DemoError, match="never runs in production"):
        await load_demo(production)
    client = await service()

    async def leading() -> bool:  # the service's runners hold this schema's read models
        statuses = await projection_status(client.server.app[DATABASE], all_projectors())
        return all(s.leader for s in statuses)

    await wait_until(leading)
    with pytest.raises(DemoError, match="a running service leads"):
        await load_demo(demo_settings, months=1)
    assert (await _head(demo_settings))[1] == 0
