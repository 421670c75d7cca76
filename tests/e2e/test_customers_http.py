"""Customers over HTTP: search, the 360 view, notes, segment messages, erasure."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID, uuid4

from midas.http.keys import DATABASE, STORE
from tests.conftest import history_events
from tests.e2e.auth_support import bearer, register, signed_in
from tests.support.fake_stripe import wait_until


async def _seed(client: Any) -> tuple[UUID, UUID, dict[str, Any]]:
    ada = UUID((await register(client, "ada@example.com", name="Ada Lovelace", marketing={
        "version": "marketing-2026-01", "accepted": True}))["id"])
    bob = UUID((await register(client, "bob@example.com", name="Bob Marley"))["id"])
    last = None
    for rental in (3_000_00, 4_000_00, 5_000_00):
        _, appends = history_events(ada, rental=rental, insurance=100_00)
        for append in appends:
            last = await client.server.app[STORE].append(append)
    return ada, bob, {"min_position": last.last_position}


async def test_search_360_and_ownership(booking_client: Any, auth: Any) -> None:
    client = booking_client
    ada, bob, wait = await _seed(client)
    staff = auth("concierge")
    r = await client.get("/api/v1/customers", params={**wait, "q": "lovelace"}, headers=staff)
    assert r.status == 200, await r.text()
    found = (await r.json())["customers"]
    assert [c["customer_id"] for c in found] == [str(ada)]
    assert found[0]["name"] == "Ada Lovelace" and found[0]["completed"] == 3
    assert found[0]["spend"] == [{"currency": "USD", "paid": 12_300_00, "refunded": 0,
                                  "net": 12_300_00, "bookings": 3,
                                  "average_booking_value": 4_100_00}]
    by_segment = await client.get("/api/v1/customers", params={"segment": "prospect"},
                                  headers=staff)
    assert [c["customer_id"] for c in (await by_segment.json())["customers"]] == [str(bob)]
    loyal = await client.get("/api/v1/customers", params={"segment": "loyal"}, headers=staff)
    assert [c["customer_id"] for c in (await loyal.json())["customers"]] == [str(ada)]
    spend = await client.get("/api/v1/customers", headers=staff,
                             params={"min_spend": 10_000_00, "max_spend": 20_000_00})
    assert [c["customer_id"] for c in (await spend.json())["customers"]] == [str(ada)]
    none = await client.get("/api/v1/customers", headers=staff,
                            params={"min_spend": 20_000_00, "currency": "USD"})
    assert (await none.json())["customers"] == []
    tier = await client.get("/api/v1/customers", params={"tier": "vvip"}, headers=staff)
    assert (await tier.json())["customers"] == []
    bad = await client.get("/api/v1/customers", params={"segment": "whales"}, headers=staff)
    assert bad.status == 422

    # The customer reads their own 360 view and points (no notes), nobody else's.
    tokens = await signed_in(client, "ada@example.com")
    own = await client.get(f"/api/v1/customers/{ada}", headers=bearer(tokens))
    assert own.status == 200
    view = await own.json()
    assert view["notes"] is None and len(view["bookings"]) == 3
    assert view["profile"]["bookings_by_state"] == {"completed": 3}
    assert view["profile"]["favourite_categories"] == ["car"]
    assert view["profile"]["cancellation_rate"] == "0.0000"
    assert {p["type"] for p in view["payments"]} == {"Payment.Requested", "Payment.Succeeded"}
    # The loyalty process credits points after the read models: read again while it is
    # part-way through (some of the three bookings credited, not all).
    points = [p["points"] for p in view["points"]]
    for _ in range(50):
        if points in ([], [3_100, 4_100, 5_100]):
            break
        await asyncio.sleep(0.1)
        again = await client.get(f"/api/v1/customers/{ada}", headers=bearer(tokens))
        points = [p["points"] for p in (await again.json())["points"]]
    assert points in ([], [3_100, 4_100, 5_100])
    other = await client.get(f"/api/v1/customers/{bob}", headers=bearer(tokens))
    assert other.status == 404
    assert (await client.get("/api/v1/customers", headers=bearer(tokens))).status == 403
    unknown = await client.get(f"/api/v1/customers/{uuid4()}", headers=staff)
    assert unknown.status == 404


async def test_notes_messages_and_erasure(booking_client: Any, auth: Any) -> None:
    client = booking_client
    ada, _, _ = await _seed(client)
    tokens = await signed_in(client, "ada@example.com")
    refused = await client.post(f"/api/v1/customers/{ada}/notes", headers=bearer(tokens),
                                json={"text": "likes champagne"})
    assert refused.status == 403
    staff = auth("concierge")
    note = await client.post(f"/api/v1/customers/{ada}/notes", headers=staff,
                             json={"text": "Prefers the Riva; champagne on arrival"})
    assert note.status == 201, await note.text()
    position = (await note.json())["position"]
    empty = await client.post(f"/api/v1/customers/{ada}/notes", headers=staff,
                              json={"text": ""})
    assert empty.status == 422
    missing = await client.post(f"/api/v1/customers/{uuid4()}/notes", headers=staff,
                                json={"text": "x"})
    assert missing.status == 404
    view = await (await client.get(f"/api/v1/customers/{ada}", headers=staff,
                                   params={"min_position": position})).json()
    assert [n["text"] for n in view["notes"]] == ["Prefers the Riva; champagne on arrival"]
    async with client.server.app[DATABASE].acquire() as conn:
        logged = await conn.fetchval("SELECT count(*) FROM events WHERE data::text LIKE $1",
                                     "%champagne%")
    assert logged == 0  # the note text is a personal field: sealed in the log

    # A message to a segment: one outbox row per active member who agrees to marketing.
    denied = await client.post("/api/v1/customers/segments/loyal/messages", headers=staff,
                               json={"subject": "A private viewing", "body": "Dear guest"})
    assert denied.status == 403
    sent = await client.post("/api/v1/customers/segments/loyal/messages",
                             headers=auth("admin"),
                             json={"subject": "A private viewing", "body": "Join us."})
    assert sent.status == 202, await sent.text()
    assert (await sent.json())["queued"] == 1
    async with client.server.app[DATABASE].acquire() as conn:
        rows = await conn.fetch("SELECT account_id, template FROM notif_outbox"
                                " WHERE template = 'segment_message'")
    assert [(r["account_id"], r["template"]) for r in rows] == [(ada, "segment_message")]
    unknown = await client.post("/api/v1/customers/segments/whales/messages",
                                headers=auth("admin"), json={"subject": "x", "body": "y"})
    assert unknown.status == 404

    # Erasure blanks the notes and the name in every view.
    erased = await client.post(f"/api/v1/accounts/{ada}/erase", headers=auth("super_admin"))
    assert erased.status == 200

    async def blank() -> bool:
        r = await client.get(f"/api/v1/customers/{ada}", headers=staff)
        body = await r.json()
        return (body["profile"]["status"] == "erased"
                and body["notes"][0]["text"] == "[erased]"
                and body["profile"]["name"] == "[erased]")
    await wait_until(blank, timeout=10)
