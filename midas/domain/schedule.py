"""Payment schedules: the total due paid in instalments, per category.

By default (the booking rules, midas/domain/booking_rules.py) a yacht pays 50 % at booking
and the balance 30 days before the start (the MYBA custom); a property 30 % and the balance
45 days before; cars and jets everything at once. A booking
made inside the balance window pays everything at once. The first instalment confirms the
booking; each later one is asked for when it falls due. The `PaymentSchedule` aggregate
(one per booking) records the plan and what happens to each instalment; staff moves, waives
and splits are events naming the actor. The schedule records the collection terms in force
when it was planned (reminder, alert, grace); its timers follow them, whatever the rules
become later. Events that move due dates carry the terms, so the timers can be set from
them alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from midas.domain.booking_rules import CollectionTerms, ScheduleRule
from midas.domain.errors import DomainError, InvalidState, RuleViolation
from midas.domain.schedule_events import (
    PAYMENT_SCHEDULE_BALANCE_OVERDUE,
    PAYMENT_SCHEDULE_DEFAULTED,
    PAYMENT_SCHEDULE_DUE_DATE_MOVED,
    PAYMENT_SCHEDULE_FORFEIT_WAIVED,
    PAYMENT_SCHEDULE_INSTALMENT_PAID,
    PAYMENT_SCHEDULE_INSTALMENT_REMINDED,
    PAYMENT_SCHEDULE_INSTALMENT_REQUESTED,
    PAYMENT_SCHEDULE_INSTALMENT_SPLIT,
    PAYMENT_SCHEDULE_INSTALMENT_WAIVED,
    PAYMENT_SCHEDULE_PLANNED,
)

SCHEDULE_NAMESPACE = UUID("0c5e8d1a-7f3b-5e62-8a94-2d1f6b3c9e70")


def plan(category: str, total: int, start: datetime, booked_at: datetime,
         rules: Mapping[str, ScheduleRule]) -> list[dict[str, Any]]:
    """The instalments: [{number, amount, due_at}], due_at of the first = `booked_at`."""
    rule = rules.get(category)
    if rule is None or rule.balance_days_before is None or total <= 0:
        return [_instalment(1, total, booked_at)]
    balance_due = start - timedelta(days=rule.balance_days_before)
    if booked_at >= balance_due:  # inside the balance window: everything at once
        return [_instalment(1, total, booked_at)]
    first = int((Decimal(total) * rule.first_share).quantize(Decimal(1), ROUND_HALF_UP))
    if first >= total:
        return [_instalment(1, total, booked_at)]
    return [_instalment(1, first, booked_at), _instalment(2, total - first, balance_due)]


def _instalment(number: int, amount: int, due: datetime) -> dict[str, Any]:
    return {"number": number, "amount": amount, "due_at": due.isoformat(), "state": "planned",
            "reference": None}


def schedule_id(booking_id: UUID | str) -> UUID:
    return uuid5(SCHEDULE_NAMESPACE, f"schedule:{booking_id}")


class PaymentSchedule(Aggregate):
    """A booking's instalments, in minor units of `currency`."""

    terms = CollectionTerms()  # for a schedule restored from a snapshot made before terms

    @classmethod
    def create_id(cls, booking_id: str, **_: Any) -> UUID:
        return schedule_id(booking_id)

    @event(PAYMENT_SCHEDULE_PLANNED.event_name)
    def __init__(self, booking_id: str, customer_id: str, currency: str,
                 instalments: list[dict[str, Any]], at: str,
                 terms: dict[str, int] | None = None) -> None:
        self.booking_id = booking_id
        # The collection terms in force when the schedule was planned (a schedule planned
        # before they were recorded has the defaults).
        self.terms = CollectionTerms.of(terms)
        self.customer_id = customer_id
        self.currency = currency
        self.instalments = [dict(i) for i in instalments]
        self.defaulted = False
        self.forfeit_waived = False

    # -- reading ----------------------------------------------------------------------

    def instalment(self, number: int) -> dict[str, Any]:
        for i in self.instalments:
            if i["number"] == number:
                return i
        raise DomainError(f"no instalment {number}")

    def of_reference(self, reference: str) -> dict[str, Any] | None:
        return next((i for i in self.instalments if i["reference"] == reference), None)

    def open(self) -> list[dict[str, Any]]:
        return [i for i in self.instalments if i["state"] in ("planned", "requested")]

    def later_open(self) -> list[dict[str, Any]]:
        return [i for i in self.open() if i["number"] > 1]

    @property
    def paid(self) -> int:
        return sum(i["amount"] for i in self.instalments if i["state"] == "paid")

    # -- commands ---------------------------------------------------------------------

    def request(self, number: int, reference: str, at: datetime) -> bool:
        i = self.instalment(number)
        if i["state"] != "planned" and i["reference"] == reference:
            return False
        if i["state"] in ("paid", "waived"):
            return False
        self._requested(booking_id=self.booking_id, number=number, amount=i["amount"],
                        reference=reference, at=at.isoformat())
        return True

    def settle(self, reference: str, amount: int, at: datetime) -> int | None:
        """A payment succeeded: the instalment it pays (by its reference; else the first
        open one of that amount). None when it pays none (already settled, or unknown)."""
        target = self.of_reference(reference)
        if target is None:
            target = next((i for i in self.open() if i["amount"] == amount), None)
        if target is None or target["state"] in ("paid", "waived"):
            return None
        self._paid(booking_id=self.booking_id, number=target["number"], amount=amount,
                   reference=reference, at=at.isoformat())
        return int(target["number"])

    def move_due(self, number: int, due_at: datetime, actor: str) -> None:
        i = self._open_later(number, "move its due date")
        self._due_moved(booking_id=self.booking_id, number=number, previous=i["due_at"],
                        due_at=due_at.isoformat(), actor=actor, terms=self.terms.to_dict())

    def waive(self, number: int, actor: str, reason: str) -> None:
        i = self._open_later(number, "waive it")
        self._waived(booking_id=self.booking_id, number=number, amount=i["amount"],
                     actor=actor, reason=reason)

    def split(self, number: int, amounts: list[int], due_dates: list[datetime],
              actor: str) -> None:
        i = self._open_later(number, "split it")
        if len(amounts) < 2 or len(amounts) != len(due_dates) or any(a <= 0 for a in amounts):
            raise RuleViolation("split into two or more positive amounts, each with a date")
        if sum(amounts) != i["amount"]:
            raise RuleViolation(f"the parts must add up to {i['amount']}")
        first = max(x["number"] for x in self.instalments) + 1
        parts = [_instalment(first + k, a, d) for k, (a, d) in enumerate(
            zip(amounts, due_dates, strict=True))]
        self._split(booking_id=self.booking_id, number=number, parts=parts, actor=actor,
                    terms=self.terms.to_dict())

    def remind(self, number: int, kind: str, at: datetime) -> bool:
        """A reminder to pay (`before` the due date, or on the `due` date), once each."""
        i = self.instalment(number)
        if i["state"] not in ("planned", "requested") or kind in i.get("reminded", ()):
            return False
        self._reminded(booking_id=self.booking_id, customer_id=self.customer_id,
                       number=number, kind=kind, amount=i["amount"], currency=self.currency,
                       due_at=i["due_at"], at=at.isoformat())
        return True

    def mark_overdue(self, number: int, at: datetime) -> bool:
        i = self.instalment(number)
        if i["state"] not in ("planned", "requested") or i.get("overdue"):
            return False
        self._overdue(booking_id=self.booking_id, number=number, amount=i["amount"],
                      due_at=i["due_at"], at=at.isoformat())
        return True

    def default(self, number: int, at: datetime) -> bool:
        i = self.instalment(number)
        if self.defaulted or i["state"] not in ("planned", "requested"):
            return False
        self._defaulted(booking_id=self.booking_id, number=number, forfeited=self.paid,
                        at=at.isoformat())
        return True

    def waive_forfeit(self, actor: str, reason: str) -> None:
        if not self.defaulted:
            raise InvalidState("the schedule", "not in default", "waive the forfeit")
        if self.forfeit_waived:
            raise InvalidState("the forfeit", "waived", "waive it again")
        self._forfeit_waived(booking_id=self.booking_id, amount=self.paid, actor=actor,
                             reason=reason)

    def _open_later(self, number: int, action: str) -> dict[str, Any]:
        i = self.instalment(number)
        if number == 1:
            raise RuleViolation("the first instalment is paid at booking")
        if i["state"] not in ("planned", "requested"):
            raise InvalidState(f"instalment {number}", i["state"], action)
        return i

    # -- events -----------------------------------------------------------------------

    @event(PAYMENT_SCHEDULE_INSTALMENT_REQUESTED.event_name)
    def _requested(self, booking_id: str, number: int, amount: int, reference: str,
                   at: str) -> None:
        i = self.instalment(number)
        i["state"], i["reference"] = "requested", reference

    @event(PAYMENT_SCHEDULE_INSTALMENT_PAID.event_name)
    def _paid(self, booking_id: str, number: int, amount: int, reference: str,
              at: str) -> None:
        i = self.instalment(number)
        i["state"], i["reference"] = "paid", reference

    @event(PAYMENT_SCHEDULE_DUE_DATE_MOVED.event_name)
    def _due_moved(self, booking_id: str, number: int, previous: str, due_at: str,
                   actor: str, terms: dict[str, int] | None = None) -> None:
        i = self.instalment(number)
        i["due_at"] = due_at
        i.pop("overdue", None)

    @event(PAYMENT_SCHEDULE_INSTALMENT_WAIVED.event_name)
    def _waived(self, booking_id: str, number: int, amount: int, actor: str,
                reason: str) -> None:
        self.instalment(number)["state"] = "waived"

    @event(PAYMENT_SCHEDULE_INSTALMENT_SPLIT.event_name)
    def _split(self, booking_id: str, number: int, parts: list[dict[str, Any]],
               actor: str, terms: dict[str, int] | None = None) -> None:
        self.instalment(number)["state"] = "split"
        self.instalments += [dict(p) for p in parts]

    @event(PAYMENT_SCHEDULE_INSTALMENT_REMINDED.event_name)
    def _reminded(self, booking_id: str, customer_id: str, number: int, kind: str,
                  amount: int, currency: str, due_at: str, at: str) -> None:
        i = self.instalment(number)
        i["reminded"] = [*i.get("reminded", ()), kind]

    @event(PAYMENT_SCHEDULE_BALANCE_OVERDUE.event_name)
    def _overdue(self, booking_id: str, number: int, amount: int, due_at: str,
                 at: str) -> None:
        self.instalment(number)["overdue"] = True

    @event(PAYMENT_SCHEDULE_DEFAULTED.event_name)
    def _defaulted(self, booking_id: str, number: int, forfeited: int, at: str) -> None:
        self.defaulted = True

    @event(PAYMENT_SCHEDULE_FORFEIT_WAIVED.event_name)
    def _forfeit_waived(self, booking_id: str, amount: int, actor: str, reason: str) -> None:
        self.forfeit_waived = True
