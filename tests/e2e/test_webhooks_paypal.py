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


async def _post_from(client: Any, body: bytes, address: str) -> Any:
    response = await client.post("/api/v1/webhooks/paypal", data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": address})
    await response.read()
    return response


async def test_ipns_are_rate_limited_per_ip_before_any_verification_post(
    payment_services: Any, auth: Any, fake_paypal: Any
) -> None:
    client = await payment_services(ipn_rate_limit=3, trust_forwarded_for=True)
    booking = await _booking(client, auth)
    answers = [await _post_from(client, _ipn(booking, txn_id=f"TXN{n}"), "198.51.100.9")
               for n in range(5)]
    assert [a.status for a in answers] == [200, 200, 200, 429, 429]
    assert answers[3].content_type == "application/problem+json"
    assert int(answers[3].headers["Retry-After"]) >= 1
    await _settle(client)
    assert len(fake_paypal.received) == 3  # nothing went out for the refused ones
    other = await _post_from(client, _ipn(booking, txn_id="TXN9"), "198.51.100.10")
    assert other.status == 200
    await _settle(client)
    assert len(fake_paypal.received) == 4


async def test_ipns_beyond_the_pending_verifications_are_refused_with_503(
    payment_services: Any, auth: Any, fake_paypal: Any
) -> None:
    """Many addresses at once: at most `ipn_max_pending` verification posts in flight."""
    client = await payment_services(ipn_max_pending=2, trust_forwarded_for=True)
    booking = await _booking(client, auth)
    fake_paypal.gate = asyncio.Event()
    first = [await _post_from(client, _ipn(booking, txn_id=f"TXN{n}"), f"198.51.100.{n}")
             for n in range(2)]
    await wait_until(lambda: _received(fake_paypal, 2))
    refused = await _post_from(client, _ipn(booking, txn_id="TXN2"), "198.51.100.2")
    assert [r.status for r in first] == [200, 200] and refused.status == 503
    assert "Retry-After" in refused.headers
    fake_paypal.gate.set()
    await _settle(client)
    assert len(fake_paypal.received) == 2
    again = await _post_from(client, _ipn(booking, txn_id="TXN2"), "198.51.100.2")
    assert again.status == 200
    await _settle(client)
    assert len(fake_paypal.received) == 3


async def _received(fake: Any, n: int) -> bool:
    return len(fake.received) >= n
