"""Disputes per instalment: a Stripe chargeback (signed with Stripe's real scheme) or a
PayPal reversal attaches to the payment it concerns, so to the instalment that payment
paid, and `GET /api/v1/bookings/{id}/payments` shows it there with its outcome."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

import pytest

from commands.webhooks import IPN_TASKS
from midas.http.keys import DATABASE, SCHEDULER
from midas.scheduler import ManualClock
from tests.support.fake_stripe import (
    PAYPAL_RECEIVER,
    YACHT,
    count,
    deliver,
    event,
    hold,
    intent_event,
    make_item,
    pay_and_confirm,
    payment_state,
    sign,
    wait_until,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
START = NOW + timedelta(days=60)


@pytest.fixture
async def client(payment_services: Any) -> Any:
    return await payment_services()


async def _instalments(client: Any, booking: str, headers: dict[str, str]) -> list[Any]:
    response = await client.get(f"/api/v1/bookings/{booking}/payments", headers=headers)
    if response.status != 200:  # not projected yet
        return []
    return list((await response.json())["instalments"])


def _disputes(instalments: list[Any]) -> dict[int, list[tuple[Any, ...]]]:
    return {i["number"]: [(d["reference"], d["amount"], d["reason"], d["status"],
                           d["closed_at"] is not None) for d in i["disputes"]]
            for i in instalments}


def _dispute(dispute: str, intent: str, charge: str, amount: int, **extra: Any
             ) -> dict[str, Any]:
    return {"id": dispute, "object": "dispute", "amount": amount, "currency": "usd",
            "charge": charge, "payment_intent": intent, "reason": "fraudulent",
            "status": "needs_response", **extra}


async def test_stripe_disputes_attach_to_the_instalment_they_concern_with_their_outcome(
    client: Any, auth: Any, fake_stripe: Any, booking_clock: ManualClock
) -> None:
    yacht = await make_item(client, auth, YACHT)
    customer = auth("customer", uuid4())
    booking = await hold(client, customer, yacht, START, START + timedelta(days=2))
    first = await pay_and_confirm(client, customer, booking)

    async def timed() -> bool:
        async with client.server.app[DATABASE].acquire() as conn:
            return bool(await conn.fetchval(
                "SELECT 1 FROM due_tasks WHERE id = $1",
                f"instalment_due:{booking['id']}:2"))

    await wait_until(timed)
    booking_clock.set(START - timedelta(days=30))
    await client.server.app[SCHEDULER].run_due()
    balance = next(i for i in fake_stripe.charges() if i["metadata"].get("instalment") == "2")
    await deliver(client, intent_event("payment_intent.succeeded", balance["id"],
                                       balance["amount"], booking["id"]))

    async def paid() -> bool:
        return [i["state"] for i in await _instalments(client, booking["id"], customer)] == [
            "paid", "paid"]

    await wait_until(paid)
    # A dispute signed with another secret is refused and records nothing.
    forged = event("charge.dispute.created", _dispute(
        "dp_forged", balance["id"], "ch_balance", balance["amount"]))
    refused = await deliver(client, forged, header=sign(forged, secret="whsec_other"))
    assert refused.status == 400
    assert await count(client, "Payment.DisputeOpened") == 0
    # The balance's charge disputed in full, the first instalment's in part.
    for body in (_dispute("dp_balance", balance["id"], "ch_balance", balance["amount"]),
                 _dispute("dp_first", first["payment_intent"], "ch_first", 10_000,
                          reason="product_not_received")):
        opened = await deliver(client, event("charge.dispute.created", body))
        assert opened.status == 200, await opened.text()

    async def both_open() -> bool:
        return _disputes(await _instalments(client, booking["id"], customer)) == {
            1: [("dp_first", 10_000, "product_not_received", "open", False)],
            2: [("dp_balance", balance["amount"], "fraudulent", "open", False)]}

    await wait_until(both_open)
    async with client.server.app[DATABASE].acquire() as conn:
        charges = dict(await conn.fetch(
            "SELECT data->>'reference', data->>'charge' FROM events"
            " WHERE type = 'Payment.DisputeOpened'"))
    assert charges == {"dp_balance": balance["id"], "dp_first": first["payment_intent"]}
    # Outcomes: the first's dispute won, the balance's lost.
    await deliver(client, event("charge.dispute.closed", _dispute(
        "dp_first", first["payment_intent"], "ch_first", 10_000,
        reason="product_not_received", status="won")))
    await deliver(client, event("charge.dispute.closed", _dispute(
        "dp_balance", balance["id"], "ch_balance", balance["amount"], status="lost")))

    async def closed() -> bool:
        return _disputes(await _instalments(client, booking["id"], customer)) == {
            1: [("dp_first", 10_000, "product_not_received", "won", True)],
            2: [("dp_balance", balance["amount"], "fraudulent", "lost", True)]}

    await wait_until(closed)
    assert (await payment_state(client, booking["id"])).disputes == {
        "dp_first": "won", "dp_balance": "lost"}
    # Another customer does not see them; staff do.
    other = await client.get(f"/api/v1/bookings/{booking['id']}/payments",
                             headers=auth("customer", uuid4()))
    assert other.status == 404
    staff = await _instalments(client, booking["id"], auth("concierge"))
    assert _disputes(staff)[2][0][3] == "lost"


async def _paypal(client: Any, booking: dict[str, Any], amount: int, txn: str,
                  **fields: str) -> None:
    body = urlencode({"txn_id": txn, "payment_status": "Completed",
                      "receiver_email": PAYPAL_RECEIVER, "mc_currency": "USD",
                      "mc_gross": f"{Decimal(amount) / 100:.2f}", "custom": booking["id"],
                      **fields}).encode()
    response = await client.post("/api/v1/webhooks/paypal", data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 200
    await asyncio.gather(*list(client.server.app[IPN_TASKS]))


async def test_a_paypal_reversal_attaches_to_the_instalment_it_reverses(
    client: Any, auth: Any, fake_paypal: Any
) -> None:
    yacht = await make_item(client, auth, YACHT)
    customer = auth("customer", uuid4())
    booking = await hold(client, customer, yacht, START, START + timedelta(days=2))
    total = booking["quote"]["total_due"]
    first = total // 2 + total % 2
    await _paypal(client, booking, first, "PPFIRST0001")

    async def first_paid() -> bool:
        return [i["state"] for i in await _instalments(client, booking["id"], customer)] == [
            "paid", "planned"]

    await wait_until(first_paid)
    await _paypal(client, booking, total - first, "PPBALANCE01")

    async def all_paid() -> bool:
        return [i["state"] for i in await _instalments(client, booking["id"], customer)] == [
            "paid", "paid"]

    await wait_until(all_paid)
    await _paypal(client, booking, -(total - first), "PPREV000001",
                  parent_txn_id="PPBALANCE01", payment_status="Reversed",
                  reason_code="chargeback")

    async def reversed_balance() -> bool:
        return _disputes(await _instalments(client, booking["id"], customer)) == {
            1: [], 2: [("PPBALANCE01", total - first, "chargeback", "open", False)]}

    await wait_until(reversed_balance)
    await _paypal(client, booking, total - first, "PPCANREV001",
                  parent_txn_id="PPBALANCE01", payment_status="Canceled_Reversal")

    async def won() -> bool:
        return _disputes(await _instalments(client, booking["id"], customer)) == {
            1: [], 2: [("PPBALANCE01", total - first, "chargeback", "won", True)]}

    await wait_until(won)
