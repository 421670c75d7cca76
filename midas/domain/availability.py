"""Availability: two occupations of one item never overlap (docs/domain.md, Availability).

A booking occupies [start, end + buffer) while it is held, confirmed or active; maintenance
windows and external busy blocks occupy exactly their window. All intervals are half-open, so
occupations that merely touch do not conflict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from uuid import UUID

from midas.domain.lifecycle import BookingState

OCCUPYING_STATES = frozenset({BookingState.HELD, BookingState.CONFIRMED, BookingState.ACTIVE})


def require_aware(instant: datetime, name: str = "instant") -> datetime:
    """Return `instant` in UTC; a naive datetime is refused with ValueError."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {instant!r}")
    return instant.astimezone(UTC)


@dataclass(frozen=True)
class Interval:
    """Half-open [start, end) of timezone-aware instants, kept in UTC.

    Kept in UTC because Python compares and subtracts datetimes sharing one tzinfo on the wall
    clock, which is wrong across a DST change.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start, end = require_aware(self.start, "start"), require_aware(self.end, "end")
        if end <= start:
            raise ValueError(f"end {end.isoformat()} must be after start {start.isoformat()}")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end

    def contains(self, instant: datetime) -> bool:
        return self.start <= require_aware(instant) < self.end


def occupation_of_booking(start: datetime, end: datetime, buffer: timedelta) -> Interval:
    """What a booking [start, end) occupies: [start, end + buffer), buffer in absolute time."""
    if buffer < timedelta(0):
        raise ValueError(f"buffer must not be negative, got {buffer}")
    return Interval(start, require_aware(end, "end") + buffer)


def occupies(state: BookingState) -> bool:
    """Whether a booking in this state keeps its item busy (expired, cancelled and completed
    bookings free it)."""
    return BookingState(state) in OCCUPYING_STATES


class OccupationKind(StrEnum):
    BOOKING = "booking"
    MAINTENANCE = "maintenance"
    EXTERNAL_BLOCK = "external_block"


@dataclass(frozen=True)
class Occupation:
    """Something that may keep an item busy over `interval`.

    For a booking, `interval` is its occupation (buffer included) and `booking_state` is
    required; maintenance windows and external blocks carry no state.
    """

    id: UUID | str
    kind: OccupationKind
    interval: Interval
    booking_state: BookingState | None = None

    def __post_init__(self) -> None:
        is_booking = self.kind is OccupationKind.BOOKING
        if is_booking != (self.booking_state is not None):
            raise ValueError("a booking occupation needs a booking state, and only it")

    @property
    def occupies(self) -> bool:
        if self.booking_state is None:
            return True
        return occupies(self.booking_state)


def conflicts(new: Interval, existing: Iterable[Occupation]) -> list[Occupation]:
    """The occupations that keep `new` from being placed, earliest first.

    `new` must already include its own buffer when it is a booking
    (see `occupation_of_booking`).
    """
    found = [item for item in existing if item.occupies and item.interval.overlaps(new)]
    return sorted(found, key=lambda item: (item.interval.start, item.interval.end))


def is_free(new: Interval, existing: Iterable[Occupation]) -> bool:
    return not conflicts(new, existing)


def first_free_slot(
    duration: timedelta, after: datetime, occupations: Iterable[Occupation]
) -> Interval:
    """The earliest [s, s + duration) with s >= `after` that conflicts with nothing."""
    if duration <= timedelta(0):
        raise ValueError(f"duration must be positive, got {duration}")
    candidate = require_aware(after, "after")
    busy = [item.interval for item in occupations if item.occupies]
    for interval in sorted(busy, key=lambda interval: interval.start):
        if interval.start >= candidate + duration:
            break
        candidate = max(candidate, interval.end)
    return Interval(candidate, candidate + duration)
