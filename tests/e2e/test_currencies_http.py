"""Currencies: items priced in their location's currency, dated rates set by admins, the
rate recorded with each payment, tiers counted in the reporting currency."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import orjson
import pytest

from midas.domain.accounts import Account
from midas.http.keys import DATABASE, REPOSITORY
from tests.e2e.auth_support import bearer, register, signed_in, verify_email
from tests.e2e.test_locations_http import MONACO
from tests.support.fake_stripe import (
    booking_status,
    deliver,
    hold,
    intent_event,
    pay,
    wait_until,
)

NOW_PLUS = timedelta(days=20)


@pytest.fixture
async def client(payment_services: Any) -> Any:
    return await payment_services()


async def _paid(client: Any, headers: dict[str, str], booking: dict[str, Any],
                currency: str) -> None:
    intent = (await (await pay(client, headers, booking["id"])).json())["payment_intent"]
    delivered = await deliver(client, intent_event(
        "payment_intent.succeeded", intent, booking["quote"]["total_due"], booking["id"],
        currency=currency))
    assert delivered.status == 200, await delivered.text()

    async def confirmed() -> bool:
        return await booking_status(client, booking["id"]) == "confirmed"

    await wait_until(confirmed)


async def _tier(client: Any, customer: str) -> str:
    account = await client.server.app[REPOSITORY].get(UUID(customer), cls=Account)
    return str(account.tier)


async def test_a_tier_threshold_crossed_by_a_customer_who_pays_in_two_currencies(
    client: Any, auth: Any, booking_clock: Any,
) -> None:
    admin = auth("admin")
    assert (await client.post("/api/v1/locations", json=MONACO, headers=admin)).status == 201
    for valid_from, rate in (("2026-10-01", "1.10"), ("2026-12-01", "1.30")):
        set_rate = await client.put("/api/v1/pricing/exchange-rates/EUR", headers=admin,
                                    json={"valid_from": valid_from, "rate": rate})
        assert set_rate.status == 200, await set_rate.text()
    usd = await client.put("/api/v1/pricing/exchange-rates/USD", headers=admin,
                           json={"valid_from": "2026-10-01", "rate": "1"})
    assert usd.status == 422  # the reporting currency itself
    zero = await client.put("/api/v1/pricing/exchange-rates/EUR", headers=admin,
                            json={"valid_from": "2026-10-01", "rate": "0"})
    assert zero.status == 422
    assert (await zero.json())["errors"][0]["field"] == "body.rate"
    rules = await (await client.get("/api/v1/pricing/rules")).json()
    assert rules["reporting_currency"] == "USD"
    assert [r["rate"] for r in rules["exchange_rates"]["EUR"]] == ["1.10", "1.30"]

    customer = await register(client, email="iris@example.com", name="Iris")
    tokens = await signed_in(client, email="iris@example.com")
    await verify_email(client, tokens)
    me = bearer(tokens)
    yacht = (await (await client.post("/api/v1/items", headers=admin, json={
        "name": "Riva", "category": "yacht", "location": "MC-MO",
        "rate": 1_000_000})).json())["id"]
    car = (await (await client.post("/api/v1/items", headers=admin, json={
        "name": "Phantom", "category": "car", "location": "US-CA",
        "rate": 1_500_000})).json())["id"]
    start = booking_clock() + NOW_PLUS
    in_eur = await hold(client, me, yacht, start, start + timedelta(hours=4))
    assert (in_eur["quote"]["currency"], in_eur["quote"]["total_due"]) == ("EUR", 5_520_000)
    in_usd = await hold(client, me, car, start, start + timedelta(days=3))
    assert (in_usd["quote"]["currency"], in_usd["quote"]["total_due"]) == ("USD", 5_308_875)

    await _paid(client, me, in_eur, "eur")  # EUR 55,200 at 1.10 = USD 60,720
    async with client.server.app[DATABASE].acquire() as conn:
        data = orjson.loads(await conn.fetchval(
            "SELECT data FROM events WHERE type = 'Payment.Succeeded'"))
    assert (data["amount"], data["currency"]) == (5_520_000, "EUR")
    assert data["reporting"] == {"currency": "USD", "rate": "1.10",
                                 "valid_from": "2026-10-01", "amount": 6_072_000}
    async def counted() -> bool:
        async with client.server.app[DATABASE].acquire() as conn:
            return await conn.fetchval(
                "SELECT paid FROM loy_reporting_spend WHERE currency = 'USD'") == 6_072_000

    await wait_until(counted)
    assert await _tier(client, customer["id"]) == "standard"  # 60,720 < 100,000

    await _paid(client, me, in_usd, "usd")  # + USD 53,088.75 = 113,808.75

    async def premium() -> bool:
        return await _tier(client, customer["id"]) == "premium"

    await wait_until(premium)
    async with client.server.app[DATABASE].acquire() as conn:
        raised = orjson.loads(await conn.fetchval(
            "SELECT data FROM events WHERE type = 'Account.TierRaised'"))
        spend = await conn.fetch("SELECT currency, paid FROM loy_spend ORDER BY currency")
    assert (raised["net_spend"], raised["currency"]) == (6_072_000 + 5_308_875, "USD")
    async def profiled() -> bool:
        answer = await client.get(f"/api/v1/customers/{customer['id']}", headers=admin)
        return answer.status == 200 and len((await answer.json())["profile"]["spend"]) == 2

    await wait_until(profiled)
    body = (await (await client.get(f"/api/v1/customers/{customer['id']}",
                                    headers=admin)).json())["profile"]
    assert body["lifetime_value"] == [{"currency": "USD", "net": 6_072_000 + 5_308_875}]
    assert {s["currency"]: s["net"] for s in body["spend"]} == {"EUR": 5_520_000,
                                                                "USD": 5_308_875}
    # per currency, never converted, as the reports keep it
    assert [(r["currency"], r["paid"]) for r in spend] == [("EUR", 5_520_000),
                                                           ("USD", 5_308_875)]
