"""Bookings: a customer's hold on one item for [start, end), and its lifecycle.

The booking records its quote line by line when it is held. Its state only moves forward
(`midas.domain.lifecycle`); the item it occupies is a separate aggregate (the consistency
boundary), so every command that frees or takes the item changes both, saved atomically.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from midas.domain.catalogue import Catalogue, Category, ServiceLevel
from midas.domain.errors import InvalidState
from midas.domain.lifecycle import BookingState, InvalidTransition, hold_expires_at, transition
from midas.domain.pricing import Quote
from midas.domain.refunds import CancellationReason, refund_amount, refund_percentage_at


class Booking(Aggregate):
    """Event data is plain: ISO UTC instants, cents, Decimal strings."""

    @event("Held")
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
        return int(self.quote["total_due"])

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
        self._confirmed(at=at.isoformat(), amount_paid=paid, start=self.start)

    def confirm_payment(self, at: datetime, amount_paid: int, *, reinstated: bool = False
                        ) -> None:
        """A provider reported the payment. A held booking is confirmed even past its deadline
        (its item is still occupied for it); an expired one only once the caller has
        reserved the item again (`reinstated`, payments issue 5)."""
        if self.status is BookingState.EXPIRED and reinstated:
            self._confirmed(at=at.isoformat(), amount_paid=amount_paid, start=self.start,
                            late=True)
            return
        transition(self.status, BookingState.CONFIRMED)
        self._confirmed(at=at.isoformat(), amount_paid=amount_paid, start=self.start)

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

    def assign_concierge(self, concierge_id: UUID) -> None:
        if self.status not in (BookingState.HELD, BookingState.CONFIRMED, BookingState.ACTIVE):
            raise InvalidState("the booking", self.state, "assign a concierge")
        if self.concierge_id == str(concierge_id):
            return
        self._concierge_assigned(concierge_id=str(concierge_id))

    # -- events -----------------------------------------------------------------------

    # Confirmed and CheckedOut repeat start / end so timers can be set from the event alone.
    @event("Confirmed")
    def _confirmed(self, at: str, amount_paid: int, start: str, late: bool = False) -> None:
        self.state = BookingState.CONFIRMED.value
        self.amount_paid = amount_paid

    @event("Expired")
    def _expired(self, at: str) -> None:
        self.state = BookingState.EXPIRED.value

    @event("CheckedOut")
    def _checked_out(self, at: str, end: str) -> None:
        self.state = BookingState.ACTIVE.value

    @event("CheckedIn")
    def _checked_in(self, at: str) -> None:
        self.state = BookingState.COMPLETED.value

    @event("Cancelled")
    def _cancelled(
        self, at: str, reason: str, notice_minutes: int, refund_percentage: str,
        refund_amount: int, deposit_released: bool,
    ) -> None:
        self.state = BookingState.CANCELLED.value
        self.refund = (refund_percentage, refund_amount)

    @event("ConciergeAssigned")
    def _concierge_assigned(self, concierge_id: str) -> None:
        self.concierge_id = concierge_id


def refund_of(data: dict[str, Any]) -> tuple[Decimal, int]:
    """The refund percentage and amount recorded in a Cancelled event's data."""
    return Decimal(data["refund_percentage"]), int(data["refund_amount"])

