"""Stripe webhooks end to end: signatures, duplicates, out-of-order deliveries, failures,
disputes. Webhooks are signed with Stripe's real scheme and the test's secret."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from midas.http.keys import DATABASE
from tests.support.fake_stripe import (
    booking_status,
    count,
    deliver,
    event,
    hold,
    intent_event,
    make_item,
    pay,
    payment_state,
    sign,
    wait_until,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def client(payment_services: Any) -> Any:
    return await payment_services()


async def _held_and_intent(client: Any, auth: Any) -> tuple[str, str, int, dict[str, str]]:
    car = await make_item(client, auth)
    customer = auth("customer", uuid4())
    start = NOW + timedelta(days=10)
    booking = await hold(client, customer, car, start, start + timedelta(days=2))
    response = await pay(client, customer, booking["id"])
    assert response.status == 201, await response.text()
    body = await response.json()
    return booking["id"], body["payment_intent"], booking["quote"]["total_due"], customer


async def test_forged_tampered_and_stale_signatures_are_400_and_store_nothing(
    client: Any, auth: Any
) -> None:
    booking, intent, total, _ = await _held_and_intent(client, auth)
    before = await count(client, "Payment.Succeeded")
    payload = intent_event("payment_intent.succeeded", intent, total, booking)
    forged = await deliver(client, payload, sign(payload, secret="whsec_not_ours"))
    tampered = await deliver(client, payload.replace(str(total), str(total - 1)), sign(payload))
    stale = await deliver(client, payload, sign(payload, timestamp=int(time.time()) - 301))
    future = await deliver(client, payload, sign(payload, timestamp=int(time.time()) + 360))
    missing = await client.post("/api/v1/webhooks/stripe", data=payload.encode())
    garbage = await deliver(client, payload, "t=abc,v1=zzz")
    for response in (forged, tampered, stale, future, missing, garbage):
        assert response.status == 400, await response.text()
        assert response.content_type == "application/problem+json"
        assert "whsec" not in await response.text()
    async with client.server.app[DATABASE].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM pay_webhook_events") == 0
    assert await count(client, "Payment.Succeeded") == before == 0
    # The genuine delivery is accepted, also from a clock a little ahead of ours.
    ahead = await deliver(client, payload, sign(payload, timestamp=int(time.time()) + 240))
    assert ahead.status == 200, await ahead.text()


async def test_the_same_success_delivered_twice_at_once_confirms_once(
    client: Any, auth: Any
) -> None:
    booking, intent, total, customer = await _held_and_intent(client, auth)
    payload = intent_event("payment_intent.succeeded", intent, total, booking, "evt_dup_1")
    responses = await asyncio.gather(*[deliver(client, payload) for _ in range(2)])
    assert [r.status for r in responses] == [200, 200]
    outcomes = sorted([(await r.json())["outcome"] for r in responses])
    # The loser either finds the delivery recorded or the fact already known.
    assert outcomes[0] == "applied" and outcomes[1] in ("duplicate", "no change")
    await wait_until(lambda: _is(client, booking, "confirmed"))
    await asyncio.sleep(0.5)  # let the process manager see everything
    assert await count(client, "Payment.Succeeded") == 1
    assert await count(client, "Booking.Confirmed") == 1
    # A third, late delivery changes nothing either.
    assert (await (await deliver(client, payload)).json())["outcome"] == "duplicate"
    payment = await payment_state(client, booking)
    assert (payment.paid, payment.refunded) == (total, 0)
    view = await client.get(f"/api/v1/bookings/{booking}/payments", headers=customer)
    assert view.status == 200
    balance = (await view.json())["balance"]
    assert (balance["paid"], balance["outstanding"], balance["status"]) == (total, 0,
                                                                           "succeeded")


async def _is(client: Any, booking: str, state: str) -> bool:
    return await booking_status(client, booking) == state


async def test_a_refund_arriving_before_the_success_ends_in_the_right_state(
    client: Any, auth: Any
) -> None:
    booking, intent, total, _ = await _held_and_intent(client, auth)
    charge = {"id": "ch_1", "object": "charge", "payment_intent": intent, "amount": total,
              "amount_captured": total, "amount_refunded": 5_000, "currency": "usd",
              "refunds": {"data": [{"id": "re_ext_1", "amount": 5_000, "status": "succeeded",
                                    "metadata": {}}]}}
    refunded = await deliver(client, event("charge.refunded", charge, "evt_refund_first"))
    assert (await refunded.json())["outcome"] == "applied"
    succeeded = await deliver(client, intent_event("payment_intent.succeeded", intent, total,
                                                   booking, "evt_success_late"))
    assert (await succeeded.json())["outcome"] == "no change"
    failed_late = await deliver(client, intent_event(
        "payment_intent.payment_failed", intent, total, booking, "evt_fail_late",
        last_payment_error={"code": "card_declined"}))
    assert (await failed_late.json())["outcome"] == "no change"
    await wait_until(lambda: _is(client, booking, "confirmed"))
    payment = await payment_state(client, booking)
    assert (payment.paid, payment.refunded, payment.net_paid) == (total, 5_000, total - 5_000)
    assert await count(client, "Payment.Succeeded") == 1
    assert await count(client, "Payment.Refunded") == 1
    assert await count(client, "Payment.Failed") == 0


async def test_a_failed_payment_keeps_the_hold_and_says_so(client: Any, auth: Any) -> None:
    booking, intent, total, customer = await _held_and_intent(client, auth)
    failed = await deliver(client, intent_event(
        "payment_intent.payment_failed", intent, total, booking, "evt_fail_1",
        last_payment_error={"code": "card_declined", "decline_code": "insufficient_funds",
                            "message": "Your card has insufficient funds."}))
    assert (await failed.json())["outcome"] == "applied"
    assert await booking_status(client, booking) == "held"
    async with client.server.app[DATABASE].acquire() as conn:
        data = json.loads(await conn.fetchval(
            "SELECT data FROM events WHERE type = 'Payment.Failed'"))
    assert data["reason"] == "insufficient_funds"
    assert {"booking_id", "customer_id", "amount", "currency", "reference"} <= set(data)
    staff = auth("concierge")

    async def listed() -> bool:
        issues = await client.get("/api/v1/payments/issues?kind=failed", headers=staff)
        assert issues.status == 200
        return [i["booking_id"] for i in (await issues.json())["issues"]] == [booking]

    await wait_until(listed)
    # The customer may try again: the same intent comes back (same idempotency key).
    again = await pay(client, customer, booking)
    assert (await again.json())["payment_intent"] == intent


async def test_a_dispute_is_recorded_flagged_and_closed(client: Any, auth: Any) -> None:
    booking, intent, total, customer = await _held_and_intent(client, auth)
    await deliver(client, intent_event("payment_intent.succeeded", intent, total, booking))
    dispute = {"id": "dp_1", "object": "dispute", "amount": total, "charge": "ch_9",
               "payment_intent": intent, "reason": "fraudulent", "status": "needs_response"}
    opened = await deliver(client, event("charge.dispute.created", dispute))
    assert (await opened.json())["outcome"] == "applied"
    staff = auth("admin")
    await wait_until(lambda: _issues(client, staff, booking))
    closed = await deliver(client, event("charge.dispute.closed", {**dispute, "status": "lost"}))
    assert (await closed.json())["outcome"] == "applied"
    async with client.server.app[DATABASE].acquire() as conn:
        outcome = await conn.fetchval(
            "SELECT data->>'outcome' FROM events WHERE type = 'Payment.DisputeClosed'")
    assert outcome == "lost"
    forbidden = await client.get("/api/v1/payments/issues", headers=customer)
    assert forbidden.status == 403


async def _issues(client: Any, headers: dict[str, str], booking: str) -> bool:
    response = await client.get("/api/v1/payments/issues?kind=dispute", headers=headers)
    return booking in (await response.json())["disputed_bookings"]
