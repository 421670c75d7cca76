"""The booking horizon: a hold ending beyond MIDAS_BOOKING_HORIZON_DAYS is refused (422
naming the field), one ending at it is taken."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from midas.scheduler import ManualClock

CAR = {"name": "Huracan", "category": "car", "location": "US-CA", "rate": 150_000}


async def _hold(client: Any, headers: dict[str, str], item: str, start: Any, end: Any) -> Any:
    return await client.post("/api/v1/bookings", headers=headers, json={
        "item_id": item, "start": start.isoformat(), "end": end.isoformat()})


async def test_a_hold_beyond_the_horizon_is_refused_naming_the_end(
    booking_services: Any, booking_clock: ManualClock, auth: Any,
) -> None:
    client = await booking_services(booking_horizon_days=30)
    response = await client.post("/api/v1/items", json=CAR, headers=auth("admin"))
    item = (await response.json())["id"]
    customer = auth("customer")
    limit = booking_clock() + timedelta(days=30)

    beyond = await _hold(client, customer, item, limit - timedelta(days=1),
                         limit + timedelta(seconds=1))
    assert beyond.status == 422
    assert beyond.content_type == "application/problem+json"
    problem = await beyond.json()
    assert [(e["field"], e["type"]) for e in problem["errors"]] == [
        ("body.end", "beyond_booking_horizon")]
    assert "30 days" in problem["detail"]

    at_limit = await _hold(client, customer, item, limit - timedelta(days=1), limit)
    assert at_limit.status == 201, await at_limit.text()


async def test_the_default_horizon_is_two_years(
    booking_client: Any, booking_clock: ManualClock, auth: Any,
) -> None:
    response = await booking_client.post("/api/v1/items", json=CAR, headers=auth("admin"))
    item = (await response.json())["id"]
    customer = auth("customer")
    limit = booking_clock() + timedelta(days=730)
    inside = await _hold(booking_client, customer, item, limit - timedelta(days=2),
                         limit - timedelta(days=1))
    assert inside.status == 201, await inside.text()
    beyond = await _hold(booking_client, customer, item, limit, limit + timedelta(days=1))
    assert beyond.status == 422
