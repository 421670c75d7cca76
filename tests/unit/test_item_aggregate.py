"""Item aggregate: given events, when a command, then events (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from midas.domain.catalogue import DEFAULT_CATALOGUE, Category
from midas.domain.errors import InvalidState, RuleViolation
from midas.domain.inventory import Item, NotFound, Unavailable

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
TEN = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)


def given_car() -> Item:
    item = Item.register(DEFAULT_CATALOGUE, name="Huracan", category=Category.CAR,
                         location="US-CA", rate=150_000)
    item.collect_events()
    return item


def then(item: Item) -> list[tuple[str, dict[str, Any]]]:
    return [(type(e).__name__, {k: v for k, v in vars(e).items()
                                if not k.startswith("originator") and k != "timestamp"})
            for e in item.collect_events()]


def test_reserve_records_the_occupation_with_the_buffer() -> None:
    item, booking = given_car(), uuid4()
    item.reserve(booking, TEN - 24 * H, TEN, NOW)
    assert then(item) == [("Reserved", {
        "booking_id": str(booking), "start": (TEN - 24 * H).isoformat(), "end": TEN.isoformat(),
        "until": (TEN + 2 * H).isoformat(), "at": NOW.isoformat()})]


def test_a_booking_inside_the_buffer_is_refused_naming_the_conflict() -> None:
    item, first = given_car(), uuid4()
    item.reserve(first, TEN - 24 * H, TEN, NOW)
    item.collect_events()
    with pytest.raises(Unavailable) as refused:
        item.reserve(uuid4(), TEN + H, TEN + 24 * H, NOW)
    assert str(first) in str(refused.value)
    assert then(item) == []
    item.reserve(uuid4(), TEN + 2 * H, TEN + 24 * H, NOW)  # touching is fine
    assert [name for name, _ in then(item)] == ["Reserved"]


def test_a_booking_whose_own_buffer_reaches_the_next_is_refused() -> None:
    item = given_car()
    item.reserve(uuid4(), TEN, TEN + 24 * H, NOW)
    with pytest.raises(Unavailable):
        item.reserve(uuid4(), TEN - 26 * H, TEN - timedelta(minutes=30), NOW)
    item.reserve(uuid4(), TEN - 26 * H, TEN - 2 * H, NOW)


def test_release_frees_the_item_and_is_idempotent() -> None:
    item, booking = given_car(), uuid4()
    item.reserve(booking, TEN, TEN + 24 * H, NOW)
    item.collect_events()
    item.release(booking, "cancelled", NOW)
    assert [name for name, _ in then(item)] == ["Released"]
    item.release(booking, "cancelled", NOW)
    assert then(item) == []
    item.reserve(uuid4(), TEN, TEN + 24 * H, NOW)


def test_inactive_or_retired_items_cannot_be_booked() -> None:
    item = given_car()
    item.change_status("inactive", NOW)
    assert then(item) == [("StatusChanged", {"status": "inactive", "previous": "active"})]
    with pytest.raises(InvalidState):
        item.reserve(uuid4(), TEN, TEN + 24 * H, NOW)
    item.change_status("active", NOW)
    item.change_status("retired", NOW)
    with pytest.raises(InvalidState):
        item.change_status("active", NOW)


def test_retiring_over_a_future_booking_is_refused() -> None:
    item = given_car()
    item.reserve(uuid4(), TEN, TEN + 24 * H, NOW)
    with pytest.raises(Unavailable):
        item.change_status("retired", NOW)


def test_bookings_cannot_start_in_the_past() -> None:
    with pytest.raises(RuleViolation):
        given_car().reserve(uuid4(), NOW - H, NOW + 24 * H, NOW)


def test_maintenance_over_a_booking_is_refused_and_blocks_exactly_its_window() -> None:
    item, booking = given_car(), uuid4()
    item.reserve(booking, TEN, TEN + 24 * H, NOW)
    with pytest.raises(Unavailable) as refused:
        item.schedule_maintenance(uuid4(), TEN + 25 * H, TEN + 30 * H)
    assert str(booking) in str(refused.value)
    window = uuid4()
    item.schedule_maintenance(window, TEN + 26 * H, TEN + 30 * H, "tyres")
    item.collect_events()
    item.reserve(uuid4(), TEN + 30 * H, TEN + 60 * H, NOW)
    with pytest.raises(Unavailable):
        item.reserve(uuid4(), TEN + 29 * H, TEN + 60 * H, NOW)
    item.remove_maintenance(window)
    assert then(item)[-1] == ("MaintenanceRemoved", {"window_id": str(window)})
    with pytest.raises(NotFound):
        item.remove_maintenance(window)


def test_past_occupations_are_dropped_from_state() -> None:
    item = given_car()
    item.reserve(uuid4(), TEN, TEN + 24 * H, NOW)
    later = TEN + 10 * 24 * H
    item.reserve(uuid4(), later + 24 * H, later + 48 * H, later)
    assert len(item.occupations) == 1


def test_occupations_ending_near_now_are_kept_or_dropped_by_instant_whatever_the_offset(
) -> None:
    item = given_car()
    at = datetime(2026, 6, 10, 2, 0, tzinfo=UTC)
    ends = {"past-local": "2026-06-09T20:59:00-05:00",    # 01:59 UTC on the 10th
            "future-local": "2026-06-09T21:01:00-05:00",  # 02:01 UTC on the 10th
            "past-east": "2026-06-10T15:59:00+14:00",     # 01:59 UTC on the 10th
            "future-far": "2026-07-01T00:00:00+00:00"}
    for name, end in ends.items():
        start = (datetime.fromisoformat(end) - H).isoformat()
        item.occupations.append({"id": name, "kind": "maintenance", "start": start,
                                 "end": end})
    item.reserve(uuid4(), at + 24 * H, at + 48 * H, at)  # drops what ended before `at`
    assert {o["id"] for o in item.occupations if o["kind"] == "maintenance"} == {
        "future-local", "future-far"}


def test_a_plan_by_days_places_the_next_window_in_the_first_free_slot() -> None:
    item = given_car()
    due = NOW + 30 * 24 * H
    item.reserve(uuid4(), due - H, due + 24 * H, NOW)  # busy until due + 26 h
    item.collect_events()
    item.set_maintenance_plan(every_days=30, every_rental_hours=None, duration_minutes=240,
                              at=NOW, window_id=uuid4())
    events = then(item)
    assert [name for name, _ in events] == ["MaintenancePlanSet", "MaintenanceScheduled"]
    placed = events[1][1]
    assert placed["start"] == (due + 26 * H).isoformat() and placed["planned"] is True


def test_a_plan_by_rental_hours_places_a_window_once_reached() -> None:
    item = given_car()
    item.set_maintenance_plan(every_days=None, every_rental_hours=48, duration_minutes=120,
                              at=NOW, window_id=uuid4())
    first, second = uuid4(), uuid4()
    item.reserve(first, TEN, TEN + 24 * H, NOW)
    item.reserve(second, TEN + 48 * H, TEN + 72 * H, NOW)
    item.collect_events()
    item.release(first, "completed", TEN + 24 * H, rental_minutes=24 * 60)
    assert [name for name, _ in then(item)] == ["Released"]
    item.release(second, "completed", TEN + 72 * H, rental_minutes=24 * 60)
    assert [name for name, _ in then(item)] == ["Released", "MaintenanceScheduled"]
    assert item.rental_minutes_since_maintenance == 0


def test_a_plan_needs_exactly_one_trigger() -> None:
    with pytest.raises(RuleViolation):
        given_car().set_maintenance_plan(every_days=1, every_rental_hours=1,
                                         duration_minutes=60, at=NOW, window_id=uuid4())


def test_external_blocks_occupy_exactly_their_window() -> None:
    item, block = given_car(), uuid4()
    item.block(block, TEN, TEN + 5 * H, "owner calendar")
    assert [name for name, _ in then(item)] == ["Blocked"]
    with pytest.raises(Unavailable):
        item.reserve(uuid4(), TEN + 4 * H, TEN + 30 * H, NOW)
    with pytest.raises(Unavailable):
        item.schedule_maintenance(uuid4(), TEN, TEN + H)
    item.reserve(uuid4(), TEN + 5 * H, TEN + 30 * H, NOW)
    item.unblock(block)
    with pytest.raises(NotFound):
        item.unblock(block)


def test_an_occupation_stored_with_another_offset_still_conflicts_across_midnight() -> None:
    """Occupations are looked up by date first: one stored with a local offset (as an older
    writer might have) lies on another calendar date than in UTC."""
    item = given_car()
    item.occupations.append({"id": "old", "kind": "maintenance",
                             "start": "2026-06-09T20:00:00-05:00",   # 01:00 UTC on the 10th
                             "end": "2026-06-09T23:00:00-05:00"})    # 04:00 UTC on the 10th
    with pytest.raises(Unavailable):
        item.reserve(uuid4(), datetime(2026, 6, 10, 3, 0, tzinfo=UTC),
                     datetime(2026, 6, 10, 3, 30, tzinfo=UTC), NOW)
    item.reserve(uuid4(), datetime(2026, 6, 10, 4, 0, tzinfo=UTC),
                 datetime(2026, 6, 10, 4, 30, tzinfo=UTC), NOW)  # touching: free


def test_an_items_currency_defaults_to_its_locations() -> None:
    from dataclasses import replace
    from decimal import Decimal

    from midas.domain.catalogue import Location

    monaco = Location("MC-MO", "Europe/Monaco", Decimal("0.20"), "EUR")
    catalogue = replace(DEFAULT_CATALOGUE,
                        locations={**DEFAULT_CATALOGUE.locations, "MC-MO": monaco})
    yacht = Item.register(catalogue, name="Lady M", category=Category.YACHT, location="MC-MO",
                          rate=900_000)
    assert yacht.currency == "EUR"
    priced = Item.register(catalogue, name="Lady M", category=Category.YACHT,
                           location="MC-MO", rate=900_000, currency="usd")
    assert priced.currency == "USD"  # given explicitly: kept (upper case)
    car = Item.register(catalogue, name="Huracan", category=Category.CAR, location="US-CA",
                        rate=150_000)
    assert car.currency == "USD"
