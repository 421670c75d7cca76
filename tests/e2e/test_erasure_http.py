"""GDPR erasure over HTTP: personal data readable before, gone everywhere after, while the
history, amounts and the hash chain stay intact."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg

from midas.domain.accounts import ERASED
from tests.e2e.auth_support import bearer, login, register, signed_in, verify_email
from tests.integration.test_erasure_store import find_values

ADA = {"email": "Ada.Shredded@example.com", "name": "Ada Shreddington",
       "phone": "+44 20 7946 0001"}
ADA_LATER = {"name": "Ada Q Shreddington", "phone": "+44 20 7946 0099"}
BOB = {"email": "bob.kept@example.com", "name": "Bob Keepsake", "phone": "+1 555 0100 77"}
ADA_VALUES = [ADA["email"], "ada.shredded", "Shreddington", "7946 0001", "7946 0099"]
CAR = {"name": "Huracan", "category": "car", "location": "US-CA", "rate": 150_000}


def _absent(text: str, values: list[str] = ADA_VALUES) -> None:
    for value in values:
        assert value.lower() not in text.lower(), f"{value!r} still appears"


async def _scan(pg_dsn: str, schema: str, values: list[str]) -> list[str]:
    conn = await asyncpg.connect(pg_dsn)
    try:
        return await find_values(conn, schema, values)
    finally:
        await conn.close()


async def test_erasure_shreds_personal_data_everywhere_and_keeps_history(
    booking_client: Any, auth: Any, pg_dsn: str, schema: str
) -> None:
    client = booking_client
    ada = await register(client, **ADA)
    bob = await register(client, **BOB)
    tokens = await signed_in(client, ADA["email"])
    await verify_email(client, tokens)
    changed = await client.put(f"/api/v1/accounts/{ada['id']}/profile", json=ADA_LATER,
                               headers=bearer(tokens))
    assert changed.status == 200, await changed.text()
    item = await client.post("/api/v1/items", json=CAR, headers=auth("admin"))
    item_id = (await item.json())["id"]
    held = await client.post("/api/v1/bookings", headers=bearer(tokens), json={
        "item_id": item_id, "start": datetime(2026, 11, 10, 10, tzinfo=UTC).isoformat(),
        "end": datetime(2026, 11, 12, 10, tzinfo=UTC).isoformat(),
        "service_level": "standard"})
    assert held.status == 201, await held.text()
    booking = await held.json()
    position = booking["position"]

    # Before: the owner and staff read the clear values.
    staff = auth("concierge")
    for headers in (bearer(tokens), staff):
        response = await client.get(f"/api/v1/accounts/{ada['id']}",
                                    params={"min_position": position}, headers=headers)
        view = await response.json()
        assert (view["email"], view["name"], view["phone"]) == (
            ADA["email"], ADA_LATER["name"], ADA_LATER["phone"])
    # ... but the log only holds envelopes: clear values live in state tables only.
    found = await _scan(pg_dsn, schema, ADA_VALUES)
    assert found and {hit.split(".")[0] for hit in found} <= {
        "auth_accounts", "acc_accounts", "auth_email_verifications"}

    # Who may erase.
    super_admin = auth("super_admin")
    refused = await client.post(f"/api/v1/accounts/{ada['id']}/erase", headers=auth("admin"))
    assert refused.status == 403
    unknown = await client.post(f"/api/v1/accounts/{uuid4()}/erase", headers=super_admin)
    assert unknown.status == 404
    erased = await client.post(f"/api/v1/accounts/{ada['id']}/erase", headers=super_admin)
    assert erased.status == 200, await erased.text()
    result = await erased.json()
    assert result["erased_now"] is True
    again = await client.post(f"/api/v1/accounts/{ada['id']}/erase", headers=super_admin)
    assert again.status == 200
    assert (await again.json())["erased_now"] is False
    position = result["position"]

    # The account reads as erased; its tokens and its email no longer work.
    response = await client.get(f"/api/v1/accounts/{ada['id']}",
                                params={"min_position": position}, headers=staff)
    view = await response.json()
    assert (view["email"], view["name"], view["phone"], view["status"]) == (
        ERASED, ERASED, ERASED, "erased")
    _absent(await response.text())
    own = await client.get(f"/api/v1/accounts/{ada['id']}", headers=bearer(tokens))
    assert own.status == 401
    refresh = await client.post("/api/v1/auth/refresh",
                                json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status == 401
    erased_login = await login(client, ADA["email"])
    unknown_login = await login(client, "nobody@example.com")
    assert erased_login.status == unknown_login.status == 401
    assert (await erased_login.json())["detail"] == (await unknown_login.json())["detail"]

    # Search, the audit log, streams, time travel, export: no personal value of Ada.
    auditor = auth("auditor")
    search = await client.get("/api/v1/accounts", params={"min_position": position},
                              headers=staff)
    text = await search.text()
    _absent(text)
    assert BOB["email"] in text and BOB["name"] in text  # others stay readable
    for path, params in [
        ("/api/v1/audit/events", {"limit": "1000"}),
        (f"/api/v1/audit/streams/{ada['id']}", {}),
        (f"/api/v1/audit/streams/{ada['id']}/state", {"version": "1"}),
        (f"/api/v1/audit/streams/{ada['id']}/state", {}),
        (f"/api/v1/audit/bookings/{booking['id']}/timeline", {}),
        ("/api/v1/audit/read-models/accounts", {"position": str(position)}),
        ("/api/v1/audit/export", {}),
    ]:
        response = await client.get(path, params=params, headers=auditor)
        assert response.status == 200, (path, await response.text())
        _absent(await response.text())
    timeline = await (await client.get(f"/api/v1/audit/bookings/{booking['id']}/timeline",
                                       headers=auditor)).json()
    assert any(e["type"] == "Booking.Held" for e in timeline["entries"])
    state = await (await client.get(f"/api/v1/audit/streams/{ada['id']}/state",
                                    headers=auditor)).json()
    assert state["state"]["email"] == ERASED and state["state"]["status"] == "erased"

    # The history stays whole and verifiable; the booking and its amounts are untouched.
    verify = await (await client.get("/api/v1/audit/verify", headers=auditor)).json()
    assert verify["ok"] is True
    mine = await client.get(f"/api/v1/bookings/{booking['id']}", headers=staff)
    assert mine.status == 200
    assert (await mine.json())["customer_id"] == ada["id"]

    # No table of the schema holds any of Ada's values; Bob's are still there.
    assert await _scan(pg_dsn, schema, ADA_VALUES) == []
    assert await _scan(pg_dsn, schema, [BOB["email"]])
    response = await client.get(f"/api/v1/accounts/{bob['id']}", headers=staff)
    assert (await response.json())["name"] == BOB["name"]


async def test_super_admins_cannot_erase_themselves(app_client: Any, auth: Any) -> None:
    ada = await register(app_client, **ADA)
    me = ada["id"]
    from uuid import UUID

    response = await app_client.post(f"/api/v1/accounts/{me}/erase",
                                     headers=auth("super_admin", UUID(me)))
    assert response.status == 422
