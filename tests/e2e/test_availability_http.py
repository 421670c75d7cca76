"""Inventory management, availability search, calendars and booking lists over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from midas.scheduler import ManualClock
from tests.e2e.test_bookings_http import CAR, NOW, VILLA, _book, _item


@pytest.fixture
def client(booking_client: Any) -> Any:
    return booking_client


@pytest.fixture
def clock(booking_clock: ManualClock) -> ManualClock:
    return booking_clock


def _iso(instant: datetime) -> str:
    return instant.isoformat()


async def _position(response: Any) -> int:
    assert response.status in (200, 201), await response.text()
    return int(response.headers["Midas-Position"])


async def test_maintenance_over_a_booking_is_refused_naming_it(client: Any, auth: Any) -> None:
    car = await _item(client, auth)
    start = NOW + timedelta(days=3)
    booking = await (await _book(client, auth("customer"), car, start,
                                 start + timedelta(days=1))).json()
    admin = auth("admin")
    window = {"start": _iso(start + timedelta(days=1)), "end": _iso(start + timedelta(days=2))}
    refused = await client.post(f"/api/v1/items/{car}/maintenance", json=window, headers=admin)
    assert refused.status == 409
    problem = await refused.json()
    assert booking["id"] in problem["detail"]
    assert problem["conflicts"][0]["id"] == booking["id"]

    later = {"start": _iso(start + timedelta(days=1, hours=2)),
             "end": _iso(start + timedelta(days=2))}
    placed = await client.post(f"/api/v1/items/{car}/maintenance", json=later, headers=admin)
    assert placed.status == 201
    window_id = (await placed.json())["id"]
    blocked = await _book(client, auth("customer"), car, start + timedelta(days=1, hours=3),
                          start + timedelta(days=3))
    assert blocked.status == 409
    removed = await client.delete(f"/api/v1/items/{car}/maintenance/{window_id}", headers=admin)
    assert removed.status == 200
    again = await client.delete(f"/api/v1/items/{car}/maintenance/{window_id}", headers=admin)
    assert again.status == 404


async def test_search_and_calendar(client: Any, auth: Any) -> None:
    cheap = await _item(client, auth, {**CAR, "name": "Cheap", "rate": 100_000})
    dear = await _item(client, auth, {**CAR, "name": "Dear", "rate": 200_000})
    busy = await _item(client, auth, {**CAR, "name": "Busy", "rate": 50_000})
    await _item(client, auth, VILLA)
    start = NOW + timedelta(days=7)
    end = start + timedelta(days=2)
    held = await _book(client, auth("customer"), busy, start - timedelta(days=1),
                       start - timedelta(hours=1))  # its buffer runs 1 h into the stay
    position = await _position(held)
    found = await client.get("/api/v1/availability", params={
        "category": "car", "location": "US-CA", "start": _iso(start), "end": _iso(end),
        "min_position": position})
    assert found.status == 200, await found.text()
    items = (await found.json())["items"]
    assert [i["name"] for i in items] == ["Cheap", "Dear"]
    assert items[0]["price_from"] < items[1]["price_from"]
    assert items[0]["billable_units"] == 2
    assert {i["item_id"] for i in items} == {cheap, dear}

    window = {"from": _iso(start - timedelta(days=2)), "to": _iso(end)}
    public = await (await client.get(f"/api/v1/items/{busy}/calendar", params=window)).json()
    assert public["busy"] == [{"start": _iso(start - timedelta(days=1)).replace("+00:00", "Z"),
                               "end": _iso(start + timedelta(hours=1)).replace("+00:00", "Z")}]
    staff = await (await client.get(f"/api/v1/items/{busy}/calendar", params=window,
                                    headers=auth("concierge"))).json()
    assert staff["busy"][0]["kind"] == "booking" and "id" in staff["busy"][0]


async def test_naive_search_is_422(client: Any) -> None:
    found = await client.get("/api/v1/availability", params={
        "start": "2026-12-01T10:00:00", "end": "2026-12-02T10:00:00"})
    assert found.status == 422


async def test_customers_see_only_their_bookings(client: Any, auth: Any) -> None:
    car = await _item(client, auth)
    alice, bob = uuid4(), uuid4()
    start = NOW + timedelta(days=5)
    mine = await _book(client, auth("customer", alice), car, start, start + timedelta(days=1))
    theirs = await _book(client, auth("customer", bob), car, start + timedelta(days=3),
                         start + timedelta(days=4), "vvip")
    position = await _position(theirs)
    mine_id = (await mine.json())["id"]
    theirs_id = (await theirs.json())["id"]

    listed = await client.get("/api/v1/bookings", params={"min_position": position},
                              headers=auth("customer", alice))
    assert [b["id"] for b in (await listed.json())["bookings"]] == [mine_id]
    detail = await client.get(f"/api/v1/bookings/{mine_id}", headers=auth("customer", alice))
    assert detail.status == 200
    assert (await detail.json())["quote"]["total_due"] > 0
    hidden = await client.get(f"/api/v1/bookings/{theirs_id}", headers=auth("customer", alice))
    assert hidden.status == 404

    staff = auth("concierge")
    everything = await (await client.get("/api/v1/bookings", headers=staff)).json()
    assert len(everything["bookings"]) == 2
    by_customer = await (await client.get("/api/v1/bookings", params={
        "customer_id": str(bob)}, headers=staff)).json()
    assert [b["id"] for b in by_customer["bookings"]] == [theirs_id]
    held = await (await client.get("/api/v1/bookings", params={
        "status": "held", "item_id": car, "from": _iso(start + timedelta(days=2))},
        headers=staff)).json()
    assert [b["id"] for b in held["bookings"]] == [theirs_id]


async def test_unassigned_vvip_booking_is_flagged_48h_before(
    client: Any, auth: Any, clock: Any
) -> None:
    car = await _item(client, auth)
    start = NOW + timedelta(days=3)
    booked = await _book(client, auth("customer"), car, start, start + timedelta(days=1), "vvip")
    booking = (await booked.json())["id"]
    staff = auth("concierge")
    confirmed = await client.post(f"/api/v1/bookings/{booking}/confirm", headers=staff)
    position = await _position(confirmed)
    flagged = await (await client.get("/api/v1/bookings", params={
        "needs_concierge": "true", "min_position": position}, headers=staff)).json()
    assert flagged["bookings"] == []
    clock.advance(timedelta(days=1))
    flagged = await (await client.get("/api/v1/bookings", params={"needs_concierge": "true"},
                                      headers=staff)).json()
    assert [b["id"] for b in flagged["bookings"]] == [booking]
    assigned = await client.put(f"/api/v1/bookings/{booking}/concierge",
                                json={"concierge_id": str(uuid4())}, headers=staff)
    position = await _position(assigned)
    flagged = await (await client.get("/api/v1/bookings", params={
        "needs_concierge": "true", "min_position": position}, headers=staff)).json()
    assert flagged["bookings"] == []


async def test_bulk_operations_report_per_item(client: Any, auth: Any) -> None:
    admin = auth("admin")
    first = await _item(client, auth, {**CAR, "rate": 100_000})
    second = await _item(client, auth, {**CAR, "rate": 100_001})
    villa = await _item(client, auth, VILLA)
    start = NOW + timedelta(days=2)
    held = await _book(client, auth("customer"), first, start, start + timedelta(days=1))
    position = await _position(held)
    await client.get("/api/v1/items", params={"min_position": position})

    rates = await client.post("/api/v1/items/bulk/rates", json={
        "category": "car", "percentage": "10"}, headers=admin)
    assert rates.status == 200, await rates.text()
    outcomes = {r["item_id"]: r["outcome"] for r in (await rates.json())["results"]}
    assert outcomes == {first: "done", second: "done"}
    item = await (await client.get(f"/api/v1/items/{second}", params={
        "min_position": (await rates.json())["position"]})).json()
    assert item["rate"] == 110_001  # half-up to the cent

    window = {"item_ids": [first, villa, str(uuid4())], "start": _iso(start),
              "end": _iso(start + timedelta(hours=5))}
    bulk = await (await client.post("/api/v1/items/bulk/maintenance", json=window,
                                    headers=admin)).json()
    outcomes = {r["item_id"]: r["outcome"] for r in bulk["results"]}
    assert list(outcomes.values()) == ["refused", "done", "refused"]
    assert "booking" in bulk["results"][0]["detail"]

    status = await (await client.post("/api/v1/items/bulk/status", json={
        "item_ids": [first, second], "status": "inactive"}, headers=admin)).json()
    assert [r["outcome"] for r in status["results"]] == ["done", "done"]
    refused = await _book(client, auth("customer"), second, start, start + timedelta(days=1))
    assert refused.status == 409


async def test_maintenance_plan_places_the_next_window_in_the_first_free_slot(
    client: Any, auth: Any
) -> None:
    car = await _item(client, auth)
    admin = auth("admin")
    due = NOW + timedelta(days=30)
    booked = await _book(client, auth("customer"), car, due - timedelta(hours=1),
                         due + timedelta(days=1))
    assert booked.status == 201
    plan = await client.put(f"/api/v1/items/{car}/maintenance-plan", json={
        "every_days": 30, "duration_minutes": 240}, headers=admin)
    position = await _position(plan)
    calendar = await (await client.get(f"/api/v1/items/{car}/calendar", params={
        "from": _iso(due), "to": _iso(due + timedelta(days=3)), "min_position": position},
        headers=admin)).json()
    kinds = [(b["kind"], b["start"]) for b in calendar["busy"]]
    after_booking = (due + timedelta(days=1, hours=2)).astimezone(UTC)
    assert kinds[-1] == ("maintenance", after_booking.isoformat().replace("+00:00", "Z"))


async def test_admins_set_seasons_and_tax_and_quotes_use_them(client: Any, auth: Any) -> None:
    villa = await _item(client, auth, VILLA)
    admin = auth("admin")
    taxed = await client.put("/api/v1/pricing/locations/AE-DU/tax-rate", json={"rate": "0.10"},
                             headers=admin)
    assert taxed.status == 200, await taxed.text()
    seasons = await client.put("/api/v1/pricing/locations/AE-DU/seasons", json={
        "seasons": [{"kind": "low", "first": "05-01", "last": "05-31"}]}, headers=admin)
    assert seasons.status == 200
    start = datetime(2027, 5, 10, 12, tzinfo=UTC)
    q = await (await client.post("/api/v1/quotes", json={
        "item_id": villa, "start": _iso(start), "end": _iso(start + timedelta(days=2))})).json()
    assert {line["season"] for line in q["lines"]} == {"low"}
    assert q["tax_rate"] == "0.10" and q["policy_version"] == 3
    unknown = await client.put("/api/v1/pricing/locations/XX-XX/tax-rate", json={"rate": "0.1"},
                               headers=admin)
    assert unknown.status == 404
    customer = await client.put("/api/v1/pricing/locations/AE-DU/tax-rate",
                                json={"rate": "0.1"}, headers=auth("customer"))
    assert customer.status == 403


async def test_external_blocks_show_as_busy(client: Any, auth: Any) -> None:
    car = await _item(client, auth)
    admin = auth("admin")
    start = NOW + timedelta(days=3)
    block = {"start": _iso(start), "end": _iso(start + timedelta(hours=6)), "source": "owner"}
    placed = await client.post(f"/api/v1/items/{car}/blocks", json=block, headers=admin)
    position = await _position(placed)
    refused = await _book(client, auth("customer"), car, start - timedelta(days=1),
                          start - timedelta(hours=1))
    assert refused.status == 409
    calendar = await (await client.get(f"/api/v1/items/{car}/calendar", params={
        "from": _iso(start), "to": _iso(start + timedelta(days=1)), "min_position": position},
        headers=admin)).json()
    assert [b["kind"] for b in calendar["busy"]] == ["external_block"]
    block_id = (await placed.json())["id"]
    removed = await client.delete(f"/api/v1/items/{car}/blocks/{block_id}", headers=admin)
    assert removed.status == 200
