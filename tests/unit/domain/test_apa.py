"""The APA statement on a booking, without I/O: its bounds and its one time only."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from midas.domain.bookings import Booking
from midas.domain.catalogue import DEFAULT_CATALOGUE, Category, ServiceLevel
from midas.domain.errors import InvalidState, RuleViolation
from midas.domain.pricing import quote

NOW = datetime(2026, 6, 1, 8, tzinfo=UTC)


def _charter(pass_through: int) -> Booking:
    priced = replace(quote(NOW + timedelta(days=5), NOW + timedelta(days=6),
                           category=Category.YACHT, location_code="US-FL", rate=100_000,
                           service_level=ServiceLevel.STANDARD, catalogue=DEFAULT_CATALOGUE),
                     pass_through=pass_through)
    booking = Booking.hold(item_id=uuid4(), customer_id=uuid4(), quote=priced,
                           delivered_level=ServiceLevel.STANDARD, policy_version=0, at=NOW,
                           hold_expiry=DEFAULT_CATALOGUE.hold_expiry)
    booking.confirm(NOW)
    return booking


@pytest.mark.parametrize("spent, refund, top_up", [
    (0, 1_000, 0), (999, 1, 0), (1_000, 0, 0), (1_001, 0, 1)])
def test_the_statement_refunds_the_unspent_part_or_records_the_overspend(
    spent: int, refund: int, top_up: int,
) -> None:
    booking = _charter(1_000)
    booking.check_out(NOW)
    assert booking.reconcile_apa(spent, NOW) == {"collected": 1_000, "spent": spent,
                                                 "refund": refund, "top_up": top_up}
    with pytest.raises(InvalidState):
        booking.reconcile_apa(spent, NOW)


def test_only_a_charter_with_an_apa_under_way_or_over_is_settled() -> None:
    with pytest.raises(RuleViolation):
        _charter(0).reconcile_apa(0, NOW)
    with pytest.raises(InvalidState):
        _charter(1_000).reconcile_apa(0, NOW)  # confirmed: the charter has not begun
    booking = _charter(1_000)
    booking.check_out(NOW)
    with pytest.raises(RuleViolation):
        booking.reconcile_apa(-1, NOW)
