from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from midas.domain.availability import (
    OCCUPYING_STATES,
    Interval,
    Occupation,
    OccupationKind,
    conflicts,
    first_free_slot,
    is_free,
    occupation_of_booking,
    occupies,
)
from midas.domain.catalogue import DEFAULT_CATALOGUE, Category
from midas.domain.lifecycle import BookingState

CAR_BUFFER = DEFAULT_CATALOGUE.defaults(Category.CAR).buffer
DAY = datetime(2026, 5, 4, tzinfo=UTC)


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def booking(id_, start, end, state=BookingState.CONFIRMED, buffer=CAR_BUFFER):
    return Occupation(id_, OccupationKind.BOOKING, occupation_of_booking(start, end, buffer), state)


def block(id_, start, end, kind=OccupationKind.MAINTENANCE):
    return Occupation(id_, kind, Interval(start, end))


# --- the docs/domain.md examples ------------------------------------------------------------------


def test_next_car_booking_inside_the_buffer_is_refused():
    existing = [booking("b1", at(6), at(10))]
    new = occupation_of_booking(at(11), at(15), CAR_BUFFER)
    assert conflicts(new, existing) == existing


def test_next_car_booking_when_the_buffer_ends_is_accepted():
    existing = [booking("b1", at(6), at(10))]
    assert conflicts(occupation_of_booking(at(12), at(15), CAR_BUFFER), existing) == []


def test_next_car_booking_one_minute_before_the_buffer_ends_is_refused():
    existing = [booking("b1", at(6), at(10))]
    assert conflicts(occupation_of_booking(at(11, 59), at(15), CAR_BUFFER), existing) == existing


def test_earlier_booking_whose_own_buffer_runs_into_the_next_is_refused():
    existing = [booking("b1", at(10), at(14))]
    new = occupation_of_booking(at(8), at(9, 30), CAR_BUFFER)
    assert new.end == at(11, 30)
    assert conflicts(new, existing) == existing


def test_earlier_booking_whose_buffer_ends_at_the_next_start_is_accepted():
    existing = [booking("b1", at(10), at(14))]
    assert conflicts(occupation_of_booking(at(6), at(8), CAR_BUFFER), existing) == []


def test_occupation_of_booking_adds_the_buffer():
    assert occupation_of_booking(at(6), at(10), CAR_BUFFER) == Interval(at(6), at(12))


def test_buffer_is_absolute_time_across_dst():
    new_york = ZoneInfo("America/New_York")
    end = datetime(2026, 3, 8, 1, 0, tzinfo=new_york)  # 06:00 UTC
    occupied = occupation_of_booking(end - timedelta(hours=3), end, CAR_BUFFER)
    assert occupied.end == datetime(2026, 3, 8, 8, 0, tzinfo=UTC)  # 04:00 EDT, not 03:00
    assert occupied.end.astimezone(new_york).hour == 4


def test_negative_buffer_is_refused():
    with pytest.raises(ValueError):
        occupation_of_booking(at(6), at(10), timedelta(hours=-1))


# --- which states occupy ---------------------------------------------------------------------


@pytest.mark.parametrize("state", list(BookingState))
def test_occupying_states(state):
    expected = state in {BookingState.HELD, BookingState.CONFIRMED, BookingState.ACTIVE}
    assert occupies(state) is expected
    assert (state in OCCUPYING_STATES) is expected


@pytest.mark.parametrize(
    "state", [BookingState.EXPIRED, BookingState.CANCELLED, BookingState.COMPLETED]
)
def test_freed_bookings_never_conflict(state):
    existing = [booking("b1", at(6), at(10), state)]
    assert conflicts(occupation_of_booking(at(7), at(9), CAR_BUFFER), existing) == []


@pytest.mark.parametrize("state", sorted(OCCUPYING_STATES))
def test_occupying_bookings_conflict(state):
    existing = [booking("b1", at(6), at(10), state)]
    assert conflicts(occupation_of_booking(at(7), at(9), CAR_BUFFER), existing) == existing


# --- maintenance and external blocks ---------------------------------------------------------


@pytest.mark.parametrize("kind", [OccupationKind.MAINTENANCE, OccupationKind.EXTERNAL_BLOCK])
def test_blocks_occupy_exactly_their_window(kind):
    existing = [block("m1", at(10), at(12), kind)]
    assert conflicts(Interval(at(8), at(10)), existing) == []
    assert conflicts(Interval(at(12), at(13)), existing) == []
    assert conflicts(Interval(at(11, 59), at(13)), existing) == existing
    assert conflicts(Interval(at(8), at(10, 1)), existing) == existing


def test_maintenance_over_a_booking_conflicts_naming_the_bookings_earliest_first():
    existing = [
        booking("late", at(14), at(16), BookingState.HELD),
        block("block", at(20), at(22), OccupationKind.EXTERNAL_BLOCK),
        booking("early", at(6), at(10), BookingState.ACTIVE),
        booking("gone", at(11), at(12), BookingState.CANCELLED),
    ]
    found = conflicts(Interval(at(9), at(15)), existing)
    assert [item.id for item in found] == ["early", "late"]


def test_maintenance_in_a_booking_buffer_conflicts():
    existing = [booking("b1", at(6), at(10))]
    assert conflicts(Interval(at(11), at(13)), existing) == existing


def test_is_free():
    existing = [booking("b1", at(6), at(10))]
    assert is_free(Interval(at(12), at(13)), existing)
    assert not is_free(Interval(at(11), at(13)), existing)


def test_occupation_kind_and_state_must_agree():
    with pytest.raises(ValueError):
        Occupation("b1", OccupationKind.BOOKING, Interval(at(1), at(2)))
    with pytest.raises(ValueError):
        Occupation("m1", OccupationKind.MAINTENANCE, Interval(at(1), at(2)), BookingState.HELD)


# --- intervals -------------------------------------------------------------------------------


def test_intervals_are_half_open():
    first, second = Interval(at(1), at(2)), Interval(at(2), at(3))
    assert not first.overlaps(second)
    assert not second.overlaps(first)
    assert first.contains(at(1))
    assert not first.contains(at(2))
    assert first.overlaps(Interval(at(1, 59), at(4)))
    assert Interval(at(0), at(5)).overlaps(first)


def test_interval_is_kept_in_utc():
    dubai = ZoneInfo("Asia/Dubai")
    interval = Interval(datetime(2026, 5, 4, 14, 0, tzinfo=dubai), at(12))
    assert interval.start == at(10)
    assert interval.start.tzinfo is UTC
    assert interval.duration == timedelta(hours=2)


def test_interval_compares_by_instant_across_fall_back():
    new_york = ZoneInfo("America/New_York")
    first_130 = datetime(2026, 11, 1, 1, 30, tzinfo=new_york, fold=0)  # 05:30 UTC
    second_130 = datetime(2026, 11, 1, 1, 30, tzinfo=new_york, fold=1)  # 06:30 UTC
    assert Interval(first_130, second_130).duration == timedelta(hours=1)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2026, 5, 4, 10), at(12)),
        (at(10), datetime(2026, 5, 4, 12)),
        (at(10), at(10)),
        (at(10), at(9)),
    ],
)
def test_bad_intervals_are_refused(start, end):
    with pytest.raises(ValueError):
        Interval(start, end)


# --- first free slot -------------------------------------------------------------------------


def test_first_free_slot_on_an_empty_calendar_starts_at_once():
    assert first_free_slot(timedelta(hours=3), at(8), []) == Interval(at(8), at(11))


def test_first_free_slot_fits_in_a_gap():
    occupations = [
        booking("b2", at(14), at(16)),  # occupies until 18:00
        booking("b1", at(6), at(8)),  # occupies until 10:00
    ]
    assert first_free_slot(timedelta(hours=4), at(7), occupations) == Interval(at(10), at(14))


def test_first_free_slot_skips_a_gap_too_small():
    occupations = [booking("b1", at(6), at(8)), booking("b2", at(13), at(16))]
    assert first_free_slot(timedelta(hours=4), at(7), occupations) == Interval(at(18), at(22))


def test_first_free_slot_ignores_freed_bookings_and_touches_blocks():
    occupations = [
        booking("gone", at(8), at(20), BookingState.EXPIRED),
        block("m1", at(6), at(9)),
        block("m2", at(11), at(12)),
    ]
    assert first_free_slot(timedelta(hours=2), at(7), occupations) == Interval(at(9), at(11))


def test_first_free_slot_handles_nested_occupations():
    occupations = [block("outer", at(8), at(20)), block("inner", at(10), at(12))]
    assert first_free_slot(timedelta(hours=1), at(9), occupations) == Interval(at(20), at(21))


def test_first_free_slot_refuses_bad_input():
    with pytest.raises(ValueError):
        first_free_slot(timedelta(0), at(7), [])
    with pytest.raises(ValueError):
        first_free_slot(timedelta(hours=1), datetime(2026, 5, 4, 7), [])
