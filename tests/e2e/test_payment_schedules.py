"""Payment schedules over HTTP with a manual clock: a yacht pays 50 % at booking and 50 %
30 days before the start; unpaid, the concierge is alerted 72 h after the due date and the
booking is cancelled for client default after the 5-day grace, what was paid forfeited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from midas.http.keys import DATABASE, SCHEDULER
from midas.scheduler import ManualClock
from tests.support.fake_stripe import (
    YACHT,
    booking_status,
    count,
    deliver,
    hold,
    intent_event,
    make_item,
    paid_yacht,
    payment_state,
    wait_until,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def client(payment_services: Any) -> Any:
    return await payment_services()


async def _task(client: Any, task: str) -> bool:
    async with client.server.app[DATABASE].acquire() as conn:
        return bool(await conn.fetchval("SELECT 1 FROM due_tasks WHERE id = $1", task))


async def _outbox(client: Any, template: str) -> list[dict[str, Any]]:
    async with client.server.app[DATABASE].acquire() as conn:
        return [dict(r) for r in await conn.fetch(
            "SELECT recipient, context::text AS context FROM notif_outbox"
            " WHERE template = $1 ORDER BY id", template)]


async def _instalments(client: Any, booking: str, headers: dict[str, str]) -> list[Any]:
    response = await client.get(f"/api/v1/bookings/{booking}/payments", headers=headers)
    if response.status != 200:
        return []
    return [(i["number"], i["amount"], i["state"], i["due_at"])
            for i in (await response.json())["instalments"]]


async def _run_at(client: Any, clock: ManualClock, instant: datetime) -> None:
    clock.set(instant)
    await client.server.app[SCHEDULER].run_due()


async def test_a_yacht_60_days_ahead_pays_half_then_defaults_on_an_unpaid_balance(
    client: Any, auth: Any, fake_stripe: Any, booking_clock: ManualClock
) -> None:
    start = NOW + timedelta(days=60)
    booking, customer, first = await paid_yacht(client, auth, start)
    total = booking["quote"]["total_due"]
    assert first["amount"] == total // 2 + total % 2  # 50 %, half-up
    due = start - timedelta(days=30)
    expected = [(1, first["amount"], "paid", NOW.isoformat().replace("+00:00", "Z")),
                (2, total - first["amount"], "planned", due.isoformat().replace("+00:00", "Z"))]

    async def scheduled() -> bool:
        return await _instalments(client, booking["id"], customer) == expected

    await wait_until(scheduled)
    # The balance is a receivable due in 30 days exactly: not within 30, within 60.
    report = await (await client.get("/api/v1/reports/receivables",
                                     headers=auth("admin"))).json()
    assert report["currencies"] == [{
        "currency": "USD", "earned": 0, "received": first["amount"], "overdue": 0, "due_30_days": 0,
        "due_60_days": total - first["amount"], "due_90_days": total - first["amount"]}]
    assert (await client.get("/api/v1/reports/receivables", headers=customer)).status == 403
    await wait_until(lambda: _task(client, f"instalment_default:{booking['id']}:2"))
    # A reminder 7 days before, then on the due date with the PaymentIntent for the balance.
    await _run_at(client, booking_clock, due - timedelta(days=7, minutes=1))
    assert await count(client, "PaymentSchedule.InstalmentReminded") == 0
    await _run_at(client, booking_clock, due - timedelta(days=7))
    await _run_at(client, booking_clock, due)
    assert fake_stripe.keys("/v1/payment_intents")[-1] == (
        f"booking:{booking['id']}:instalment:2:v1")
    assert fake_stripe.charges()[-1]["amount"] == total - first["amount"]
    assert await count(client, "PaymentSchedule.InstalmentReminded") == 2

    async def reminded() -> bool:
        return len(await _outbox(client, "instalment_reminder")) == 2

    await wait_until(reminded)
    # Unpaid 72 h after the due date: the concierge is alerted (not a minute earlier).
    await _run_at(client, booking_clock, due + timedelta(hours=72) - timedelta(minutes=1))
    assert await count(client, "PaymentSchedule.BalanceOverdue") == 0
    await _run_at(client, booking_clock, due + timedelta(hours=72))
    assert await count(client, "PaymentSchedule.BalanceOverdue") == 1

    async def alerted() -> bool:
        alerts = await _outbox(client, "concierge_alert")
        return len(alerts) == 1 and alerts[0]["recipient"] == "@concierge" and (
            "Balance overdue" in alerts[0]["context"])

    await wait_until(alerted)
    # After the 5-day grace: cancelled for client default, the first instalment forfeited.
    await _run_at(client, booking_clock, due + timedelta(days=5) - timedelta(minutes=1))
    assert await booking_status(client, booking["id"]) == "confirmed"
    await _run_at(client, booking_clock, due + timedelta(days=5))
    assert await booking_status(client, booking["id"]) == "cancelled"
    async with client.server.app[DATABASE].acquire() as conn:
        cancelled = await conn.fetchval(
            "SELECT data FROM events WHERE type = 'Booking.Cancelled'")
    assert '"reason": "client_default"' in cancelled and '"refund_amount": 0' in cancelled
    await wait_until(lambda: _no_task(client, f"instalment_default:{booking['id']}:2"))
    assert await count(client, "Payment.RefundRequested") == 0
    assert (await payment_state(client, booking["id"])).refunded == 0
    # Staff waive the forfeit (an event naming them): what was paid is refunded.
    admin = auth("admin")
    waived = await client.post(f"/api/v1/bookings/{booking['id']}/forfeit/waive",
                               headers=admin, json={"reason": "long-standing client"})
    assert waived.status == 200, await waived.text()

    async def refunded() -> bool:
        return (await payment_state(client, booking["id"])).refunded == first["amount"]

    await wait_until(refunded)
    again = await client.post(f"/api/v1/bookings/{booking['id']}/forfeit/waive",
                              headers=admin, json={"reason": "twice"})
    assert again.status == 409
    assert (await client.post(f"/api/v1/bookings/{booking['id']}/forfeit/waive",
                              headers=customer, json={"reason": "me"})).status == 403


async def _no_task(client: Any, task: str) -> bool:
    return not await _task(client, task)


async def test_a_yacht_10_days_ahead_pays_the_total_at_once(
    client: Any, auth: Any, booking_clock: ManualClock
) -> None:
    booking, customer, first = await paid_yacht(client, auth, NOW + timedelta(days=10))
    assert first["amount"] == booking["quote"]["total_due"]

    async def one() -> bool:
        return [i[:3] for i in await _instalments(client, booking["id"], customer)] == [
            (1, booking["quote"]["total_due"], "paid")]

    await wait_until(one)
    # Delivered: the revenue is earned (it was received at booking).
    concierge = auth("concierge")
    for step in ("check-out", "check-in"):
        answer = await client.post(f"/api/v1/bookings/{booking['id']}/{step}",
                                   headers=concierge)
        assert answer.status == 200, await answer.text()

    async def earned() -> bool:
        report = await (await client.get("/api/v1/reports/receivables",
                                         headers=auth("admin"))).json()
        usd = report["currencies"][0]
        return usd["earned"] == usd["received"] == booking["quote"]["total_due"]

    await wait_until(earned)


async def test_webhooks_for_two_instalments_out_of_order_each_settle_their_own(
    client: Any, auth: Any, fake_stripe: Any, booking_clock: ManualClock
) -> None:
    start = NOW + timedelta(days=60)
    booking, customer, first = await paid_yacht(client, auth, start)
    balance = booking["quote"]["total_due"] - first["amount"]
    await wait_until(lambda: _task(client, f"instalment_due:{booking['id']}:2"))
    half = balance // 2
    admin = auth("concierge")
    d1, d2 = start - timedelta(days=40), start - timedelta(days=35)
    split = await client.post(f"/api/v1/bookings/{booking['id']}/instalments/2/split",
                              headers=admin, json={"parts": [
                                  {"amount": half, "due_at": d1.isoformat()},
                                  {"amount": balance - half, "due_at": d2.isoformat()}]})
    assert split.status == 200, await split.text()
    wrong = await client.post(f"/api/v1/bookings/{booking['id']}/instalments/1/waive",
                              headers=admin, json={"reason": "x"})
    assert wrong.status == 422  # the first is paid at booking
    await wait_until(lambda: _task(client, f"instalment_due:{booking['id']}:4"))
    await _run_at(client, booking_clock, d2)
    intents = {i["metadata"].get("instalment"): i for i in fake_stripe.charges()}
    third, fourth = intents["3"], intents["4"]
    assert fake_stripe.keys("/v1/payment_intents")[-2:] == [
        f"booking:{booking['id']}:instalment:{n}:v1" for n in (3, 4)]
    for intent in (fourth, third):  # the later one's webhook first
        await deliver(client, intent_event("payment_intent.succeeded", intent["id"],
                                           intent["amount"], booking["id"]))

    async def settled() -> bool:
        rows = await _instalments(client, booking["id"], customer)
        return [r[:3] for r in rows] == [(1, first["amount"], "paid"),
                                         (2, balance, "split"), (3, half, "paid"),
                                         (4, balance - half, "paid")]

    await wait_until(settled)
    async with client.server.app[DATABASE].acquire() as conn:
        refs = dict(await conn.fetch(
            "SELECT number, reference FROM pay_instalments WHERE booking_id = $1",
            booking["id"]))
    assert (refs[3], refs[4]) == (third["id"], fourth["id"])


async def test_a_paypal_first_instalment_confirms_and_is_settled(
    client: Any, auth: Any, fake_paypal: Any
) -> None:
    import asyncio
    from decimal import Decimal
    from urllib.parse import urlencode

    from commands.webhooks import IPN_TASKS
    from tests.support.fake_stripe import PAYPAL_RECEIVER

    yacht = await make_item(client, auth, YACHT)
    customer = auth("customer", uuid4())
    start = NOW + timedelta(days=60)
    booking = await hold(client, customer, yacht, start, start + timedelta(days=2))
    total = booking["quote"]["total_due"]
    first = total // 2 + total % 2

    async def ipn(amount: int, txn: str) -> None:
        body = urlencode({"txn_id": txn, "payment_status": "Completed",
                          "receiver_email": PAYPAL_RECEIVER, "mc_currency": "USD",
                          "mc_gross": f"{Decimal(amount) / 100:.2f}",
                          "custom": booking["id"]}).encode()
        await client.post("/api/v1/webhooks/paypal", data=body, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        await asyncio.gather(*list(client.server.app[IPN_TASKS]))

    await ipn(first - 1, "PPWRONG")  # neither the total nor an instalment: refused
    assert await count(client, "Payment.Succeeded") == 0
    await ipn(first, "PPFIRST")

    async def settled() -> bool:
        rows = await _instalments(client, booking["id"], customer)
        return [r[:3] for r in rows] == [(1, first, "paid"), (2, total - first, "planned")]

    await wait_until(settled)
    assert await booking_status(client, booking["id"]) == "confirmed"


async def test_a_refund_larger_than_the_last_instalment_is_taken_from_each_payment(
    client: Any, auth: Any, fake_stripe: Any, booking_clock: ManualClock
) -> None:
    start = NOW + timedelta(days=60)
    booking, _customer, first = await paid_yacht(client, auth, start)
    total = booking["quote"]["total_due"]
    await wait_until(lambda: _task(client, f"instalment_due:{booking['id']}:2"))
    await _run_at(client, booking_clock, start - timedelta(days=30))
    balance = next(i for i in fake_stripe.charges() if i["metadata"].get("instalment") == "2")
    await deliver(client, intent_event("payment_intent.succeeded", balance["id"],
                                       balance["amount"], booking["id"]))

    async def all_paid() -> bool:
        return (await payment_state(client, booking["id"])).paid == total

    await wait_until(all_paid)
    # More than the balance: the balance's charge gives all it has, the first the rest.
    refund = total - first["amount"] + 1_000
    response = await client.post(f"/api/v1/bookings/{booking['id']}/refunds",
                                 headers=auth("admin"), json={"amount": refund,
                                                              "reason": "goodwill"})
    assert response.status == 202

    async def refunded() -> bool:
        return (await payment_state(client, booking["id"])).refunded == refund

    await wait_until(refunded)
    made = sorted((r["payment_intent"], r["amount"]) for r in fake_stripe.refunds.values())
    assert made == sorted([(balance["id"], balance["amount"]),
                           (first["payment_intent"], 1_000)])
    key = f"booking:{booking['id']}:refund:staff:1:v1"
    assert fake_stripe.keys("/v1/refunds") == [f"{key}:part:1", key]
