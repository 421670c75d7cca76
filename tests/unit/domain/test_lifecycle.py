from datetime import UTC, datetime, timedelta
from itertools import product
from zoneinfo import ZoneInfo

import pytest

from midas.domain.catalogue import DEFAULT_CATALOGUE
from midas.domain.lifecycle import (
    TRANSITIONS,
    BookingState,
    InvalidTransition,
    can_transition,
    hold_expired,
    hold_expires_at,
    is_final,
    transition,
)

HELD = BookingState.HELD
CONFIRMED = BookingState.CONFIRMED
ACTIVE = BookingState.ACTIVE
COMPLETED = BookingState.COMPLETED
EXPIRED = BookingState.EXPIRED
CANCELLED = BookingState.CANCELLED

ALLOWED = {
    (HELD, CONFIRMED),
    (CONFIRMED, ACTIVE),
    (ACTIVE, COMPLETED),
    (HELD, EXPIRED),
    (HELD, CANCELLED),
    (CONFIRMED, CANCELLED),
}
# The order a booking may move through; a state may only move to a later one.
ORDER = [HELD, CONFIRMED, ACTIVE, COMPLETED, EXPIRED, CANCELLED]


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_allowed_transitions(current, target):
    assert can_transition(current, target)
    assert transition(current, target) is target


@pytest.mark.parametrize(
    ("current", "target"),
    [pair for pair in product(BookingState, BookingState) if pair not in ALLOWED],
)
def test_every_other_transition_is_refused_carrying_the_current_state(current, target):
    assert not can_transition(current, target)
    with pytest.raises(InvalidTransition) as raised:
        transition(current, target)
    assert raised.value.current is current
    assert raised.value.target is target
    assert str(current) in str(raised.value)


def test_the_transition_table_is_exactly_the_allowed_set():
    table = {(current, target) for current, targets in TRANSITIONS.items() for target in targets}
    assert table == ALLOWED
    assert set(TRANSITIONS) == set(BookingState)


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_states_never_move_backwards(current, target):
    assert ORDER.index(target) > ORDER.index(current)
    assert not can_transition(target, current)


@pytest.mark.parametrize("state", list(BookingState))
def test_final_states(state):
    assert is_final(state) is (state in {COMPLETED, EXPIRED, CANCELLED})


def test_states_accept_their_values():
    assert can_transition("held", "confirmed")
    assert BookingState("cancelled") is CANCELLED


# --- hold expiry ---------------------------------------------------------------------------


HOLD_EXPIRY = DEFAULT_CATALOGUE.hold_expiry
HELD_AT = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("elapsed", "expired"),
    [
        (timedelta(0), False),
        (timedelta(minutes=29, seconds=59), False),
        (timedelta(minutes=30), True),
        (timedelta(hours=2), True),
    ],
)
def test_hold_expires_30_minutes_after_creation(elapsed, expired):
    assert hold_expired(HELD_AT, HELD_AT + elapsed, HOLD_EXPIRY) is expired


def test_hold_expiry_is_absolute_time_across_dst():
    new_york = ZoneInfo("America/New_York")
    held_at = datetime(2026, 3, 8, 1, 45, tzinfo=new_york)  # 06:45 UTC
    assert hold_expires_at(held_at, HOLD_EXPIRY) == datetime(2026, 3, 8, 7, 15, tzinfo=UTC)
    assert hold_expired(held_at, datetime(2026, 3, 8, 3, 15, tzinfo=new_york), HOLD_EXPIRY)


def test_hold_expiry_refuses_naive_instants():
    with pytest.raises(ValueError):
        hold_expires_at(datetime(2026, 5, 4, 10, 0), HOLD_EXPIRY)
    with pytest.raises(ValueError):
        hold_expired(HELD_AT, datetime(2026, 5, 4, 10, 0), HOLD_EXPIRY)
