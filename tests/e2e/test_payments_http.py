"""Payments end to end: paying a hold, retries after a crash, the rate limit, payments after
an expired hold, cancellation refunds and ownership of the payment views."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from midas.http.keys import DATABASE, REPOSITORY, SCHEDULER
from midas.scheduler import ManualClock
from tests.support.fake_stripe import (
    booking_status,
    count,
    deliver,
    hold,
    intent_event,
    make_item,
    pay,
    pay_and_confirm,
    payment_state,
    wait_until,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def client(payment_services: Any) -> Any:
    return await payment_services()


async def _is(client: Any, booking: str, state: str) -> bool:
    return await booking_status(client, booking) == state


async def test_paying_a_hold_returns_the_secret_only_to_the_customer(
    client: Any, auth: Any, fake_stripe: Any
) -> None:
    car = await make_item(client, auth)
    owner, other = auth("customer", uuid4()), auth("customer", uuid4())
    start = NOW + timedelta(days=10)
    booking = (await hold(client, owner, car, start, start + timedelta(days=2)))["id"]
    assert (await pay(client, other, booking)).status == 404
    response = await pay(client, owner, booking)
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["client_secret"].startswith(body["payment_intent"])
    assert fake_stripe.keys("/v1/payment_intents") == [f"booking:{booking}:charge:v1"]
    async with client.server.app[DATABASE].acquire() as conn:
        data = await conn.fetchval("SELECT data FROM events WHERE type = 'Payment.Requested'")
        logged = await conn.fetchval("SELECT count(*) FROM events WHERE data::text LIKE $1",
                                     "%secret%")
    assert json.loads(data)["reference"] == body["payment_intent"]
    assert logged == 0
    total = json.loads(data)["amount"]
    await deliver(client, intent_event("payment_intent.succeeded", body["payment_intent"],
                                       total, booking))
    await wait_until(lambda: _is(client, booking, "confirmed"))
    async with client.server.app[DATABASE].acquire() as conn:  # one story, one correlation
        succeeded, confirmed = [json.loads(m[0])["correlation_id"] for m in await conn.fetch(
            "SELECT metadata FROM events WHERE type = ANY($1::text[]) ORDER BY position",
            ["Payment.Succeeded", "Booking.Confirmed"])]
    assert confirmed == succeeded
    view = await client.get(f"/api/v1/bookings/{booking}/payments", headers=owner)
    assert view.status in (200, 404)
    await wait_until(lambda: _view_ok(client, booking, owner))
    assert (await client.get(f"/api/v1/bookings/{booking}/payments",
                             headers=other)).status == 404
    staff = await client.get(f"/api/v1/bookings/{booking}/payments", headers=auth("concierge"))
    assert staff.status == 200
    assert [p["type"] for p in (await staff.json())["payments"]] == [
        "Payment.Requested", "Payment.Succeeded"]
    # Paying a confirmed booking again is refused.
    assert (await pay(client, owner, booking)).status == 409


async def _view_ok(client: Any, booking: str, headers: dict[str, str]) -> bool:
    response = await client.get(f"/api/v1/bookings/{booking}/payments", headers=headers)
    return response.status == 200 and (await response.json())["balance"]["paid"] > 0


async def test_a_retry_after_a_crash_between_stripe_and_the_append_charges_once(
    client: Any, auth: Any, fake_stripe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    car = await make_item(client, auth)
    customer = auth("customer", uuid4())
    start = NOW + timedelta(days=10)
    booking = (await hold(client, customer, car, start, start + timedelta(days=2)))["id"]
    repo = client.server.app[REPOSITORY]
    original = repo.save
    crashes = []

    async def crash_once(*aggregates: Any, **kw: Any) -> Any:
        if not crashes:
            crashes.append(True)
            raise RuntimeError("simulated crash after the Stripe call")
        return await original(*aggregates, **kw)

    monkeypatch.setattr(repo, "save", crash_once)
    first = await pay(client, customer, booking)
    assert first.status == 500
    monkeypatch.setattr(repo, "save", original)
    second = await pay(client, customer, booking)
    assert second.status == 201, await second.text()
    key = f"booking:{booking}:charge:v1"
    assert fake_stripe.keys("/v1/payment_intents") == [key, key]
    assert len(fake_stripe.charges()) == 1
    assert await count(client, "Payment.Requested") == 1


async def test_payment_creation_is_limited_to_ten_a_minute_per_ip(
    client: Any, auth: Any
) -> None:
    customer = auth("customer")
    statuses = [(await pay(client, customer, str(uuid4()))).status for _ in range(10)]
    assert statuses == [404] * 10
    refused = await pay(client, customer, str(uuid4()))
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1


async def test_a_payment_after_the_hold_expired_and_the_item_was_taken_is_refunded(
    client: Any, auth: Any, fake_stripe: Any, booking_clock: ManualClock
) -> None:
    car = await make_item(client, auth)
    late, early = auth("customer", uuid4()), auth("customer", uuid4())
    start = NOW + timedelta(days=10)
    first = await hold(client, late, car, start, start + timedelta(days=2))
    intent = (await (await pay(client, late, first["id"])).json())["payment_intent"]
    booking_clock.advance(timedelta(minutes=31))
    await wait_until(lambda: _task_exists(client, f"expire_hold:{first['id']}"))
    await client.server.app[SCHEDULER].run_due()
    assert await booking_status(client, first["id"]) == "expired"
    second = await hold(client, early, car, start, start + timedelta(days=2))
    total = first["quote"]["total_due"]
    await deliver(client, intent_event("payment_intent.succeeded", intent, total, first["id"]))
    await wait_until(lambda: _refunded(client, first["id"], total))
    key = f"booking:{first['id']}:refund:unplaced:v1"
    assert fake_stripe.keys("/v1/refunds") == [key]
    assert [r["amount"] for r in fake_stripe.refunds.values()] == [total]
    assert await booking_status(client, first["id"]) == "expired"
    assert await booking_status(client, second["id"]) == "held"
    assert await count(client, "Item.Reserved") == 2  # never both at once
    async with client.server.app[DATABASE].acquire() as conn:
        await wait_until(lambda: _occupations(client, car, 1))
        assert await conn.fetchval("SELECT count(*) FROM events WHERE type = 'Item.Released'"
                                   ) == 1


async def _occupations(client: Any, item: str, expected: int) -> bool:
    async with client.server.app[DATABASE].acquire() as conn:
        found = await conn.fetchval(
            "SELECT count(*) FROM avail_occupations WHERE item_id = $1::uuid", item)
    return int(found) == expected


async def _task_exists(client: Any, task: str) -> bool:
    async with client.server.app[DATABASE].acquire() as conn:
        return bool(await conn.fetchval("SELECT 1 FROM due_tasks WHERE id = $1", task))


async def _refunded(client: Any, booking: str, amount: int) -> bool:
    return (await payment_state(client, booking)).refunded == amount


async def test_a_payment_after_the_hold_expired_with_the_item_free_confirms(
    client: Any, auth: Any, booking_clock: ManualClock, fake_stripe: Any
) -> None:
    car = await make_item(client, auth)
    customer = auth("customer", uuid4())
    start = NOW + timedelta(days=10)
    booking = await hold(client, customer, car, start, start + timedelta(days=2))
    intent = (await (await pay(client, customer, booking["id"])).json())["payment_intent"]
    booking_clock.advance(timedelta(minutes=45))
    await wait_until(lambda: _task_exists(client, f"expire_hold:{booking['id']}"))
    await client.server.app[SCHEDULER].run_due()
    assert await booking_status(client, booking["id"]) == "expired"
    await deliver(client, intent_event("payment_intent.succeeded", intent,
                                       booking["quote"]["total_due"], booking["id"]))
    await wait_until(lambda: _is(client, booking["id"], "confirmed"))
    assert await count(client, "Item.Reserved") == 2
    assert fake_stripe.keys("/v1/refunds") == []
    other = await client.post("/api/v1/bookings", headers=auth("customer"), json={
        "item_id": car, "start": start.isoformat(),
        "end": (start + timedelta(days=1)).isoformat()})
    assert other.status == 409  # the item is its again


async def test_cancelling_refunds_the_policy_amount_through_stripe_once(
    client: Any, auth: Any, fake_stripe: Any
) -> None:
    car = await make_item(client, auth)
    customer = auth("customer", uuid4())
    start = NOW + timedelta(days=10)
    booking = await hold(client, customer, car, start, start + timedelta(days=2))
    total = booking["quote"]["total_due"]
    await pay_and_confirm(client, customer, booking)
    cancel = await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=customer,
                               json={})
    assert cancel.status == 200, await cancel.text()
    assert (await cancel.json())["refund_amount"] == total  # >= 48 h before: 100 %
    await wait_until(lambda: _refunded(client, booking["id"], total))
    assert fake_stripe.keys("/v1/refunds") == [f"booking:{booking['id']}:refund:cancel:v1"]
    # Staff cannot refund more than what is left.
    more = await client.post(f"/api/v1/bookings/{booking['id']}/refunds",
                             headers=auth("admin"), json={"amount": 1, "reason": "goodwill"})
    assert more.status == 422
    await wait_until(lambda: _balance(client, booking["id"], customer, total))


async def _balance(client: Any, booking: str, headers: dict[str, str], refunded: int) -> bool:
    response = await client.get(f"/api/v1/bookings/{booking}/payments", headers=headers)
    if response.status != 200:
        return False
    balance = (await response.json())["balance"]
    return balance["refunded"] == refunded and balance["net"] == balance["paid"] - refunded


async def test_staff_partial_refunds(client: Any, auth: Any, fake_stripe: Any) -> None:
    car = await make_item(client, auth)
    customer = auth("customer", uuid4())
    start = NOW + timedelta(days=10)
    booking = await hold(client, customer, car, start, start + timedelta(days=2))
    await pay_and_confirm(client, customer, booking)
    path = f"/api/v1/bookings/{booking['id']}/refunds"
    assert (await client.post(path, headers=customer,
                              json={"amount": 100, "reason": "x"})).status == 403
    for amount in (10_000, 5_000):
        response = await client.post(path, headers=auth("admin"),
                                     json={"amount": amount, "reason": "late delivery"})
        assert response.status == 202, await response.text()
    await wait_until(lambda: _refunded(client, booking["id"], 15_000))
    assert fake_stripe.keys("/v1/refunds") == [
        f"booking:{booking['id']}:refund:staff:1:v1", f"booking:{booking['id']}:refund:staff:2:v1"]
    assert await booking_status(client, booking["id"]) == "confirmed"


async def test_a_refund_stripe_could_not_take_is_retried_with_the_same_key(
    client: Any, auth: Any, fake_stripe: Any, booking_clock: ManualClock
) -> None:
    car = await make_item(client, auth)
    customer = auth("customer", uuid4())
    start = NOW + timedelta(days=10)
    booking = await hold(client, customer, car, start, start + timedelta(days=2))
    await pay_and_confirm(client, customer, booking)
    fake_stripe.fail["/v1/refunds"] = 1  # Stripe is down for the first attempt
    response = await client.post(f"/api/v1/bookings/{booking['id']}/refunds",
                                 headers=auth("admin"), json={"amount": 20_000, "reason": "x"})
    assert response.status == 202
    key = f"booking:{booking['id']}:refund:staff:1:v1"
    await wait_until(lambda: _stripe_saw(fake_stripe, "/v1/refunds", 1))
    await wait_until(lambda: _task_exists(client, f"refund_retry:{booking['id']}:{key}"))
    assert (await payment_state(client, booking["id"])).refunded == 0
    assert await count(client, "Payment.RefundFailed") == 0
    booking_clock.advance(timedelta(minutes=5))
    await client.server.app[SCHEDULER].run_due()
    assert (await payment_state(client, booking["id"])).refunded == 20_000
    assert fake_stripe.keys("/v1/refunds") == [key, key]
    assert len(fake_stripe.refunds) == 1


async def _stripe_saw(fake: Any, fragment: str, n: int) -> bool:
    return len(fake.keys(fragment)) >= n


async def test_the_payment_rate_limit_is_shared_by_service_processes(
    payment_services: Any, auth: Any
) -> None:
    first, second = await payment_services(), await payment_services()
    customer = auth("customer")
    statuses = [(await pay(c, customer, str(uuid4()))).status
                for c in (first, second) * 5]
    assert statuses == [404] * 10
    assert (await pay(first, customer, str(uuid4()))).status == 429
    assert (await pay(second, customer, str(uuid4()))).status == 429


async def test_replaying_the_process_manager_doubles_nothing(
    client: Any, auth: Any, fake_stripe: Any
) -> None:
    car = await make_item(client, auth)
    customer = auth("customer", uuid4())
    start = NOW + timedelta(hours=36)  # a car 24-48 h ahead: 50 % back
    booking = await hold(client, customer, car, start, start + timedelta(days=2))
    total = booking["quote"]["total_due"]
    await pay_and_confirm(client, customer, booking)
    cancel = await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=customer,
                               json={})
    half = (await cancel.json())["refund_amount"]
    assert 0 < half < total
    await wait_until(lambda: _refunded(client, booking["id"], half))
    async with client.server.app[DATABASE].acquire() as conn:
        head = await conn.fetchval("SELECT max(position) FROM events")
        await conn.execute(
            "UPDATE projection_checkpoints SET position = 0 WHERE name = 'payments_process'")

    async def replayed() -> bool:
        async with client.server.app[DATABASE].acquire() as conn:
            return bool(await conn.fetchval(
                "SELECT position >= $1 FROM projection_checkpoints"
                " WHERE name = 'payments_process'", head))

    await wait_until(replayed)
    async with client.server.app[DATABASE].acquire() as conn:
        assert await conn.fetchval("SELECT max(position) FROM events") == head
    assert len(fake_stripe.refunds) == 1
    assert (await payment_state(client, booking["id"])).refunded == half
    assert await count(client, "Booking.Confirmed") == 1
