"""Every field of an item edited over HTTP, as events the read models follow; buffer and
location changes that would break a booking are refused naming it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from midas.http.keys import DATABASE
from tests.e2e.test_bookings_http import CAR, NOW, _book, _item, _stay
from tests.e2e.test_locations_http import MONACO


@pytest.fixture
def client(booking_client: Any) -> Any:
    return booking_client


async def _ok(response: Any) -> int:
    assert response.status in (200, 201), await response.text()
    return int(response.headers["Midas-Position"])


async def test_name_attributes_minimum_media_and_location_are_edited(
    client: Any, auth: Any,
) -> None:
    admin = auth("admin")
    car = await _item(client, auth)
    base = f"/api/v1/items/{car}"
    await _ok(await client.put(f"{base}/name", json={"name": "Huracan EVO"}, headers=admin))
    await _ok(await client.put(f"{base}/attributes", json={"attributes": {
        "seats": 2, "colour": "verde", "range_km": "520.5"}}, headers=admin))
    await _ok(await client.put(f"{base}/minimum", json={"minimum_minutes": 2 * 24 * 60},
                               headers=admin))
    await _ok(await client.put(f"{base}/media", json={
        "photos": ["https://media.example.com/huracan/1.jpg"],
        "documents": [{"title": "Registration",
                       "url": "https://media.example.com/huracan/reg.pdf"}]}, headers=admin))
    await _ok(await client.post("/api/v1/locations", json=MONACO, headers=admin))
    position = await _ok(await client.put(f"{base}/location", json={"location": "MC-MO"},
                                          headers=admin))
    item = await (await client.get(base, params={"min_position": position})).json()
    assert (item["name"], item["location"], item["currency"]) == ("Huracan EVO", "MC-MO",
                                                                  "EUR")
    assert item["attributes"] == {"seats": 2, "colour": "verde", "range_km": "520.5"}
    assert item["minimum_minutes"] == 2880
    assert item["photos"] == ["https://media.example.com/huracan/1.jpg"]
    assert item["documents"][0]["title"] == "Registration"
    start = NOW + timedelta(days=10)
    q = await (await client.post("/api/v1/quotes", json=_stay(
        car, start, start + timedelta(hours=5)))).json()
    assert (q["currency"], q["tax_rate"], len(q["lines"])) == ("EUR", "0.20", 2)  # 2-day min
    async with client.server.app[DATABASE].acquire() as conn:
        rows = await conn.fetch("SELECT type, metadata->>'actor_role' AS role FROM events"
                                " WHERE stream_id = $1 ORDER BY version", _uuid(car))
    assert [r["type"] for r in rows][1:] == ["Item.Renamed", "Item.AttributesSet",
                                             "Item.MinimumChanged", "Item.MediaSet",
                                             "Item.Moved"]
    assert {r["role"] for r in rows} == {"admin"}


async def test_bad_edits_are_problems_naming_the_field(client: Any, auth: Any) -> None:
    admin = auth("admin")
    car = await _item(client, auth)
    base = f"/api/v1/items/{car}"
    cases = [
        ("name", {"name": ""}, "body.name"),
        ("buffer", {"buffer_minutes": -1}, "body.buffer_minutes"),
        ("buffer", {"buffer_minutes": 7 * 24 * 60 + 1}, "body.buffer_minutes"),
        ("minimum", {"minimum_minutes": -1}, "body.minimum_minutes"),
        ("media", {"photos": ["http://insecure.example.com/a.jpg"]}, "body.photos.0"),
        ("location", {"location": "XX-XX"}, "body.location"),
    ]
    for path, body, field in cases:
        refused = await client.put(f"{base}/{path}", json=body, headers=admin)
        assert refused.status == 422, (path, await refused.text())
        assert refused.content_type == "application/problem+json"
        assert field in {e["field"] for e in (await refused.json())["errors"]}, path
    edge = await client.put(f"{base}/buffer", json={"buffer_minutes": 7 * 24 * 60},
                            headers=admin)
    assert edge.status == 200
    customer = await client.put(f"{base}/name", json={"name": "Mine"},
                                headers=auth("customer"))
    assert customer.status == 403


async def test_a_buffer_or_move_that_would_break_a_booking_is_refused_naming_it(
    client: Any, auth: Any,
) -> None:
    admin = auth("admin")
    car = await _item(client, auth, CAR)  # buffer 2 h
    start = NOW + timedelta(days=5)
    first = await _book(client, auth("customer"), car, start, start + timedelta(days=1))
    second = await _book(client, auth("customer"), car, start + timedelta(days=1, hours=3),
                         start + timedelta(days=2))
    first_id, second_id = (await first.json())["id"], (await second.json())["id"]
    refused = await client.put(f"/api/v1/items/{car}/buffer", json={"buffer_minutes": 240},
                               headers=admin)
    assert refused.status == 409
    problem = await refused.json()
    assert problem["bookings"] == [first_id]
    assert first_id in problem["detail"] and second_id in problem["detail"]
    assert [c["id"] for c in problem["conflicts"]] == [second_id]

    moved = await client.put(f"/api/v1/items/{car}/location", json={"location": "US-NV"},
                             headers=admin)
    assert moved.status == 409
    assert (await moved.json())["bookings"] == [first_id, second_id]

    position = await _ok(await client.put(f"/api/v1/items/{car}/buffer",
                                          json={"buffer_minutes": 180}, headers=admin))
    free = await client.get("/api/v1/availability", params={
        "category": "car", "location": "US-CA", "min_position": position,
        "start": (start + timedelta(days=1, hours=2, minutes=30)).isoformat(),
        "end": (start + timedelta(days=1, hours=2, minutes=50)).isoformat()})
    assert free.status == 200
    assert car not in {i["item_id"] for i in (await free.json())["items"]}
    async with client.server.app[DATABASE].acquire() as conn:
        ends = await conn.fetchval("SELECT ends_at FROM avail_occupations"
                                   " WHERE occupation_id = $1", first_id)
        buffer = await conn.fetchrow("SELECT starts_at, ends_at, sequence FROM cal_entries"
                                     " WHERE entry_id = $1", f"buffer-{first_id}")
    assert ends == start + timedelta(days=1, hours=3)
    assert (buffer["starts_at"], buffer["ends_at"], buffer["sequence"]) == (
        start + timedelta(days=1), start + timedelta(days=1, hours=3), 1)


def _uuid(text: str) -> Any:
    from uuid import UUID

    return UUID(text)
