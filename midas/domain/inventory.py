"""Inventory items: unique rentable things (a car, a yacht, a jet, a property)."""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from midas.domain.availability import (
    Interval,
    Occupation,
    OccupationKind,
    conflicts,
    first_free_slot,
    occupation_of_booking,
    require_aware,
)
from midas.domain.catalogue import Catalogue, Category, RateUnit
from midas.domain.errors import DomainError, InvalidState, RuleViolation
from midas.domain.item_events import (
    ITEM_ATTRIBUTES_SET,
    ITEM_BLOCKED,
    ITEM_BUFFER_CHANGED,
    ITEM_DEACTIVATED,
    ITEM_DURATION_DISCOUNTS_SET,
    ITEM_MAINTENANCE_PLAN_SET,
    ITEM_MAINTENANCE_REMOVED,
    ITEM_MAINTENANCE_SCHEDULED,
    ITEM_MEDIA_SET,
    ITEM_MINIMUM_CHANGED,
    ITEM_MOVED,
    ITEM_RATE_CHANGED,
    ITEM_REGISTERED,
    ITEM_RELEASED,
    ITEM_RENAMED,
    ITEM_RESERVED,
    ITEM_STATUS_CHANGED,
    ITEM_UNBLOCKED,
)
from midas.domain.lifecycle import BookingState
from midas.domain.pricing_policy import plain_discounts
from midas.limits import MAX_RATE

ITEM_STATUSES = ("active", "inactive", "retired")


def _require_rate(rate: int) -> None:
    if not 0 < rate <= MAX_RATE:
        raise RuleViolation(f"the rate must be positive and at most {MAX_RATE} minor units")


class Unavailable(DomainError):
    """The item is busy over (part of) the interval asked for; names what is in the way."""

    def __init__(self, what: str, found: Iterable[Occupation]) -> None:
        self.conflicts = list(found)
        names = ", ".join(
            f"{o.kind.value} {o.id} [{o.interval.start.isoformat()}, {o.interval.end.isoformat()})"
            for o in self.conflicts
        )
        super().__init__(f"the item is not free for {what}: it overlaps {names}")


class BreaksBooking(Unavailable):
    """An edit of the item that existing bookings forbid: names them, and what a booking
    would run into (`conflicts`: the bookings broken, then what is in their way)."""

    def __init__(self, change: str, broken: list[str], found: Iterable[Occupation] = ()) -> None:
        in_way = list(found)
        super().__init__(change, in_way)
        self.bookings = broken
        detail = f"{change} would break booking {', '.join(broken)}"
        if in_way:
            names = ", ".join(f"{o.kind.value} {o.id} [{o.interval.start.isoformat()},"
                              f" {o.interval.end.isoformat()})" for o in in_way)
            detail += f": it would overlap {names}"
        self.args = (detail,)


class NotFound(DomainError):
    status = 404


class Item(Aggregate):
    """An item of the inventory. Event data is plain: cents, minutes, codes.

    Its occupations are kept sorted by start. Two occupations of an item never overlap
    (midas/domain/availability.py), but for a booking and the hold of its pending change,
    so they are sorted by end too, nearly: a hold finds what is in
    its way, and cuts off the past, by binary search (O(log n) in the item's bookings).
    State version 2 (``class_version``): snapshots of version 1 held the occupations in
    the order they were placed, and are sorted when loaded (``upcast_v1_v2``).
    """

    class_version = 2

    @event(ITEM_REGISTERED.event_name)
    def __init__(
        self,
        name: str,
        category: str,
        location: str,
        rate: int,
        rate_unit: str,
        currency: str,
        buffer_minutes: int,
        minimum_minutes: int,
        attributes: dict[str, Any],
    ) -> None:
        self.name = name
        self.category = category
        self.location = location
        self.rate = rate
        self.rate_unit = rate_unit
        self.currency = currency
        self.buffer_minutes = buffer_minutes
        self.minimum_minutes = minimum_minutes
        self.attributes = attributes
        self.status = "active"
        # Current and future occupations only, as plain dicts (id, kind, start, end; ISO
        # with offsets), sorted by start. Each dict is never changed: only inserted at its
        # place or removed.
        self.occupations: list[dict[str, str]] = []
        self.maintenance_plan: dict[str, int | None] | None = None
        self.rental_minutes_since_maintenance = 0
        self.photos: list[str] = []
        self.documents: list[dict[str, str]] = []
        self.duration_discounts: list[dict[str, Any]] | None = None  # None: the category's

    @classmethod
    def register(
        cls,
        catalogue: Catalogue,
        *,
        name: str,
        category: Category,
        location: str,
        rate: int,
        currency: str | None = None,
        rate_unit: RateUnit | None = None,
        buffer: timedelta | None = None,
        minimum: timedelta | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Item:
        """A new item, with its category's defaults where none are given."""
        defaults = catalogue.defaults(category)
        place = catalogue.location(location)
        _require_rate(rate)
        return cls(
            name=name,
            category=category.value,
            location=place.code,
            rate=rate,
            rate_unit=(rate_unit or defaults.rate_unit).value,
            currency=(currency or place.currency).upper(),
            buffer_minutes=_minutes(buffer if buffer is not None else defaults.buffer),
            minimum_minutes=_minutes(minimum if minimum is not None else defaults.minimum),
            attributes=dict(attributes or {}),
        )

    def change_rate(self, rate: int) -> None:
        self._require_not_retired("change its rate")
        _require_rate(rate)
        if rate != self.rate:
            self._rate_changed(rate=rate, previous=self.rate)

    # -- editing: every field, each change an event ------------------------------------

    def rename(self, name: str) -> None:
        self._require_not_retired("be renamed")
        if not name.strip():
            raise RuleViolation("an item needs a name")
        if name != self.name:
            self._renamed(name=name, previous=self.name)

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        """Replace the free-form attributes (seats, cabins, range...) as a whole."""
        self._require_not_retired("change its attributes")
        if attributes != self.attributes:
            self._attributes_set(attributes=dict(attributes), previous=self.attributes)

    def change_minimum(self, minimum: timedelta) -> None:
        """The minimum billed duration of bookings priced from now on."""
        self._require_not_retired("change its minimum duration")
        if minimum < timedelta(0):
            raise RuleViolation("the minimum duration must not be negative")
        if _minutes(minimum) != self.minimum_minutes:
            self._minimum_changed(minimum_minutes=_minutes(minimum),
                                  previous=self.minimum_minutes)

    def change_buffer(self, buffer: timedelta, at: datetime) -> None:
        """The buffer after each booking, for current and future bookings too: each one's
        occupation becomes [start, end + buffer). Refused, naming the booking and what it
        would run into, when a longer buffer would overlap the next occupation."""
        self._require_not_retired("change its buffer")
        if buffer < timedelta(0):
            raise RuleViolation("the buffer must not be negative")
        minutes = _minutes(buffer)
        if minutes == self.buffer_minutes:
            return
        previous = timedelta(minutes=self.buffer_minutes)
        grown = timedelta(minutes=minutes) - previous
        busy = self.busy(at)
        bookings = [o for o in busy if o.kind is OccupationKind.BOOKING]
        moved = []
        for booking in bookings:
            interval = Interval(booking.interval.start, booking.interval.end + grown)
            others = [o for o in busy if o.id != booking.id]
            if found := conflicts(interval, others):
                raise BreaksBooking(f"a buffer of {minutes} minutes", [str(booking.id)], found)
            moved.append({"booking_id": str(booking.id), "start": _iso(interval.start),
                          "end": _iso(booking.interval.end - previous),
                          "until": _iso(interval.end)})
        self._buffer_changed(buffer_minutes=minutes, previous=self.buffer_minutes,
                             bookings=moved)

    def move(self, location: str, currency: str, at: datetime) -> None:
        """Move the item to another location (validated by the caller against the locations
        in force), priced from now on in `currency`. Refused while it has a current or
        future booking, which was placed and priced at the old location: named."""
        self._require_not_retired("move")
        if location == self.location and currency == self.currency:
            return
        ahead = [o for o in self.busy(at) if o.kind is OccupationKind.BOOKING]
        if ahead and location != self.location:
            raise BreaksBooking(f"a move to {location}", [str(o.id) for o in ahead])
        self._moved(location=location, currency=currency, previous=self.location,
                    previous_currency=self.currency)

    def set_media(self, photos: list[str], documents: list[dict[str, str]]) -> None:
        """Replace the links to the item's photos and documents ({title, url})."""
        self._require_not_retired("change its photos and documents")
        if photos != getattr(self, "photos", []) or documents != getattr(self, "documents", []):
            self._media_set(photos=list(photos), documents=[dict(d) for d in documents])

    def set_duration_discounts(self, tiers: list[dict[str, Any]] | None) -> None:
        """The item's own discounts by length of stay (None: its category's)."""
        self._require_not_retired("change its discounts")
        plain = None if tiers is None else plain_discounts(tiers)
        if plain != getattr(self, "duration_discounts", None):
            self._duration_discounts_set(tiers=plain)

    def deactivate(self) -> None:
        if self.status != "active":
            raise InvalidState("the item", self.status, "deactivate it")
        self._deactivated()

    def change_status(self, status: str, at: datetime) -> None:
        """active <-> inactive; retired is final and refused over future bookings."""
        if status not in ITEM_STATUSES:
            raise RuleViolation(f"unknown status {status!r}")
        self._require_not_retired(f"become {status}")
        if status == self.status:
            return
        if status == "retired":
            ahead = [o for o in self.busy(at) if o.kind is OccupationKind.BOOKING]
            if ahead:
                raise Unavailable("retirement", ahead)
        self._status_changed(status=status, previous=self.status)

    # -- occupations ------------------------------------------------------------------

    def busy(self, now: datetime | None = None) -> list[Occupation]:
        """The occupations still ending after `now` (all of them when None)."""
        found = [_occupation(o) for o in self.occupations]
        if now is not None:
            found = [o for o in found if o.interval.end > now]
        return found

    def busy_during(self, interval: Interval) -> list[Occupation]:
        """The occupations overlapping `interval` (only those are built: an item has many).

        The first starting at or after `interval.end` is found by binary search; the ones
        before it that end after `interval.start` are the last few. Occupations of
        different bookings never overlap, so their ends are sorted too; the one exception
        is a booking and the hold of its pending change, which may overlap each other (and
        nothing else), so one occupation ending early may hide one before it that ends
        late: the walk back stops only after two in a row end by `interval.start`.
        """
        occupations = self.occupations
        index = bisect.bisect_left(occupations, interval.end, key=_start)
        found: list[Occupation] = []
        clear = 0
        while index > 0 and clear < 2:
            index -= 1
            if _instant(occupations[index]["end"]) > interval.start:
                found.append(_occupation(occupations[index]))
                clear = 0
            else:
                clear += 1
        found.reverse()
        return found

    def reserve(self, booking_id: UUID, start: datetime, end: datetime, at: datetime) -> None:
        """Occupy [start, end + buffer) for a booking, or raise Unavailable."""
        if self.status != "active":
            raise InvalidState("the item", self.status, "be booked")
        interval = occupation_of_booking(start, end, timedelta(minutes=self.buffer_minutes))
        if interval.start < at:
            raise RuleViolation("a booking cannot start in the past")
        if found := conflicts(interval, self.busy_during(interval)):
            raise Unavailable(f"booking {booking_id}", found)
        self._reserved(
            booking_id=str(booking_id), start=_iso(interval.start), end=_iso(end),
            until=_iso(interval.end), at=_iso(at),
        )

    def release(
        self, booking_id: UUID | str, reason: str, at: datetime, rental_minutes: int = 0
    ) -> None:
        """Free a booking's occupation (expired, cancelled, completed), or a change's hold
        (named by its occupation id). Idempotent."""
        if _position(self.occupations, str(booking_id)) is None:
            return
        self._released(booking_id=str(booking_id), reason=reason, at=_iso(at),
                       rental_minutes=rental_minutes)
        self._plan_by_rental_hours(at)

    def take_for_change(self, occupation_id: str, booking_id: UUID, start: datetime,
                        end: datetime, at: datetime, *, started: bool = False) -> None:
        """Occupy [start, end + buffer) under `occupation_id` for a change of a booking,
        beside the booking's own occupation (which the new window may overlap). A booking
        already under way (`started`) keeps its start in the past."""
        interval = self.free_for_change(booking_id, occupation_id, start, end, at, started)
        self._reserved(booking_id=occupation_id, start=_iso(interval.start), end=_iso(end),
                       until=_iso(interval.end), at=_iso(at))

    def move_booking(self, booking_id: UUID, start: datetime, end: datetime, at: datetime, *,
             started: bool = False, replacing: str | None = None) -> None:
        """Move a booking's occupation to [start, end): the new window is checked first,
        then the old one (and the change hold `replacing`, if any) released and the new one
        taken, in the same append. Raises Unavailable with nothing changed."""
        interval = self.free_for_change(booking_id, replacing or "", start, end, at, started)
        if replacing and any(o["id"] == replacing for o in self.occupations):
            self._released(booking_id=replacing, reason="changed", at=_iso(at),
                           rental_minutes=0)
        self.release(booking_id, "changed", at)
        self._reserved(booking_id=str(booking_id), start=_iso(interval.start), end=_iso(end),
                       until=_iso(interval.end), at=_iso(at))

    def free_for_change(self, booking_id: UUID, occupation_id: str, start: datetime,
                        end: datetime, at: datetime, started: bool) -> Interval:
        """The occupation [start, end + buffer) a change would take, if nothing but the
        booking itself (and `occupation_id`) is in the way; else Unavailable."""
        if self.status != "active":
            raise InvalidState("the item", self.status, "be booked")
        interval = occupation_of_booking(start, end, timedelta(minutes=self.buffer_minutes))
        if interval.start < at and not started:
            raise RuleViolation("a booking cannot start in the past")
        own = (str(booking_id), occupation_id)
        found = conflicts(interval, [o for o in self.busy_during(interval)
                                     if str(o.id) not in own])
        if found:
            raise Unavailable(f"the change of booking {booking_id}", found)
        return interval

    def schedule_maintenance(
        self, window_id: UUID, start: datetime, end: datetime, note: str = "",
        *, planned: bool = False,
    ) -> None:
        """Block exactly [start, end) for maintenance; refused over any occupation."""
        self._require_not_retired("schedule maintenance")
        interval = Interval(start, end)
        if found := conflicts(interval, self.busy_during(interval)):
            raise Unavailable(f"maintenance {window_id}", found)
        self._maintenance_scheduled(
            window_id=str(window_id), start=_iso(interval.start), end=_iso(interval.end),
            note=note, planned=planned,
        )

    def remove_maintenance(self, window_id: UUID) -> None:
        index = _position(self.occupations, str(window_id))
        if index is None or self.occupations[index]["kind"] != "maintenance":
            raise NotFound(f"no maintenance window {window_id} on this item")
        self._maintenance_removed(window_id=str(window_id))

    def block(self, block_id: UUID, start: datetime, end: datetime, source: str) -> None:
        """An external busy block (an imported calendar): refused over any occupation."""
        self._require_not_retired("block it")
        interval = Interval(start, end)
        if found := conflicts(interval, self.busy_during(interval)):
            raise Unavailable(f"external block {block_id}", found)
        self._blocked(block_id=str(block_id), start=_iso(interval.start),
                      end=_iso(interval.end), source=source)

    def unblock(self, block_id: UUID) -> None:
        index = _position(self.occupations, str(block_id))
        if index is None or self.occupations[index]["kind"] != "external_block":
            raise NotFound(f"no external block {block_id} on this item")
        self._unblocked(block_id=str(block_id))

    def set_maintenance_plan(
        self, *, every_days: int | None, every_rental_hours: int | None,
        duration_minutes: int, at: datetime, window_id: UUID,
    ) -> None:
        """Plan maintenance every N days or after N rental hours; places the next window."""
        if (every_days is None) == (every_rental_hours is None):
            raise RuleViolation("give exactly one of every_days and every_rental_hours")
        if duration_minutes <= 0:
            raise RuleViolation("the maintenance duration must be positive")
        plan = {"every_days": every_days, "every_rental_hours": every_rental_hours,
                "duration_minutes": duration_minutes}
        self._maintenance_plan_set(plan=plan)
        if every_days is not None:
            self._place_planned(window_id, at + timedelta(days=every_days))

    def _plan_by_rental_hours(self, at: datetime) -> None:
        plan = self.maintenance_plan
        if not plan or plan["every_rental_hours"] is None:
            return
        if self.rental_minutes_since_maintenance >= plan["every_rental_hours"] * 60:
            self._place_planned(_planned_id(self.id, self.version), at)

    def _place_planned(self, window_id: UUID, after: datetime) -> None:
        plan = self.maintenance_plan or {}
        slot = first_free_slot(timedelta(minutes=plan["duration_minutes"] or 0), after,
                               self.busy())
        self.schedule_maintenance(window_id, slot.start, slot.end, "planned", planned=True)

    @event(ITEM_STATUS_CHANGED.event_name)
    def _status_changed(self, status: str, previous: str) -> None:
        self.status = status

    @event(ITEM_RESERVED.event_name)
    def _reserved(self, booking_id: str, start: str, end: str, until: str, at: str) -> None:
        self._drop_past(at)
        _place(self.occupations, {"id": booking_id, "kind": "booking", "start": start,
                                  "end": until})

    @event(ITEM_RELEASED.event_name)
    def _released(self, booking_id: str, reason: str, at: str, rental_minutes: int) -> None:
        _remove(self.occupations, booking_id)
        self.rental_minutes_since_maintenance += rental_minutes
        self._drop_past(at)

    @event(ITEM_MAINTENANCE_SCHEDULED.event_name)
    def _maintenance_scheduled(
        self, window_id: str, start: str, end: str, note: str, planned: bool
    ) -> None:
        _place(self.occupations,
               {"id": window_id, "kind": "maintenance", "start": start, "end": end})
        self.rental_minutes_since_maintenance = 0

    @event(ITEM_MAINTENANCE_REMOVED.event_name)
    def _maintenance_removed(self, window_id: str) -> None:
        _remove(self.occupations, window_id)

    @event(ITEM_BLOCKED.event_name)
    def _blocked(self, block_id: str, start: str, end: str, source: str) -> None:
        _place(self.occupations,
               {"id": block_id, "kind": "external_block", "start": start, "end": end})

    @event(ITEM_UNBLOCKED.event_name)
    def _unblocked(self, block_id: str) -> None:
        _remove(self.occupations, block_id)

    @event(ITEM_MAINTENANCE_PLAN_SET.event_name)
    def _maintenance_plan_set(self, plan: dict[str, int | None]) -> None:
        self.maintenance_plan = plan

    def _drop_past(self, at: str) -> None:
        # Keeps the state (and snapshots) bounded: nothing can be placed in the past. The
        # occupations started by `at` are a prefix, found by binary search; of those, the
        # ones still running are kept (at most one: occupations never overlap).
        now = _instant(at)
        started = bisect.bisect_right(self.occupations, now, key=_start)
        if started:
            self.occupations[:started] = [
                o for o in self.occupations[:started] if _end(o) > now]

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A version 1 snapshot's occupations, in the order they were placed: sorted."""
        state["occupations"] = sorted(state["occupations"], key=_start)

    @event(ITEM_RENAMED.event_name)
    def _renamed(self, name: str, previous: str) -> None:
        self.name = name

    @event(ITEM_ATTRIBUTES_SET.event_name)
    def _attributes_set(self, attributes: dict[str, Any], previous: dict[str, Any]) -> None:
        self.attributes = attributes

    @event(ITEM_MINIMUM_CHANGED.event_name)
    def _minimum_changed(self, minimum_minutes: int, previous: int) -> None:
        self.minimum_minutes = minimum_minutes

    @event(ITEM_BUFFER_CHANGED.event_name)
    def _buffer_changed(
        self, buffer_minutes: int, previous: int, bookings: list[dict[str, str]]
    ) -> None:
        self.buffer_minutes = buffer_minutes
        ends = {b["booking_id"]: b["until"] for b in bookings}
        self.occupations = [{**o, "end": ends[o["id"]]} if o["id"] in ends else o
                            for o in self.occupations]

    @event(ITEM_MOVED.event_name)
    def _moved(
        self, location: str, currency: str, previous: str, previous_currency: str
    ) -> None:
        self.location = location
        self.currency = currency

    @event(ITEM_DURATION_DISCOUNTS_SET.event_name)
    def _duration_discounts_set(self, tiers: list[dict[str, Any]] | None) -> None:
        self.duration_discounts = tiers

    @event(ITEM_MEDIA_SET.event_name)
    def _media_set(self, photos: list[str], documents: list[dict[str, str]]) -> None:
        self.photos = photos
        self.documents = documents

    @event(ITEM_RATE_CHANGED.event_name)
    def _rate_changed(self, rate: int, previous: int) -> None:
        self.rate = rate

    @event(ITEM_DEACTIVATED.event_name)
    def _deactivated(self) -> None:
        self.status = "inactive"

    def _require_not_retired(self, action: str) -> None:
        if self.status == "retired":
            raise InvalidState("the item", self.status, action)


def _occupation(data: dict[str, str]) -> Occupation:
    kind = OccupationKind(data["kind"])
    state = BookingState.HELD if kind is OccupationKind.BOOKING else None
    interval = Interval(_instant(data["start"]), _instant(data["end"]))
    return Occupation(data["id"], kind, interval, state)


def _start(data: dict[str, str]) -> datetime:
    return _instant(data["start"])


def _end(data: dict[str, str]) -> datetime:
    return _instant(data["end"])


def _place(occupations: list[dict[str, str]], occupation: dict[str, str]) -> None:
    """Insert in start order (after any with the same start: none can overlap it)."""
    occupations.insert(bisect.bisect_right(occupations, _start(occupation), key=_start),
                       occupation)


def _position(occupations: list[dict[str, str]], occupation_id: str) -> int | None:
    # By id, which the events that free an occupation name without its dates: one pass
    # over the item's occupations, only when one is freed.
    for index, occupation in enumerate(occupations):
        if occupation["id"] == occupation_id:
            return index
    return None


def _remove(occupations: list[dict[str, str]], occupation_id: str) -> None:
    index = _position(occupations, occupation_id)
    if index is not None:
        del occupations[index]


@functools.lru_cache(maxsize=65_536)
def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _iso(instant: datetime) -> str:
    return require_aware(instant).isoformat()


def _planned_id(item_id: UUID, version: int) -> UUID:
    # Deterministic, so a retried command places the same window.
    return uuid5(item_id, f"planned-maintenance:{version}")


def _minutes(duration: timedelta) -> int:
    return int(duration.total_seconds() // 60)
