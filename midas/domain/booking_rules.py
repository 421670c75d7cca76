"""The booking rules: how bookings change and are paid, as admins set them, event-sourced.

One aggregate (a fixed id) holds the rules operators run bookings by: how long before the
start customers may still change a booking, each category's payment schedule, when an
unpaid balance is reminded, alerted and defaulted, and what points are worth as payment.
Its first event records the defaults (`DEFAULT_RULES`); each change by an admin is an event
naming the actor (in its metadata). A command reads the rules in force when it runs; what
it decided stays decided: a payment schedule records its instalments and its collection
terms when it is planned, so a later change of the rules moves no booking's due dates,
reminders, alert or grace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from midas.domain.booking_rules_events import (
    BOOKING_RULES_CHANGE_NOTICE_SET,
    BOOKING_RULES_COLLECTION_SET,
    BOOKING_RULES_PAYMENT_SCHEDULE_SET,
    BOOKING_RULES_POINTS_PAYMENT_SET,
    BOOKING_RULES_STARTED,
)
from midas.domain.catalogue import Category
from midas.domain.errors import RuleViolation

RULES_ID = uuid5(UUID(int=0), "midas:booking-rules")
MAX_NOTICE_HOURS = 24 * 365
MAX_BALANCE_DAYS = 365
MAX_REMINDER_DAYS = 90
MAX_ALERT_HOURS = 24 * 90
MAX_GRACE_DAYS = 90
MAX_POINTS_PER_UNIT = 1_000_000


@dataclass(frozen=True)
class ScheduleRule:
    """The share paid at booking, and how many days before the start the balance is due
    (None: everything at booking)."""

    first_share: Decimal
    balance_days_before: int | None


@dataclass(frozen=True)
class CollectionTerms:
    """When a later instalment is reminded (days before its due date; a second reminder
    goes on the due date), the concierge alerted and the booking cancelled for client
    default (after the due date)."""

    reminder_days: int = 7
    alert_after_hours: int = 72
    grace_days: int = 5

    def to_dict(self) -> dict[str, int]:
        return {"reminder_days": self.reminder_days,
                "alert_after_hours": self.alert_after_hours, "grace_days": self.grace_days}

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> CollectionTerms:
        """Terms recorded as data; the defaults for a record made before terms were."""
        return cls(**data) if data else cls()


@dataclass(frozen=True)
class PointsPayment:
    """How many points make one unit of a booking's currency, and the largest share of the
    rental they may pay."""

    points_per_unit: int = 100
    max_share: Decimal = Decimal("0.20")


@dataclass(frozen=True)
class Rules:
    change_notice_hours: int = 72
    schedules: dict[str, ScheduleRule] = field(default_factory=lambda: {
        Category.CAR.value: ScheduleRule(Decimal("1"), None),
        Category.JET.value: ScheduleRule(Decimal("1"), None),
        Category.YACHT.value: ScheduleRule(Decimal("0.50"), 30),
        Category.PROPERTY.value: ScheduleRule(Decimal("0.30"), 45),
    })
    collection: CollectionTerms = field(default_factory=CollectionTerms)
    points: PointsPayment = field(default_factory=PointsPayment)

    def to_dict(self) -> dict[str, Any]:
        return {
            "change_notice_hours": self.change_notice_hours,
            "payment_schedules": {c: {"first_share": str(r.first_share),
                                      "balance_days_before": r.balance_days_before}
                                  for c, r in self.schedules.items()},
            "collection": self.collection.to_dict(),
            "points": {"points_per_unit": self.points.points_per_unit,
                       "max_share": str(self.points.max_share)},
        }

    @classmethod
    def of(cls, data: dict[str, Any]) -> Rules:
        return cls(
            change_notice_hours=int(data["change_notice_hours"]),
            schedules={c: ScheduleRule(Decimal(r["first_share"]), r["balance_days_before"])
                       for c, r in data["payment_schedules"].items()},
            collection=CollectionTerms.of(data["collection"]),
            points=PointsPayment(int(data["points"]["points_per_unit"]),
                                 Decimal(data["points"]["max_share"])))


DEFAULT_RULES = Rules()


class InvalidRule(RuleViolation):
    """A rule out of its bounds, naming the field."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class BookingRules(Aggregate):
    """The rules in force, as plain data (`Rules.to_dict`); `rules` reads them."""

    @event(BOOKING_RULES_STARTED.event_name)
    def __init__(self, rules: dict[str, Any]) -> None:
        self.data = rules

    @classmethod
    def start(cls) -> BookingRules:
        """The first event, recording the defaults."""
        # `Started` is made by the library from `@event("Started")` on `__init__`.
        return cls._create(cls.Started, id=RULES_ID,  # type: ignore[attr-defined]
                           rules=DEFAULT_RULES.to_dict())

    @property
    def rules(self) -> Rules:
        return Rules.of(self.data)

    def set_change_notice(self, hours: int) -> None:
        _whole(hours, "hours", 0, MAX_NOTICE_HOURS)
        if hours != self.data["change_notice_hours"]:
            self._change_notice_set(hours=hours)

    def set_payment_schedule(self, category: str, first_share: Decimal,
                             balance_days_before: int | None) -> None:
        """A category's schedule: a share of 1 pays everything at booking (no balance);
        a smaller share needs the balance's days before the start."""
        category = Category(category).value
        share = _share(first_share, "first_share", allow_zero=False)
        if share == 1 and balance_days_before is not None:
            raise InvalidRule("a first share of 1 leaves no balance: balance_days_before"
                                " must be null", field="balance_days_before")
        if share < 1:
            if balance_days_before is None:
                raise InvalidRule("a balance needs its due date: balance_days_before",
                                    field="balance_days_before")
            _whole(balance_days_before, "balance_days_before", 1, MAX_BALANCE_DAYS)
        record = {"first_share": str(share), "balance_days_before": balance_days_before}
        if record != self.data["payment_schedules"].get(category):
            self._payment_schedule_set(category=category, first_share=str(share),
                                       balance_days_before=balance_days_before)

    def set_collection(self, terms: CollectionTerms) -> None:
        _whole(terms.reminder_days, "reminder_days", 0, MAX_REMINDER_DAYS)
        _whole(terms.alert_after_hours, "alert_after_hours", 0, MAX_ALERT_HOURS)
        _whole(terms.grace_days, "grace_days", 0, MAX_GRACE_DAYS)
        if terms.grace_days * 24 < terms.alert_after_hours:
            raise InvalidRule("the concierge is alerted before the grace ends:"
                                " alert_after_hours at most grace_days x 24",
                                field="alert_after_hours")
        if terms.to_dict() != self.data["collection"]:
            self._collection_set(**terms.to_dict())

    def set_points_payment(self, points_per_unit: int, max_share: Decimal) -> None:
        _whole(points_per_unit, "points_per_unit", 1, MAX_POINTS_PER_UNIT)
        share = str(_share(max_share, "max_share", allow_zero=True))
        if {"points_per_unit": points_per_unit, "max_share": share} != self.data["points"]:
            self._points_payment_set(points_per_unit=points_per_unit, max_share=share)

    # -- events -------------------------------------------------------------------------

    @event(BOOKING_RULES_CHANGE_NOTICE_SET.event_name)
    def _change_notice_set(self, hours: int) -> None:
        self.data = {**self.data, "change_notice_hours": hours}

    @event(BOOKING_RULES_PAYMENT_SCHEDULE_SET.event_name)
    def _payment_schedule_set(self, category: str, first_share: str,
                              balance_days_before: int | None) -> None:
        schedules = {**self.data["payment_schedules"], category: {
            "first_share": first_share, "balance_days_before": balance_days_before}}
        self.data = {**self.data, "payment_schedules": schedules}

    @event(BOOKING_RULES_COLLECTION_SET.event_name)
    def _collection_set(self, reminder_days: int, alert_after_hours: int,
                        grace_days: int) -> None:
        self.data = {**self.data, "collection": {
            "reminder_days": reminder_days, "alert_after_hours": alert_after_hours,
            "grace_days": grace_days}}

    @event(BOOKING_RULES_POINTS_PAYMENT_SET.event_name)
    def _points_payment_set(self, points_per_unit: int, max_share: str) -> None:
        self.data = {**self.data, "points": {"points_per_unit": points_per_unit,
                                             "max_share": max_share}}


def _whole(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRule(f"{name} is a whole number from {low} to {high}", field=name)
    return value


def _share(value: Any, name: str, *, allow_zero: bool) -> Decimal:
    try:
        share = Decimal(str(value))
        valid = share.is_finite() and (share >= 0 if allow_zero else share > 0) and share <= 1
    except (InvalidOperation, ValueError):
        valid = False
    if not valid:
        low = "0" if allow_zero else "more than 0"
        raise InvalidRule(f"{name} is a fraction from {low} to 1, e.g. 0.50", field=name)
    return share.normalize() if share == 1 else share
