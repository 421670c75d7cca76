"""Payments against localstripe, started as `midas serve` starts it (a child process, its
webhooks signed and delivered to the service's own route): intent, payment, webhook,
confirmation, a declined card, a staff refund and a cancellation refund. What localstripe
does not implement is covered with tests/support/fake_stripe.py (docs/payments.md)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from midas.config import Settings
from midas.domain.bookings import Booking
from midas.http.keys import DATABASE, REPOSITORY, SETTINGS
from midas.payment_providers.local_stripe import embedded_payments
from tests.support.fake_stripe import (
    booking_status,
    count,
    hold,
    make_item,
    pay,
    payment_state,
    wait_until,
)
from tests.support.local_stripe import free_port, stripe_get

pytestmark = pytest.mark.slow


@pytest.fixture
async def client(settings: Settings, aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[Any]:
    from midas.app import create_app

    port = free_port()
    local = settings.model_copy(update={"host": "127.0.0.1", "port": port,
                                        "data_dir": tmp_path})
    with embedded_payments(local) as embedded:
        yield await aiohttp_client(create_app(embedded),
                                   server_kwargs={"host": "127.0.0.1", "port": port})


def _api_base(client: Any) -> str:
    return client.server.app[SETTINGS].stripe_api_base


async def _confirm(client: Any, headers: dict[str, str], booking: str, method: str) -> Any:
    return await client.post(f"/api/v1/bookings/{booking}/payments/confirm", headers=headers,
                             json={"payment_method": method})


async def _paid_and_confirmed(client: Any, headers: dict[str, str], booking: dict[str, Any]
                              ) -> str:
    response = await _confirm(client, headers, booking["id"], "pm_card_visa")
    assert response.status == 200, await response.text()
    intent = (await response.json())["payment_intent"]

    async def confirmed() -> bool:
        return await booking_status(client, booking["id"]) == "confirmed"

    await wait_until(confirmed, timeout=15)
    return str(intent)


async def test_a_hold_paid_with_a_test_card_is_confirmed_by_localstripes_signed_webhook(
    client: Any, auth: Any
) -> None:
    car = await make_item(client, auth)
    customer = auth("customer", uuid4())
    start = datetime.now(UTC) + timedelta(days=10)
    booking = await hold(client, customer, car, start, start + timedelta(days=2))
    total = booking["quote"]["total_due"]
    created = await pay(client, customer, booking["id"])
    assert created.status == 201, await created.text()
    body = await created.json()
    intent = stripe_get(_api_base(client), f"/v1/payment_intents/{body['payment_intent']}")
    assert (intent["amount"], intent["currency"], intent["status"]) == (
        total, "usd", "requires_payment_method")
    assert intent["metadata"] == {"booking_id": booking["id"], "kind": "charge"}
    assert body["client_secret"] == intent["client_secret"]

    paid = await _paid_and_confirmed(client, customer, booking)
    assert paid == body["payment_intent"]  # one intent per booking: never a second charge
    assert stripe_get(_api_base(client), f"/v1/payment_intents/{paid}")["status"] == "succeeded"
    async with client.server.app[DATABASE].acquire() as conn:
        succeeded = await conn.fetchrow(
            "SELECT data, metadata FROM events WHERE type = 'Payment.Succeeded'")
    data, metadata = json.loads(succeeded["data"]), json.loads(succeeded["metadata"])
    assert (data["amount"], data["reference"]) == (total, paid)
    assert metadata["actor"] == "stripe" and metadata["causation_id"].startswith("evt_")
    state = await payment_state(client, booking["id"])
    assert (state.paid, state.refunded) == (total, 0)
    # Confirming again changes nothing: the intent is paid already.
    again = await _confirm(client, customer, booking["id"], "pm_card_visa")
    assert again.status == 409  # the booking is no longer a hold


async def test_a_staff_refund_and_a_cancellation_refund_go_through_localstripe(
    client: Any, auth: Any
) -> None:
    car = await make_item(client, auth)
    customer = auth("customer", uuid4())
    start = datetime.now(UTC) + timedelta(days=10)
    booking = await hold(client, customer, car, start, start + timedelta(days=2))
    total = booking["quote"]["total_due"]
    intent = await _paid_and_confirmed(client, customer, booking)

    refund = await client.post(f"/api/v1/bookings/{booking['id']}/refunds",
                               headers=auth("admin"), json={"amount": 10_000, "reason": "late"})
    assert refund.status == 202, await refund.text()

    async def refunded(amount: int) -> bool:
        return (await payment_state(client, booking["id"])).refunded == amount

    await wait_until(lambda: refunded(10_000), timeout=15)
    cancel = await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=customer,
                               json={})
    assert cancel.status == 200, await cancel.text()
    assert (await cancel.json())["refund_amount"] == total  # >= 48 h before a car: 100 %
    await wait_until(lambda: refunded(total), timeout=15)  # what was left: total - 10,000
    refunds = stripe_get(_api_base(client), f"/v1/refunds?payment_intent={intent}")["data"]
    assert sorted((r["amount"], r["metadata"]["key"]) for r in refunds) == sorted([
        (10_000, f"booking:{booking['id']}:refund:staff:1:v1"),
        (total - 10_000, f"booking:{booking['id']}:refund:cancel:v1")])
    assert await count(client, "Payment.Refunded") == 2


async def test_a_declined_card_is_a_402_and_the_failure_is_recorded_from_the_webhook(
    client: Any, auth: Any
) -> None:
    car = await make_item(client, auth)
    customer = auth("customer", uuid4())
    start = datetime.now(UTC) + timedelta(days=10)
    booking = await hold(client, customer, car, start, start + timedelta(days=2))
    declined = await _confirm(client, customer, booking["id"], "pm_card_chargeCustomerFail")
    assert declined.status == 402, await declined.text()
    assert "card declined" in (await declined.json())["detail"]

    async def failed() -> bool:
        return await count(client, "Payment.Failed") == 1

    await wait_until(failed, timeout=15)
    assert await booking_status(client, booking["id"]) == "held"
    async with client.server.app[DATABASE].acquire() as conn:
        reason = json.loads(await conn.fetchval(
            "SELECT data FROM events WHERE type = 'Payment.Failed'"))["reason"]
    assert reason == "card_declined"


async def test_someone_elses_booking_cannot_be_paid_and_bad_methods_are_refused(
    client: Any, auth: Any
) -> None:
    car = await make_item(client, auth)
    owner, other = auth("customer", uuid4()), auth("customer", uuid4())
    start = datetime.now(UTC) + timedelta(days=10)
    booking = await hold(client, owner, car, start, start + timedelta(days=2))
    assert (await _confirm(client, other, booking["id"], "pm_card_visa")).status == 404
    for method in ("", "card_4242", "pm_", "pm_" + "x" * 101, "pm_a;b"):
        response = await _confirm(client, owner, booking["id"], method)
        assert response.status == 422, method
        assert (await response.json())["errors"][0]["field"] == "body.payment_method"
    assert await booking_status(client, booking["id"]) == "held"


async def test_the_deposit_is_held_on_the_card_that_paid_then_captured_in_part(
    client: Any, auth: Any
) -> None:
    car = await make_item(client, auth)
    customer = auth("customer", uuid4())
    start = datetime.now(UTC) + timedelta(days=2)  # inside the 6 days: authorised at once
    booking = await hold(client, customer, car, start, start + timedelta(days=1))
    deposit = booking["quote"]["security_deposit"]
    assert deposit == 5_000_00
    await _paid_and_confirmed(client, customer, booking)

    async def authorised() -> bool:
        return (await payment_state(client, booking["id"])).deposit_state == "authorised"

    await wait_until(authorised, timeout=15)  # the running scheduler placed the hold
    state = await payment_state(client, booking["id"])
    assert state.payment_method == "pm_card_visa"
    hold_intent = stripe_get(_api_base(client), f"/v1/payment_intents/{state.deposit_reference}")
    assert (hold_intent["status"], hold_intent["amount"], hold_intent["capture_method"]) == (
        "requires_capture", deposit, "manual")
    assert hold_intent["metadata"]["kind"] == "deposit"

    captured = await client.post(f"/api/v1/bookings/{booking['id']}/deposit/capture",
                                 headers=auth("concierge"),
                                 json={"amount": 1_200_00, "reason": "scratched rim"})
    assert captured.status == 200, await captured.text()
    after = stripe_get(_api_base(client), f"/v1/payment_intents/{state.deposit_reference}")
    assert after["status"] == "succeeded"
    state = await payment_state(client, booking["id"])
    assert (state.deposit_state, state.deposit_captured) == ("captured", 1_200_00)
    assert state.paid == booking["quote"]["total_due"]  # the deposit is never revenue


async def test_a_released_deposit_cancels_the_hold_at_localstripe(client: Any, auth: Any) -> None:
    car = await make_item(client, auth)
    customer = auth("customer", uuid4())
    start = datetime.now(UTC) + timedelta(days=3)
    booking = await hold(client, customer, car, start, start + timedelta(days=1))
    await _paid_and_confirmed(client, customer, booking)

    async def authorised() -> bool:
        return (await payment_state(client, booking["id"])).deposit_state == "authorised"

    await wait_until(authorised, timeout=15)
    reference = (await payment_state(client, booking["id"])).deposit_reference
    released = await client.post(f"/api/v1/bookings/{booking['id']}/deposit/release",
                                 headers=auth("concierge"))
    assert released.status == 200, await released.text()
    assert stripe_get(_api_base(client), f"/v1/payment_intents/{reference}")["status"] == (
        "canceled")
    assert (await payment_state(client, booking["id"])).deposit_state == "released"
    again = await client.post(f"/api/v1/bookings/{booking['id']}/deposit/release",
                              headers=auth("concierge"))
    assert again.status == 409


def test_localstripe_keeps_its_objects_across_a_restart_in_its_state_file(
    tmp_path: Path
) -> None:
    import urllib.request

    from midas.payment_providers.local_stripe import LOCAL_KEY, start_local_stripe

    state = tmp_path / "stripe" / "localstripe.pickle"
    first = start_local_stripe(state)
    try:
        request = urllib.request.Request(
            f"{first.url}/v1/payment_intents", data=b"amount=4200&currency=usd",
            headers={"Authorization": f"Bearer {LOCAL_KEY}"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            intent = json.loads(answer.read())["id"]
    finally:
        first.stop()
    assert first.process.returncode == 0 and state.exists()
    second = start_local_stripe(state)
    try:
        assert stripe_get(second.url, f"/v1/payment_intents/{intent}")["amount"] == 4200
    finally:
        second.stop()
    memory_only = start_local_stripe(None)
    memory_only.stop()
    assert sorted(p.name for p in state.parent.iterdir()) == ["localstripe.pickle"]


async def test_an_overspent_apa_is_charged_on_the_card_that_paid_the_charter(
    client: Any, auth: Any
) -> None:
    admin, customer = auth("admin"), auth("customer", uuid4())
    yacht = await make_item(client, auth, {"name": "Riva", "category": "yacht",
                                           "location": "US-FL", "rate": 100_000})
    start = datetime.now(UTC) + timedelta(days=30)
    held = await client.post("/api/v1/bookings", headers=customer, json={
        "item_id": yacht, "start": start.isoformat(),
        "end": (start + timedelta(days=2)).isoformat(), "extras": [{"code": "apa"}]})
    assert held.status == 201, await held.text()
    booking = await held.json()
    await _paid_and_confirmed(client, customer, booking)
    for step in ("check-out", "check-in"):
        moved = await client.post(f"/api/v1/bookings/{booking['id']}/{step}", headers=admin)
        assert moved.status == 200, await moved.text()
    collected = booking["quote"]["pass_through"]
    settled = await client.post(f"/api/v1/bookings/{booking['id']}/apa-statement",
                                headers=admin, json={"spent": collected + 25_000})
    assert settled.status == 200, await settled.text()
    assert (await settled.json())["top_up"] == 25_000

    async def paid() -> bool:
        b = await client.server.app[REPOSITORY].get(UUID(booking["id"]), cls=Booking)
        return bool(b.apa) and b.apa.get("top_up_paid") == 25_000

    await wait_until(paid, timeout=15)  # asked, charged off-session, its webhook recorded
    state = await payment_state(client, booking["id"])
    top_up = next(ref for ref, asked in state.asked.items()
                  if asked["purpose"] == "apa_top_up")
    intent = stripe_get(_api_base(client), f"/v1/payment_intents/{top_up}")
    assert (intent["status"], intent["amount"], intent["metadata"]["kind"]) == (
        "succeeded", 25_000, "apa_top_up")
    assert state.paid == booking["quote"]["total_due"] + 25_000
