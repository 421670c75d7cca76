"""PayPal IPN: answered 200 at once, verified by posting the message back, acted on only
when VERIFIED, Completed, for our receiver, the right amount and currency, once per txn_id."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

import pytest

from commands.webhooks import IPN_TASKS
from midas.http.keys import DATABASE
from tests.support.fake_stripe import (
    PAYPAL_RECEIVER,
    booking_status,
    count,
    hold,
    make_item,
    wait_until,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def client(payment_services: Any) -> Any:
    return await payment_services()


async def _booking(client: Any, auth: Any) -> dict[str, Any]:
    car = await make_item(client, auth)
    start = NOW + timedelta(days=10)
    return await hold(client, auth("customer", uuid4()), car, start, start + timedelta(days=2))


def _ipn(booking: dict[str, Any], **changes: str) -> bytes:
    total = Decimal(booking["quote"]["total_due"]) / 100
    fields = {"txn_id": "5TY0000000000001", "payment_status": "Completed",
              "receiver_email": PAYPAL_RECEIVER, "mc_gross": f"{total:.2f}",
              "mc_currency": "USD", "custom": booking["id"], "payer_email": "c@example.com",
              **changes}
    return urlencode(fields).encode()


async def _post(client: Any, body: bytes) -> None:
    response = await client.post("/api/v1/webhooks/paypal", data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 200
    assert await response.text() == ""


async def _settle(client: Any) -> None:
    tasks = list(client.server.app[IPN_TASKS])
    if tasks:
        await asyncio.gather(*tasks)


async def _alerts(client: Any) -> list[str]:
    async with client.server.app[DATABASE].acquire() as conn:
        return [r["kind"] for r in await conn.fetch(
            "SELECT kind FROM pay_alerts WHERE provider = 'paypal' ORDER BY id")]


async def test_a_verified_completed_ipn_pays_once_per_txn_id(
    client: Any, auth: Any, fake_paypal: Any
) -> None:
    booking = await _booking(client, auth)
    body = _ipn(booking)
    await asyncio.gather(_post(client, body), _post(client, body))
    await _settle(client)
    await _post(client, body)
    await _settle(client)
    assert fake_paypal.received[0] == b"cmd=_notify-validate&" + body  # unchanged
    assert await count(client, "Payment.Succeeded") == 1

    async def confirmed() -> bool:
        return await booking_status(client, booking["id"]) == "confirmed"

    await wait_until(confirmed)
    assert await count(client, "Booking.Confirmed") == 1
    assert await _alerts(client) == []


async def test_an_invalid_ipn_is_ignored(client: Any, auth: Any, fake_paypal: Any) -> None:
    booking = await _booking(client, auth)
    fake_paypal.answer = "INVALID"
    await _post(client, _ipn(booking))
    await _settle(client)
    assert len(fake_paypal.received) == 1
    assert await count(client, "Payment.Succeeded") == 0
    assert await booking_status(client, booking["id"]) == "held"


async def test_wrong_receiver_amount_or_currency_is_ignored_and_alerted(
    client: Any, auth: Any
) -> None:
    booking = await _booking(client, auth)
    await _post(client, _ipn(booking, receiver_email="thief@example.com", txn_id="A1"))
    await _post(client, _ipn(booking, mc_gross="1.00", txn_id="A2"))
    await _post(client, _ipn(booking, mc_currency="EUR", txn_id="A3"))
    await _post(client, _ipn(booking, payment_status="Pending", txn_id="A4"))
    await _settle(client)
    assert await count(client, "Payment.Succeeded") == 0
    assert sorted(await _alerts(client)) == ["amount_mismatch", "amount_mismatch",
                                             "wrong_receiver"]
    assert await booking_status(client, booking["id"]) == "held"
