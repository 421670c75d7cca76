"""KPIs follow a change of item: from the change on, a booking's revenue and days count for
its new item, category and location; what came before stays where it was counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from midas.eventstore.store import read_all
from midas.http.keys import DATABASE
from midas.scheduler import ManualClock
from projections.kpis import KpisProjector
from tests.support.fake_stripe import (
    CAR,
    count,
    deliver,
    hold,
    intent_event,
    make_item,
    pay_and_confirm,
    wait_until,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
START = NOW + timedelta(days=20)
YACHT = {"name": "Lady Aurora", "category": "yacht", "location": "US-FL", "rate": 500_000}
RANGE = {"from": "2026-10-01", "to": "2027-01-01"}


@pytest.fixture
async def client(payment_services: Any) -> Any:
    return await payment_services()


async def _report(client: Any, auth: Any, kind: str, group: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/reports/{kind}", headers=auth("admin"),
                                params={**RANGE, "group": group})
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def _by_key(client: Any, auth: Any, kind: str, group: str, column: str
                  ) -> dict[str, int]:
    rows = (await _report(client, auth, kind, group))["rows"]
    return {r["key"]: r[column] for r in rows if r[column]}


async def _read(conn: Any) -> tuple[Any, ...]:
    bookings = await conn.fetch("SELECT * FROM kpi_bookings ORDER BY booking_id")
    daily = await conn.fetch("SELECT * FROM kpi_daily ORDER BY day, item_id")
    totals = await conn.fetch("SELECT * FROM kpi_daily_totals ORDER BY day, currency")
    return tuple([dict(r) for r in rows] for rows in (bookings, daily, totals))


async def _live_and_replayed(db: Any) -> tuple[Any, Any]:
    """The KPI tables as the service made them, and as the whole log replayed in one batch
    makes them (rolled back after)."""
    async with db.acquire() as conn:
        live = await _read(conn)
        replay = conn.transaction()
        await replay.start()
        try:
            await conn.execute("TRUNCATE kpi_daily, kpi_daily_totals, kpi_bookings,"
                               " kpi_live_counts")
            projector = KpisProjector()
            await projector.apply(conn, [e for e in await read_all(conn, 0, 100_000)
                                         if e.type in projector.handles])
            replayed = await _read(conn)
        finally:
            await replay.rollback()
    return live, replayed


async def test_a_change_to_another_item_moves_revenue_and_days_from_the_change_on(
    client: Any, auth: Any, booking_clock: ManualClock
) -> None:
    car = await make_item(client, auth, CAR)
    yacht = await make_item(client, auth, YACHT)
    customer = auth("customer", uuid4())
    booking = await hold(client, customer, car, START, START + timedelta(days=2))
    await pay_and_confirm(client, customer, booking)
    car_total = booking["quote"]["total_due"]
    moved = await client.post(f"/api/v1/bookings/{booking['id']}/changes", headers=customer,
                              json={"item_id": yacht, "apply": True})
    assert moved.status == 202, await moved.text()  # awaiting the difference's payment
    body = await moved.json()
    to_pay = body["to_pay"]
    assert to_pay > 0
    await deliver(client, intent_event("payment_intent.succeeded",
                                       body["payment"]["payment_intent"], to_pay,
                                       booking["id"]))

    async def applied() -> bool:
        return await count(client, "Booking.Changed") == 1

    await wait_until(applied)

    # Revenue: the first payment stays the car's, the change's payment is the yacht's.
    async def revenue_split() -> bool:
        return await _by_key(client, auth, "financial", "item", "gross") == {
            car: car_total, yacht: to_pay}

    await wait_until(revenue_split)
    assert await _by_key(client, auth, "financial", "category", "gross") == {
        "car": car_total, "yacht": to_pay}
    assert await _by_key(client, auth, "financial", "location", "gross") == {
        "US-CA": car_total, "US-FL": to_pay}
    # Days: the stay occupies the yacht, not the car (once every read model the operational
    # report reads has taken the change in).
    async def occupied() -> tuple[str, str]:
        utilisation = {u["item_id"]: u["occupied_hours"] for u in (
            await _report(client, auth, "operational", "item"))["utilisation"]}
        return utilisation[car], utilisation[yacht]

    async def moved_days() -> bool:
        return await occupied() == ("0.00", "48.00")

    await wait_until(moved_days)
    assert await occupied() == ("0.00", "48.00")
    async with client.server.app[DATABASE].acquire() as conn:
        row = await conn.fetchrow(
            "SELECT item_id, category, location, total_due, starts_at, ends_at"
            " FROM kpi_bookings WHERE booking_id = $1", UUID(booking["id"]))
    assert (str(row["item_id"]), row["category"], row["location"]) == (
        yacht, "yacht", "US-FL")
    assert row["total_due"] == body["proposed"]["quote"]["total_due"]
    assert (row["starts_at"], row["ends_at"]) == (START, START + timedelta(days=2))

    # Its completion counts for the yacht.
    concierge = auth("concierge")
    booking_clock.set(START + timedelta(hours=1))
    for step in ("check-out", "check-in"):
        answer = await client.post(f"/api/v1/bookings/{booking['id']}/{step}",
                                   headers=concierge)
        assert answer.status == 200, await answer.text()

    async def completed_on_the_yacht() -> bool:
        return await _by_key(client, auth, "operational", "category", "completed") == {
            "yacht": 1}

    await wait_until(completed_on_the_yacht)
    assert await _by_key(client, auth, "operational", "category", "confirmed") == {"car": 1}
    live, replayed = await _live_and_replayed(client.server.app[DATABASE])
    assert replayed == live


async def test_a_hold_and_its_change_in_one_batch_give_the_same_figures(
    client: Any, auth: Any
) -> None:
    car = await make_item(client, auth, CAR)
    yacht = await make_item(client, auth, YACHT)
    customer = auth("customer", uuid4())
    booking = await hold(client, customer, car, START, START + timedelta(days=2))
    moved = await client.post(f"/api/v1/bookings/{booking['id']}/changes", headers=customer,
                              json={"item_id": yacht, "apply": True})
    assert moved.status == 200, await moved.text()
    db = client.server.app[DATABASE]

    async def projected() -> bool:
        async with db.acquire() as conn:
            bookings = (await _read(conn))[0]
        return [(str(b["item_id"]), b["category"]) for b in bookings] == [(yacht, "yacht")]

    await wait_until(projected)
    live, replayed = await _live_and_replayed(db)
    assert replayed == live
    assert [(str(d["item_id"]), d["held"]) for d in live[1]] == [(car, 1)]
