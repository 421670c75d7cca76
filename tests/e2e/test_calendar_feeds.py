"""Calendar feeds out: parsed back with `icalendar`, SEQUENCE, CANCELLED,
all-day blocks with an exclusive DTEND, ETag/304, feed tokens (wrong/revoked: 404)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from icalendar import Calendar

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CAR = {"name": "Huracan", "category": "car", "location": "US-CA", "rate": 150_000}
FEEDS = "/api/v1/calendar/feeds"


@pytest.fixture
async def client(booking_services: Any) -> Any:
    return await booking_services(calendar_poller_enabled=False)


async def _post(client: Any, path: str, body: Any, headers: dict[str, str],
                status: int = 201) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=headers)
    assert response.status == status, await response.text()
    return await response.json()


async def _book(client: Any, headers: dict[str, str], item: str, start: datetime,
                end: datetime) -> dict[str, Any]:
    return await _post(client, "/api/v1/bookings", {
        "item_id": item, "start": start.isoformat(), "end": end.isoformat(),
        "service_level": "standard"}, headers)


async def _feed(client: Any, path: str, position: int = 0, headers: dict[str, str] | None = None,
                ) -> tuple[Calendar, Any]:
    response = await client.get(f"{path}{'&' if '?' in path else '?'}min_position={position}",
                                headers=headers or {})
    assert response.status == 200, await response.text()
    assert response.content_type == "text/calendar"
    return Calendar.from_ical(await response.read()), response


def _events(cal: Calendar) -> dict[str, Any]:
    return {str(e["UID"]): e for e in cal.walk("VEVENT")}


async def test_item_feed_round_trip_with_cancellation(client: Any, auth: Any) -> None:
    admin, customer_id = auth("admin"), uuid4()
    customer = auth("customer", customer_id)
    car = (await _post(client, "/api/v1/items", CAR, admin))["id"]
    start, end = NOW + timedelta(days=3), NOW + timedelta(days=5)
    booking = (await _book(client, customer, car, start, end))["id"]
    await _post(client, f"/api/v1/bookings/{booking}/confirm", None, admin, 200)
    m_start = NOW + timedelta(days=10, hours=2)
    window = (await _post(client, f"/api/v1/items/{car}/maintenance", {
        "start": m_start.isoformat(), "end": (m_start + timedelta(hours=6)).isoformat(),
        "note": "tyres"}, admin))["id"]
    # An all-day block in the item's zone (Los Angeles): Nov 20 and 21, local.
    block = await _post(client, f"/api/v1/items/{car}/blocks", {
        "start": "2026-11-20T00:00:00-08:00", "end": "2026-11-22T00:00:00-08:00",
        "source": "owner"}, admin)

    cal, _ = await _feed(client, f"{FEEDS}/items/{car}/feed.ics", block["position"], admin)
    events = _events(cal)
    assert set(events) == {f"booking-{booking}@midas", f"buffer-{booking}@midas",
                           f"maintenance-{window}@midas", f"block-{block['id']}@midas"}
    b = events[f"booking-{booking}@midas"]
    assert (b["DTSTART"].dt, b["DTEND"].dt) == (start, end)
    assert b["DTSTART"].dt.tzinfo is not None and b["DTSTART"].dt.utcoffset() == timedelta(0)
    assert (str(b["STATUS"]), str(b["TRANSP"])) == ("CONFIRMED", "OPAQUE")
    first_sequence = int(b["SEQUENCE"])
    assert b.get("DTSTAMP") is not None
    buffer = events[f"buffer-{booking}@midas"]
    assert (buffer["DTSTART"].dt, buffer["DTEND"].dt) == (end, end + timedelta(hours=2))
    m = events[f"maintenance-{window}@midas"]
    assert (m["DTSTART"].dt, m["DTEND"].dt) == (m_start, m_start + timedelta(hours=6))
    blk = events[f"block-{block['id']}@midas"]
    assert (blk["DTSTART"].dt, blk["DTEND"].dt) == (date(2026, 11, 20), date(2026, 11, 22))
    assert not isinstance(blk["DTEND"].dt, datetime)  # all-day, exclusive end
    assert str(blk["TRANSP"]) == "OPAQUE"

    cancelled = await _post(client, f"/api/v1/bookings/{booking}/cancel", {}, customer, 200)
    cal, _ = await _feed(client, f"{FEEDS}/items/{car}/feed.ics", cancelled["position"], admin)
    events = _events(cal)
    b = events[f"booking-{booking}@midas"]
    assert str(b["STATUS"]) == "CANCELLED"
    assert int(b["SEQUENCE"]) > first_sequence
    assert str(events[f"buffer-{booking}@midas"]["STATUS"]) == "CANCELLED"


async def test_etag_and_tokens(client: Any, auth: Any) -> None:
    admin = auth("admin")
    registered = await _post(client, "/api/v1/items", CAR, admin)
    car = registered["id"]
    path = f"{FEEDS}/items/{car}/feed.ics"
    assert (await client.get(path)).status == 404  # no token, no bearer
    assert (await client.get(f"{path}?token=guess")).status == 404
    issued = await _post(client, f"{path.removesuffix('/feed.ics')}/token", None, admin)
    _, response = await _feed(client, issued["url"], registered["position"])  # item read
    etag = response.headers["ETag"]
    again = await client.get(issued["url"], headers={"If-None-Match": etag})
    assert again.status == 304 and again.headers["ETag"] == etag
    stale = await client.get(issued["url"], headers={"If-None-Match": '"other"'})
    assert stale.status == 200
    # A change makes a new ETag.
    blocked = await _post(client, f"/api/v1/items/{car}/blocks", {
        "start": (NOW + timedelta(days=2)).isoformat(),
        "end": (NOW + timedelta(days=2, hours=3)).isoformat(), "source": "x"}, admin)
    _, changed = await _feed(client, issued["url"], blocked["position"])
    assert changed.headers["ETag"] != etag
    # Rotation: the old token is dead, the new one works; revocation kills it.
    rotated = await _post(client, f"{path.removesuffix('/feed.ics')}/token", None, admin)
    assert (await client.get(issued["url"])).status == 404
    assert (await client.get(rotated["url"])).status == 200
    revoke = await client.delete(f"{path.removesuffix('/feed.ics')}/token", headers=admin)
    assert revoke.status == 200 and (await revoke.json())["revoked"] is True
    assert (await client.get(rotated["url"])).status == 404
    async with _db(client) as conn:
        stored = await conn.fetch("SELECT token_hash FROM cal_feed_tokens")
    assert stored == []


def _db(client: Any) -> Any:
    from midas.http.keys import DATABASE

    return client.server.app[DATABASE].acquire()


async def test_customer_and_concierge_feeds(client: Any, auth: Any) -> None:
    admin, alice_id, bob_id, concierge_id = auth("admin"), uuid4(), uuid4(), uuid4()
    alice, bob = auth("customer", alice_id), auth("customer", bob_id)
    concierge = auth("concierge", concierge_id)
    car = (await _post(client, "/api/v1/items", CAR, admin))["id"]
    mine = (await _book(client, alice, car, NOW + timedelta(days=2), NOW + timedelta(days=3)))
    theirs = (await _book(client, bob, car, NOW + timedelta(days=5), NOW + timedelta(days=6)))
    assigned = await client.put(f"/api/v1/bookings/{theirs['id']}/concierge",
                                json={"concierge_id": str(concierge_id)}, headers=admin)
    assert assigned.status == 200, await assigned.text()
    position = (await assigned.json())["position"]

    cal, _ = await _feed(client, f"{FEEDS}/customers/{alice_id}/feed.ics", position, alice)
    assert set(_events(cal)) == {f"booking-{mine['id']}@midas"}
    assert str(_events(cal)[f"booking-{mine['id']}@midas"]["STATUS"]) == "TENTATIVE"
    # Another customer's feed is 404 for Alice, even with a bearer token.
    assert (await client.get(f"{FEEDS}/customers/{bob_id}/feed.ics", headers=alice)).status == 404
    token = await _post(client, f"{FEEDS}/customers/{alice_id}/token", None, alice)
    cal, _ = await _feed(client, token["url"])
    assert set(_events(cal)) == {f"booking-{mine['id']}@midas"}
    other = await client.post(f"{FEEDS}/customers/{bob_id}/token", headers=alice)
    assert other.status == 404

    cal, _ = await _feed(client, f"{FEEDS}/concierges/{concierge_id}/feed.ics", position,
                         concierge)
    events = _events(cal)
    assert set(events) == {f"booking-{theirs['id']}@midas"}
    assert int(events[f"booking-{theirs['id']}@midas"]["SEQUENCE"]) == 1
