"""The booking lifecycle (docs/domain.md, The booking lifecycle).

held -> confirmed -> active -> completed; held -> expired; held | confirmed -> cancelled.
A booking never moves backwards, whatever order outside events arrive in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from midas.domain.errors import InvalidState


class BookingState(StrEnum):
    HELD = "held"
    CONFIRMED = "confirmed"
    ACTIVE = "active"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


TRANSITIONS: Mapping[BookingState, frozenset[BookingState]] = MappingProxyType(
    {
        BookingState.HELD: frozenset(
            {BookingState.CONFIRMED, BookingState.EXPIRED, BookingState.CANCELLED}
        ),
        BookingState.CONFIRMED: frozenset({BookingState.ACTIVE, BookingState.CANCELLED}),
        BookingState.ACTIVE: frozenset({BookingState.COMPLETED}),
        BookingState.COMPLETED: frozenset(),
        BookingState.EXPIRED: frozenset(),
        BookingState.CANCELLED: frozenset(),
    }
)


class InvalidTransition(InvalidState):
    """A booking was asked to move where the lifecycle does not go from its current state."""

    def __init__(self, current: BookingState, target: BookingState) -> None:
        super().__init__("the booking", str(current), f"become {target}")
        self.current = current
        self.target = target


def can_transition(current: BookingState, target: BookingState) -> bool:
    """Whether one step leads from `current` to `target` (staying put is not a step)."""
    return BookingState(target) in TRANSITIONS[BookingState(current)]


def transition(current: BookingState, target: BookingState) -> BookingState:
    """Return `target`, or raise `InvalidTransition` carrying the current state."""
    if not can_transition(current, target):
        raise InvalidTransition(BookingState(current), BookingState(target))
    return BookingState(target)


def is_final(state: BookingState) -> bool:
    return not TRANSITIONS[BookingState(state)]


def hold_expires_at(held_at: datetime, hold_expiry: timedelta) -> datetime:
    """When an unpaid hold placed at `held_at` expires (absolute time, not wall clock)."""
    if held_at.tzinfo is None or held_at.utcoffset() is None:
        raise ValueError(f"held_at must be timezone-aware, got {held_at!r}")
    return held_at.astimezone(UTC) + hold_expiry


def hold_expired(held_at: datetime, now: datetime, hold_expiry: timedelta) -> bool:
    """Whether an unpaid hold has expired at `now`; it expires exactly at the deadline."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    return now >= hold_expires_at(held_at, hold_expiry)
