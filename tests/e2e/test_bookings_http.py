"""Bookings end to end over HTTP: quotes, holds, no double booking, refunds, hold expiry."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from midas.http.keys import DATABASE, GATE, SCHEDULER
from midas.scheduler import ManualClock

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CAR = {"name": "Huracan", "category": "car", "location": "US-CA", "rate": 150_000}
VILLA = {"name": "Villa Amber", "category": "property", "location": "AE-DU", "rate": 1_500_000}


@pytest.fixture
def client(booking_client: Any) -> Any:
    return booking_client


@pytest.fixture
def clock(booking_clock: ManualClock) -> ManualClock:
    return booking_clock


async def _item(client: Any, auth: Any, body: dict[str, Any] = CAR) -> str:
    response = await client.post("/api/v1/items", json=body, headers=auth("admin"))
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


def _stay(item: str, start: datetime, end: datetime, level: str = "standard") -> dict[str, Any]:
    return {"item_id": item, "start": start.isoformat(), "end": end.isoformat(),
            "service_level": level}


async def _book(client: Any, headers: dict[str, str], item: str, start: datetime,
                end: datetime, level: str = "standard") -> Any:
    return await client.post("/api/v1/bookings", json=_stay(item, start, end, level),
                             headers=headers)


async def _count(client: Any, event_type: str) -> int:
    async with client.server.app[DATABASE].acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM events WHERE type = $1", event_type)


async def test_dubai_worked_example_quote_to_the_cent(client: Any, auth: Any) -> None:
    villa = await _item(client, auth, VILLA)
    start = datetime.fromisoformat("2026-12-26T15:00:00+04:00")
    end = datetime.fromisoformat("2026-12-28T11:00:00+04:00")
    response = await client.post("/api/v1/quotes", json=_stay(villa, start, end, "vvip"))
    assert response.status == 200, await response.text()
    q = await response.json()
    assert [(line["local_date"], line["season"], line["multiplier"], line["amount"])
            for line in q["lines"]] == [("2026-12-26", "peak", "1.5", 2_250_000),
                                         ("2026-12-27", "peak", "1.5", 2_250_000)]
    assert (q["service_multiplier"], q["rental"]) == ("1.8", 8_100_000)
    assert (q["insurance_rate"], q["insurance"]) == ("0.10", 810_000)
    assert (q["tax_rate"], q["tax"]) == ("0.05", 445_500)
    assert (q["total_due"], q["security_deposit"], q["currency"]) == (9_355_500, 1_000_000, "USD")


async def test_naive_datetimes_and_reversed_intervals_are_422(client: Any, auth: Any) -> None:
    car = await _item(client, auth)
    naive = {"item_id": car, "start": "2026-12-01T10:00:00", "end": "2026-12-02T10:00:00"}
    response = await client.post("/api/v1/quotes", json=naive)
    assert response.status == 422
    fields = {e["field"] for e in (await response.json())["errors"]}
    assert fields == {"body.start", "body.end"}
    start = NOW + timedelta(days=5)
    backwards = await _book(client, auth("customer"), car, start, start - timedelta(hours=1))
    assert backwards.status == 422
    unknown = await _book(client, auth("customer"), str(uuid4()), start, start + timedelta(days=1))
    assert unknown.status == 422


async def test_a_hold_records_its_quote_and_occupies_the_item(client: Any, auth: Any) -> None:
    car = await _item(client, auth)
    customer = uuid4()
    start = NOW + timedelta(days=10)
    response = await _book(client, auth("customer", customer), car, start,
                           start + timedelta(days=2))
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["status"] == "held"
    assert body["hold_expires_at"] == (NOW + timedelta(minutes=30)).isoformat()
    assert body["quote"]["total_due"] == 2 * 150_000 + 30_000 + round(330_000 * 0.0725)
    async with client.server.app[DATABASE].acquire() as conn:
        held = await conn.fetchrow("SELECT data FROM events WHERE type = 'Booking.Held'")
    assert '"total_due"' in held["data"]


async def test_fifty_concurrent_bookings_of_one_item_make_one_hold(
    client: Any, auth: Any
) -> None:
    car = await _item(client, auth)
    start = NOW + timedelta(days=3)
    responses = await asyncio.gather(*[
        _book(client, auth("customer"), car, start + timedelta(hours=i % 5),
              start + timedelta(days=1, hours=i % 5))
        for i in range(50)
    ])
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] + [409] * 49
    problems = [await r.json() for r in responses if r.status == 409]
    assert all(p["title"] == "Not available" and p["conflicts"] for p in problems)
    assert await _count(client, "Item.Reserved") == 1
    assert await _count(client, "Booking.Held") == 1


async def test_two_service_processes_never_double_book(
    booking_services: Any, auth: Any
) -> None:
    first, second = await booking_services(), await booking_services()
    car = await _item(first, auth)
    start = NOW + timedelta(days=3)
    responses = await asyncio.gather(*[
        _book(first if i % 2 else second, auth("customer"), car,
              start + timedelta(hours=i % 7), start + timedelta(days=1, hours=i % 7))
        for i in range(50)
    ])
    assert sorted(r.status for r in responses) == [201] + [409] * 49
    assert await _count(first, "Item.Reserved") == 1


async def test_buffer_boundaries(client: Any, auth: Any) -> None:
    car = await _item(client, auth)  # buffer 2 h
    day = NOW + timedelta(days=20)
    ten = day.replace(hour=10)
    customer = auth("customer")
    assert (await _book(client, customer, car, ten - timedelta(days=1), ten)).status == 201
    assert (await _book(client, customer, car, ten + timedelta(hours=1),
                        ten + timedelta(days=1))).status == 409
    assert (await _book(client, customer, car, ten + timedelta(hours=2),
                        ten + timedelta(days=1))).status == 201

    other = await _item(client, auth)
    later = ten + timedelta(days=5)
    assert (await _book(client, customer, other, later, later + timedelta(days=1))).status == 201
    # 08:00-09:30 before a 10:00 booking: its own buffer runs to 11:30
    assert (await _book(client, customer, other, later - timedelta(days=1, hours=2),
                        later - timedelta(minutes=30))).status == 409
    assert (await _book(client, customer, other, later - timedelta(days=1, hours=2),
                        later - timedelta(hours=2))).status == 201


async def _confirmed(client: Any, auth: Any, item: str, start: datetime,
                     end: datetime) -> tuple[str, dict[str, str]]:
    customer = auth("customer", uuid4())
    held = await _book(client, customer, item, start, end)
    assert held.status == 201, await held.text()
    booking = (await held.json())["id"]
    confirmed = await client.post(f"/api/v1/bookings/{booking}/confirm",
                                  headers=auth("concierge"))
    assert confirmed.status == 200, await confirmed.text()
    return booking, customer


async def test_cancel_records_the_policy_refund_and_frees_the_item(
    client: Any, auth: Any, clock: ManualClock
) -> None:
    car = await _item(client, auth)
    start = NOW + timedelta(hours=48)  # exactly 48 h: 100 %
    booking, customer = await _confirmed(client, auth, car, start, start + timedelta(days=1))
    clock.advance(timedelta(minutes=1))  # 47 h 59 min before: 50 %
    response = await client.post(f"/api/v1/bookings/{booking}/cancel", json={},
                                 headers=customer)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["status"], body["refund_percentage"]) == ("cancelled", "50")
    async with client.server.app[DATABASE].acquire() as conn:
        data = await conn.fetchval("SELECT data FROM events WHERE type = 'Booking.Cancelled'")
    cancelled = json.loads(data)
    total = (await (await client.post("/api/v1/quotes", json=_stay(
        car, start, start + timedelta(days=1)))).json())["total_due"]
    assert cancelled["refund_percentage"] == "50"
    assert cancelled["refund_amount"] == round(total / 2)
    assert await _count(client, "Item.Released") == 1
    again = await _book(client, auth("customer"), car, start, start + timedelta(days=1))
    assert again.status == 201
    backwards = await client.post(f"/api/v1/bookings/{booking}/confirm",
                                  headers=auth("concierge"))
    assert backwards.status == 409
    assert (await backwards.json())["state"] == "cancelled"


async def test_cancel_at_exactly_the_bound_refunds_in_full(client: Any, auth: Any) -> None:
    car = await _item(client, auth)
    start = NOW + timedelta(hours=48)
    booking, customer = await _confirmed(client, auth, car, start, start + timedelta(days=1))
    response = await client.post(f"/api/v1/bookings/{booking}/cancel", json={},
                                 headers=customer)
    assert (await response.json())["refund_percentage"] == "100"


async def test_force_majeure_refunds_everything_and_is_admin_only(
    client: Any, auth: Any
) -> None:
    car = await _item(client, auth)
    start = NOW + timedelta(hours=2)
    booking, customer = await _confirmed(client, auth, car, start, start + timedelta(days=1))
    refused = await client.post(f"/api/v1/bookings/{booking}/force-majeure", headers=customer)
    assert refused.status == 403
    declared = await client.post(f"/api/v1/bookings/{booking}/force-majeure",
                                 headers=auth("admin"))
    assert declared.status == 200
    assert (await declared.json())["refund_percentage"] == "100"


async def test_another_customers_booking_is_not_found(client: Any, auth: Any) -> None:
    car = await _item(client, auth)
    start = NOW + timedelta(days=4)
    booking, _ = await _confirmed(client, auth, car, start, start + timedelta(days=1))
    response = await client.post(f"/api/v1/bookings/{booking}/cancel", json={},
                                 headers=auth("customer", uuid4()))
    assert response.status == 404


async def test_hold_expiry_frees_the_item_and_cannot_be_confirmed(
    client: Any, auth: Any, clock: ManualClock
) -> None:
    car = await _item(client, auth)
    start = NOW + timedelta(days=2)
    held = await _book(client, auth("customer"), car, start, start + timedelta(days=1))
    body = await held.json()
    scheduler = client.server.app[SCHEDULER]
    await _until_projected(client, body["position"])
    assert await scheduler.run_due(NOW + timedelta(minutes=29)) == 0
    clock.advance(timedelta(minutes=30))
    assert await scheduler.run_due() == 1
    assert await scheduler.run_due() == 0  # a task runs once
    assert await _count(client, "Booking.Expired") == 1
    assert await _count(client, "Item.Released") == 1
    confirm = await client.post(f"/api/v1/bookings/{body['id']}/confirm",
                                headers=auth("concierge"))
    assert confirm.status == 409
    assert (await confirm.json())["state"] == "expired"
    again = await _book(client, auth("customer"), car, start, start + timedelta(days=1))
    assert again.status == 201


async def test_a_lapsed_hold_is_expired_by_confirm_even_before_the_timer(
    client: Any, auth: Any, clock: ManualClock
) -> None:
    car = await _item(client, auth)
    start = NOW + timedelta(days=2)
    held = await (await _book(client, auth("customer"), car, start,
                              start + timedelta(days=1))).json()
    clock.advance(timedelta(minutes=31))
    confirm = await client.post(f"/api/v1/bookings/{held['id']}/confirm",
                                headers=auth("concierge"))
    assert confirm.status == 409
    assert (await confirm.json())["state"] == "expired"
    assert await _count(client, "Item.Released") == 1


async def test_automatic_check_out_and_check_in(
    client: Any, auth: Any, clock: ManualClock
) -> None:
    car = await _item(client, auth)
    start = NOW + timedelta(days=1)
    end = start + timedelta(days=1)
    await _confirmed(client, auth, car, start, end)
    scheduler = client.server.app[SCHEDULER]
    await _until_projected(client, await _head(client))
    assert await scheduler.run_due(start - timedelta(seconds=1)) == 0
    assert await scheduler.run_due(start) == 1
    assert await _count(client, "Booking.CheckedOut") == 1
    await _until_projected(client, await _head(client))
    assert await scheduler.run_due(end + timedelta(minutes=119)) == 0
    assert await scheduler.run_due(end + timedelta(hours=2)) == 1
    assert await _count(client, "Booking.CheckedIn") == 1
    assert await _count(client, "Item.Released") == 1


async def test_manual_transitions_and_no_way_back(client: Any, auth: Any) -> None:
    car = await _item(client, auth)
    start = NOW + timedelta(days=1)
    booking, _ = await _confirmed(client, auth, car, start, start + timedelta(days=1))
    staff = auth("concierge")
    assert (await client.post(f"/api/v1/bookings/{booking}/check-in", headers=staff)).status == 409
    assert (await client.post(f"/api/v1/bookings/{booking}/check-out", headers=staff)).status == 200
    cancel = await client.post(f"/api/v1/bookings/{booking}/cancel", json={}, headers=staff)
    assert cancel.status == 409
    assert (await cancel.json())["state"] == "active"
    assert (await client.post(f"/api/v1/bookings/{booking}/check-in", headers=staff)).status == 200
    customer_confirm = await client.post(f"/api/v1/bookings/{booking}/confirm",
                                         headers=auth("customer"))
    assert customer_confirm.status == 403


async def _head(client: Any) -> int:
    async with client.server.app[DATABASE].acquire() as conn:
        return await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")


async def _until_projected(client: Any, position: int) -> None:
    await client.server.app[GATE].wait(("due_tasks",), position)





async def test_a_retried_booking_with_its_idempotency_key_holds_once(
    client: Any, auth: Any
) -> None:
    car = await _item(client, auth)
    start = NOW + timedelta(days=6)
    headers = {**auth("customer"), "Idempotency-Key": "booking-retry-1"}
    first = await _book(client, headers, car, start, start + timedelta(days=1))
    again = await _book(client, headers, car, start, start + timedelta(days=1))
    assert (first.status, again.status) == (201, 201)
    assert (await first.json())["id"] == (await again.json())["id"]
    assert await _count(client, "Booking.Held") == 1
