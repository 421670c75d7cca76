"""The events of the Booking aggregate (midas.domain.bookings): payloads and types.

Readers import the type (``midas.domain.events``): ``event.type == X`` selects,
``X.of(event)`` reads the payload. A field with ``NotRequired`` may be absent from events
recorded before it was added.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

from midas.domain.events import Data, EventType, shared_fields
from midas.domain.lifecycle import BookingState


class BookingQuote(TypedDict):
    """The quote a booking records (``midas.domain.pricing.Quote.to_dict``): minor units of
    ``currency``, Decimals as strings, ISO instants."""

    category: str
    location_code: str
    time_zone: NotRequired[str]
    currency: str
    start: str
    end: str
    rate: int
    rate_unit: str
    lines: list[dict[str, Any]]
    rental_subtotal: int
    service_level: str
    service_multiplier: str
    rental: int
    insurance_rate: str
    insurance: int
    tax_rate: str
    tax: int
    total_due: int
    security_deposit: int
    nights: NotRequired[int]
    duration_discount_rate: NotRequired[str]
    duration_discount: NotRequired[int]
    extras: NotRequired[list[dict[str, Any]]]
    extras_total: NotRequired[int]
    pass_through: NotRequired[int]


class BookingTerms(TypedDict):
    """What a change replaces or sets (``Booking.terms``)."""

    item_id: str
    start: str
    end: str
    service_level: str
    delivered_level: str
    quote: BookingQuote


class BookingMoved(TypedDict):
    """What every event that moves a booking to another status (``STATUS_AFTER``) records:
    when."""

    at: str


# The fields any event in ``STATUS_AFTER`` has.
moved = shared_fields(BookingMoved)


class BookingHeld(TypedDict):
    item_id: str
    customer_id: str
    start: str
    end: str
    service_level: str
    delivered_level: str
    quote: BookingQuote
    policy_version: int
    held_at: str
    hold_expires_at: str


BOOKING_HELD = EventType("Booking.Held", BookingHeld)


class BookingConfirmedV1(TypedDict):
    """Version 1: ``late`` was recorded, true, only when a payment confirmed a booking
    whose hold had expired (its item reserved again for it); absent otherwise."""

    at: str
    amount_paid: int
    start: str
    late: NotRequired[bool]


class BookingConfirmed(BookingMoved):
    """Version 2: every confirmation says whether it ``reinstated`` an expired booking
    (its item reserved again for a late payment) or confirmed a live hold."""

    amount_paid: int
    start: str  # repeated from the hold, so timers can be set from the event alone
    reinstated: bool


def _confirmed_v1_v2(data: Data) -> Data:
    data["reinstated"] = bool(data.pop("late", False))
    return data


BOOKING_CONFIRMED = EventType("Booking.Confirmed", BookingConfirmed,
                              upcasts=[_confirmed_v1_v2])


class BookingExpired(BookingMoved):
    pass


BOOKING_EXPIRED = EventType("Booking.Expired", BookingExpired)


class BookingCheckedOut(BookingMoved):
    end: str


BOOKING_CHECKED_OUT = EventType("Booking.CheckedOut", BookingCheckedOut)


class BookingCheckedIn(BookingMoved):
    pass


BOOKING_CHECKED_IN = EventType("Booking.CheckedIn", BookingCheckedIn)


class BookingCancelled(BookingMoved):
    reason: str
    notice_minutes: int
    refund_percentage: str
    refund_amount: int
    deposit_released: bool


BOOKING_CANCELLED = EventType("Booking.Cancelled", BookingCancelled)


class BookingApaReconciled(TypedDict):
    at: str
    collected: int
    spent: int
    refund: int
    top_up: int


BOOKING_APA_RECONCILED = EventType("Booking.ApaReconciled", BookingApaReconciled)


class ApaStatement(TypedDict):
    """A booking's APA statement: collected, spent, the unspent part refunded, the
    overspend owed (``top_up``) and what of it was paid, by which payments."""

    collected: int
    spent: int
    refund: int
    top_up: int
    top_up_paid: NotRequired[int]
    top_up_payments: NotRequired[list[str]]


class BookingApaTopUpPaid(TypedDict):
    at: str
    amount: int
    reference: str
    statement: ApaStatement


BOOKING_APA_TOP_UP_PAID = EventType("Booking.ApaTopUpPaid", BookingApaTopUpPaid)


class BookingChangeRequested(TypedDict):
    number: int
    terms: BookingTerms
    previous: BookingTerms
    difference: int
    payment_reference: str
    hold_id: str
    at: str
    expires_at: str
    points: NotRequired[int]
    points_value: NotRequired[int]


BOOKING_CHANGE_REQUESTED = EventType("Booking.ChangeRequested", BookingChangeRequested)


class BookingChanged(TypedDict):
    number: int
    terms: BookingTerms
    previous: BookingTerms
    difference: int
    paid: int
    refund_amount: int
    refund_percentage: str
    state: str
    at: str
    points: NotRequired[int]
    points_value: NotRequired[int]


BOOKING_CHANGED = EventType("Booking.Changed", BookingChanged)


class BookingChangeLapsed(TypedDict):
    number: int
    hold_id: str
    payment_reference: str
    at: str


BOOKING_CHANGE_LAPSED = EventType("Booking.ChangeLapsed", BookingChangeLapsed)


class BookingPointsRedeemed(TypedDict):
    points: int
    value: int
    at: str


BOOKING_POINTS_REDEEMED = EventType("Booking.PointsRedeemed", BookingPointsRedeemed)


class BookingConciergeAssigned(TypedDict):
    concierge_id: str


BOOKING_CONCIERGE_ASSIGNED = EventType("Booking.ConciergeAssigned", BookingConciergeAssigned)


# The status a booking enters with each event that moves it (the lifecycle's states).
STATUS_AFTER: Mapping[str, str] = {
    BOOKING_CONFIRMED: BookingState.CONFIRMED.value,
    BOOKING_EXPIRED: BookingState.EXPIRED.value,
    BOOKING_CHECKED_OUT: BookingState.ACTIVE.value,
    BOOKING_CHECKED_IN: BookingState.COMPLETED.value,
    BOOKING_CANCELLED: BookingState.CANCELLED.value,
}
