"""Extras added or given up through a booking change: each its own line beside the old,
the extra's places taken in the change's atomic append (never overbooked by racers), held
while an increase awaits its payment and given back if it lapses, the difference paid or
refunded like any change."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest

from midas.domain.bookings import Booking
from midas.domain.extras import ExtraCapacity, capacity_id
from midas.eventstore import AggregateNotFound
from midas.http.keys import DATABASE, REPOSITORY, SCHEDULER
from midas.scheduler import ManualClock
from tests.support.fake_stripe import (
    CAR,
    change_booking,
    count,
    deliver,
    hold,
    intent_event,
    make_item,
    pay_and_confirm,
    payment_state,
    wait_until,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
START = NOW + timedelta(days=20)
VILLA = {"name": "Villa Amber", "category": "property", "location": "AE-DU", "rate": 500_000}


@pytest.fixture
async def client(payment_services: Any) -> Any:
    return await payment_services()


async def _booking(client: Any, booking: str) -> Booking:
    return await client.server.app[REPOSITORY].get(UUID(booking), cls=Booking)


async def _taken(client: Any, code: str, location: str) -> dict[str, list[str]]:
    """The extra's ledger at the location: day -> holders (the days with any)."""
    try:
        ledger = await client.server.app[REPOSITORY].get(capacity_id(code, location),
                                                         cls=ExtraCapacity)
    except AggregateNotFound:
        return {}
    return {day: ids for day, ids in ledger.taken.items() if ids}


async def _hold_with_chef(client: Any, headers: dict[str, str], villa: str,
                          start: datetime = START, nights: int = 3) -> Any:
    return await client.post("/api/v1/bookings", headers=headers, json={
        "item_id": villa, "start": start.isoformat(),
        "end": (start + timedelta(days=nights)).isoformat(), "extras": [{"code": "chef"}]})


async def test_an_extra_added_to_a_held_booking_is_its_own_line_and_takes_its_days(
    client: Any, auth: Any,
) -> None:
    car = await make_item(client, auth, CAR)
    customer = auth("customer", uuid4())
    booking = await hold(client, customer, car, START, START + timedelta(days=2))
    proposed = await change_booking(client, customer, booking["id"],
                                     extras=[{"code": "chauffeur"}, {"code": "airport_transfer"}])
    assert proposed.status == 200, await proposed.text()
    body = await proposed.json()
    assert body["extras"]["current"] == []
    assert [(e["code"], e["units"], e["amount"]) for e in body["extras"]["proposed"]] == [
        ("chauffeur", 2, 160_000), ("airport_transfer", 1, 35_000)]
    assert body["lines"]["proposed"] == body["lines"]["current"]  # the rental is as it was
    new = body["proposed"]["quote"]
    assert new["extras_total"] == 195_000 and new["rental"] == booking["quote"]["rental"]
    # Both extras are taxed like the rental: the tax grows by their share, once rounded.
    assert body["difference"] == new["total_due"] - booking["quote"]["total_due"] \
        == 195_000 + new["tax"] - booking["quote"]["tax"]
    assert await _taken(client, "chauffeur", "US-CA") == {}  # a proposal takes nothing

    applied = await change_booking(client, customer, booking["id"], apply=True,
                                    extras=[{"code": "chauffeur"}, {"code": "airport_transfer"}])
    assert applied.status == 200, await applied.text()
    assert (await applied.json())["state"] == "applied"
    b = await _booking(client, booking["id"])
    assert [e["code"] for e in b.quote["extras"]] == ["chauffeur", "airport_transfer"]
    assert b.total_due == new["total_due"]
    days = [(START + timedelta(days=n)).date().isoformat() for n in range(2)]
    assert await _taken(client, "chauffeur", "US-CA") == {d: [booking["id"]] for d in days}

    # New dates keep the extras, priced again and their days moved in the same append.
    later = START + timedelta(days=5)
    moved = await change_booking(client, customer, booking["id"], start=later,
                                  end=later + timedelta(days=3), apply=True)
    assert moved.status == 200, await moved.text()
    assert [(e["code"], e["units"]) for e in (await moved.json())["extras"]["proposed"]] == [
        ("chauffeur", 3), ("airport_transfer", 1)]
    days = [(later + timedelta(days=n)).date().isoformat() for n in range(3)]
    assert await _taken(client, "chauffeur", "US-CA") == {d: [booking["id"]] for d in days}

    # Given up: the places are free again and the total drops by the extras.
    dropped = await change_booking(client, customer, booking["id"], extras=[], apply=True)
    assert dropped.status == 200, await dropped.text()
    assert (await dropped.json())["proposed"]["quote"]["extras_total"] == 0
    assert await _taken(client, "chauffeur", "US-CA") == {}
    assert (await _booking(client, booking["id"])).quote["extras"] == []


async def test_kept_extras_that_do_not_go_with_another_item_are_asked_for(
    client: Any, auth: Any,
) -> None:
    car = await make_item(client, auth, CAR)
    villa = await make_item(client, auth, VILLA)
    customer = auth("customer", uuid4())
    held = await client.post("/api/v1/bookings", headers=customer, json={
        "item_id": car, "start": START.isoformat(),
        "end": (START + timedelta(days=2)).isoformat(), "extras": [{"code": "chauffeur"}]})
    assert held.status == 201, await held.text()
    booking = await held.json()
    refused = await change_booking(client, customer, booking["id"], item_id=villa)
    assert refused.status == 422
    assert [e["field"] for e in (await refused.json())["errors"]] == ["body.extras"]
    unknown = await change_booking(client, customer, booking["id"], extras=[{"code": "nothing"}])
    assert unknown.status == 422
    assert [e["field"] for e in (await unknown.json())["errors"]] == ["body.extras.0.code"]
    swapped = await change_booking(client, customer, booking["id"], item_id=villa,
                                    extras=[{"code": "chef"}], apply=True)
    assert swapped.status == 200, await swapped.text()
    days = [(START + timedelta(days=n)).date().isoformat() for n in range(2)]
    assert await _taken(client, "chauffeur", "US-CA") == {}
    assert await _taken(client, "chef", "AE-DU") == {d: [booking["id"]] for d in days}


async def test_a_chef_added_to_a_paid_booking_is_held_until_paid_and_freed_if_it_lapses(
    client: Any, auth: Any, fake_stripe: Any, booking_clock: ManualClock,
) -> None:
    first, second = await make_item(client, auth, VILLA), await make_item(
        client, auth, {**VILLA, "name": "Villa Jade"})
    customer = auth("customer", uuid4())
    booking = await hold(client, customer, first, START, START + timedelta(days=3))
    await pay_and_confirm(client, customer, booking)
    added = await change_booking(client, customer, booking["id"], extras=[{"code": "chef"}],
                                  apply=True)
    assert added.status == 202, await added.text()
    body = await added.json()
    assert body["state"] == "awaiting_payment"
    assert [(e["code"], e["amount"]) for e in body["extras"]["proposed"]] == [
        ("chef", 360_000)]
    assert fake_stripe.intents[body["payment"]["payment_intent"]]["amount"] \
        == body["to_pay"] == body["difference"] > 360_000  # the chef and its tax
    # The chef's days are held for the change: a rival cannot take them meanwhile.
    rival = auth("customer", uuid4())
    refused = await _hold_with_chef(client, rival, second)
    assert refused.status == 409 and (await refused.json())["extra"] == "chef"
    assert (await _booking(client, booking["id"])).quote["extras"] == []  # not yet paid

    await wait_until(lambda: _task(client, f"change_lapse:{booking['id']}:1"))
    booking_clock.advance(timedelta(minutes=31))
    await client.server.app[SCHEDULER].run_due()
    assert await count(client, "Booking.ChangeLapsed") == 1
    assert await _taken(client, "chef", "AE-DU") == {}
    assert (await _hold_with_chef(client, rival, second)).status == 201


async def test_a_paid_change_adding_an_extra_takes_effect_and_giving_it_up_refunds(
    client: Any, auth: Any, fake_stripe: Any,
) -> None:
    villa = await make_item(client, auth, VILLA)
    customer = auth("customer", uuid4())
    booking = await hold(client, customer, villa, START, START + timedelta(days=3))
    await pay_and_confirm(client, customer, booking)
    body = await (await change_booking(client, customer, booking["id"], extras=[{"code": "chef"}],
                                        apply=True)).json()
    hold_id = f"{booking['id']}:change:1"
    days = [(START + timedelta(days=n)).date().isoformat() for n in range(3)]
    assert await _taken(client, "chef", "AE-DU") == {d: [hold_id] for d in days}
    await deliver(client, intent_event("payment_intent.succeeded",
                                       body["payment"]["payment_intent"], body["to_pay"],
                                       booking["id"]))

    async def applied() -> bool:
        return await count(client, "Booking.Changed") == 1

    await wait_until(applied)
    b = await _booking(client, booking["id"])
    assert [e["code"] for e in b.quote["extras"]] == ["chef"]
    assert b.amount_paid == booking["quote"]["total_due"] + body["to_pay"]
    assert await _taken(client, "chef", "AE-DU") == {d: [booking["id"]] for d in days}

    # Given up 20 days ahead: the table refunds it all, and the chef is free again.
    dropped = await change_booking(client, customer, booking["id"], extras=[], apply=True)
    assert dropped.status == 200, await dropped.text()
    given_up = await dropped.json()
    assert given_up["difference"] == -body["difference"]
    assert given_up["refund"] == {"percentage": "100", "amount": body["difference"]}
    assert await _taken(client, "chef", "AE-DU") == {}

    async def refunded() -> bool:
        return (await payment_state(client, booking["id"])).refunded == body["difference"]

    await wait_until(refunded)
    assert fake_stripe.keys("/v1/refunds") == [f"booking:{booking['id']}:refund:change:2:v1"]
    # Reports see the chef as extras, paid and refunded, not as rental.
    payment = await payment_state(client, booking["id"])
    assert payment.asked[body["payment"]["payment_intent"]]["parts"] == {
        "extras": 360_000, "pass_through": 0}
    async with client.server.app[DATABASE].acquire() as conn:
        parts = [orjson.loads(r["data"])["parts"] for r in await conn.fetch(
            "SELECT data FROM events WHERE stream_id = $1 AND type = ANY($2)"
            " ORDER BY version", payment.id, ["Payment.Succeeded", "Payment.Refunded"])]
    assert parts[1:] == [{"extras": 360_000, "pass_through": 0}] * 2


async def test_three_chauffeurs_a_day_the_fourth_change_is_refused_under_20_racers(
    client: Any, auth: Any,
) -> None:
    cars = [await make_item(client, auth, {**CAR, "name": f"Car {n}"}) for n in range(20)]
    start = NOW + timedelta(days=10)
    racers = []
    for car in cars:
        headers = auth("customer", uuid4())
        racers.append((headers, await hold(client, headers, car, start,
                                           start + timedelta(hours=8))))

    async def race(headers: dict[str, str], booking: dict[str, Any]) -> Any:
        return await change_booking(client, headers, booking["id"], extras=[{"code": "chauffeur"}],
                                     apply=True)

    answers = await asyncio.gather(*(race(h, b) for h, b in racers))
    statuses = sorted(a.status for a in answers)
    assert statuses == [200] * 3 + [409] * 17, statuses
    refused = [await a.json() for a in answers if a.status == 409]
    assert all(p["extra"] == "chauffeur" and p["day"] == "2026-11-11" for p in refused)
    won = {b["id"] for (_, b), a in zip(racers, answers, strict=True) if a.status == 200}
    taken = await _taken(client, "chauffeur", "US-CA")
    assert list(taken) == ["2026-11-11"] and sorted(taken["2026-11-11"]) == sorted(won)
    for _, b in racers:
        booked = await _booking(client, b["id"])
        assert bool(booked.quote["extras"]) == (b["id"] in won)
    # A proposal says so before applying.
    loser = next(r for r, a in zip(racers, answers, strict=True) if a.status == 409)
    proposal = await (await change_booking(client, loser[0], loser[1]["id"],
                                            extras=[{"code": "chauffeur"}])).json()
    assert proposal["applicable"] is False
    assert "chauffeur" in proposal["reasons"][0] and "2026-11-11" in proposal["reasons"][0]


async def _task(client: Any, task: str) -> bool:
    async with client.server.app[DATABASE].acquire() as conn:
        return bool(await conn.fetchval("SELECT 1 FROM due_tasks WHERE id = $1", task))


async def test_cancelling_a_booking_gives_back_the_places_its_pending_change_holds(
    client: Any, auth: Any,
) -> None:
    first, second = await make_item(client, auth, VILLA), await make_item(
        client, auth, {**VILLA, "name": "Villa Jade"})
    customer = auth("customer", uuid4())
    booking = await hold(client, customer, first, START, START + timedelta(days=3))
    await pay_and_confirm(client, customer, booking)
    added = await change_booking(client, customer, booking["id"], extras=[{"code": "chef"}],
                                  apply=True)
    assert added.status == 202, await added.text()
    rival = auth("customer", uuid4())
    assert (await _hold_with_chef(client, rival, second)).status == 409
    cancelled = await client.post(f"/api/v1/bookings/{booking['id']}/cancel", json={},
                                  headers=customer)
    assert cancelled.status == 200, await cancelled.text()
    assert await _taken(client, "chef", "AE-DU") == {}
    assert (await _hold_with_chef(client, rival, second)).status == 201
