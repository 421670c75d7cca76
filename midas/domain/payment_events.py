"""The events of the Payment aggregate (midas.domain.payments): payloads and types.

Readers import the type (``midas.domain.events``): ``event.type == X`` selects,
``X.of(event)`` reads the payload. A field with ``NotRequired`` may be absent from events
recorded before it was added.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from midas.domain.events import EventType, shared_fields


class PaymentFacts(TypedDict):
    """What every payment event records: the booking and customer it is for, its amount
    in minor units of ``currency``, the provider, and when."""

    booking_id: str
    customer_id: str
    amount: int
    currency: str
    provider: str
    at: str


class InReporting(TypedDict):
    """A payment's amount in the reporting currency, at the rate recorded with it."""

    currency: str
    rate: str
    amount: int


# The fields any ``Payment.*`` event has.
payment_facts = shared_fields(PaymentFacts)


class PaymentRequested(PaymentFacts):
    reference: str | None
    deposit_amount: NotRequired[int]
    start: NotRequired[str | None]
    reporting: NotRequired[dict[str, str] | None]
    parts: NotRequired[dict[str, int] | None]


PAYMENT_REQUESTED = EventType("Payment.Requested", PaymentRequested)


class PaymentIntentRecorded(PaymentFacts):
    reference: str


PAYMENT_INTENT_RECORDED = EventType("Payment.IntentRecorded", PaymentIntentRecorded)


class PaymentAsked(PaymentFacts):
    """A payment asked for beyond the booking's own (an APA top-up, a change's
    difference): what for, its money parts, and whether the customer owes it."""

    reference: str
    purpose: str
    parts: dict[str, int] | None
    owed: bool


PAYMENT_ASKED = EventType("Payment.Asked", PaymentAsked)


class PaymentSucceeded(PaymentFacts):
    reference: str
    start: NotRequired[str | None]
    deposit_amount: NotRequired[int]
    payment_method: NotRequired[str | None]
    reporting: NotRequired[InReporting | None]
    parts: NotRequired[dict[str, int] | None]
    purpose: NotRequired[str | None]


PAYMENT_SUCCEEDED = EventType("Payment.Succeeded", PaymentSucceeded)


class PaymentFailed(PaymentFacts):
    reference: str
    reason: str


PAYMENT_FAILED = EventType("Payment.Failed", PaymentFailed)


class PaymentRefundRequested(PaymentFacts):
    reference: str
    cause: str
    parts: NotRequired[dict[str, int] | None]


PAYMENT_REFUND_REQUESTED = EventType("Payment.RefundRequested", PaymentRefundRequested)


class PaymentRefunded(PaymentFacts):
    reference: str
    key: str | None
    reporting: NotRequired[InReporting | None]
    parts: NotRequired[dict[str, int] | None]
    charge: NotRequired[str | None]


PAYMENT_REFUNDED = EventType("Payment.Refunded", PaymentRefunded)


class PaymentRefundFailed(PaymentFacts):
    reference: str
    reason: str


PAYMENT_REFUND_FAILED = EventType("Payment.RefundFailed", PaymentRefundFailed)


class PaymentDisputeOpened(PaymentFacts):
    reference: str
    reason: str
    charge: NotRequired[str | None]


PAYMENT_DISPUTE_OPENED = EventType("Payment.DisputeOpened", PaymentDisputeOpened)


class PaymentDisputeClosed(PaymentFacts):
    reference: str
    outcome: str
    charge: NotRequired[str | None]


PAYMENT_DISPUTE_CLOSED = EventType("Payment.DisputeClosed", PaymentDisputeClosed)


class PaymentDepositAuthorised(PaymentFacts):
    reference: str
    sequence: int
    expires_at: str


PAYMENT_DEPOSIT_AUTHORISED = EventType("Payment.DepositAuthorised", PaymentDepositAuthorised)


class PaymentDepositReauthorised(PaymentFacts):
    reference: str
    previous_reference: str | None
    sequence: int
    expires_at: str


PAYMENT_DEPOSIT_REAUTHORISED = EventType("Payment.DepositReauthorised", PaymentDepositReauthorised)


class PaymentDepositCaptured(PaymentFacts):
    reference: str | None
    reason: str
    released: int


PAYMENT_DEPOSIT_CAPTURED = EventType("Payment.DepositCaptured", PaymentDepositCaptured)


class PaymentDepositReleased(PaymentFacts):
    reference: str | None
    reason: str


PAYMENT_DEPOSIT_RELEASED = EventType("Payment.DepositReleased", PaymentDepositReleased)


class PaymentDepositLapsed(PaymentFacts):
    reference: str


PAYMENT_DEPOSIT_LAPSED = EventType("Payment.DepositLapsed", PaymentDepositLapsed)
