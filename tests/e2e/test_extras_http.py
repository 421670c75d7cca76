"""Extras over HTTP: the seeded catalogue managed by admins, extras priced line by line in
quotes and holds, capacity never overbooked under concurrency."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.e2e.test_bookings_http import NOW, _item, _stay
from tests.e2e.test_locations_http import MONACO


@pytest.fixture
def client(booking_client: Any) -> Any:
    return booking_client


async def test_the_seeded_extras_are_listed_and_admins_add_and_change_them(
    client: Any, auth: Any,
) -> None:
    listed = await (await client.get("/api/v1/extras")).json()
    codes = {e["code"]: e for e in listed["extras"]}
    assert set(codes) == {"chauffeur", "airport_transfer", "crew", "catering", "apa",
                          "jet_catering", "chef", "housekeeping", "delivery"}
    assert (codes["chauffeur"]["basis"], codes["chauffeur"]["capacity"]) == ("per_day", 3)
    assert (codes["apa"]["percentage"], codes["apa"]["tax"]) == ("30", "pass_through")
    assert codes["airport_transfer"]["categories"] == ["car", "jet", "property", "yacht"]
    assert codes["delivery"]["zones"] == {"airport": 30_000, "city": 20_000, "region": 45_000}
    yachts = await (await client.get("/api/v1/extras", params={"category": "yacht"})).json()
    assert {e["code"] for e in yachts["extras"]} == {"airport_transfer", "crew", "catering",
                                                     "apa"}
    admin = auth("admin")
    nanny = {"code": "nanny", "name": "Nanny", "categories": ["property"],
             "basis": "per_hour", "price": 4_000, "tax": "exempt", "locations": ["AE-DU"]}
    added = await client.post("/api/v1/extras", json=nanny, headers=admin)
    assert added.status == 201, await added.text()
    assert (await client.post("/api/v1/extras", json=nanny, headers=admin)).status == 409
    changed = await client.put("/api/v1/extras/chauffeur", headers=admin, json={
        "name": "Chauffeur", "categories": ["car"], "basis": "per_day", "price": 90_000,
        "capacity": 4})
    assert changed.status == 200
    listed = await (await client.get("/api/v1/extras")).json()
    chauffeur = next(e for e in listed["extras"] if e["code"] == "chauffeur")
    assert (chauffeur["price"], chauffeur["capacity"]) == (90_000, 4)
    bad = await client.post("/api/v1/extras", headers=admin, json={
        "code": "Bad Code", "name": "", "categories": [], "basis": "per_week", "price": -1})
    assert bad.status == 422
    fields = {e["field"] for e in (await bad.json())["errors"]}
    assert {"body.code", "body.name", "body.categories", "body.basis", "body.price"} <= fields
    nowhere = await client.post("/api/v1/extras", headers=admin, json={
        **nanny, "code": "nanny3", "locations": ["AE-DU", "XX-XX"]})
    assert nowhere.status == 422
    assert [e["field"] for e in (await nowhere.json())["errors"]] == ["body.locations.1"]
    no_percentage = await client.post("/api/v1/extras", headers=admin, json={
        "code": "tip", "name": "Tip", "categories": ["car"], "basis": "percentage"})
    assert no_percentage.status == 422
    assert (await client.put("/api/v1/extras/nothing", headers=admin, json={
        "name": "X", "categories": ["car"], "basis": "per_day"})).status == 404
    assert (await client.post("/api/v1/extras", json={**nanny, "code": "nanny2"},
                              headers=auth("customer"))).status == 403


async def test_a_monaco_yacht_week_with_crew_catering_and_apa_line_by_line(
    client: Any, auth: Any,
) -> None:
    admin = auth("admin")
    assert (await client.post("/api/v1/locations", json=MONACO, headers=admin)).status == 201
    yacht = await _item(client, auth, {"name": "Lady Aurora", "category": "yacht",
                                       "location": "MC-MO", "rate": 100_000})
    start = datetime.fromisoformat("2027-06-05T16:00:00+02:00")  # a Saturday, no season
    stay = {**_stay(yacht, start, start + timedelta(days=7)),
            "extras": [{"code": "crew"}, {"code": "catering", "quantity": 8},
                       {"code": "apa"}]}
    held = await client.post("/api/v1/bookings", json=stay, headers=auth("customer"))
    assert held.status == 201, await held.text()
    q = (await held.json())["quote"]
    assert q["currency"] == "EUR" and len(q["lines"]) == 168
    assert (q["rental"], q["insurance"]) == (16_800_000, 2_520_000)
    assert [(e["code"], e["units"], e["quantity"], e["amount"], e["tax"]) for e in q["extras"]] \
        == [("crew", 7, 1, 1_050_000, "taxed"), ("catering", 1, 8, 200_000, "taxed"),
            ("apa", 1, 1, 5_040_000, "pass_through")]
    # 20 % of rental + insurance + the taxed extras; the APA is neither taxed nor revenue
    assert (q["tax_rate"], q["tax"]) == ("0.20", 4_114_000)
    assert (q["extras_total"], q["pass_through"]) == (1_250_000, 5_040_000)
    assert q["total_due"] == 16_800_000 + 2_520_000 + 1_250_000 + 5_040_000 + 4_114_000
    quoted = await (await client.post("/api/v1/quotes", json={
        **stay, "start": (start + timedelta(days=7)).isoformat(),
        "end": (start + timedelta(days=14)).isoformat()})).json()
    assert quoted["total_due"] == q["total_due"]  # a quote prices extras the same way

    car_only = await client.post("/api/v1/quotes", json={
        **stay, "extras": [{"code": "chauffeur"}]})
    assert car_only.status == 422
    assert (await car_only.json())["errors"][0]["field"] == "body.extras.0.code"
    twice = await client.post("/api/v1/quotes", json={
        **stay, "extras": [{"code": "crew"}, {"code": "crew"}]})
    assert twice.status == 422


async def test_three_chauffeurs_a_day_the_fourth_is_refused_under_20_racers(
    client: Any, auth: Any,
) -> None:
    cars = [await _item(client, auth, {"name": f"Car {n}", "category": "car",
                                       "location": "AE-DU", "rate": 100_000})
            for n in range(20)]
    start = NOW + timedelta(days=10)
    racers = [(auth("customer"), car) for car in cars]

    async def race(headers: dict[str, str], car: str) -> Any:
        return await client.post("/api/v1/bookings", headers=headers, json={
            **_stay(car, start, start + timedelta(hours=8)), "extras": [{"code": "chauffeur"}]})

    answers = await asyncio.gather(*(race(h, c) for h, c in racers))
    statuses = sorted(a.status for a in answers)
    assert statuses == [201] * 3 + [409] * 17, statuses
    refused = [await a.json() for a in answers if a.status == 409]
    assert all(p["extra"] == "chauffeur" and p["day"] == "2026-11-11" for p in refused)
    assert "fully booked on 2026-11-11" in refused[0]["detail"]
    # Cancelling one gives its chauffeur back: one of those refused now gets it, and the
    # day is full again for the next.
    won = [(h, await a.json()) for (h, _), a in zip(racers, answers, strict=True)
           if a.status == 201]
    cancelled = await client.post(f"/api/v1/bookings/{won[0][1]['id']}/cancel", json={},
                                  headers=won[0][0])
    assert cancelled.status == 200, await cancelled.text()
    losers = [n for n, a in enumerate(answers) if a.status == 409]
    again = await race(*racers[losers[0]])
    assert again.status == 201, await again.text()
    assert (await race(*racers[losers[1]])).status == 409
    next_day = await client.post("/api/v1/bookings", headers=racers[losers[1]][0], json={
        **_stay(cars[losers[1]], start + timedelta(days=1), start + timedelta(days=1, hours=8)),
        "extras": [{"code": "chauffeur"}]})
    assert next_day.status == 201, await next_day.text()


async def test_delivery_is_priced_by_the_zone_chosen(client: Any, auth: Any) -> None:
    car = await _item(client, auth, {"name": "Cullinan", "category": "car",
                                     "location": "AE-DU", "rate": 100_000})
    start = NOW + timedelta(days=3)
    stay = _stay(car, start, start + timedelta(days=1))
    airport = await client.post("/api/v1/quotes", json={
        **stay, "extras": [{"code": "delivery", "zone": "airport"}]})
    assert airport.status == 200, await airport.text()
    [line] = (await airport.json())["extras"]
    assert (line["unit_price"], line["amount"]) == (30_000, 30_000)
    for extras, field in (([{"code": "delivery"}], "body.extras.0.zone"),
                          ([{"code": "delivery", "zone": "moon"}], "body.extras.0.zone")):
        refused = await client.post("/api/v1/quotes", json={**stay, "extras": extras})
        assert refused.status == 422
        problem = await refused.json()
        assert problem["errors"][0]["field"] == field
        assert "airport, city, region" in problem["detail"]
