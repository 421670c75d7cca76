"""PayPal-paid bookings refund through PayPal's REST refund call (stood in at its HTTP
boundary by tests/support/fake_paypal.py), and PayPal's later IPNs (`Refunded`,
`Reversed`, `Canceled_Reversal`) are recorded like their Stripe counterparts."""

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
    booking_status,
    count,
    hold,
    make_item,
    payment_state,
    wait_until,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TXN = "8PX00000000000001"


@pytest.fixture
async def client(payment_services: Any) -> Any:
    return await payment_services()


def _ipn(booking: dict[str, Any], **changes: str) -> bytes:
    total = Decimal(booking["quote"]["total_due"]) / 100
    fields = {"txn_id": TXN, "payment_status": "Completed",
              "receiver_email": PAYPAL_RECEIVER, "mc_gross": f"{total:.2f}",
              "mc_currency": "USD", "custom": booking["id"], **changes}
    return urlencode(fields).encode()


async def _post(client: Any, body: bytes) -> None:
    response = await client.post("/api/v1/webhooks/paypal", data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 200
    tasks = list(client.server.app[IPN_TASKS])
    if tasks:
        await asyncio.gather(*tasks)


async def _paid_with_paypal(client: Any, auth: Any, days: int = 10
                            ) -> tuple[dict[str, Any], dict[str, str]]:
    car = await make_item(client, auth)
    customer = auth("customer", uuid4())
    start = NOW + timedelta(days=days)
    booking = await hold(client, customer, car, start, start + timedelta(days=2))
    await _post(client, _ipn(booking))

    async def confirmed() -> bool:
        return await booking_status(client, booking["id"]) == "confirmed"

    await wait_until(confirmed)
    return booking, customer


async def _refunded(client: Any, booking: str, amount: int) -> bool:
    return (await payment_state(client, booking)).refunded == amount


async def _alerts(client: Any) -> list[str]:
    async with client.server.app[DATABASE].acquire() as conn:
        return [r["kind"] for r in await conn.fetch(
            "SELECT kind FROM pay_alerts WHERE provider = 'paypal' ORDER BY id")]


async def test_a_cancelled_paypal_booking_is_refunded_through_paypal_once(
    client: Any, auth: Any, fake_paypal: Any, fake_stripe: Any
) -> None:
    booking, customer = await _paid_with_paypal(client, auth)
    total = booking["quote"]["total_due"]
    cancel = await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=customer,
                               json={})
    assert cancel.status == 200, await cancel.text()
    assert (await cancel.json())["refund_amount"] == total
    await wait_until(lambda: _refunded(client, booking["id"], total))
    key = f"booking:{booking['id']}:refund:cancel:v1"
    assert [(c["capture"], c["request_id"]) for c in fake_paypal.refund_calls] == [(TXN, key)]
    call = fake_paypal.refund_calls[0]
    assert call["amount"] == {"value": f"{Decimal(total) / 100:.2f}", "currency_code": "USD"}
    assert fake_stripe.keys("/v1/refunds") == []  # not Stripe's money
    assert await count(client, "Payment.RefundFailed") == 0
    # PayPal's own IPN for that refund (same id) records nothing more.
    refund_id = fake_paypal.refunds[0]["id"]
    await _post(client, _ipn(booking, txn_id=refund_id, parent_txn_id=TXN,
                             payment_status="Refunded",
                             mc_gross=f"-{Decimal(total) / 100:.2f}"))
    assert await count(client, "Payment.Refunded") == 1
    assert (await payment_state(client, booking["id"])).refunded == total
    assert await _alerts(client) == []


async def test_a_refund_paypal_could_not_take_is_retried_with_the_same_request_id(
    client: Any, auth: Any, fake_paypal: Any, booking_clock: ManualClock
) -> None:
    booking, _ = await _paid_with_paypal(client, auth)
    fake_paypal.fail_refunds = 1
    response = await client.post(f"/api/v1/bookings/{booking['id']}/refunds",
                                 headers=auth("admin"), json={"amount": 12_345, "reason": "x"})
    assert response.status == 202
    await wait_until(lambda: _calls(fake_paypal, 1))
    key = f"booking:{booking['id']}:refund:staff:1:v1"

    async def timer() -> bool:
        async with client.server.app[DATABASE].acquire() as conn:
            return bool(await conn.fetchval("SELECT 1 FROM due_tasks WHERE id = $1",
                                            f"refund_retry:{booking['id']}:{key}"))

    await wait_until(timer)
    assert (await payment_state(client, booking["id"])).refunded == 0
    booking_clock.advance(timedelta(minutes=5))
    await client.server.app[SCHEDULER].run_due()
    assert (await payment_state(client, booking["id"])).refunded == 12_345
    assert [c["request_id"] for c in fake_paypal.refund_calls] == [key, key]
    assert [c["amount"]["value"] for c in fake_paypal.refund_calls] == ["123.45", "123.45"]
    assert len(fake_paypal.refunds) == 1


async def _calls(fake: Any, n: int) -> bool:
    return len(fake.refund_calls) >= n


async def test_a_refund_paypal_refuses_is_recorded_as_failed_for_staff(
    client: Any, auth: Any, fake_paypal: Any
) -> None:
    booking, _ = await _paid_with_paypal(client, auth)
    fake_paypal.refuse_refunds = "CAPTURE_FULLY_REFUNDED"
    response = await client.post(f"/api/v1/bookings/{booking['id']}/refunds",
                                 headers=auth("admin"), json={"amount": 100, "reason": "x"})
    assert response.status == 202

    async def failed() -> bool:
        return await count(client, "Payment.RefundFailed") == 1

    await wait_until(failed)
    payment = await payment_state(client, booking["id"])
    assert payment.refunded == 0 and payment.refundable == payment.paid  # free to ask again


async def test_ipn_refunded_reversed_and_canceled_reversal_are_recorded(
    client: Any, auth: Any, fake_paypal: Any
) -> None:
    booking, _ = await _paid_with_paypal(client, auth)
    # A refund made in PayPal's console.
    refund = _ipn(booking, txn_id="RFCONSOLE0001", parent_txn_id=TXN,
                  payment_status="Refunded", mc_gross="-100.00")
    await _post(client, refund)
    await _post(client, refund)  # delivered twice: recorded once
    payment = await payment_state(client, booking["id"])
    assert payment.refunded == 10_000 and await count(client, "Payment.Refunded") == 1
    # A chargeback: a dispute on the payment, the legal contact emailed.
    reversal = _ipn(booking, txn_id="REV0001", parent_txn_id=TXN, payment_status="Reversed",
                    reason_code="chargeback", mc_gross="-50.00")
    await _post(client, reversal)
    payment = await payment_state(client, booking["id"])
    assert payment.disputes == {TXN: "open"}

    async def legal_emailed() -> bool:
        async with client.server.app[DATABASE].acquire() as conn:
            return await conn.fetchval(
                "SELECT recipient FROM notif_outbox WHERE template = 'dispute_opened'"
            ) == "@legal"

    await wait_until(legal_emailed)
    # PayPal gives the money back: the dispute is won.
    await _post(client, _ipn(booking, txn_id="CR0001", parent_txn_id=TXN,
                             payment_status="Canceled_Reversal", mc_gross="50.00"))
    payment = await payment_state(client, booking["id"])
    assert payment.disputes == {TXN: "won"}
    assert await count(client, "Payment.DisputeClosed") == 1
    assert await booking_status(client, booking["id"]) == "confirmed"  # never backwards
    assert await _alerts(client) == []


async def test_a_refund_ipn_before_its_payment_records_the_payment_first(
    client: Any, auth: Any
) -> None:
    car = await make_item(client, auth)
    customer = auth("customer", uuid4())
    start = NOW + timedelta(days=10)
    booking = await hold(client, customer, car, start, start + timedelta(days=2))
    await _post(client, _ipn(booking, txn_id="RFEARLY0001", parent_txn_id=TXN,
                             payment_status="Refunded", mc_gross="-10.00"))
    payment = await payment_state(client, booking["id"])
    assert (payment.paid, payment.refunded) == (booking["quote"]["total_due"], 1_000)
    assert payment.settled == [TXN]
    await _post(client, _ipn(booking))  # the Completed IPN, late: nothing new
    assert await count(client, "Payment.Succeeded") == 1


async def test_adjustment_ipns_that_do_not_fit_are_alerted_not_recorded(
    client: Any, auth: Any
) -> None:
    booking, _ = await _paid_with_paypal(client, auth)
    total = booking["quote"]["total_due"]
    too_much = f"-{Decimal(total + 1) / 100:.2f}"
    await _post(client, _ipn(booking, txn_id="RFBIG", parent_txn_id=TXN,
                             payment_status="Refunded", mc_gross=too_much))
    await _post(client, _ipn(booking, txn_id="RFEUR", parent_txn_id=TXN,
                             payment_status="Refunded", mc_gross="-1.00", mc_currency="EUR"))
    await _post(client, _ipn(booking, txn_id="RFNOPARENT", payment_status="Refunded",
                             mc_gross="-1.00"))
    await _post(client, _ipn(booking, txn_id="RFWHO", parent_txn_id=TXN,
                             payment_status="Refunded", mc_gross="-1.00",
                             receiver_email="thief@example.com"))
    assert await count(client, "Payment.Refunded") == 0
    assert await _alerts(client) == ["amount_mismatch", "amount_mismatch", "no_parent_txn_id",
                                     "wrong_receiver"]
    # The exact refundable amount is accepted (the bound from below).
    await _post(client, _ipn(booking, txn_id="RFALL", parent_txn_id=TXN,
                             payment_status="Refunded",
                             mc_gross=f"-{Decimal(total) / 100:.2f}"))
    assert (await payment_state(client, booking["id"])).refunded == total
