"""The booking rules as admins set them, over HTTP: the defaults until an admin changes a
rule, each change an event naming the actor, bounds refused naming the field, and every
command reading the rules in force when it runs while what a booking was given stays."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import orjson
import pytest

from midas.http.keys import DATABASE, SCHEDULER
from midas.scheduler import ManualClock
from tests.e2e.test_points_payment import _customer, _redeem
from tests.support.fake_stripe import (
    CAR,
    booking_status,
    count,
    hold,
    make_item,
    paid_yacht,
    pay_and_confirm,
    wait_until,
)

NOW = datetime.fromisoformat("2026-11-01T12:00:00+00:00")
DEFAULTS = {
    "change_notice_hours": 72,
    "payment_schedules": {
        "car": {"first_share": "1", "balance_days_before": None},
        "jet": {"first_share": "1", "balance_days_before": None},
        "yacht": {"first_share": "0.50", "balance_days_before": 30},
        "property": {"first_share": "0.30", "balance_days_before": 45}},
    "collection": {"reminder_days": 7, "alert_after_hours": 72, "grace_days": 5},
    "points": {"points_per_unit": 100, "max_share": "0.20"},
}


@pytest.fixture
async def client(payment_services: Any) -> Any:
    return await payment_services()


async def _rules(client: Any, auth: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/booking-rules", headers=auth("admin"))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def _put(client: Any, auth: Any, path: str, body: dict[str, Any]) -> Any:
    return await client.put(f"/api/v1/booking-rules/{path}", json=body, headers=auth("admin"))


async def _fields(response: Any) -> set[str]:
    assert response.status == 422, await response.text()
    assert response.content_type == "application/problem+json"
    return {e["field"] for e in (await response.json())["errors"]}


async def _instalments(client: Any, booking: str, headers: dict[str, str]) -> list[Any]:
    response = await client.get(f"/api/v1/bookings/{booking}/payments", headers=headers)
    if response.status != 200:
        return []
    return [(i["number"], i["amount"], i["state"], i["due_at"])
            for i in (await response.json())["instalments"]]


async def _due_tasks(client: Any, booking: str) -> dict[str, datetime]:
    async with client.server.app[DATABASE].acquire() as conn:
        rows = await conn.fetch("SELECT kind, due_at FROM due_tasks WHERE aggregate_id = $1"
                                " AND kind LIKE 'instalment%'", booking)
    return {r["kind"]: r["due_at"] for r in rows}


def _z(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


async def test_the_defaults_are_in_force_until_admins_change_them_and_only_admins_may(
    client: Any, auth: Any
) -> None:
    assert await _rules(client, auth) == {**DEFAULTS, "version": 0}
    for role in ("concierge", "customer", "auditor"):
        assert (await client.get("/api/v1/booking-rules", headers=auth(role))).status == 403
        refused = await client.put("/api/v1/booking-rules/change-notice", json={"hours": 1},
                                   headers=auth(role))
        assert refused.status == 403
    assert (await client.get("/api/v1/booking-rules")).status == 401

    admin = uuid4()
    set_notice = await client.put("/api/v1/booking-rules/change-notice", json={"hours": 24},
                                  headers=auth("admin", admin))
    assert set_notice.status == 200, await set_notice.text()
    rules = await _rules(client, auth)
    assert rules["change_notice_hours"] == 24
    assert rules["version"] == 2  # the defaults recorded first, then the change
    # Setting a rule to what it is records nothing.
    assert (await _put(client, auth, "change-notice", {"hours": 24})).status == 200
    assert (await _rules(client, auth))["version"] == 2
    async with client.server.app[DATABASE].acquire() as conn:
        rows = await conn.fetch("SELECT type, data FROM events"
                                " WHERE type LIKE 'BookingRules.%' ORDER BY position")
    assert [r["type"] for r in rows] == ["BookingRules.Started",
                                         "BookingRules.ChangeNoticeSet"]
    started = orjson.loads(rows[0]["data"])["rules"]
    assert started == DEFAULTS
    assert orjson.loads(rows[1]["data"])["hours"] == 24
    # The audit log names the admin who changed the rule.
    audit = await client.get("/api/v1/audit/events", headers=auth("auditor"), params={
        "type": "BookingRules.ChangeNoticeSet", "actor": str(admin)})
    assert audit.status == 200, await audit.text()
    [logged] = (await audit.json())["events"]
    assert logged["data"]["hours"] == 24
    assert (logged["metadata"]["actor"], logged["metadata"]["actor_role"]) == (
        str(admin), "admin")


async def test_rules_out_of_bounds_are_refused_naming_the_field(client: Any, auth: Any) -> None:
    assert await _fields(await _put(client, auth, "change-notice", {"hours": -1})) == {
        "body.hours"}
    assert await _fields(await _put(client, auth, "payment-schedules/yacht", {
        "first_share": "1.5", "balance_days_before": 0})) == {
        "body.first_share", "body.balance_days_before"}
    assert await _fields(await _put(client, auth, "payment-schedules/yacht", {
        "first_share": "1", "balance_days_before": 30})) == {"body.balance_days_before"}
    assert await _fields(await _put(client, auth, "payment-schedules/property", {
        "first_share": "0.30", "balance_days_before": None})) == {"body.balance_days_before"}
    assert await _fields(await _put(client, auth, "collection", {
        "reminder_days": 7, "alert_after_hours": 72, "grace_days": 1})) == {
        "body.alert_after_hours"}
    assert await _fields(await _put(client, auth, "collection", {
        "reminder_days": 7, "alert_after_hours": 72})) == {"body.grace_days"}
    assert await _fields(await _put(client, auth, "points", {
        "points_per_unit": 0, "max_share": "NaN"})) == {
        "body.points_per_unit", "body.max_share"}
    unknown = await _put(client, auth, "payment-schedules/submarine", {
        "first_share": "1", "balance_days_before": None})
    assert unknown.status == 404
    assert await _rules(client, auth) == {**DEFAULTS, "version": 0}  # nothing recorded


async def test_a_schedule_is_planned_by_the_rules_in_force_and_keeps_them_when_they_change(
    client: Any, auth: Any, booking_clock: ManualClock
) -> None:
    schedule = await _put(client, auth, "payment-schedules/yacht",
                          {"first_share": "0.40", "balance_days_before": 60})
    assert schedule.status == 200, await schedule.text()
    collection = await _put(client, auth, "collection",
                            {"reminder_days": 3, "alert_after_hours": 24, "grace_days": 2})
    assert collection.status == 200, await collection.text()
    start = NOW + timedelta(days=90)
    booking, customer, first = await paid_yacht(client, auth, start)
    total = booking["quote"]["total_due"]
    assert first["amount"] == round(total * 0.4)
    due = start - timedelta(days=60)
    expected = [(1, first["amount"], "paid", _z(NOW)),
                (2, total - first["amount"], "planned", _z(due))]

    async def planned() -> bool:
        return await _instalments(client, booking["id"], customer) == expected

    await wait_until(planned)
    timers = {"instalment_remind": due - timedelta(days=3), "instalment_due": due,
              "instalment_overdue": due + timedelta(hours=24),
              "instalment_default": due + timedelta(days=2)}

    async def timed() -> bool:
        return await _due_tasks(client, booking["id"]) == timers

    await wait_until(timed)
    # Back to the defaults: a later booking pays by them; this one keeps what it was given.
    assert (await _put(client, auth, "payment-schedules/yacht",
                       {"first_share": "0.50", "balance_days_before": 30})).status == 200
    assert (await _put(client, auth, "collection",
                       {"reminder_days": 7, "alert_after_hours": 72, "grace_days": 5}
                       )).status == 200
    later, _, later_first = await paid_yacht(client, auth, start + timedelta(days=5))
    assert later_first["amount"] == later["quote"]["total_due"] // 2 + (
        later["quote"]["total_due"] % 2)
    assert await _instalments(client, booking["id"], customer) == expected
    assert await _due_tasks(client, booking["id"]) == timers
    # Its balance unpaid: the alert 24 h after the due date, the default after 2 days.
    booking_clock.set(due)
    await client.server.app[SCHEDULER].run_due()
    booking_clock.set(due + timedelta(hours=24))
    await client.server.app[SCHEDULER].run_due()
    assert await count(client, "PaymentSchedule.BalanceOverdue") == 1
    booking_clock.set(due + timedelta(days=2))
    await client.server.app[SCHEDULER].run_due()
    assert await booking_status(client, booking["id"]) == "cancelled"
    assert await booking_status(client, later["id"]) == "confirmed"


async def test_the_change_notice_and_the_points_rule_are_read_when_a_command_runs(
    client: Any, auth: Any, booking_clock: ManualClock
) -> None:
    car = await make_item(client, auth, CAR)
    customer = auth("customer", uuid4())
    start = NOW + timedelta(days=20)
    booking = await hold(client, customer, car, start, start + timedelta(days=2))
    await pay_and_confirm(client, customer, booking)
    booking_clock.set(start - timedelta(hours=48))
    change = {"end": (start + timedelta(days=3)).isoformat()}
    path = f"/api/v1/bookings/{booking['id']}/changes"
    assert (await client.post(path, json=change, headers=customer)).status == 403
    assert (await _put(client, auth, "change-notice", {"hours": 24})).status == 200
    assert (await client.post(path, json=change, headers=customer)).status == 200

    # Points: 10 points make $1 and pay at most half the rental.
    booking_clock.set(NOW)
    assert (await _put(client, auth, "points",
                       {"points_per_unit": 10, "max_share": "0.5"})).status == 200
    _, headers = await _customer(client, auth, 100_000)
    held = await hold(client, headers, car, start + timedelta(days=10),
                      start + timedelta(days=12))
    rental, total = held["quote"]["rental"], held["quote"]["total_due"]
    cap_points = rental // 2 // 10  # one point is ten cents
    assert (await _redeem(client, headers, held["id"], cap_points + 1)).status == 422
    redeemed = await _redeem(client, headers, held["id"], cap_points)
    assert redeemed.status == 200, await redeemed.text()
    body = await redeemed.json()
    assert (body["points_value"], body["amount_due"]) == (rental // 2, total - rental // 2)
