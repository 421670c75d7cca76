"""A customer whose tier is above the chosen level gets it delivered free (docs/domain.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.auth_support import bearer, register, signed_in, verify_email

CAR = {"name": "Chiron", "category": "car", "location": "US-FL", "rate": 300_000}


async def test_a_vvip_customer_booking_standard_gets_vvip_at_the_standard_price(
    booking_client: Any, auth: Any
) -> None:
    client = booking_client
    customer = await register(client, email="vera@example.com", name="Vera")
    tokens = await signed_in(client, email="vera@example.com")
    await verify_email(client, tokens)
    admin = auth("admin")
    set_tier = await client.put(f"/api/v1/customers/{customer['id']}/tier",
                                json={"tier": "vvip", "reason": "founding client"},
                                headers=admin)
    assert set_tier.status == 200, await set_tier.text()
    item = (await (await client.post("/api/v1/items", json=CAR, headers=admin)).json())["id"]

    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    stay = {"item_id": item, "start": start.isoformat(),
            "end": (start + timedelta(days=1)).isoformat(), "service_level": "standard"}
    held = await client.post("/api/v1/bookings", json=stay, headers=bearer(tokens))
    assert held.status == 201, await held.text()
    body = await held.json()
    assert body["quote"]["service_level"] == "standard"
    assert body["quote"]["service_multiplier"] == "1.0"  # priced at the chosen level

    detail = await client.get(f"/api/v1/bookings/{body['id']}",
                              params={"min_position": body["position"]},
                              headers=bearer(tokens))
    assert detail.status == 200, await detail.text()
    assert (await detail.json())["delivered_level"] == "vvip"


async def test_a_standard_customer_gets_what_they_chose(booking_client: Any, auth: Any) -> None:
    client = booking_client
    await register(client, email="sam@example.com", name="Sam")
    tokens = await signed_in(client, email="sam@example.com")
    await verify_email(client, tokens)
    admin = auth("admin")
    item = (await (await client.post("/api/v1/items", json=CAR, headers=admin)).json())["id"]
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=40)
    stay = {"item_id": item, "start": start.isoformat(),
            "end": (start + timedelta(days=1)).isoformat(), "service_level": "premium"}
    held = await client.post("/api/v1/bookings", json=stay, headers=bearer(tokens))
    body = await held.json()
    detail = await client.get(f"/api/v1/bookings/{body['id']}",
                              params={"min_position": body["position"]},
                              headers=bearer(tokens))
    assert (await detail.json())["delivered_level"] == "premium"
