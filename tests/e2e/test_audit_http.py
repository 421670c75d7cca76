"""The audit routes over HTTP: roles, the log, timelines, time travel, verification,
signed checkpoints and the NDJSON export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import orjson
import pytest

from midas.http.keys import DATABASE

KEY = "a-test-audit-key"
VILLA = {"name": "Villa Amber", "category": "property", "location": "AE-DU", "rate": 1_500_000}
CAR = {"name": "Huracan", "category": "car", "location": "US-CA", "rate": 150_000}
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def client(service: Any) -> Any:
    return await service(audit_signing_key=KEY)


async def _items(client: Any, auth: Any, n: int = 3) -> list[dict[str, Any]]:
    admin = auth("admin")
    made = []
    for k in range(n):
        r = await client.post("/api/v1/items", json={**VILLA, "name": f"V{k}"}, headers=admin)
        assert r.status == 201, await r.text()
        body = await r.json()
        r = await client.put(f"/api/v1/items/{body['id']}/rate", json={"rate": 2_000_000 + k},
                             headers=admin)
        made.append({**body, "position": (await r.json())["position"]})
    return made


@pytest.mark.parametrize("route", [
    "/api/v1/audit/events", "/api/v1/audit/verify", "/api/v1/audit/checkpoint",
    "/api/v1/audit/export", f"/api/v1/audit/streams/{uuid4()}",
])
async def test_only_auditors_and_super_admins_read_the_log(
    client: Any, auth: Any, route: str
) -> None:
    for role in ("auditor", "super_admin"):
        response = await client.get(route, headers=auth(role))
        assert response.status in (200, 404), (role, response.status)
    for role in ("customer", "concierge", "admin"):
        response = await client.get(route, headers=auth(role))
        assert response.status == 403, role
        assert response.content_type == "application/problem+json"
    assert (await client.get(route)).status == 401
    verify = await client.post("/api/v1/audit/checkpoint/verify", json={},
                               headers=auth("admin"))
    assert verify.status == 403


async def test_the_log_pages_by_position_with_filters(client: Any, auth: Any) -> None:
    items = await _items(client, auth)
    auditor = auth("auditor")
    page = await (await client.get("/api/v1/audit/events", params={"limit": 4},
                                   headers=auditor)).json()
    assert [e["position"] for e in page["events"]] == [1, 2, 3, 4]
    assert page["next_after"] == 4 and len(page["events"][0]["hash"]) == 64
    rest = await (await client.get("/api/v1/audit/events", params={"after": 4},
                                   headers=auditor)).json()
    assert [e["position"] for e in rest["events"]] == [5, 6] and rest["next_after"] is None
    assert len({e["metadata"]["actor"] for e in page["events"]}) == 1

    typed = await (await client.get(
        "/api/v1/audit/events", params=[("type", "Item.RateChanged")], headers=auditor)).json()
    assert [e["type"] for e in typed["events"]] == ["Item.RateChanged"] * 3
    stream = await (await client.get("/api/v1/audit/events",
                                     params={"stream_id": items[1]["id"]}, headers=auditor)).json()
    assert [e["version"] for e in stream["events"]] == [1, 2]
    other = uuid4()
    extra = await client.post("/api/v1/items", json=CAR, headers=auth("admin", other))
    by_actor = await (await client.get("/api/v1/audit/events", params={"actor": str(other)},
                                       headers=auditor)).json()
    assert [e["stream_id"] for e in by_actor["events"]] == [(await extra.json())["id"]]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    later = await (await client.get("/api/v1/audit/events", params={"since": future},
                                    headers=auditor)).json()
    assert later["events"] == []
    bad = await client.get("/api/v1/audit/events", params={"since": "yesterday"},
                           headers=auditor)
    assert bad.status == 422

    history = await (await client.get(f"/api/v1/audit/streams/{items[0]['id']}",
                                      headers=auditor)).json()
    assert [e["type"] for e in history["events"]] == ["Item.Registered", "Item.RateChanged"]
    missing = await client.get(f"/api/v1/audit/streams/{uuid4()}", headers=auditor)
    assert missing.status == 404


async def test_time_travel_of_an_aggregate_and_a_read_model(client: Any, auth: Any) -> None:
    items = await _items(client, auth, 2)
    auditor = auth("auditor")
    state = await client.get(f"/api/v1/audit/streams/{items[0]['id']}/state",
                             params={"version": 1}, headers=auditor)
    assert state.status == 200, await state.text()
    body = await state.json()
    assert body["type"] == "Item" and body["state"]["rate"] == 1_500_000
    now = await (await client.get(f"/api/v1/audit/streams/{items[0]['id']}/state",
                                  headers=auditor)).json()
    assert now["state"]["rate"] == 2_000_000

    as_of = await client.get("/api/v1/audit/read-models/inventory",
                             params={"position": items[0]["position"]}, headers=auditor)
    assert as_of.status == 200, await as_of.text()
    rows = (await as_of.json())["tables"]["inv_items"]
    assert [(r["name"], r["rate"]) for r in rows] == [("V0", 2_000_000)]
    for params, status in (({"position": 999}, 422), ({}, 422)):
        r = await client.get("/api/v1/audit/read-models/inventory", params=params,
                             headers=auditor)
        assert r.status == status
    r = await client.get("/api/v1/audit/read-models/nope", params={"position": 1},
                         headers=auditor)
    assert r.status == 404


async def test_verify_route_names_the_first_broken_position(client: Any, auth: Any) -> None:
    await _items(client, auth)
    auditor = auth("auditor")
    ok = await (await client.get("/api/v1/audit/verify", headers=auditor)).json()
    assert ok["ok"] is True and ok["checked"] == 6 and ok["first_broken_position"] is None
    ranged = await (await client.get("/api/v1/audit/verify", params={"from": 2, "to": 4},
                                     headers=auditor)).json()
    assert ranged["ok"] and ranged["checked"] == 3
    backwards = await client.get("/api/v1/audit/verify", params={"from": 4, "to": 2},
                                 headers=auditor)
    assert backwards.status == 422

    async with client.server.app[DATABASE].acquire() as conn:
        await conn.execute("UPDATE events SET data = data || '{\"rate\": 1}' WHERE position = 4")
    broken = await (await client.get("/api/v1/audit/verify", headers=auditor)).json()
    assert (broken["ok"], broken["first_broken_position"], broken["checked"]) == (False, 4, 3)
    assert "hash does not match" in broken["reason"]


async def test_a_checkpoint_is_exported_and_checked(client: Any, auth: Any) -> None:
    await _items(client, auth, 2)
    auditor = auth("auditor")
    checkpoint = await (await client.get("/api/v1/audit/checkpoint", headers=auditor)).json()
    assert checkpoint["position"] == 4 and checkpoint["algorithm"] == "HMAC-SHA256"
    await _items(client, auth, 1)
    url = "/api/v1/audit/checkpoint/verify"
    verdict = await client.post(url, json=checkpoint, headers=auditor)
    assert verdict.status == 200, await verdict.text()
    assert (await verdict.json())["valid"] is True

    forged = await (await client.post(url, json={**checkpoint, "position": 3},
                                      headers=auditor)).json()
    assert forged["valid"] is False and forged["signature_valid"] is False
    async with client.server.app[DATABASE].acquire() as conn:
        await conn.execute("DELETE FROM events WHERE position = 2")
    rewritten = await (await client.post(url, json=checkpoint, headers=auditor)).json()
    assert rewritten["valid"] is False and rewritten["first_broken_position"] == 2
    invalid = await client.post(url, json={"position": "x"}, headers=auditor)
    assert invalid.status == 422


async def test_checkpoints_need_a_signing_key(service: Any, auth: Any) -> None:
    client = await service()
    response = await client.get("/api/v1/audit/checkpoint", headers=auth("auditor"))
    assert response.status == 409
    assert "MIDAS_AUDIT_SIGNING_KEY" in (await response.json())["detail"]


async def test_export_streams_ndjson(client: Any, auth: Any) -> None:
    items = await _items(client, auth)
    response = await client.get("/api/v1/audit/export", headers=auth("super_admin"))
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    lines = (await response.read()).splitlines()
    events = [orjson.loads(line) for line in lines]
    assert [e["position"] for e in events] == list(range(1, 7))
    assert events[0]["data"]["name"] == "V0"
    filtered = await client.get("/api/v1/audit/export", headers=auth("auditor"), params={
        "stream_id": items[2]["id"], "after": 1})
    assert [orjson.loads(x)["version"] for x in (await filtered.read()).splitlines()] == [1, 2]


async def test_a_booking_timeline_in_plain_words(booking_client: Any, auth: Any) -> None:
    client = booking_client
    created = await client.post("/api/v1/items", json=CAR, headers=auth("admin"))
    car = (await created.json())["id"]
    customer = uuid4()
    start = NOW + timedelta(days=10)
    held = await client.post("/api/v1/bookings", headers={
        **auth("customer", customer), "X-Correlation-Id": "booking-flow-1"}, json={
        "item_id": car, "start": start.isoformat(),
        "end": (start + timedelta(days=2)).isoformat(), "service_level": "standard"})
    assert held.status == 201, await held.text()
    booking = (await held.json())["id"]
    confirmed = await client.post(f"/api/v1/bookings/{booking}/confirm",
                                  headers=auth("concierge"))
    assert confirmed.status in (200, 201), await confirmed.text()

    # staff who run bookings read their story too; a customer, even the booking's own, not
    for role in ("concierge", "admin", "super_admin"):
        staff = await client.get(f"/api/v1/audit/bookings/{booking}/timeline",
                                 headers=auth(role))
        assert staff.status == 200, (role, await staff.text())
    own = await client.get(f"/api/v1/audit/bookings/{booking}/timeline",
                           headers=auth("customer", customer))
    assert own.status == 403
    assert (await client.get(f"/api/v1/audit/bookings/{booking}/timeline")).status == 401
    response = await client.get(f"/api/v1/audit/bookings/{booking}/timeline",
                                headers=auth("auditor"))
    assert response.status == 200, await response.text()
    entries = (await response.json())["entries"]
    types = [e["type"] for e in entries]
    assert set(types[:2]) == {"Booking.Held", "Item.Reserved"}  # one atomic append
    assert "Booking.Confirmed" in types
    assert "Item.Registered" not in types  # another correlation: not this booking's story
    held_entry = next(e for e in entries if e["type"] == "Booking.Held")
    assert held_entry["actor"] == str(customer) and held_entry["actor_role"] == "customer"
    assert held_entry["summary"].startswith(f"Booking held by {customer} (customer) at ")
    assert "total due" in held_entry["summary"] and car in held_entry["summary"]
    reserved = next(e for e in entries if e["type"] == "Item.Reserved")
    assert reserved["stream_id"] == car and "reserved by" in reserved["summary"]
    assert [e["position"] for e in entries] == sorted(e["position"] for e in entries)
    missing = await client.get(f"/api/v1/audit/bookings/{uuid4()}/timeline",
                               headers=auth("auditor"))
    assert missing.status == 404


def test_unknown_event_types_get_the_default_description() -> None:
    from midas.audit.timeline import describe
    from midas.eventstore import RecordedEvent

    event = RecordedEvent(9, uuid4(), 1, "Payment.Captured", {"amount": 5},
                          {"actor": "psp", "actor_role": "system"},
                          datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), b"")
    assert describe(event) == "Payment.Captured by psp (system) at 2026-01-02T03:04:05+00:00"
    odd = event._replace(type="Booking.Held", data={})  # a payload its describer can't read
    assert describe(odd).startswith("Booking.Held by psp")


@pytest.mark.parametrize("url", [
    "/api/v1/audit/events?after=-1", "/api/v1/audit/events?after=99999999999999999999",
    "/api/v1/audit/events?limit=0", "/api/v1/audit/events?until=2026-01-01T00:00:00",
    "/api/v1/audit/events?colour=red",
    f"/api/v1/audit/streams/{uuid4()}?after_version=9999999999",
    f"/api/v1/audit/streams/{uuid4()}/state?version=0",
    f"/api/v1/audit/streams/{uuid4()}/state?version=9999999999",
    f"/api/v1/audit/streams/{uuid4()}/state?at=noon",
    "/api/v1/audit/read-models/inventory?position=x",
    "/api/v1/audit/verify?from=0", "/api/v1/audit/verify?to=99999999999999999999",
    "/api/v1/audit/export?since=never",
])
async def test_bad_input_is_422_problem_json(client: Any, auth: Any, url: str) -> None:
    response = await client.get(url, headers=auth("auditor"))
    assert response.status == 422, await response.text()
    assert response.content_type == "application/problem+json"


async def test_odd_but_valid_input_is_not_an_error(client: Any, auth: Any) -> None:
    auditor = auth("auditor")
    for url in ("/api/v1/audit/streams/not-a-uuid", "/api/v1/audit/bookings/nope/timeline",
                f"/api/v1/audit/streams/{uuid4()}/state"):
        assert (await client.get(url, headers=auditor)).status == 404, url
    empty = await client.get("/api/v1/audit/export", headers=auditor)
    assert empty.status == 200 and await empty.read() == b""
    checkpoint = await (await client.get("/api/v1/audit/checkpoint", headers=auditor)).json()
    assert checkpoint["position"] == 0 and checkpoint["head_hash"] == "0" * 64
    verdict = await client.post("/api/v1/audit/checkpoint/verify", json=checkpoint,
                                headers=auditor)
    assert (await verdict.json())["valid"] is True
    huge = {**checkpoint, "position": 10**30}
    assert (await client.post("/api/v1/audit/checkpoint/verify", json=huge,
                              headers=auditor)).status == 422
