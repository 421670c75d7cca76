"""Booking aggregate: given events, when a command, then events (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from midas.domain.bookings import Booking
from midas.domain.catalogue import DEFAULT_CATALOGUE, Category, ServiceLevel
from midas.domain.errors import InvalidState
from midas.domain.lifecycle import InvalidTransition
from midas.domain.pricing import quote
from midas.domain.refunds import CancellationReason

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
START = NOW + timedelta(days=5)
H = timedelta(hours=1)


def given_hold(category: Category = Category.CAR, start: datetime = START) -> Booking:
    priced = quote(start, start + 24 * H, category=category, location_code="US-CA",
                   rate=100_000, service_level=ServiceLevel.STANDARD,
                   catalogue=DEFAULT_CATALOGUE)
    booking = Booking.hold(item_id=uuid4(), customer_id=uuid4(), quote=priced,
                           delivered_level=ServiceLevel.STANDARD, policy_version=0, at=NOW,
                           hold_expiry=DEFAULT_CATALOGUE.hold_expiry)
    booking.collect_events()
    return booking


def given_confirmed(**kw: object) -> Booking:
    booking = given_hold(**kw)  # type: ignore[arg-type]
    booking.confirm(NOW + H / 6)
    booking.collect_events()
    return booking


def then(booking: Booking) -> list[str]:
    return [type(e).__name__ for e in booking.collect_events()]


def test_a_hold_records_its_quote_and_deadline() -> None:
    priced = quote(START, START + 24 * H, category=Category.CAR, location_code="US-CA",
                   rate=100_000, service_level=ServiceLevel.VVIP, catalogue=DEFAULT_CATALOGUE)
    booking = Booking.hold(item_id=uuid4(), customer_id=uuid4(), quote=priced,
                           delivered_level=ServiceLevel.VVIP, policy_version=4, at=NOW,
                           hold_expiry=timedelta(minutes=30))
    [held] = booking.collect_events()
    assert type(held).__name__ == "Held"
    assert held.quote == priced.to_dict() and held.policy_version == 4
    assert held.hold_expires_at == (NOW + timedelta(minutes=30)).isoformat()
    assert booking.state == "held"


def test_confirm_within_the_hold() -> None:
    booking = given_hold()
    booking.confirm(NOW + timedelta(minutes=29, seconds=59))
    assert then(booking) == ["Confirmed"]
    assert booking.amount_paid == booking.total_due


def test_a_lapsed_hold_cannot_be_confirmed() -> None:
    booking = given_hold()
    with pytest.raises(InvalidTransition) as refused:
        booking.confirm(NOW + timedelta(minutes=30))
    assert refused.value.state == "expired"
    assert then(booking) == []


def test_expiry_only_at_the_deadline_and_only_once() -> None:
    booking = given_hold()
    assert booking.expire(NOW + timedelta(minutes=29)) is False
    assert booking.expire(NOW + timedelta(minutes=30)) is True
    assert then(booking) == ["Expired"]
    assert booking.expire(NOW + H) is False
    with pytest.raises(InvalidTransition):
        booking.confirm(NOW + H)


def test_confirmed_bookings_do_not_expire() -> None:
    booking = given_confirmed()
    assert booking.expire(NOW + H) is False


def test_forward_only_lifecycle() -> None:
    booking = given_hold()
    with pytest.raises(InvalidTransition):
        booking.check_out(NOW)
    booking = given_confirmed()
    booking.check_out(START)
    booking.check_in(START + 26 * H)
    assert then(booking) == ["CheckedOut", "CheckedIn"]
    for command in (lambda: booking.confirm(NOW), lambda: booking.check_out(NOW),
                    lambda: booking.cancel(NOW, DEFAULT_CATALOGUE)):
        with pytest.raises(InvalidTransition) as refused:
            command()
        assert refused.value.state == "completed"


@pytest.mark.parametrize(("notice", "percentage"), [
    (48 * H, "100"), (48 * H - timedelta(minutes=1), "50"), (24 * H, "50"),
    (24 * H - timedelta(minutes=1), "0"),
])
def test_cancel_refunds_the_policy_percentage_of_the_amount_paid(notice, percentage) -> None:
    booking = given_confirmed()
    booking.cancel(START - notice, DEFAULT_CATALOGUE)
    [cancelled] = booking.collect_events()
    assert cancelled.refund_percentage == percentage
    assert cancelled.refund_amount == round(booking.total_due * Decimal(percentage) / 100)
    assert cancelled.deposit_released is True


def test_cancelling_an_unpaid_hold_refunds_nothing() -> None:
    booking = given_hold()
    booking.cancel(NOW, DEFAULT_CATALOGUE)
    [cancelled] = booking.collect_events()
    assert (cancelled.refund_percentage, cancelled.refund_amount) == ("100", 0)


def test_force_majeure_refunds_in_full_even_late() -> None:
    booking = given_confirmed(category=Category.JET)
    booking.cancel(START - H, DEFAULT_CATALOGUE, CancellationReason.FORCE_MAJEURE)
    [cancelled] = booking.collect_events()
    assert cancelled.reason == "force_majeure"
    assert cancelled.refund_amount == booking.total_due


def test_a_concierge_is_assigned_once() -> None:
    booking, concierge = given_confirmed(), uuid4()
    booking.assign_concierge(concierge)
    booking.assign_concierge(concierge)
    assert then(booking) == ["ConciergeAssigned"]
    booking.cancel(NOW, DEFAULT_CATALOGUE)
    with pytest.raises(InvalidState):
        booking.assign_concierge(uuid4())
