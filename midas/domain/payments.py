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
from midas.domain.payment_events import (
    PAYMENT_ASKED,
    PAYMENT_DEPOSIT_AUTHORISED,
    PAYMENT_DEPOSIT_CAPTURED,
    PAYMENT_DEPOSIT_LAPSED,
    PAYMENT_DEPOSIT_REAUTHORISED,
    PAYMENT_DEPOSIT_RELEASED,
    PAYMENT_DISPUTE_CLOSED,
    PAYMENT_DISPUTE_OPENED,
    PAYMENT_FAILED,
    PAYMENT_INTENT_RECORDED,
    PAYMENT_REFUND_FAILED,
    PAYMENT_REFUND_REQUESTED,
    PAYMENT_REFUNDED,
    PAYMENT_REQUESTED,
    PAYMENT_SUCCEEDED,
)

PAYMENT_NAMESPACE = UUID("6f1c7a52-3b8e-5d2a-9c41-0e7b5a9d2f10")
PROVIDERS = ("stripe", "paypal")
# ISO 4217 minor-unit exponents that are not 2 (the rest use cents).
_EXPONENTS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "HUF": 2, "BHD": 3, "KWD": 3,
              "OMR": 3, "JOD": 3, "TND": 3}


def payment_id(booking_id: UUID | str) -> UUID:
    return uuid5(PAYMENT_NAMESPACE, f"payment:{booking_id}")


def currency_exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def convert(amount: int, currency: str, rate: Decimal, into: str) -> int:
    """`amount` minor units of `currency` in minor units of `into` at `rate` (one unit of
    `currency` is worth `rate` of `into`), rounded half-up; exponents respected."""
    shift = currency_exponent(into) - currency_exponent(currency)
    value = (Decimal(amount) * rate).scaleb(shift)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


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

    payment_method: str | None = None  # the provider's id of what paid (a Stripe `pm_...`)

    @classmethod
    def create_id(cls, booking_id: str, **_: Any) -> UUID:
        return payment_id(booking_id)

    @event(PAYMENT_REQUESTED.event_name)
    def __init__(
        self, booking_id: str, customer_id: str, amount: int, currency: str, provider: str,
        reference: str | None, at: str, deposit_amount: int = 0, start: str | None = None,
        reporting: dict[str, str] | None = None, parts: dict[str, int] | None = None,
    ) -> None:
        self.booking_id = booking_id
        # What of the amount due is extras and pass-through money (the rest is the rental):
        # {extras, pass_through}; each payment and refund records its share of them.
        self.parts = parts
        # The rate into the reporting currency on the day the payment was asked for:
        # {currency, rate, valid_from}; recorded with every payment and refund it makes.
        self.reporting = reporting
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
        start: datetime | None = None, reporting: dict[str, str] | None = None,
        parts: dict[str, int] | None = None,
    ) -> Payment:
        """`reporting`: the rate into the reporting currency in force that day ({currency,
        rate, valid_from}), None when no rate is set for this currency."""
        if provider not in PROVIDERS:
            raise RuleViolation(f"unknown payment provider {provider!r}")
        return cls(booking_id=str(booking_id), customer_id=str(customer_id), amount=amount,
                   currency=currency, provider=provider, reference=reference,
                   at=at.isoformat(), deposit_amount=deposit_amount,
                   start=start.isoformat() if start else None, reporting=reporting,
                   parts=parts)

    # -- reading ----------------------------------------------------------------------

    @property
    def net_paid(self) -> int:
        return self.paid - self.refunded

    def _base(self) -> dict[str, Any]:
        return {"booking_id": self.booking_id, "customer_id": self.customer_id}

    def _money(self, amount: int) -> dict[str, Any]:
        return {**self._base(), "amount": amount, "currency": self.currency}

    def _parts_of(self, amount: int) -> dict[str, int] | None:
        """The share of `amount` that is extras and pass-through money, in proportion to
        the amount due (rounded half-up; a payment of the whole amount is exact)."""
        parts = getattr(self, "parts", None)
        if not parts or self.amount_due <= 0:
            return None
        return {name: int((Decimal(amount) * value / self.amount_due).quantize(
                    Decimal(1), rounding=ROUND_HALF_UP)) for name, value in parts.items()}

    def _refund_parts(self, key: str | None, amount: int) -> dict[str, int] | None:
        asked = getattr(self, "refund_splits", {}).get(key) if key else None
        return asked if asked is not None else self._parts_of(amount)

    def _in_reporting(self, amount: int) -> dict[str, Any] | None:
        """`amount` in the reporting currency at the payment's recorded rate."""
        rate = getattr(self, "reporting", None)
        if rate is None:
            return None
        return {**rate, "amount": convert(amount, self.currency, Decimal(rate["rate"]),
                                          rate["currency"])}

    # -- payment ----------------------------------------------------------------------

    def record_reference(self, provider: str, reference: str, at: datetime) -> None:
        """The provider's intent for this payment (asked again: nothing new)."""
        if self.reference == reference:
            return
        self._requested_again(**self._money(self.amount_due), provider=provider,
                              reference=reference, at=at.isoformat())

    def succeed(self, provider: str, reference: str, amount: int, currency: str,
                at: datetime, payment_method: str | None = None) -> bool:
        """A charge went through; False when this reference was already recorded.
        `payment_method`: the provider's id of the card that paid (the deposit is held on
        it), never card data."""
        if reference in self.settled:
            return False
        if currency.upper() != self.currency.upper():
            raise RuleViolation(f"paid in {currency}, due in {self.currency}")
        asked = self.asked.get(reference)
        extra = {} if asked is None else {"purpose": asked["purpose"]}
        self._succeeded(**self._base(), amount=amount, currency=self.currency,
                        provider=provider, reference=reference, at=at.isoformat(),
                        start=self.start, deposit_amount=self.deposit_amount,
                        payment_method=payment_method, reporting=self._in_reporting(amount),
                        parts=self._parts_of(amount) if asked is None
                        else _scaled(asked["parts"], amount, asked["amount"]), **extra)
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

    def request_refund(self, key: str, amount: int, cause: str, at: datetime,
                       parts: dict[str, int] | None = None) -> bool:
        """Ask for a refund under an idempotency key; False when that key was asked.
        `parts`: what of it is extras and pass-through money when not in proportion (the
        unspent APA is all pass-through), recorded with the refund once made."""
        if key in self.refunds_requested:
            return False
        available = self.refundable
        if amount <= 0 or amount > available:
            raise RuleViolation(f"a refund of {amount} exceeds the refundable {available}")
        self._refund_requested(**self._money(amount), provider=self.provider, reference=key,
                               cause=cause, at=at.isoformat(), parts=parts)
        return True

    def refunded_by_provider(self, reference: str, amount: int, at: datetime,
                             key: str | None = None, charge: str | None = None) -> bool:
        """A refund went through (reported by the call or by a webhook, maybe twice).
        `charge`: the payment it refunds, when known (a refund split over instalments)."""
        if reference in self.refunds_done or (key and key in self.refunds_done):
            return False
        extra: dict[str, Any] = {"charge": charge} if charge else {}
        self._refunded(**self._money(amount), provider=self.provider, reference=reference,
                       key=key, at=at.isoformat(), reporting=self._in_reporting(amount),
                       parts=self._refund_parts(key, amount), **extra)
        return True

    # -- payments asked beyond the booking's own ---------------------------------------

    @property
    def asked(self) -> dict[str, dict[str, Any]]:
        """Each further payment asked of the customer, by its provider reference:
        {amount, purpose, parts} (an APA top-up, a change's difference)."""
        asked: dict[str, dict[str, Any]] = self.__dict__.setdefault("asked_payments", {})
        return asked

    def ask(self, reference: str, amount: int, purpose: str, at: datetime, *,
            parts: dict[str, int] | None = None, owed: bool = True) -> bool:
        """Ask the customer for a further `amount` (an APA top-up, a change's difference)
        under the provider's `reference`; False when it was asked already. `parts`: what of
        it is extras and pass-through money, recorded with its payment; `owed`: it adds to
        the amount due."""
        if reference in self.asked:
            return False
        if amount <= 0:
            raise RuleViolation("a payment asked for is 1 minor unit or more")
        self._asked(**self._money(amount), provider="stripe", reference=reference,
                    purpose=purpose, parts=parts, owed=owed, at=at.isoformat())
        return True

    @property
    def charges(self) -> dict[str, int]:
        """Each successful payment (instalment) and its amount, in order."""
        charges: dict[str, int] = self.__dict__.setdefault("charge_amounts", {})
        return charges

    @property
    def refunded_by_charge(self) -> dict[str, int]:
        refunds: dict[str, int] = self.__dict__.setdefault("charge_refunds", {})
        return refunds

    def refund_parts(self, amount: int) -> list[tuple[str, int]]:
        """How a refund of `amount` is taken from the payments, newest first, each no more
        than what is left of it (a refund never exceeds the charge it goes against)."""
        parts: list[tuple[str, int]] = []
        left = amount
        for charge in reversed(list(self.charges) or self.settled[-1:]):
            room = self.charges.get(charge, amount) - self.refunded_by_charge.get(charge, 0)
            take = min(room, left)
            if take > 0:
                parts.append((charge, take))
                left -= take
            if left == 0:
                break
        if left > 0 and parts:  # refunds recorded without their charge: the newest takes it
            parts[0] = (parts[0][0], parts[0][1] + left)
        return parts

    def refund_failed(self, key: str, reason: str, at: datetime) -> bool:
        if key in self.refunds_done:
            return False
        self._refund_failed(**self._money(self.refunds_requested.get(key, 0)),
                            provider=self.provider, reference=key, reason=reason[:200],
                            at=at.isoformat())
        return True

    # -- disputes ---------------------------------------------------------------------

    def open_dispute(self, reference: str, amount: int, reason: str, at: datetime,
                     charges: tuple[str | None, ...] = ()) -> bool:
        """A dispute (a chargeback) on one of the payments: `charges` are the provider's
        references it names (its payment, its charge), the first this payment settled
        being the payment (instalment) it concerns."""
        if reference in self.disputes:
            return False
        self._dispute_opened(**self._money(amount), provider=self.provider,
                             reference=reference, reason=reason, at=at.isoformat(),
                             charge=self.disputed_charge(charges))
        return True

    def disputed_charge(self, charges: tuple[str | None, ...]) -> str | None:
        """Of the references a dispute names, the payment it concerns: the first that
        settled, else the first named (its success not recorded yet)."""
        named = [c for c in charges if c]
        return next((c for c in named if c in self.settled), named[0] if named else None)

    def close_dispute(self, reference: str, outcome: str, amount: int, at: datetime) -> bool:
        if self.disputes.get(reference) in ("won", "lost"):
            return False
        if outcome not in ("won", "lost"):
            raise RuleViolation(f"unknown dispute outcome {outcome!r}")
        self._dispute_closed(**self._money(amount), provider=self.provider,
                             reference=reference, outcome=outcome, at=at.isoformat(),
                             charge=self.dispute_charges.get(reference))
        return True

    @property
    def dispute_charges(self) -> dict[str, str]:
        """Dispute id -> the payment (provider reference) it concerns, when known."""
        charges: dict[str, str] = self.__dict__.setdefault("disputed_charges", {})
        return charges

    # -- security deposit ---------------------------------------------------------------

    def authorise_deposit(self, reference: str, amount: int, at: datetime,
                          hold: timedelta, *, again: bool = False) -> bool:
        """Hold the deposit; `again`: a new hold for a new amount after the previous one was
        released (a change of the booking altered the deposit)."""
        if self.deposit_state != "none" and not (again and self.deposit_state == "released"):
            return False
        self._deposit_authorised(**self._money(amount), provider="stripe",
                                 reference=reference,
                                 sequence=self.deposit_authorisations + 1 if again else 1,
                                 at=at.isoformat(), expires_at=(at + hold).isoformat())
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

    @event(PAYMENT_INTENT_RECORDED.event_name)
    def _requested_again(self, booking_id: str, customer_id: str, amount: int, currency: str,
                         provider: str, reference: str, at: str) -> None:
        self.provider, self.reference = provider, reference

    @event(PAYMENT_ASKED.event_name)
    def _asked(self, booking_id: str, customer_id: str, amount: int, currency: str,
               provider: str, reference: str, purpose: str, parts: dict[str, int] | None,
               owed: bool, at: str) -> None:
        self.asked[reference] = {"amount": amount, "purpose": purpose, "parts": parts}

    @event(PAYMENT_SUCCEEDED.event_name)
    def _succeeded(self, booking_id: str, customer_id: str, amount: int, currency: str,
                   provider: str, reference: str, at: str, start: str | None = None,
                   deposit_amount: int = 0, payment_method: str | None = None,
                   reporting: dict[str, Any] | None = None,
                   parts: dict[str, int] | None = None, purpose: str | None = None) -> None:
        if payment_method:
            self.payment_method = payment_method
        self.settled.append(reference)
        self.charges[reference] = self.charges.get(reference, 0) + amount
        self.paid += amount
        self.provider = provider
        self.status = "succeeded"

    @event(PAYMENT_FAILED.event_name)
    def _failed(self, booking_id: str, customer_id: str, amount: int, currency: str,
                provider: str, reference: str, reason: str, at: str) -> None:
        self.failures.append(f"{reference}:{reason}")
        if self.paid == 0:
            self.status = "failed"

    @event(PAYMENT_REFUND_REQUESTED.event_name)
    def _refund_requested(self, booking_id: str, customer_id: str, amount: int, currency: str,
                          provider: str, reference: str, cause: str, at: str,
                          parts: dict[str, int] | None = None) -> None:
        self.refunds_requested[reference] = amount
        if parts is not None:
            self.refund_splits = {**getattr(self, "refund_splits", {}), reference: parts}

    @event(PAYMENT_REFUNDED.event_name)
    def _refunded(self, booking_id: str, customer_id: str, amount: int, currency: str,
                  provider: str, reference: str, key: str | None, at: str,
                  reporting: dict[str, Any] | None = None,
                  parts: dict[str, int] | None = None, charge: str | None = None) -> None:
        self.refunds_done[reference] = amount
        if key:
            self.refunds_done[key] = 0  # marks the request as done (amount counted once)
        self.refunded += amount
        target = charge or (self.settled[-1] if self.settled else None)
        if target:
            self.refunded_by_charge[target] = self.refunded_by_charge.get(target, 0) + amount

    @event(PAYMENT_REFUND_FAILED.event_name)
    def _refund_failed(self, booking_id: str, customer_id: str, amount: int, currency: str,
                       provider: str, reference: str, reason: str, at: str) -> None:
        self.refunds_requested.pop(reference, None)

    @event(PAYMENT_DISPUTE_OPENED.event_name)
    def _dispute_opened(self, booking_id: str, customer_id: str, amount: int, currency: str,
                        provider: str, reference: str, reason: str, at: str,
                        charge: str | None = None) -> None:
        self.disputes[reference] = "open"
        if charge:
            self.dispute_charges[reference] = charge

    @event(PAYMENT_DISPUTE_CLOSED.event_name)
    def _dispute_closed(self, booking_id: str, customer_id: str, amount: int, currency: str,
                        provider: str, reference: str, outcome: str, at: str,
                        charge: str | None = None) -> None:
        self.disputes[reference] = outcome

    @event(PAYMENT_DEPOSIT_AUTHORISED.event_name)
    def _deposit_authorised(self, booking_id: str, customer_id: str, amount: int,
                            currency: str, provider: str, reference: str, sequence: int,
                            at: str, expires_at: str) -> None:
        self.deposit_state = "authorised"
        self.deposit_amount = amount
        self.deposit_reference = reference
        self.deposit_expires_at = expires_at
        self.deposit_authorisations = sequence

    @event(PAYMENT_DEPOSIT_REAUTHORISED.event_name)
    def _deposit_reauthorised(self, booking_id: str, customer_id: str, amount: int,
                              currency: str, provider: str, reference: str,
                              previous_reference: str | None, sequence: int, at: str,
                              expires_at: str) -> None:
        self.deposit_reference = reference
        self.deposit_expires_at = expires_at
        self.deposit_authorisations = sequence

    @event(PAYMENT_DEPOSIT_CAPTURED.event_name)
    def _deposit_captured(self, booking_id: str, customer_id: str, amount: int,
                          currency: str, provider: str, reference: str | None, reason: str,
                          released: int, at: str) -> None:
        self.deposit_state = "captured"
        self.deposit_captured = amount

    @event(PAYMENT_DEPOSIT_RELEASED.event_name)
    def _deposit_released(self, booking_id: str, customer_id: str, amount: int,
                          currency: str, provider: str, reference: str | None, reason: str,
                          at: str) -> None:
        self.deposit_state = "released"

    @event(PAYMENT_DEPOSIT_LAPSED.event_name)
    def _deposit_lapsed(self, booking_id: str, customer_id: str, amount: int, currency: str,
                        provider: str, reference: str, at: str) -> None:
        self.deposit_state = "lapsed"


def _scaled(parts: dict[str, int] | None, amount: int, asked: int) -> dict[str, int] | None:
    """`parts` of a payment asked for `asked`, for the `amount` paid (rounded half-up)."""
    if parts is None or amount == asked or asked <= 0:
        return parts
    return {name: int((Decimal(amount) * value / asked).quantize(
        Decimal(1), rounding=ROUND_HALF_UP)) for name, value in parts.items()}
