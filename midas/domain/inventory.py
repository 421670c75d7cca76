"""Inventory items: unique rentable things (a car, a yacht, a jet, a property)."""

from __future__ import annotations

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
from midas.domain.lifecycle import BookingState

ITEM_STATUSES = ("active", "inactive", "retired")


class Unavailable(DomainError):
    """The item is busy over (part of) the interval asked for; names what is in the way."""

    def __init__(self, what: str, found: Iterable[Occupation]) -> None:
        self.conflicts = list(found)
        names = ", ".join(
            f"{o.kind.value} {o.id} [{o.interval.start.isoformat()}, {o.interval.end.isoformat()})"
            for o in self.conflicts
        )
        super().__init__(f"the item is not free for {what}: it overlaps {names}")


class NotFound(DomainError):
    status = 404


class Item(Aggregate):
    """An item of the inventory. Event data is plain: cents, minutes, codes."""

    @event("Registered")
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
        # Current and future occupations only, as plain dicts (id, kind, start, end; ISO UTC).
        self.occupations: list[dict[str, str]] = []
        self.maintenance_plan: dict[str, int] | None = None
        self.rental_minutes_since_maintenance = 0

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
        if rate <= 0:
            raise RuleViolation("the rate must be positive")
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
        if rate <= 0:
            raise RuleViolation("the rate must be positive")
        if rate != self.rate:
            self._rate_changed(rate=rate, previous=self.rate)

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

        First a cheap cut on the ISO dates with a day to spare (whatever the offset a
        stored instant was written with), then the exact test on the instants.
        """
        first = (interval.start - timedelta(days=1)).date().isoformat()
        # Compared whole, the stored text is at most `last` by its date when it is below
        # `last` + "~" ("~" sorts after the "T" that follows the date): no slicing.
        last = (interval.end + timedelta(days=1)).date().isoformat() + "~"
        return [_occupation(o) for o in self.occupations
                if o["start"] <= last and o["end"] >= first
                and _instant(o["start"]) < interval.end and _instant(o["end"]) > interval.start]

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
        self, booking_id: UUID, reason: str, at: datetime, rental_minutes: int = 0
    ) -> None:
        """Free a booking's occupation (expired, cancelled, completed). Idempotent."""
        if not any(o["id"] == str(booking_id) for o in self.occupations):
            return
        self._released(booking_id=str(booking_id), reason=reason, at=_iso(at),
                       rental_minutes=rental_minutes)
        self._plan_by_rental_hours(at)

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
        if not any(o["id"] == str(window_id) and o["kind"] == "maintenance"
                   for o in self.occupations):
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
        if not any(o["id"] == str(block_id) and o["kind"] == "external_block"
                   for o in self.occupations):
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
        slot = first_free_slot(timedelta(minutes=plan["duration_minutes"]), after, self.busy())
        self.schedule_maintenance(window_id, slot.start, slot.end, "planned", planned=True)

    @event("StatusChanged")
    def _status_changed(self, status: str, previous: str) -> None:
        self.status = status

    @event("Reserved")
    def _reserved(self, booking_id: str, start: str, end: str, until: str, at: str) -> None:
        self._drop_past(at)
        self.occupations.append(
            {"id": booking_id, "kind": "booking", "start": start, "end": until}
        )

    @event("Released")
    def _released(self, booking_id: str, reason: str, at: str, rental_minutes: int) -> None:
        self.occupations = [o for o in self.occupations if o["id"] != booking_id]
        self.rental_minutes_since_maintenance += rental_minutes
        self._drop_past(at)

    @event("MaintenanceScheduled")
    def _maintenance_scheduled(
        self, window_id: str, start: str, end: str, note: str, planned: bool
    ) -> None:
        self.occupations.append(
            {"id": window_id, "kind": "maintenance", "start": start, "end": end}
        )
        self.rental_minutes_since_maintenance = 0

    @event("MaintenanceRemoved")
    def _maintenance_removed(self, window_id: str) -> None:
        self.occupations = [o for o in self.occupations if o["id"] != window_id]

    @event("Blocked")
    def _blocked(self, block_id: str, start: str, end: str, source: str) -> None:
        self.occupations.append(
            {"id": block_id, "kind": "external_block", "start": start, "end": end}
        )

    @event("Unblocked")
    def _unblocked(self, block_id: str) -> None:
        self.occupations = [o for o in self.occupations if o["id"] != block_id]

    @event("MaintenancePlanSet")
    def _maintenance_plan_set(self, plan: dict[str, int]) -> None:
        self.maintenance_plan = plan

    def _drop_past(self, at: str) -> None:
        # Keeps the state (and snapshots) bounded: nothing can be placed in the past. An
        # end dated two days after `at` is later whatever the offsets (each under a day):
        # only the ends near `at` are parsed, not every occupation at every reservation.
        now = datetime.fromisoformat(at)
        surely_later = (now + timedelta(days=2)).date().isoformat() + "~"  # see busy_during
        self.occupations = [
            o for o in self.occupations
            if o["end"] > surely_later or _instant(o["end"]) > now
        ]

    @event("RateChanged")
    def _rate_changed(self, rate: int, previous: int) -> None:
        self.rate = rate

    @event("Deactivated")
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
