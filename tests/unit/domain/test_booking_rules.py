"""The booking rules aggregate: the defaults recorded first, each change an event, bounds
refused naming the field, and schedules planned by the rules given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from midas.domain.booking_rules import (
    DEFAULT_RULES,
    BookingRules,
    CollectionTerms,
    InvalidRule,
    Rules,
)
from midas.domain.schedule import PaymentSchedule, plan

START = datetime(2027, 6, 1, 12, tzinfo=UTC)
BOOKED = START - timedelta(days=90)


def _events(rules: BookingRules) -> list[str]:
    return [type(e).__name__ for e in rules.collect_events()]


def test_the_defaults_are_the_contract_and_survive_a_round_trip() -> None:
    assert DEFAULT_RULES.change_notice_hours == 72
    assert DEFAULT_RULES.collection == CollectionTerms(7, 72, 5)
    assert (DEFAULT_RULES.points.points_per_unit, DEFAULT_RULES.points.max_share) == (
        100, Decimal("0.20"))
    yacht, villa = DEFAULT_RULES.schedules["yacht"], DEFAULT_RULES.schedules["property"]
    assert (yacht.first_share, yacht.balance_days_before) == (Decimal("0.50"), 30)
    assert (villa.first_share, villa.balance_days_before) == (Decimal("0.30"), 45)
    assert DEFAULT_RULES.schedules["car"].balance_days_before is None
    assert Rules.of(DEFAULT_RULES.to_dict()) == DEFAULT_RULES
    assert BookingRules.start().rules == DEFAULT_RULES


def test_each_change_is_an_event_and_an_unchanged_value_records_nothing() -> None:
    rules = BookingRules.start()
    rules.set_change_notice(24)
    rules.set_change_notice(24)
    rules.set_payment_schedule("yacht", Decimal("0.40"), 60)
    rules.set_payment_schedule("car", Decimal("1"), None)  # as it is
    rules.set_collection(CollectionTerms(3, 24, 2))
    rules.set_points_payment(10, Decimal("0.5"))
    assert _events(rules) == ["Started", "ChangeNoticeSet", "PaymentScheduleSet",
                              "CollectionSet", "PointsPaymentSet"]
    now = rules.rules
    assert now.change_notice_hours == 24
    assert now.schedules["yacht"].first_share == Decimal("0.40")
    assert now.collection == CollectionTerms(3, 24, 2)
    assert now.points.points_per_unit == 10


@pytest.mark.parametrize(("change", "field"), [
    (lambda r: r.set_change_notice(-1), "hours"),
    (lambda r: r.set_change_notice(True), "hours"),
    (lambda r: r.set_payment_schedule("yacht", Decimal("0"), 30), "first_share"),
    (lambda r: r.set_payment_schedule("yacht", Decimal("1.01"), 30), "first_share"),
    (lambda r: r.set_payment_schedule("yacht", Decimal("NaN"), 30), "first_share"),
    (lambda r: r.set_payment_schedule("yacht", Decimal("1"), 30), "balance_days_before"),
    (lambda r: r.set_payment_schedule("yacht", Decimal("0.5"), None),
     "balance_days_before"),
    (lambda r: r.set_payment_schedule("yacht", Decimal("0.5"), 366), "balance_days_before"),
    (lambda r: r.set_collection(CollectionTerms(7, 200, 5)), "alert_after_hours"),
    (lambda r: r.set_collection(CollectionTerms(91, 72, 5)), "reminder_days"),
    (lambda r: r.set_points_payment(0, Decimal("0.2")), "points_per_unit"),
    (lambda r: r.set_points_payment(100, Decimal("-0.1")), "max_share"),
])
def test_a_rule_out_of_bounds_is_refused_naming_its_field(change: object, field: str) -> None:
    rules = BookingRules.start()
    rules.collect_events()
    with pytest.raises(InvalidRule) as refused:
        change(rules)  # type: ignore[operator]
    assert refused.value.field == field
    assert rules.collect_events() == []


def test_a_schedule_follows_the_rules_it_is_given() -> None:
    rules = BookingRules.start()
    rules.set_payment_schedule("yacht", Decimal("0.40"), 60)
    yacht = plan("yacht", 10_000, START, BOOKED, rules.rules.schedules)
    assert [(i["amount"], i["due_at"]) for i in yacht] == [
        (4_000, BOOKED.isoformat()), (6_000, (START - timedelta(days=60)).isoformat())]
    inside = plan("yacht", 10_000, START, START - timedelta(days=59), rules.rules.schedules)
    assert [i["amount"] for i in inside] == [10_000]
    assert [i["amount"] for i in plan("car", 10_000, START, BOOKED,
                                      DEFAULT_RULES.schedules)] == [10_000]


def test_a_schedule_keeps_the_terms_it_was_planned_with() -> None:
    planned = PaymentSchedule(booking_id="b", customer_id="c", currency="USD",
                              instalments=plan("yacht", 10_000, START, BOOKED,
                                               DEFAULT_RULES.schedules),
                              at=BOOKED.isoformat(), terms=CollectionTerms(3, 24, 2).to_dict())
    assert planned.terms == CollectionTerms(3, 24, 2)
    planned.move_due(2, START - timedelta(days=20), "staff")
    moved = planned.collect_events()[-1]
    assert moved.terms == {"reminder_days": 3, "alert_after_hours": 24,  # type: ignore[attr-defined]
                           "grace_days": 2}
    older = PaymentSchedule(booking_id="b", customer_id="c", currency="USD",
                            instalments=[], at=BOOKED.isoformat())
    assert older.terms == CollectionTerms()  # planned before terms were recorded
