"""The security deposit: a $50,000 hold for a 10-day jet charter, authorised no earlier
than 6 days before the start, re-authorised before each ~7-day hold lapses, released or
captured in part, and never captured after a lapse (a manual clock drives the timers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from midas.http.keys import DATABASE, SCHEDULER
from midas.scheduler import ManualClock
from tests.support.fake_stripe import (
    JET,
    booking_status,
    hold,
    make_item,
    pay_and_confirm,
    payment_state,
    wait_until,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
START = NOW + timedelta(days=20)
END = START + timedelta(days=10)
DEPOSIT = 5_000_000  # $50,000 for a jet


@pytest.fixture
async def client(payment_services: Any) -> Any:
    return await payment_services()


async def _confirmed_charter(client: Any, auth: Any) -> tuple[str, dict[str, str]]:
    jet = await make_item(client, auth, JET)
    customer = auth("customer", uuid4())
    booking = await hold(client, customer, jet, START, END)
    assert booking["quote"]["security_deposit"] == DEPOSIT
    await pay_and_confirm(client, customer, booking)
    await wait_until(lambda: _task(client, f"deposit_authorise:{booking['id']}"))
    return booking["id"], customer


async def _task(client: Any, task_id: str) -> bool:
    async with client.server.app[DATABASE].acquire() as conn:
        return bool(await conn.fetchval("SELECT 1 FROM due_tasks WHERE id = $1", task_id))


def _deposit_intents(fake: Any) -> list[dict[str, Any]]:
    return [i for i in fake.charges() if i["capture_method"] == "manual"]


async def _run_at(client: Any, clock: ManualClock, instant: datetime) -> None:
    clock.set(instant)
    await client.server.app[SCHEDULER].run_due()


async def test_jet_deposit_is_authorised_six_days_ahead_and_reauthorised_before_lapse(
    client: Any, auth: Any, fake_stripe: Any, booking_clock: ManualClock
) -> None:
    booking, _ = await _confirmed_charter(client, auth)
    await _run_at(client, booking_clock, START - timedelta(days=6, minutes=1))
    assert _deposit_intents(fake_stripe) == []  # not earlier than 6 days before
    await _run_at(client, booking_clock, START - timedelta(days=6))
    payment = await payment_state(client, booking)
    assert (payment.deposit_state, payment.deposit_amount) == ("authorised", DEPOSIT)
    first_expiry = datetime.fromisoformat(payment.deposit_expires_at)
    assert first_expiry == START + timedelta(days=1)
    assert fake_stripe.keys("/v1/payment_intents")[-1] == f"booking:{booking}:deposit:auth:1:v1"
    # Re-authorised 24 h before each hold lapses, until the hold covers the rental.
    expiries = [first_expiry]
    for n in (2, 3):
        await wait_until(lambda n=n: _task(client, f"deposit_reauthorise:{booking}:{n - 1}"))
        await _run_at(client, booking_clock, expiries[-1] - timedelta(hours=24))
        payment = await payment_state(client, booking)
        assert payment.deposit_authorisations == n, payment.deposit_state
        expiries.append(datetime.fromisoformat(payment.deposit_expires_at))
        assert expiries[-1] > expiries[-2]
    assert expiries[-1] >= END + timedelta(hours=48)
    held = _deposit_intents(fake_stripe)
    assert [i["amount"] for i in held] == [DEPOSIT] * 3
    assert [i["status"] for i in held] == ["canceled", "canceled", "requires_capture"]
    # Damages recorded after check-in: captured in part; the rest is released.
    capture = await client.post(f"/api/v1/bookings/{booking}/deposit/capture",
                                headers=auth("concierge"),
                                json={"amount": 750_000, "reason": "scratched leather"})
    assert capture.status == 200, await capture.text()
    assert held[-1]["amount_received"] == 750_000
    payment = await payment_state(client, booking)
    assert (payment.deposit_state, payment.deposit_captured) == ("captured", 750_000)


async def test_a_lapsed_deposit_is_never_captured(
    client: Any, auth: Any, fake_stripe: Any, booking_clock: ManualClock
) -> None:
    booking, customer = await _confirmed_charter(client, auth)
    await _run_at(client, booking_clock, START - timedelta(days=6))
    payment = await payment_state(client, booking)
    expiry = datetime.fromisoformat(payment.deposit_expires_at)
    await wait_until(lambda: _task(client, f"deposit_lapse:{booking}:1"))
    fake_stripe.fail["/v1/payment_intents"] = 1000  # Stripe refuses every re-authorisation
    await _run_at(client, booking_clock, expiry - timedelta(hours=24))
    await _run_at(client, booking_clock, expiry + timedelta(minutes=1))
    payment = await payment_state(client, booking)
    assert payment.deposit_state == "lapsed"
    fake_stripe.fail.clear()
    captures_before = len(fake_stripe.keys("/capture"))
    refused = await client.post(f"/api/v1/bookings/{booking}/deposit/capture",
                                headers=auth("admin"),
                                json={"amount": 100_000, "reason": "damage"})
    assert refused.status == 409
    assert len(fake_stripe.keys("/capture")) == captures_before == 0
    customer_try = await client.post(f"/api/v1/bookings/{booking}/deposit/capture",
                                     headers=customer, json={"amount": 1, "reason": "x"})
    assert customer_try.status == 403
    # The concierge desk is alerted, once, naming the booking and the amount.
    await wait_until(lambda: _concierge_alerts(client, booking, 1))
    async with client.server.app[DATABASE].acquire() as conn:
        row = await conn.fetchrow("SELECT recipient, account_id, context FROM notif_outbox"
                                  " WHERE template = 'concierge_alert'")
    assert (row["recipient"], row["account_id"]) == ("@concierge", None)
    assert '"amount": 5000000' in row["context"] and "Deposit hold lapsed" in row["context"]
    await _run_at(client, booking_clock, expiry + timedelta(days=1))
    assert await _concierge_alerts(client, booking, 1)


async def _concierge_alerts(client: Any, booking: str, n: int) -> bool:
    async with client.server.app[DATABASE].acquire() as conn:
        return int(await conn.fetchval(
            "SELECT count(*) FROM notif_outbox WHERE template = 'concierge_alert'"
            " AND context->>'booking_id' = $1", booking)) == n


async def test_the_deposit_is_released_after_check_in_without_damages(
    client: Any, auth: Any, fake_stripe: Any, booking_clock: ManualClock
) -> None:
    booking, _ = await _confirmed_charter(client, auth)
    await _run_at(client, booking_clock, START - timedelta(days=6))
    await wait_until(lambda: _task(client, f"deposit_reauthorise:{booking}:1"))
    await _run_at(client, booking_clock, START)  # re-authorise, and the automatic check-out
    assert await booking_status(client, booking) == "active"
    check_in = await client.post(f"/api/v1/bookings/{booking}/check-in",
                                 headers=auth("concierge"))
    assert check_in.status == 200, await check_in.text()
    await wait_until(lambda: _task(client, f"deposit_release:{booking}"))
    await _run_at(client, booking_clock, START + timedelta(hours=47))
    assert (await payment_state(client, booking)).deposit_state == "authorised"
    await _run_at(client, booking_clock, START + timedelta(hours=48, minutes=1))
    assert (await payment_state(client, booking)).deposit_state == "released"
    assert _deposit_intents(fake_stripe)[-1]["status"] == "canceled"
