"""Bookings: a customer's hold on one item for [start, end), and its lifecycle.

The booking records its quote line by line when it is held. Its state only moves forward
(`midas.domain.lifecycle`); the item it occupies is a separate aggregate (the consistency
boundary), so every command that frees or takes the item changes both, saved atomically.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from midas.domain.booking_events import (
    BOOKING_APA_RECONCILED,
    BOOKING_APA_TOP_UP_PAID,
    BOOKING_CANCELLED,
    BOOKING_CHANGE_LAPSED,
    BOOKING_CHANGE_REQUESTED,
    BOOKING_CHANGED,
    BOOKING_CHECKED_IN,
    BOOKING_CHECKED_OUT,
    BOOKING_CONCIERGE_ASSIGNED,
    BOOKING_CONFIRMED,
    BOOKING_EXPIRED,
    BOOKING_HELD,
    BOOKING_POINTS_REDEEMED,
)
from midas.domain.catalogue import Catalogue, Category, ServiceLevel
from midas.domain.errors import InvalidState, RuleViolation
from midas.domain.lifecycle import BookingState, InvalidTransition, hold_expires_at, transition
from midas.domain.pricing import Quote
from midas.domain.refunds import CancellationReason, refund_amount, refund_percentage_at


class Booking(Aggregate):
    """Event data is plain: ISO UTC instants, cents, Decimal strings."""

    # Loyalty points chosen as payment: how many, and the money they stand for (a class
    # default, so bookings held before points could pay read as none).
    points_redeemed = 0
    points_credit = 0
    changes_made = 0  # changes proposed for payment or applied, numbered from 1
    pending_change: dict[str, Any] | None = None  # an increase awaiting its payment
    lapsed_change_payments: tuple[str, ...] = ()  # intents of changes that lapsed unpaid

    @event(BOOKING_HELD.event_name)
    def __init__(
        self,
        item_id: str,
        customer_id: str,
        start: str,
        end: str,
        service_level: str,
        delivered_level: str,
        quote: dict[str, Any],
        policy_version: int,
        held_at: str,
        hold_expires_at: str,
    ) -> None:
        self.item_id = item_id
        self.customer_id = customer_id
        self.start = start
        self.end = end
        self.service_level = service_level
        self.delivered_level = delivered_level
        self.quote = quote
        self.policy_version = policy_version
        self.held_at = held_at
        self.hold_expires_at = hold_expires_at
        self.state = BookingState.HELD.value
        self.amount_paid = 0
        self.concierge_id: str | None = None
        self.refund: tuple[str, int] | None = None
        self.apa: dict[str, int] | None = None  # the APA statement, once settled

    @classmethod
    def hold(
        cls,
        *,
        item_id: UUID,
        customer_id: UUID,
        quote: Quote,
        delivered_level: ServiceLevel,
        policy_version: int,
        at: datetime,
        hold_expiry: timedelta,
    ) -> Booking:
        return cls(
            item_id=str(item_id),
            customer_id=str(customer_id),
            start=quote.start.isoformat(),
            end=quote.end.isoformat(),
            service_level=quote.service_level.value,
            delivered_level=ServiceLevel(delivered_level).value,
            quote=quote.to_dict(),
            policy_version=policy_version,
            held_at=at.isoformat(),
            hold_expires_at=hold_expires_at(at, hold_expiry).isoformat(),
        )

    # -- reading ----------------------------------------------------------------------

    @property
    def status(self) -> BookingState:
        return BookingState(self.state)

    @property
    def starts_at(self) -> datetime:
        return datetime.fromisoformat(self.start)

    @property
    def ends_at(self) -> datetime:
        return datetime.fromisoformat(self.end)

    @property
    def category(self) -> Category:
        return Category(self.quote["category"])

    @property
    def total_due(self) -> int:
        """What is left to pay in money: the quote's total less the points' value."""
        return int(self.quote["total_due"]) - self.points_credit

    def hold_lapsed(self, now: datetime) -> bool:
        """A hold past its deadline, whether or not its expiry is recorded yet."""
        return self.status is BookingState.HELD and now >= datetime.fromisoformat(
            self.hold_expires_at)

    def rental_minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)

    # -- commands ---------------------------------------------------------------------

    def confirm(self, at: datetime, amount_paid: int | None = None) -> None:
        """Payment received (for now a staff command). A lapsed hold cannot be confirmed."""
        transition(self.status, BookingState.CONFIRMED)
        if self.hold_lapsed(at):
            raise InvalidTransition(BookingState.EXPIRED, BookingState.CONFIRMED)
        paid = self.total_due if amount_paid is None else amount_paid
        self._confirmed(at=at.isoformat(), amount_paid=paid, start=self.start,
                        reinstated=False)

    def confirm_payment(self, at: datetime, amount_paid: int, *, reinstated: bool = False
                        ) -> None:
        """A provider reported the payment. A held booking is confirmed even past its deadline
        (its item is still occupied for it); an expired one only once the caller has
        reserved the item again (`reinstated`)."""
        if self.status is BookingState.EXPIRED and reinstated:
            self._confirmed(at=at.isoformat(), amount_paid=amount_paid, start=self.start,
                            reinstated=True)
            return
        transition(self.status, BookingState.CONFIRMED)
        self._confirmed(at=at.isoformat(), amount_paid=amount_paid, start=self.start,
                        reinstated=False)

    def expire(self, at: datetime) -> bool:
        """Record the expiry of a lapsed hold; False (nothing recorded) when it has none."""
        if not self.hold_lapsed(at):
            return False
        self._expired(at=at.isoformat())
        return True

    def check_out(self, at: datetime) -> None:
        transition(self.status, BookingState.ACTIVE)
        self._checked_out(at=at.isoformat(), end=self.end)

    def check_in(self, at: datetime) -> None:
        transition(self.status, BookingState.COMPLETED)
        self._checked_in(at=at.isoformat())

    def cancel(
        self,
        at: datetime,
        catalogue: Catalogue,
        reason: CancellationReason = CancellationReason.CUSTOMER,
    ) -> None:
        """Cancel with the refund of the amount paid from the policy table (refunds.py)."""
        transition(self.status, BookingState.CANCELLED)
        percentage = refund_percentage_at(
            self.category, self.starts_at, at, catalogue, reason=reason)
        self._cancelled(
            at=at.isoformat(),
            reason=CancellationReason(reason).value,
            notice_minutes=int((self.starts_at - at).total_seconds() // 60),
            refund_percentage=str(percentage),
            refund_amount=refund_amount(self.amount_paid, percentage),
            deposit_released=True,
        )

    def reconcile_apa(self, spent: int, at: datetime) -> dict[str, int]:
        """The APA statement after the charter: what was spent of the allowance collected.
        Answers {collected, spent, refund, top_up}: the unspent part is refunded, an
        overspend is owed by the customer. Once per booking, on an active or completed one."""
        collected = int(self.quote.get("pass_through", 0))
        if collected <= 0:
            raise RuleViolation("this booking has no provisioning allowance (APA)")
        if self.status not in (BookingState.ACTIVE, BookingState.COMPLETED):
            raise InvalidState("the booking", self.state, "settle its APA")
        if getattr(self, "apa", None) is not None:
            raise InvalidState("the booking's APA", "settled", "settle it again")
        if isinstance(spent, bool) or spent < 0:
            raise RuleViolation("what was spent is 0 or more minor units")
        statement = {"collected": collected, "spent": spent,
                     "refund": max(collected - spent, 0), "top_up": max(spent - collected, 0)}
        self._apa_reconciled(at=at.isoformat(), **statement)
        return statement

    def pay_apa_top_up(self, amount: int, reference: str, at: datetime) -> bool:
        """The overspend of a settled APA was paid (`reference`: the provider's payment);
        False when that payment was recorded already."""
        statement = getattr(self, "apa", None)
        if statement is None or not statement["top_up"]:
            raise InvalidState("the booking's APA", "not owed a top-up", "record one")
        if reference in statement.get("top_up_payments", []):
            return False
        paid = int(statement.get("top_up_paid", 0)) + amount
        self._apa_top_up_paid(at=at.isoformat(), amount=amount, reference=reference,
                              statement={**statement, "top_up_paid": paid,
                                         "top_up_payments": [
                                             *statement.get("top_up_payments", []),
                                             reference]})
        return True

    def redeem_points(self, points: int, value: int, at: datetime, *, max_share: Decimal
                      ) -> None:
        """Pay `value` of a held booking with `points`, for at most `max_share` of the
        rental (the first redemption only: points are chosen once)."""
        if self.status is not BookingState.HELD or self.hold_lapsed(at):
            raise InvalidState("the booking", self.state, "be paid with points")
        if self.points_redeemed:
            raise RuleViolation("points were already chosen for this booking")
        cap = int((Decimal(int(self.quote["rental"])) * max_share).to_integral_value(
            ROUND_FLOOR))
        if value <= 0 or value > cap:
            raise RuleViolation(f"points may pay at most {cap} of this rental, not {value}")
        self._points_redeemed(points=points, value=value, at=at.isoformat())

    def assign_concierge(self, concierge_id: UUID) -> None:
        if self.status not in (BookingState.HELD, BookingState.CONFIRMED, BookingState.ACTIVE):
            raise InvalidState("the booking", self.state, "assign a concierge")
        if self.concierge_id == str(concierge_id):
            return
        self._concierge_assigned(concierge_id=str(concierge_id))

    # -- events -----------------------------------------------------------------------

    # Confirmed and CheckedOut repeat start / end so timers can be set from the event alone.
    @event(BOOKING_CONFIRMED.event_name)
    def _confirmed(self, at: str, amount_paid: int, start: str, reinstated: bool) -> None:
        self.state = BookingState.CONFIRMED.value
        self.amount_paid = amount_paid

    @event(BOOKING_EXPIRED.event_name)
    def _expired(self, at: str) -> None:
        self.state = BookingState.EXPIRED.value

    @event(BOOKING_CHECKED_OUT.event_name)
    def _checked_out(self, at: str, end: str) -> None:
        self.state = BookingState.ACTIVE.value

    @event(BOOKING_CHECKED_IN.event_name)
    def _checked_in(self, at: str) -> None:
        self.state = BookingState.COMPLETED.value

    @event(BOOKING_CANCELLED.event_name)
    def _cancelled(
        self, at: str, reason: str, notice_minutes: int, refund_percentage: str,
        refund_amount: int, deposit_released: bool,
    ) -> None:
        self.state = BookingState.CANCELLED.value
        self.refund = (refund_percentage, refund_amount)

    @event(BOOKING_APA_RECONCILED.event_name)
    def _apa_reconciled(self, at: str, collected: int, spent: int, refund: int,
                        top_up: int) -> None:
        self.apa = {"collected": collected, "spent": spent, "refund": refund,
                    "top_up": top_up}

    @event(BOOKING_APA_TOP_UP_PAID.event_name)
    def _apa_top_up_paid(self, at: str, amount: int, reference: str,
                         statement: dict[str, Any]) -> None:
        self.apa = statement

    # -- changes (midas.domain.booking_changes decides; these record) -------------------

    def terms(self) -> dict[str, Any]:
        """What a change replaces, as recorded: restored exactly if a change lapses."""
        return {"item_id": self.item_id, "start": self.start, "end": self.end,
                "service_level": self.service_level, "delivered_level": self.delivered_level,
                "quote": self.quote}

    def request_change(self, terms: dict[str, Any], difference: int, reference: str,
                       hold_id: str, at: datetime, expires_at: datetime, *,
                       points: int = 0, points_value: int = 0) -> int:
        """An increase on a paid booking: the new terms wait for the difference (less the
        value of the loyalty `points` chosen for it)."""
        if self.pending_change is not None:
            raise InvalidState("the booking", "awaiting the payment of a change",
                               "change again")
        number = self.changes_made + 1
        self._change_requested(number=number, terms=terms, previous=self.terms(),
                               difference=difference, payment_reference=reference,
                               hold_id=hold_id, at=at.isoformat(),
                               expires_at=expires_at.isoformat(), points=points,
                               points_value=points_value)
        return number

    def apply_change(self, terms: dict[str, Any], difference: int, at: datetime, *,
                     paid: int = 0, refund_amount: int = 0, refund_percentage: str = "0",
                     number: int | None = None, points: int = 0, points_value: int = 0
                     ) -> int:
        """The new terms take effect (with the difference paid, or a refund to make)."""
        if number is None:
            if self.pending_change is not None:
                raise InvalidState("the booking", "awaiting the payment of a change",
                                   "change again")
            number = self.changes_made + 1
        self._changed(number=number, terms=terms, previous=self.terms(),
                      difference=difference, paid=paid, refund_amount=refund_amount,
                      refund_percentage=refund_percentage, state=self.state,
                      at=at.isoformat(), points=points, points_value=points_value)
        return number

    def lapse_change(self, number: int, at: datetime) -> bool:
        if self.pending_change is None or self.pending_change["number"] != number:
            return False
        self._change_lapsed(number=number, hold_id=self.pending_change["hold_id"],
                            payment_reference=self.pending_change["payment_reference"],
                            at=at.isoformat())
        return True

    @event(BOOKING_CHANGE_REQUESTED.event_name)
    def _change_requested(self, number: int, terms: dict[str, Any], previous: dict[str, Any],
                          difference: int, payment_reference: str, hold_id: str, at: str,
                          expires_at: str, points: int = 0, points_value: int = 0) -> None:
        self.changes_made = number
        self.pending_change = {"number": number, "terms": terms, "difference": difference,
                               "payment_reference": payment_reference, "hold_id": hold_id,
                               "expires_at": expires_at, "points": points,
                               "points_value": points_value}

    @event(BOOKING_CHANGED.event_name)
    def _changed(self, number: int, terms: dict[str, Any], previous: dict[str, Any],
                 difference: int, paid: int, refund_amount: int, refund_percentage: str,
                 state: str, at: str, points: int = 0, points_value: int = 0) -> None:
        self.changes_made = max(self.changes_made, number)
        self.pending_change = None
        self.item_id, self.start, self.end = terms["item_id"], terms["start"], terms["end"]
        self.service_level = terms["service_level"]
        self.delivered_level = terms["delivered_level"]
        self.quote = terms["quote"]
        self.amount_paid += paid
        self.points_redeemed += points
        self.points_credit += points_value

    @event(BOOKING_CHANGE_LAPSED.event_name)
    def _change_lapsed(self, number: int, hold_id: str, payment_reference: str, at: str
                       ) -> None:
        self.pending_change = None
        self.lapsed_change_payments = (*self.lapsed_change_payments, payment_reference)

    @event(BOOKING_POINTS_REDEEMED.event_name)
    def _points_redeemed(self, points: int, value: int, at: str) -> None:
        self.points_redeemed = points
        self.points_credit = value

    @event(BOOKING_CONCIERGE_ASSIGNED.event_name)
    def _concierge_assigned(self, concierge_id: str) -> None:
        self.concierge_id = concierge_id
