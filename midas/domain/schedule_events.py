"""The events of the PaymentSchedule aggregate (midas.domain.schedule): payloads and types.

Readers import the type (``midas.domain.events``): ``event.type == X`` selects,
``X.of(event)`` reads the payload. A field with ``NotRequired`` may be absent from events
recorded before it was added.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from midas.domain.events import EventType, shared_fields


class Instalment(TypedDict):
    """One instalment as planned (``midas.domain.schedule``): minor units, ISO instant."""

    number: int
    amount: int
    due_at: str
    state: str
    reference: str | None


class InstalmentFacts(TypedDict):
    """What every event about one instalment records: its booking and number."""

    booking_id: str
    number: int


# The fields any event about one instalment has.
instalment_facts = shared_fields(InstalmentFacts)


class PaymentSchedulePlanned(TypedDict):
    booking_id: str
    customer_id: str
    currency: str
    instalments: list[Instalment]
    at: str
    terms: NotRequired[dict[str, int] | None]


PAYMENT_SCHEDULE_PLANNED = EventType("PaymentSchedule.Planned", PaymentSchedulePlanned)


class PaymentScheduleInstalmentRequested(InstalmentFacts):
    amount: int
    reference: str
    at: str


PAYMENT_SCHEDULE_INSTALMENT_REQUESTED = EventType(
    "PaymentSchedule.InstalmentRequested", PaymentScheduleInstalmentRequested)


class PaymentScheduleInstalmentPaid(InstalmentFacts):
    amount: int
    reference: str
    at: str


PAYMENT_SCHEDULE_INSTALMENT_PAID = EventType(
    "PaymentSchedule.InstalmentPaid", PaymentScheduleInstalmentPaid)


class PaymentScheduleDueDateMoved(InstalmentFacts):
    previous: str
    due_at: str
    actor: str
    terms: NotRequired[dict[str, int] | None]


PAYMENT_SCHEDULE_DUE_DATE_MOVED = EventType(
    "PaymentSchedule.DueDateMoved", PaymentScheduleDueDateMoved)


class PaymentScheduleInstalmentWaived(InstalmentFacts):
    amount: int
    actor: str
    reason: str


PAYMENT_SCHEDULE_INSTALMENT_WAIVED = EventType(
    "PaymentSchedule.InstalmentWaived", PaymentScheduleInstalmentWaived)


class PaymentScheduleInstalmentSplit(InstalmentFacts):
    parts: list[Instalment]
    actor: str
    terms: NotRequired[dict[str, int] | None]


PAYMENT_SCHEDULE_INSTALMENT_SPLIT = EventType(
    "PaymentSchedule.InstalmentSplit", PaymentScheduleInstalmentSplit)


class PaymentScheduleInstalmentReminded(InstalmentFacts):
    customer_id: str
    kind: str
    amount: int
    currency: str
    due_at: str
    at: str


PAYMENT_SCHEDULE_INSTALMENT_REMINDED = EventType(
    "PaymentSchedule.InstalmentReminded", PaymentScheduleInstalmentReminded)


class PaymentScheduleBalanceOverdue(InstalmentFacts):
    amount: int
    due_at: str
    at: str


PAYMENT_SCHEDULE_BALANCE_OVERDUE = EventType(
    "PaymentSchedule.BalanceOverdue", PaymentScheduleBalanceOverdue)


class PaymentScheduleDefaulted(InstalmentFacts):
    forfeited: int
    at: str


PAYMENT_SCHEDULE_DEFAULTED = EventType("PaymentSchedule.Defaulted", PaymentScheduleDefaulted)


class PaymentScheduleForfeitWaived(TypedDict):
    booking_id: str
    amount: int
    actor: str
    reason: str


PAYMENT_SCHEDULE_FORFEIT_WAIVED = EventType(
    "PaymentSchedule.ForfeitWaived", PaymentScheduleForfeitWaived)
