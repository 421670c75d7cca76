"""Locations as data over HTTP: the seed, adding Monaco with one call, changes as events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from midas.http.keys import DATABASE
from tests.e2e.test_bookings_http import _book, _item, _stay

MONACO = {"code": "MC-MO", "name": "Monaco", "time_zone": "Europe/Monaco",
          "tax_rate": "0.20", "currency": "EUR",
          "seasons": [{"kind": "peak", "first": "07-01", "last": "08-31"}]}
YACHT = {"name": "Lady Aurora", "category": "yacht", "location": "MC-MO", "rate": 100_000}


@pytest.fixture
def client(booking_client: Any) -> Any:
    return booking_client


async def test_the_five_locations_are_seeded_with_their_values(client: Any) -> None:
    listed = await client.get("/api/v1/locations")
    assert listed.status == 200, await listed.text()
    body = await listed.json()
    assert body["policy_version"] == 0
    places = {p["code"]: (p["name"], p["time_zone"], p["tax_rate"], p["currency"])
              for p in body["locations"]}
    assert places == {
        "AE-DU": ("Dubai", "Asia/Dubai", "0.05", "USD"),
        "US-CA": ("Los Angeles", "America/Los_Angeles", "0.0725", "USD"),
        "US-FL": ("Miami", "America/New_York", "0.06", "USD"),
        "US-NV": ("Las Vegas", "America/Los_Angeles", "0.08375", "USD"),
        "US-NY": ("New York", "America/New_York", "0.08875", "USD"),
    }
    dubai = await (await client.get("/api/v1/locations/AE-DU")).json()
    assert dubai["seasons"] == [{"kind": "peak", "first": "12-15", "last": "01-10"},
                                {"kind": "high", "first": "11-01", "last": "03-31"},
                                {"kind": "low", "first": "06-01", "last": "08-31"}]
    assert (await client.get("/api/v1/locations/MC-MO")).status == 404


async def test_monaco_added_with_one_call_then_an_item_there_is_booked_with_no_restart(
    client: Any, booking_services: Any, auth: Any,
) -> None:
    other_process = await booking_services()  # started before Monaco existed
    assert (await other_process.get("/api/v1/locations/MC-MO")).status == 404
    admin = auth("admin")
    refused = await client.post("/api/v1/items", json=YACHT, headers=admin)
    assert refused.status == 422
    assert (await refused.json())["errors"][0]["field"] == "body.location"

    added = await client.post("/api/v1/locations", json=MONACO, headers=admin)
    assert added.status == 201, await added.text()
    assert (await added.json())["code"] == "MC-MO"

    registered = await other_process.post("/api/v1/items", json=YACHT, headers=admin)
    assert registered.status == 201, await registered.text()
    yacht = (await registered.json())["id"]
    item = await (await other_process.get(
        f"/api/v1/items/{yacht}", params={"min_position": registered.headers["Midas-Position"]}
    )).json()
    assert (item["location"], item["currency"]) == ("MC-MO", "EUR")
    start = datetime(2027, 6, 5, 10, tzinfo=UTC)  # outside Monaco's peak
    quoted = await other_process.post("/api/v1/quotes", json=_stay(yacht, start,
                                                                   start + timedelta(days=1)))
    q = await quoted.json()
    assert quoted.status == 200, q
    assert (q["currency"], q["time_zone"], q["tax_rate"]) == ("EUR", "Europe/Monaco", "0.20")
    assert len(q["lines"]) == 24 and {line["season"] for line in q["lines"]} == {"other"}
    assert (q["rental"], q["insurance"], q["tax"], q["total_due"]) == (
        2_400_000, 360_000, 552_000, 3_312_000)
    peak = await (await client.post("/api/v1/quotes", json=_stay(
        yacht, datetime(2027, 7, 10, 10, tzinfo=UTC), datetime(2027, 7, 10, 14, tzinfo=UTC)
    ))).json()
    assert [line["multiplier"] for line in peak["lines"]] == ["1.5"] * 4

    booked = await _book(other_process, auth("customer"), yacht, start,
                         start + timedelta(days=1))
    assert booked.status == 201, await booked.text()
    held = await booked.json()
    assert (held["quote"]["currency"], held["quote"]["total_due"]) == ("EUR", 3_312_000)

    async with client.server.app[DATABASE].acquire() as conn:
        row = await conn.fetchrow("SELECT data, metadata FROM events"
                                  " WHERE type = 'PricingPolicy.LocationAdded'")
    data, metadata = orjson.loads(row["data"]), orjson.loads(row["metadata"])
    assert data["location"] == {k: MONACO[k] for k in
                                ("code", "name", "time_zone", "tax_rate", "currency")}
    assert metadata["actor_role"] == "admin" and metadata["actor"]


async def test_adding_a_location_refuses_bad_fields_and_duplicates(client: Any, auth: Any) -> None:
    admin = auth("admin")
    bad = {**MONACO, "time_zone": "Europe/Atlantis", "tax_rate": "1.5", "currency": "eur",
           "code": "monaco"}
    refused = await client.post("/api/v1/locations", json=bad, headers=admin)
    assert refused.status == 422
    assert refused.content_type == "application/problem+json"
    fields = {e["field"] for e in (await refused.json())["errors"]}
    assert fields == {"body.time_zone", "body.tax_rate", "body.currency", "body.code"}
    bad_season = {**MONACO, "seasons": [{"kind": "peak", "first": "02-30", "last": "03-01"}]}
    assert (await client.post("/api/v1/locations", json=bad_season, headers=admin)).status == 422
    first = await client.post("/api/v1/locations", json=MONACO, headers=admin)
    assert first.status == 201
    again = await client.post("/api/v1/locations", json={**MONACO, "name": "Monte Carlo"},
                              headers=admin)
    assert again.status == 409
    assert (await again.json())["errors"][0]["field"] == "body.code"
    seeded = await client.post("/api/v1/locations", json={**MONACO, "code": "AE-DU"},
                               headers=admin)
    assert seeded.status == 409
    customer = await client.post("/api/v1/locations", json={**MONACO, "code": "FR-NI"},
                                 headers=auth("customer"))
    assert customer.status == 403
    anonymous = await client.post("/api/v1/locations", json={**MONACO, "code": "FR-NI"})
    assert anonymous.status == 401


async def test_a_location_changed_by_an_admin_prices_the_next_quote(
    client: Any, auth: Any,
) -> None:
    admin = auth("admin")
    villa = await _item(client, auth, {"name": "Villa", "category": "property",
                                       "location": "US-FL", "rate": 100_000})
    change = {"name": "Miami Beach", "time_zone": "America/New_York", "tax_rate": "0.07",
              "currency": "USD", "seasons": [{"kind": "low", "first": "05-01", "last": "05-31"}]}
    changed = await client.put("/api/v1/locations/US-FL", json=change, headers=admin)
    assert changed.status == 200, await changed.text()
    start = datetime(2027, 5, 10, 12, tzinfo=UTC)
    q = await (await client.post("/api/v1/quotes", json=_stay(
        villa, start, start + timedelta(days=2)))).json()
    assert q["tax_rate"] == "0.07" and {line["season"] for line in q["lines"]} == {"low"}
    place = await (await client.get("/api/v1/locations/US-FL")).json()
    assert place["name"] == "Miami Beach" and place["tax_rate"] == "0.07"
    async with client.server.app[DATABASE].acquire() as conn:
        types = [r["type"] for r in await conn.fetch(
            "SELECT type FROM events WHERE type LIKE 'PricingPolicy.%' ORDER BY position")]
    assert types == ["PricingPolicy.Started", "PricingPolicy.LocationChanged",
                     "PricingPolicy.TaxRateSet", "PricingPolicy.SeasonsSet"]
    same = await client.put("/api/v1/locations/US-FL", json=change, headers=admin)
    assert same.status == 200
    async with client.server.app[DATABASE].acquire() as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM events WHERE type LIKE 'PricingPolicy.%'")
    assert count == 4  # nothing differed: nothing recorded
    unknown = await client.put("/api/v1/locations/XX-XX", json=change, headers=admin)
    assert unknown.status == 404
