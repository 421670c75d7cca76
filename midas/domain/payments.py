"""Payments: one `Payment` aggregate per booking, recording every step with the providers.

The aggregate records facts reported by Stripe or PayPal (a charge succeeded, a refund
went through, a dispute opened) and decisions (a refund requested). Facts arrive twice,
late and out of order: every method is idempotent on the provider reference, and a late
fact never moves the payment backwards (a failure after a success is ignored). Event data
never holds card data or client secrets: ids, amounts, currencies, reasons.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from midas.domain.errors import DomainError, InvalidState, RuleViolation

PAYMENT_NAMESPACE = UUID("6f1c7a52-3b8e-5d2a-9c41-0e7b5a9d2f10")
PROVIDERS = ("stripe", "paypal")
# ISO 4217 minor-unit exponents that are not 2 (the rest use cents).
_EXPONENTS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "HUF": 2, "BHD": 3, "KWD": 3,
              "OMR": 3, "JOD": 3, "TND": 3}


def payment_id(booking_id: UUID | str) -> UUID:
    return uuid5(PAYMENT_NAMESPACE, f"payment:{booking_id}")


def currency_exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def to_minor_units(amount: str | Decimal, currency: str) -> int:
    """"1234.50" USD -> 123450; "1234" JPY -> 1234 (half-up beyond the currency's digits)."""
    scale = Decimal(10) ** currency_exponent(currency)
    return int((Decimal(str(amount)) * scale).quantize(Decimal(1), rounding=ROUND_HALF_UP))


class DepositLapsed(DomainError):
    def __init__(self) -> None:
        super().__init__("the deposit hold has lapsed: nothing can be captured")
        self.state = "lapsed"


class Payment(Aggregate):
    """Money for one booking. Amounts are minor units of `currency`."""

    @classmethod
    def create_id(cls, booking_id: str, **_: Any) -> UUID:  # type: ignore[override]
        return payment_id(booking_id)

    @event("Requested")
    def __init__(
        self, booking_id: str, customer_id: str, amount: int, currency: str, provider: str,
        reference: str | None, at: str, deposit_amount: int = 0, start: str | None = None,
    ) -> None:
        self.booking_id = booking_id
        self.start = start  # the booking's start (deposit timers are set from it)
        self.customer_id = customer_id
        self.amount_due = amount
        self.currency = currency
        self.provider = provider
        self.reference = reference
        self.deposit_amount = deposit_amount
        self.status = "requested"
        self.paid = 0
        self.refunded = 0
        self.refunds_requested: dict[str, int] = {}  # idempotency key -> amount
        self.refunds_done: dict[str, int] = {}  # provider refund id (or key) -> amount
        self.settled: list[str] = []  # provider payment references that succeeded
        self.failures: list[str] = []
        self.disputes: dict[str, str] = {}  # dispute id -> open | won | lost
        self.deposit_state = "none"
        self.deposit_reference: str | None = None
        self.deposit_expires_at: str | None = None
        self.deposit_authorisations = 0
        self.deposit_captured = 0

    @classmethod
    def request(
        cls, *, booking_id: UUID | str, customer_id: UUID | str, amount: int, currency: str,
        provider: str, reference: str | None, at: datetime, deposit_amount: int = 0,
        start: datetime | None = None,
    ) -> Payment:
        if provider not in PROVIDERS:
            raise RuleViolation(f"unknown payment provider {provider!r}")
        return cls(booking_id=str(booking_id), customer_id=str(customer_id), amount=amount,
                   currency=currency, provider=provider, reference=reference,
                   at=at.isoformat(), deposit_amount=deposit_amount,
                   start=start.isoformat() if start else None)

    # -- reading ----------------------------------------------------------------------

    @property
    def net_paid(self) -> int:
        return self.paid - self.refunded

    def _base(self) -> dict[str, Any]:
        return {"booking_id": self.booking_id, "customer_id": self.customer_id}

    def _money(self, amount: int) -> dict[str, Any]:
        return {**self._base(), "amount": amount, "currency": self.currency}

    # -- payment ----------------------------------------------------------------------

    def record_reference(self, provider: str, reference: str, at: datetime) -> None:
        """The provider's intent for this payment (asked again: nothing new)."""
        if self.reference == reference:
            return
        self._requested_again(**self._money(self.amount_due), provider=provider,
                              reference=reference, at=at.isoformat())

    def succeed(self, provider: str, reference: str, amount: int, currency: str,
                at: datetime) -> bool:
        """A charge went through; False when this reference was already recorded."""
        if reference in self.settled:
            return False
        if currency.upper() != self.currency.upper():
            raise RuleViolation(f"paid in {currency}, due in {self.currency}")
        self._succeeded(**self._base(), amount=amount, currency=self.currency,
                        provider=provider, reference=reference, at=at.isoformat(),
                        start=self.start, deposit_amount=self.deposit_amount)
        return True

    def fail(self, provider: str, reference: str, reason: str, at: datetime) -> bool:
        """A charge attempt failed: recorded unless the payment already succeeded."""
        if self.paid > 0 or f"{reference}:{reason}" in self.failures:
            return False
        self._failed(**self._money(self.amount_due), provider=provider, reference=reference,
                     reason=reason[:200], at=at.isoformat())
        return True

    # -- refunds ----------------------------------------------------------------------

    @property
    def refundable(self) -> int:
        """Paid, less refunds made and refunds asked for but not yet made."""
        pending = sum(amount for key, amount in self.refunds_requested.items()
                      if key not in self.refunds_done)
        return max(self.paid - self.refunded - pending, 0)

    def request_refund(self, key: str, amount: int, cause: str, at: datetime) -> bool:
        """Ask for a refund under an idempotency key; False when that key was asked."""
        if key in self.refunds_requested:
            return False
        available = self.refundable
        if amount <= 0 or amount > available:
            raise RuleViolation(f"a refund of {amount} exceeds the refundable {available}")
        self._refund_requested(**self._money(amount), provider=self.provider, reference=key,
                               cause=cause, at=at.isoformat())
        return True

    def refunded_by_provider(self, reference: str, amount: int, at: datetime,
                             key: str | None = None) -> bool:
        """A refund went through (reported by the call or by a webhook, maybe twice)."""
        if reference in self.refunds_done or (key and key in self.refunds_done):
            return False
        self._refunded(**self._money(amount), provider=self.provider, reference=reference,
                       key=key, at=at.isoformat())
        return True

    def refund_failed(self, key: str, reason: str, at: datetime) -> bool:
        if key in self.refunds_done:
            return False
        self._refund_failed(**self._money(self.refunds_requested.get(key, 0)),
                            provider=self.provider, reference=key, reason=reason[:200],
                            at=at.isoformat())
        return True

    # -- disputes ---------------------------------------------------------------------

    def open_dispute(self, reference: str, amount: int, reason: str, at: datetime) -> bool:
        if reference in self.disputes:
            return False
        self._dispute_opened(**self._money(amount), provider=self.provider,
                             reference=reference, reason=reason, at=at.isoformat())
        return True

    def close_dispute(self, reference: str, outcome: str, amount: int, at: datetime) -> bool:
        if self.disputes.get(reference) in ("won", "lost"):
            return False
        if outcome not in ("won", "lost"):
            raise RuleViolation(f"unknown dispute outcome {outcome!r}")
        self._dispute_closed(**self._money(amount), provider=self.provider,
                             reference=reference, outcome=outcome, at=at.isoformat())
        return True

    # -- security deposit ---------------------------------------------------------------

    def authorise_deposit(self, reference: str, amount: int, at: datetime,
                          hold: timedelta) -> bool:
        if self.deposit_state != "none":
            return False
        self._deposit_authorised(**self._money(amount), provider="stripe",
                                 reference=reference, sequence=1, at=at.isoformat(),
                                 expires_at=(at + hold).isoformat())
        return True

    def reauthorise_deposit(self, reference: str, at: datetime, hold: timedelta) -> bool:
        if self.deposit_state != "authorised" or reference == self.deposit_reference:
            return False
        self._deposit_reauthorised(
            **self._money(self.deposit_amount), provider="stripe", reference=reference,
            previous_reference=self.deposit_reference,
            sequence=self.deposit_authorisations + 1, at=at.isoformat(),
            expires_at=(at + hold).isoformat())
        return True

    def deposit_lapsed_at(self, now: datetime) -> bool:
        return self.deposit_state == "lapsed" or (
            self.deposit_state == "authorised" and self.deposit_expires_at is not None
            and now >= datetime.fromisoformat(self.deposit_expires_at))

    def check_capturable(self, amount: int, now: datetime) -> None:
        if self.deposit_lapsed_at(now):
            raise DepositLapsed()
        if self.deposit_state != "authorised":
            raise InvalidState("the deposit", self.deposit_state, "capture")
        if amount <= 0 or amount > self.deposit_amount:
            raise RuleViolation(f"capture between 1 and {self.deposit_amount}")

    def capture_deposit(self, amount: int, reason: str, at: datetime) -> None:
        self.check_capturable(amount, at)
        self._deposit_captured(**self._money(amount), provider="stripe",
                               reference=self.deposit_reference, reason=reason,
                               released=self.deposit_amount - amount, at=at.isoformat())

    def release_deposit(self, at: datetime, reason: str) -> bool:
        if self.deposit_state != "authorised":
            return False
        self._deposit_released(**self._money(self.deposit_amount), provider="stripe",
                               reference=self.deposit_reference, reason=reason,
                               at=at.isoformat())
        return True

    def lapse_deposit(self, reference: str, at: datetime) -> bool:
        if self.deposit_state != "authorised" or self.deposit_reference != reference:
            return False
        self._deposit_lapsed(**self._money(self.deposit_amount), provider="stripe",
                             reference=reference, at=at.isoformat())
        return True

    # -- events -----------------------------------------------------------------------

    @event("IntentRecorded")
    def _requested_again(self, booking_id: str, customer_id: str, amount: int, currency: str,
                         provider: str, reference: str, at: str) -> None:
        self.provider, self.reference = provider, reference

    @event("Succeeded")
    def _succeeded(self, booking_id: str, customer_id: str, amount: int, currency: str,
                   provider: str, reference: str, at: str, start: str | None = None,
                   deposit_amount: int = 0) -> None:
        self.settled.append(reference)
        self.paid += amount
        self.provider = provider
        self.status = "succeeded"

    @event("Failed")
    def _failed(self, booking_id: str, customer_id: str, amount: int, currency: str,
                provider: str, reference: str, reason: str, at: str) -> None:
        self.failures.append(f"{reference}:{reason}")
        if self.paid == 0:
            self.status = "failed"

    @event("RefundRequested")
    def _refund_requested(self, booking_id: str, customer_id: str, amount: int, currency: str,
                          provider: str, reference: str, cause: str, at: str) -> None:
        self.refunds_requested[reference] = amount

    @event("Refunded")
    def _refunded(self, booking_id: str, customer_id: str, amount: int, currency: str,
                  provider: str, reference: str, key: str | None, at: str) -> None:
        self.refunds_done[reference] = amount
        if key:
            self.refunds_done[key] = 0  # marks the request as done (amount counted once)
        self.refunded += amount

    @event("RefundFailed")
    def _refund_failed(self, booking_id: str, customer_id: str, amount: int, currency: str,
                       provider: str, reference: str, reason: str, at: str) -> None:
        self.refunds_requested.pop(reference, None)

    @event("DisputeOpened")
    def _dispute_opened(self, booking_id: str, customer_id: str, amount: int, currency: str,
                        provider: str, reference: str, reason: str, at: str) -> None:
        self.disputes[reference] = "open"

    @event("DisputeClosed")
    def _dispute_closed(self, booking_id: str, customer_id: str, amount: int, currency: str,
                        provider: str, reference: str, outcome: str, at: str) -> None:
        self.disputes[reference] = outcome

    @event("DepositAuthorised")
    def _deposit_authorised(self, booking_id: str, customer_id: str, amount: int,
                            currency: str, provider: str, reference: str, sequence: int,
                            at: str, expires_at: str) -> None:
        self.deposit_state = "authorised"
        self.deposit_amount = amount
        self.deposit_reference = reference
        self.deposit_expires_at = expires_at
        self.deposit_authorisations = sequence

    @event("DepositReauthorised")
    def _deposit_reauthorised(self, booking_id: str, customer_id: str, amount: int,
                              currency: str, provider: str, reference: str,
                              previous_reference: str | None, sequence: int, at: str,
                              expires_at: str) -> None:
        self.deposit_reference = reference
        self.deposit_expires_at = expires_at
        self.deposit_authorisations = sequence

    @event("DepositCaptured")
    def _deposit_captured(self, booking_id: str, customer_id: str, amount: int,
                          currency: str, provider: str, reference: str | None, reason: str,
                          released: int, at: str) -> None:
        self.deposit_state = "captured"
        self.deposit_captured = amount

    @event("DepositReleased")
    def _deposit_released(self, booking_id: str, customer_id: str, amount: int,
                          currency: str, provider: str, reference: str | None, reason: str,
                          at: str) -> None:
        self.deposit_state = "released"

    @event("DepositLapsed")
    def _deposit_lapsed(self, booking_id: str, customer_id: str, amount: int, currency: str,
                        provider: str, reference: str, at: str) -> None:
        self.deposit_state = "lapsed"
