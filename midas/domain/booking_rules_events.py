"""The events of the BookingRules aggregate (midas.domain.booking_rules): payloads and types.

Readers import the type (``midas.domain.events``): ``event.type == X`` selects,
``X.of(event)`` reads the payload. A field with ``NotRequired`` may be absent from events
recorded before it was added.
"""

from __future__ import annotations

from typing import Any, TypedDict

from midas.domain.events import EventType


class BookingRulesStarted(TypedDict):
    rules: dict[str, Any]


BOOKING_RULES_STARTED = EventType("BookingRules.Started", BookingRulesStarted)


class BookingRulesChangeNoticeSet(TypedDict):
    hours: int


BOOKING_RULES_CHANGE_NOTICE_SET = EventType(
    "BookingRules.ChangeNoticeSet", BookingRulesChangeNoticeSet)


class BookingRulesPaymentScheduleSet(TypedDict):
    category: str
    first_share: str
    balance_days_before: int | None


BOOKING_RULES_PAYMENT_SCHEDULE_SET = EventType(
    "BookingRules.PaymentScheduleSet", BookingRulesPaymentScheduleSet)


class BookingRulesCollectionSet(TypedDict):
    reminder_days: int
    alert_after_hours: int
    grace_days: int


BOOKING_RULES_COLLECTION_SET = EventType("BookingRules.CollectionSet", BookingRulesCollectionSet)


class BookingRulesPointsPaymentSet(TypedDict):
    points_per_unit: int
    max_share: str


BOOKING_RULES_POINTS_PAYMENT_SET = EventType(
    "BookingRules.PointsPaymentSet", BookingRulesPointsPaymentSet)
