"""Editing an item: every field an event; buffer and location changes that would break a
booking are refused, naming it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from midas.domain.errors import InvalidState, RuleViolation
from midas.domain.inventory import BreaksBooking, Unavailable
from tests.unit.test_item_aggregate import given_car, then

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
TEN = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)


def test_name_attributes_minimum_and_media_are_events_and_unchanged_values_record_nothing(
) -> None:
    car = given_car()
    car.rename("Huracan EVO")
    car.rename("Huracan EVO")
    car.set_attributes({"seats": 2, "colour": "verde"})
    car.set_attributes({"seats": 2, "colour": "verde"})
    car.change_minimum(timedelta(days=2))
    car.change_minimum(timedelta(days=2))
    car.set_media(["https://media.example.com/1.jpg"],
                  [{"title": "Registration", "url": "https://media.example.com/reg.pdf"}])
    car.set_media(["https://media.example.com/1.jpg"],
                  [{"title": "Registration", "url": "https://media.example.com/reg.pdf"}])
    assert [name for name, _ in then(car)] == ["Renamed", "AttributesSet", "MinimumChanged",
                                               "MediaSet"]
    assert (car.name, car.attributes["seats"], car.minimum_minutes) == ("Huracan EVO", 2, 2880)
    assert car.photos == ["https://media.example.com/1.jpg"]
    car.change_minimum(timedelta(0))  # zero is a minimum too
    assert car.minimum_minutes == 0
    with pytest.raises(RuleViolation):
        car.change_minimum(-timedelta(minutes=1))
    with pytest.raises(RuleViolation):
        car.rename("  ")


def test_a_longer_buffer_that_reaches_the_next_booking_is_refused_naming_the_booking() -> None:
    car = given_car()  # buffer 2 h
    first, second = uuid4(), uuid4()
    car.reserve(first, TEN - 24 * H, TEN, NOW)
    car.reserve(second, TEN + 3 * H, TEN + 27 * H, NOW)  # 1 h after the first's buffer
    car.collect_events()
    with pytest.raises(BreaksBooking) as refused:
        car.change_buffer(timedelta(hours=4), NOW)
    assert str(first) in str(refused.value) and str(second) in str(refused.value)
    assert refused.value.bookings == [str(first)]
    assert then(car) == []
    car.change_buffer(timedelta(hours=3), NOW)  # touching the next booking: fine
    [(name, data)] = then(car)
    assert name == "BufferChanged" and data["buffer_minutes"] == 180
    ends = {b["booking_id"]: (b["end"], b["until"]) for b in data["bookings"]}
    assert ends[str(first)] == (TEN.isoformat(), (TEN + 3 * H).isoformat())
    with pytest.raises(Unavailable):  # the new buffer holds for the existing booking
        car.reserve(uuid4(), TEN + 27 * H + 2 * H, TEN + 40 * H, NOW)
    car.change_buffer(timedelta(0), NOW)
    car.reserve(uuid4(), TEN, TEN + 3 * H, NOW)  # right after the first: free at 0


def test_a_move_is_refused_while_a_booking_is_ahead_and_allowed_after_it() -> None:
    car = given_car()
    booking = uuid4()
    car.reserve(booking, TEN, TEN + 24 * H, NOW)
    car.collect_events()
    with pytest.raises(BreaksBooking) as refused:
        car.move("MC-MO", "EUR", NOW)
    assert refused.value.bookings == [str(booking)] and str(booking) in str(refused.value)
    car.move("US-CA", "USD", NOW)  # where it is: nothing to record
    assert then(car) == []
    car.move("MC-MO", "EUR", TEN + 27 * H)  # the booking and its buffer are over
    assert then(car) == [("Moved", {"location": "MC-MO", "currency": "EUR",
                                    "previous": "US-CA", "previous_currency": "USD"})]


def test_a_retired_item_is_not_edited() -> None:
    car = given_car()
    car.change_status("retired", NOW)
    with pytest.raises(InvalidState):
        car.rename("Another")
    with pytest.raises(InvalidState):
        car.change_buffer(timedelta(hours=1), NOW)
