"""PayPal IPNs after the payment: `Refunded`, `Reversed` and `Canceled_Reversal`.

Verified and addressed to our receiver (checked by `commands.webhooks` first), each is
recorded on the booking's `Payment` as its Stripe counterpart is, once per `txn_id`:
- `Refunded` (a refund's own `txn_id`, `parent_txn_id` = the payment, a negative
  `mc_gross`): `Payment.Refunded`. A refund we asked for through PayPal's REST call has
  the same id, so whichever of the call's answer and the IPN comes first records it; an
  IPN naming no request is matched to the one pending request of that amount, if any.
  A refund arriving before its payment's `Completed` records that payment first (a
  refunded payment was paid), as with Stripe.
- `Reversed` (a chargeback or buyer complaint took the money back): a dispute on the
  payment (`Payment.DisputeOpened`, reference and charge = `parent_txn_id`: the payment,
  so the instalment, it concerns), which emails the legal contact.
- `Canceled_Reversal` (PayPal returned the money): the dispute is closed as won.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

import asyncpg

from commands.payment_store import open_payment, payment_of, reference_statement
from midas.domain.bookings import Booking
from midas.domain.payments import Payment, to_minor_units
from midas.eventstore import AggregateNotFound, Database, Repository, Statement, retry_on_conflict

ADJUSTMENTS = ("Refunded", "Reversed", "Canceled_Reversal")
Clock = Callable[[], datetime]


class Rejected(Exception):
    """An adjustment that cannot be recorded: `kind` names the alert, `detail` explains."""

    def __init__(self, kind: str, detail: dict[str, object]) -> None:
        super().__init__(kind)
        self.kind, self.detail = kind, detail


async def booking_of(db: Database, repo: Repository, fields: dict[str, str]) -> Booking | None:
    """The booking an adjustment is about: `custom` (copied by PayPal from the payment),
    else the booking recorded for `parent_txn_id`."""
    booking_id: UUID | None = None
    try:
        booking_id = UUID(fields.get("custom") or fields.get("invoice") or "")
    except ValueError:
        parent = fields.get("parent_txn_id")
        if parent:
            async with db.acquire() as conn:
                booking_id = await conn.fetchval(
                    "SELECT booking_id FROM pay_references WHERE reference = $1", parent)
    if booking_id is None:
        return None
    try:
        return await repo.get(booking_id, cls=Booking)
    except AggregateNotFound:
        return None


def _pending_key(payment: Payment, amount: int) -> str | None:
    """The one refund request still awaiting its provider, of exactly `amount`."""
    keys = [k for k, a in payment.refunds_requested.items()
            if k not in payment.refunds_done and a == amount]
    return keys[0] if len(keys) == 1 else None


def _record(payment: Payment, status: str, fields: dict[str, str], amount: int,
            now: datetime) -> None:
    txn, parent = fields["txn_id"], fields.get("parent_txn_id") or ""
    if not parent:
        raise Rejected("no_parent_txn_id", {"status": status})
    if status == "Refunded":
        if parent not in payment.settled:
            payment.succeed("paypal", parent, payment.amount_due, payment.currency, now)
        if amount > payment.paid - payment.refunded and txn not in payment.refunds_done:
            raise Rejected("amount_mismatch", {"amount": amount,
                                               "refundable": payment.paid - payment.refunded})
        payment.refunded_by_provider(txn, amount, now, key=_pending_key(payment, amount))
    elif status == "Reversed":
        payment.open_dispute(parent, amount, (fields.get("reason_code") or "reversal")[:100],
                             now, charges=(parent,))
    else:  # Canceled_Reversal
        if parent not in payment.disputes:
            payment.open_dispute(parent, amount, "reversal", now, charges=(parent,))
        payment.close_dispute(parent, "won", amount, now)


async def apply_adjustment(
    repo: Repository, db: Database, clock: Clock, fields: dict[str, str],
    seen: Callable[[str], Statement], already_seen: Callable[[str], object],
) -> str:
    """Record a verified refund, reversal or cancelled reversal once per `txn_id`.
    Raises `Rejected` for what staff must look at (an alert)."""
    status, txn = fields.get("payment_status", ""), fields.get("txn_id", "")
    if not txn:
        raise Rejected("no_txn_id", {"status": status})
    booking = await booking_of(db, repo, fields)
    if booking is None:
        raise Rejected("unknown_booking", {"custom": fields.get("custom")})
    currency = (fields.get("mc_currency") or "").upper()
    try:
        amount = abs(to_minor_units(fields.get("mc_gross") or "", currency))
    except ArithmeticError:
        raise Rejected("amount_mismatch", {"booking_id": str(booking.id)}) from None
    if currency != booking.quote["currency"].upper() or amount == 0:
        raise Rejected("amount_mismatch", {"booking_id": str(booking.id), "amount": amount,
                                           "currency": currency})
    metadata = {"actor": "paypal", "actor_role": None, "causation_id": f"paypal:{txn}",
                "correlation_id": f"paypal:{fields.get('parent_txn_id') or txn}",
                "paypal_status": status}

    async def attempt() -> str:
        if await already_seen(txn):  # type: ignore[misc]
            return "duplicate"
        now = clock()
        payment = await payment_of(repo, booking.id)
        if payment is None:
            payment = await open_payment(repo, booking, "paypal", None, now)
        _record(payment, status, fields, amount, now)
        if not payment.pending_events:
            return "no change"
        try:
            await repo.save(payment, metadata=metadata, statements=(
                seen(txn), reference_statement(txn, booking.id)))
        except asyncpg.UniqueViolationError:
            return "duplicate"
        return "applied"

    return await retry_on_conflict(attempt)
