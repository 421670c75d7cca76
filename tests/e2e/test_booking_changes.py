"""Changes to a booking over HTTP: priced beside the current terms, applied atomically on
the item, an increase paid through its own PaymentIntent or lapsing back to exactly what
the booking was, a decrease refunded by the cancellation table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from midas.domain.bookings import Booking
from midas.http.keys import DATABASE, REPOSITORY, SCHEDULER
from midas.scheduler import ManualClock
from tests.support.fake_stripe import (
    CAR,
    booking_status,
    caught_up,
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
YACHT = {"name": "Lady Aurora", "category": "yacht", "location": "US-FL", "rate": 500_000}


@pytest.fixture
async def client(payment_services: Any) -> Any:
    return await payment_services()


async def _confirmed(client: Any, auth: Any, item: str, start: datetime, end: datetime
                     ) -> tuple[dict[str, Any], dict[str, str]]:
    customer = auth("customer", uuid4())
    booking = await hold(client, customer, item, start, end)
    await pay_and_confirm(client, customer, booking)
    return booking, customer


async def _booking(client: Any, booking: str) -> Booking:
    return await client.server.app[REPOSITORY].get(UUID(booking), cls=Booking)


async def _task(client: Any, task: str) -> bool:
    async with client.server.app[DATABASE].acquire() as conn:
        return bool(await conn.fetchval("SELECT 1 FROM due_tasks WHERE id = $1", task))


async def test_a_proposal_prices_the_change_beside_the_current_terms_and_records_nothing(
    client: Any, auth: Any
) -> None:
    car = await make_item(client, auth, CAR)
    customer = auth("customer", uuid4())
    booking = await hold(client, customer, car, START, START + timedelta(days=2))
    before = await count(client, "Booking.Changed")
    response = await change_booking(client, customer, booking["id"], end=START + timedelta(days=3))
    assert response.status == 200, await response.text()
    body = await response.json()
    old = booking["quote"]["total_due"]
    assert body["current"]["quote"]["total_due"] == old
    assert body["proposed"]["end"] == (START + timedelta(days=3)).isoformat()
    assert body["difference"] == body["proposed"]["quote"]["total_due"] - old > 0
    assert len(body["lines"]["proposed"]) == len(body["lines"]["current"]) + 1
    assert body["applicable"] is True and body["reasons"] == []
    assert await count(client, "Booking.Changed") == before  # a proposal only
    # Nothing proposed, or an end before the start: 422 naming the field.
    empty = await change_booking(client, customer, booking["id"])
    assert empty.status == 422 and empty.content_type == "application/problem+json"
    backwards = await change_booking(client, customer, booking["id"],
                                     end=START - timedelta(hours=1))
    assert backwards.status == 422 and "body.end" in await backwards.text()
    assert (await change_booking(client, auth("customer"), booking["id"],
                                  end=START + timedelta(days=3))).status == 404


async def test_a_held_booking_changes_at_once_and_pays_the_new_total(
    client: Any, auth: Any
) -> None:
    car = await make_item(client, auth, CAR)
    other = await make_item(client, auth, {**CAR, "name": "Other car", "rate": 200_000})
    customer = auth("customer", uuid4())
    booking = await hold(client, customer, car, START, START + timedelta(days=2))
    moved = await change_booking(client, customer, booking["id"], item_id=other,
                                  service_level="premium", apply=True)
    assert moved.status == 200, await moved.text()
    body = await moved.json()
    assert body["state"] == "applied" and body["number"] == 1
    b = await _booking(client, booking["id"])
    assert (b.item_id, b.service_level) == (other, "premium")
    assert b.total_due == body["proposed"]["quote"]["total_due"]
    # The first car is free again, the second taken: a competitor gets the first.
    rival = auth("customer", uuid4())
    assert (await client.post("/api/v1/bookings", headers=rival, json={
        "item_id": car, "start": START.isoformat(),
        "end": (START + timedelta(days=2)).isoformat()})).status == 201
    assert (await client.post("/api/v1/bookings", headers=rival, json={
        "item_id": other, "start": START.isoformat(),
        "end": (START + timedelta(days=2)).isoformat()})).status == 409


async def test_extending_into_a_window_another_client_races_for_exactly_one_wins(
    payment_services: Any, auth: Any
) -> None:
    first, second = await payment_services(), await payment_services()  # two processes
    yacht = await make_item(first, auth, YACHT)
    a, a_headers = await _confirmed(first, auth, yacht, START, START + timedelta(days=2))
    b, b_headers = await _confirmed(first, auth, yacht, START + timedelta(days=5),
                                    START + timedelta(days=7))
    before = {x: (await _booking(first, x)).terms() for x in (a["id"], b["id"])}
    # A extends to day 4; B moves its start to day 4: the two windows overlap.
    answers = await asyncio.gather(
        change_booking(first, a_headers, a["id"], end=START + timedelta(days=4), apply=True),
        change_booking(second, b_headers, b["id"], start=START + timedelta(days=4), apply=True))
    statuses = [r.status for r in answers]
    assert sorted(statuses) == [202, 409], [await r.text() for r in answers]
    loser = (a, b)[statuses.index(409)]
    winner = (a, b)[statuses.index(202)]
    refused = await answers[statuses.index(409)].json()
    assert refused["conflicts"] and {"start", "end"} <= set(refused["conflicts"][0])
    lost = await _booking(first, loser["id"])
    assert lost.terms() == before[loser["id"]] and lost.pending_change is None
    assert lost.state == "confirmed"
    won = await _booking(first, winner["id"])
    assert won.pending_change is not None and won.terms() == before[winner["id"]]


async def _read_models(client: Any, booking: str, item: str, headers: dict[str, str]
                       ) -> dict[str, Any]:
    staff = {"Authorization": headers["Authorization"]}
    detail = await (await client.get(f"/api/v1/bookings/{booking}", headers=staff)).json()
    payments = await (await client.get(f"/api/v1/bookings/{booking}/payments",
                                       headers=staff)).json()
    calendar = await (await client.get(f"/api/v1/items/{item}/calendar", headers=staff, params={
        "from": NOW.isoformat(), "to": (START + timedelta(days=30)).isoformat()})).json()
    async with client.server.app[DATABASE].acquire() as conn:
        tasks = sorted(r["id"] for r in await conn.fetch(
            "SELECT id FROM due_tasks WHERE aggregate_id = $1", UUID(booking)))
    return {"detail": detail, "payments": payments, "calendar": calendar, "tasks": tasks}


async def test_an_unpaid_change_lapses_and_every_read_model_is_as_before(
    client: Any, auth: Any, fake_stripe: Any, booking_clock: ManualClock
) -> None:
    yacht = await make_item(client, auth, YACHT)
    booking, customer = await _confirmed(client, auth, yacht, START, START + timedelta(days=2))
    admin = auth("admin")
    await wait_until(lambda: _task(client, f"check_out:{booking['id']}"))
    await caught_up(client)  # the confirmation applied by every read model, not only tasks
    before = await _read_models(client, booking["id"], yacht, admin)
    extend = await change_booking(client, customer, booking["id"], end=START + timedelta(days=3),
                                   apply=True)
    assert extend.status == 202, await extend.text()
    body = await extend.json()
    assert body["state"] == "awaiting_payment" and body["number"] == 1
    intent = body["payment"]["payment_intent"]
    assert fake_stripe.intents[intent]["amount"] == body["to_pay"] == body["difference"] > 0
    assert fake_stripe.keys("/v1/payment_intents")[-1] == f"booking:{booking['id']}:change:1:v1"
    # While it waits, the new window is held for the booking: nobody else can take it.
    rival = auth("customer", uuid4())
    taken = await client.post("/api/v1/bookings", headers=rival, json={
        "item_id": yacht, "start": (START + timedelta(days=2, hours=6)).isoformat(),
        "end": (START + timedelta(days=2, hours=12)).isoformat()})
    assert taken.status == 409
    again = await change_booking(client, customer, booking["id"], end=START + timedelta(days=4),
                                  apply=True)
    assert again.status == 409  # one change at a time
    await wait_until(lambda: _task(client, f"change_lapse:{booking['id']}:1"))
    booking_clock.advance(timedelta(minutes=31))
    await client.server.app[SCHEDULER].run_due()
    assert await count(client, "Booking.ChangeLapsed") == 1

    async def restored() -> bool:
        return await _read_models(client, booking["id"], yacht, admin) == before

    try:
        await wait_until(restored)
    except AssertionError:  # show what stayed different
        assert await _read_models(client, booking["id"], yacht, admin) == before
    b = await _booking(client, booking["id"])
    assert b.ends_at == START + timedelta(days=2) and b.pending_change is None
    # The window is free again; the late payment of the lapsed change is refunded in full.
    assert (await client.post("/api/v1/bookings", headers=rival, json={
        "item_id": yacht, "start": (START + timedelta(days=2, hours=6)).isoformat(),
        "end": (START + timedelta(days=2, hours=12)).isoformat()})).status == 201
    await deliver(client, intent_event("payment_intent.succeeded", intent, body["to_pay"],
                                       booking["id"]))

    async def refunded() -> bool:
        return (await payment_state(client, booking["id"])).refunded == body["to_pay"]

    await wait_until(refunded)
    assert (await _booking(client, booking["id"])).ends_at == START + timedelta(days=2)


async def test_a_paid_change_takes_effect_everywhere(
    client: Any, auth: Any, booking_clock: ManualClock
) -> None:
    yacht = await make_item(client, auth, YACHT)
    booking, customer = await _confirmed(client, auth, yacht, START, START + timedelta(days=2))
    extend = await change_booking(client, customer, booking["id"], end=START + timedelta(days=3),
                                   apply=True)
    body = await extend.json()
    paid_before = (await _booking(client, booking["id"])).amount_paid
    await deliver(client, intent_event("payment_intent.succeeded",
                                       body["payment"]["payment_intent"], body["to_pay"],
                                       booking["id"]))

    async def applied() -> bool:
        return await count(client, "Booking.Changed") == 1

    await wait_until(applied)
    b = await _booking(client, booking["id"])
    assert b.ends_at == START + timedelta(days=3) and b.pending_change is None
    assert b.amount_paid == paid_before + body["to_pay"]
    assert b.total_due == body["proposed"]["quote"]["total_due"]
    assert await booking_status(client, booking["id"]) == "confirmed"

    async def read_model() -> bool:
        r = await client.get(f"/api/v1/bookings/{booking['id']}", headers=customer)
        d = await r.json()
        if r.status != 200:  # a moment behind the log under load: 503, asked again
            return False
        return datetime.fromisoformat(d["ends_at"]) == START + timedelta(days=3) and (
            d["total_due"] == body["proposed"]["quote"]["total_due"])

    await wait_until(read_model)
    calendar = await (await client.get(f"/api/v1/items/{yacht}/calendar", headers=auth(
        "admin"), params={"from": NOW.isoformat(),
                          "to": (START + timedelta(days=30)).isoformat()})).json()
    assert [c["id"] for c in calendar["busy"]] == [booking["id"]]  # one occupation, moved
    assert calendar["busy"][0]["end"].startswith((START + timedelta(days=3, hours=4))
                                                 .isoformat()[:16])
    await wait_until(lambda: _task(client, f"check_out:{booking['id']}"))
    assert not await _task(client, f"change_lapse:{booking['id']}:1")
    # The customer is told the new dates and amounts; the calendar entry keeps its UID
    # and raises its SEQUENCE.
    async def emailed() -> bool:
        async with client.server.app[DATABASE].acquire() as conn:
            return await conn.fetchval(
                "SELECT context->>'end' FROM notif_outbox WHERE template = 'booking_changed'"
            ) == (START + timedelta(days=3)).isoformat()

    await wait_until(emailed)
    # Loyalty points will be counted on the changed rental + insurance.
    q = body["proposed"]["quote"]

    async def loyalty_base() -> bool:
        async with client.server.app[DATABASE].acquire() as conn:
            return await conn.fetchval("SELECT base FROM loy_bookings WHERE booking_id = $1",
                                       UUID(booking["id"])) == q["rental"] + q["insurance"]

    await wait_until(loyalty_base)
    async with client.server.app[DATABASE].acquire() as conn:
        entry = await conn.fetchrow("SELECT ends_at, sequence FROM cal_entries"
                                    " WHERE entry_id = $1", f"booking-{booking['id']}")
    assert entry["ends_at"] == START + timedelta(days=3) and entry["sequence"] >= 2


async def test_a_shorter_stay_refunds_the_part_given_up_by_the_table(
    client: Any, auth: Any, fake_stripe: Any
) -> None:
    car = await make_item(client, auth, CAR)
    booking, customer = await _confirmed(client, auth, car, START, START + timedelta(days=3))
    shorter = await change_booking(client, customer, booking["id"], end=START + timedelta(days=2),
                                    apply=True)
    assert shorter.status == 200, await shorter.text()
    body = await shorter.json()
    assert body["difference"] < 0
    assert body["refund"] == {"percentage": "100", "amount": -body["difference"]}

    async def refunded() -> bool:
        return (await payment_state(client, booking["id"])).refunded == -body["difference"]

    await wait_until(refunded)
    assert fake_stripe.keys("/v1/refunds") == [f"booking:{booking['id']}:refund:change:1:v1"]


async def test_who_may_change_and_what_an_active_booking_may_change(
    client: Any, auth: Any, booking_clock: ManualClock
) -> None:
    car = await make_item(client, auth, CAR)
    booking, customer = await _confirmed(client, auth, car, START, START + timedelta(days=2))
    booking_clock.set(START - timedelta(hours=71))  # inside the 72 h notice
    late = await change_booking(client, customer, booking["id"], end=START + timedelta(days=3),
                                 apply=True)
    assert late.status == 403 and late.content_type == "application/problem+json"
    booking_clock.set(START - timedelta(hours=72))  # exactly 72 h: still allowed to ask
    assert (await change_booking(client, customer, booking["id"],
                                  end=START + timedelta(days=3))).status == 200
    concierge = await change_booking(client, auth("concierge"), booking["id"],
                                      end=START + timedelta(days=3))
    assert concierge.status == 200
    booking_clock.set(START + timedelta(hours=1))
    assert (await client.post(f"/api/v1/bookings/{booking['id']}/check-out",
                              headers=auth("concierge"))).status == 200
    moved_start = await change_booking(client, auth("admin"), booking["id"],
                                        start=START + timedelta(hours=2))
    assert moved_start.status == 409  # active: only the end moves
    extend = await change_booking(client, customer, booking["id"], end=START + timedelta(days=3))
    assert extend.status == 200  # extending an active booking: always, if free
    assert (await extend.json())["applicable"] is True
    assert (await change_booking(client, auth("auditor"), booking["id"],
                                  end=START + timedelta(days=3))).status == 403


async def test_a_change_of_deposit_releases_the_hold_and_holds_the_new_amount(
    client: Any, auth: Any, fake_stripe: Any, booking_clock: ManualClock
) -> None:
    from tests.support.fake_stripe import JET

    jet = await make_item(client, auth, JET)
    yacht = await make_item(client, auth, YACHT)
    booking, _ = await _confirmed(client, auth, jet, START, START + timedelta(days=2))
    await wait_until(lambda: _task(client, f"deposit_authorise:{booking['id']}"))
    booking_clock.set(START - timedelta(days=6))
    await client.server.app[SCHEDULER].run_due()
    before = await payment_state(client, booking["id"])
    assert (before.deposit_state, before.deposit_amount) == ("authorised", 5_000_000)
    moved = await change_booking(client, auth("admin"), booking["id"], item_id=yacht, apply=True)
    assert moved.status == 200, await moved.text()

    async def held_again() -> bool:
        p = await payment_state(client, booking["id"])
        return (p.deposit_state, p.deposit_amount, p.deposit_authorisations) == (
            "authorised", 2_500_000, 2)

    await wait_until(held_again)
    holds = [i for i in fake_stripe.charges() if i["capture_method"] == "manual"]
    assert [(i["amount"], i["status"]) for i in holds] == [
        (5_000_000, "canceled"), (2_500_000, "requires_capture")]
    assert fake_stripe.keys("/v1/payment_intents")[-1] == (
        f"booking:{booking['id']}:deposit:auth:2:v1")
