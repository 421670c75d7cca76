"""Loyalty points as payment: 100 points = $1 for at most 20 % of the rental, reserved at
the hold, spent at confirmation, given back when the hold expires and in proportion to the
refund on cancellation; a balance never goes negative, even under concurrent redemptions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from midas.domain.accounts import Account
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
    wait_until,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
START = NOW + timedelta(days=10)
CAR = {"name": "Fiat 500", "category": "car", "location": "US-CA", "rate": 10_000}


@pytest.fixture
async def client(payment_services: Any) -> Any:
    return await payment_services()


async def _customer(client: Any, auth: Any, points: int) -> tuple[UUID, dict[str, str]]:
    """A customer account holding `points` (earned on an earlier booking)."""
    repo = client.server.app[REPOSITORY]
    account = Account.register(email="loyal@example.com", name="Loyal Client",
                               consent_version="v1", consent_at=NOW)
    account.award_points(str(uuid4()), points, {"standard": "1.0"})
    await repo.save(account, metadata={"actor": "test"})
    return account.id, auth("customer", account.id)


async def _balance(client: Any, customer: UUID) -> int:
    account = await client.server.app[REPOSITORY].get(customer, cls=Account)
    return int(account.points)


async def _task(client: Any, task_id: str) -> bool:
    async with client.server.app[DATABASE].acquire() as conn:
        return bool(await conn.fetchval("SELECT 1 FROM due_tasks WHERE id = $1", task_id))


async def _redeem(client: Any, headers: dict[str, str], booking: str, points: int) -> Any:
    return await client.post(f"/api/v1/bookings/{booking}/points", headers=headers,
                             json={"points": points})


async def _profile_balance(client: Any, customer: UUID, headers: dict[str, str],
                           expected: int) -> bool:
    response = await client.get(f"/api/v1/customers/{customer}/points", headers=headers)
    return response.status == 200 and (await response.json())["balance"] == expected


async def test_points_pay_up_to_a_fifth_of_the_rental_and_are_spent_at_confirmation(
    client: Any, auth: Any, fake_stripe: Any
) -> None:
    customer, headers = await _customer(client, auth, 10_000)
    car = await make_item(client, auth, CAR)
    booking = await hold(client, headers, car, START, START + timedelta(days=2))
    rental, total = booking["quote"]["rental"], booking["quote"]["total_due"]
    cap = rental // 5  # USD: one point is one cent
    assert cap == 4_000
    refused = await _redeem(client, headers, booking["id"], cap + 1)
    assert refused.status == 422
    assert refused.content_type == "application/problem+json"
    zero = await _redeem(client, headers, booking["id"], 0)
    assert zero.status == 422 and "points" in await zero.text()
    other = await _redeem(client, auth("customer"), booking["id"], 100)
    assert other.status == 404  # not hers
    redeemed = await _redeem(client, headers, booking["id"], cap)
    assert redeemed.status == 200, await redeemed.text()
    body = await redeemed.json()
    assert (body["points"], body["points_value"], body["amount_due"]) == (cap, cap, total - cap)
    assert await _balance(client, customer) == 10_000 - cap  # reserved: out of the balance
    again = await _redeem(client, headers, booking["id"], 1)
    assert again.status == 422  # chosen once
    # The card pays what is left; confirmation spends the reserved points.
    payment = await pay(client, headers, booking["id"])
    assert payment.status == 201
    paid = await payment.json()
    assert paid["amount"] == total - cap
    assert fake_stripe.intents[paid["payment_intent"]]["amount"] == total - cap
    after_intent = await _redeem(client, auth("admin"), booking["id"], 1)
    assert after_intent.status in (409, 422)
    await deliver(client, intent_event("payment_intent.succeeded", paid["payment_intent"],
                                       total - cap, booking["id"]))

    async def spent() -> bool:
        return await count(client, "Account.PointsSpent") == 1

    await wait_until(spent)
    assert await booking_status(client, booking["id"]) == "confirmed"
    assert await _balance(client, customer) == 6_000
    await wait_until(lambda: _profile_balance(client, customer, headers, 6_000))

    async def history() -> list[tuple[str, int, int]]:
        answer = await client.get(f"/api/v1/customers/{customer}/points", headers=headers)
        return [(h["kind"], h["points"], h["balance"]) for h in (await answer.json())["history"]]

    async def three_entries() -> bool:
        return len(await history()) == 3

    await wait_until(three_entries)
    assert await history() == [("awarded", 10_000, 10_000), ("reserved", -4_000, 6_000),
                               ("spent", 0, 6_000)]


async def test_points_return_when_the_hold_expires(
    client: Any, auth: Any, booking_clock: ManualClock
) -> None:
    customer, headers = await _customer(client, auth, 3_000)
    car = await make_item(client, auth, CAR)
    booking = await hold(client, headers, car, START, START + timedelta(days=2))
    assert (await _redeem(client, headers, booking["id"], 3_000)).status == 200
    assert await _balance(client, customer) == 0  # zero, never below
    await wait_until(lambda: _task(client, f"expire_hold:{booking['id']}"))
    booking_clock.advance(timedelta(minutes=31))
    await client.server.app[SCHEDULER].run_due()
    assert await booking_status(client, booking["id"]) == "expired"

    async def back() -> bool:
        return await _balance(client, customer) == 3_000

    await wait_until(back)
    await wait_until(lambda: _profile_balance(client, customer, headers, 3_000))


async def test_points_return_in_proportion_to_the_cancellation_refund(
    client: Any, auth: Any, booking_clock: ManualClock
) -> None:
    customer, headers = await _customer(client, auth, 10_000)
    car = await make_item(client, auth, CAR)
    booking = await hold(client, headers, car, START, START + timedelta(days=2))
    assert (await _redeem(client, headers, booking["id"], 4_000)).status == 200
    paid = await (await pay(client, headers, booking["id"])).json()
    await deliver(client, intent_event("payment_intent.succeeded", paid["payment_intent"],
                                       paid["amount"], booking["id"]))

    async def spent() -> bool:
        return await count(client, "Account.PointsSpent") == 1

    await wait_until(spent)
    booking_clock.set(START - timedelta(hours=36))  # a car 24-48 h ahead: 50 %
    cancel = await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=headers,
                               json={})
    assert cancel.status == 200, await cancel.text()
    assert (await cancel.json())["refund_percentage"] in ("50", "50.0", "50.00")

    async def half_back() -> bool:
        return await _balance(client, customer) == 6_000 + 2_000

    await wait_until(half_back)
    assert await count(client, "Account.PointsReturned") == 1


async def test_two_concurrent_redemptions_beyond_the_balance_one_is_refused(
    payment_services: Any, auth: Any
) -> None:
    first, second = await payment_services(), await payment_services()  # two processes
    customer, headers = await _customer(first, auth, 5_000)
    car = await make_item(first, auth, CAR)
    other_car = await make_item(first, auth, CAR)
    a = await hold(first, headers, car, START, START + timedelta(days=2))
    b = await hold(first, headers, other_car, START, START + timedelta(days=2))
    answers = await asyncio.gather(_redeem(first, headers, a["id"], 3_000),
                                   _redeem(second, headers, b["id"], 3_000))
    assert sorted(r.status for r in answers) == [200, 409]
    refused = next(r for r in answers if r.status == 409)
    assert refused.content_type == "application/problem+json"
    assert "balance" in (await refused.json())["detail"]
    assert await _balance(first, customer) == 2_000
    assert await count(first, "Account.PointsReserved") == 1
    assert await count(first, "Booking.PointsRedeemed") == 1


async def test_points_at_a_change_return_if_it_lapses_and_are_spent_when_it_is_paid(
    client: Any, auth: Any, fake_stripe: Any, booking_clock: ManualClock
) -> None:
    customer, headers = await _customer(client, auth, 10_000)
    car = await make_item(client, auth, CAR)
    booking = await hold(client, headers, car, START, START + timedelta(days=2))
    await pay_and_confirm(client, headers, booking)
    path = f"/api/v1/bookings/{booking['id']}/changes"
    longer = {"end": (START + timedelta(days=3)).isoformat(), "apply": True}
    # The new rental is 30,000: points may pay 6,000 of it, and never all the difference.
    too_many = await client.post(path, headers=headers, json={**longer, "points": 6_001})
    assert too_many.status == 422
    first = await client.post(path, headers=headers, json={**longer, "points": 2_000})
    assert first.status == 202, await first.text()
    body = await first.json()
    assert body["to_pay"] == body["difference"] - 2_000 and body["points_value"] == 2_000
    assert fake_stripe.intents[body["payment"]["payment_intent"]]["amount"] == body["to_pay"]
    assert await _balance(client, customer) == 8_000
    await wait_until(lambda: _task(client, f"change_lapse:{booking['id']}:1"))
    booking_clock.advance(timedelta(minutes=31))
    await client.server.app[SCHEDULER].run_due()

    async def returned() -> bool:
        return await _balance(client, customer) == 10_000

    await wait_until(returned)
    second = await client.post(path, headers=headers, json={**longer, "points": 1_500})
    assert second.status == 202, await second.text()
    body = await second.json()
    await deliver(client, intent_event("payment_intent.succeeded",
                                       body["payment"]["payment_intent"], body["to_pay"],
                                       booking["id"]))

    async def spent() -> bool:
        return await count(client, "Account.PointsSpent") == 1

    await wait_until(spent)
    assert await _balance(client, customer) == 8_500
    await wait_until(lambda: _profile_balance(client, customer, headers, 8_500))
