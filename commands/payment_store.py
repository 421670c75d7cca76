"""What the payment commands share: a booking's `Payment` loaded, opened and saved, its
provider references mapped to the booking, and how a provider's refusal is answered.

Every call to a provider carries an idempotency key derived from the command
(`booking:<id>:charge:v1`, `booking:<id>:refund:cancel:v1`, `booking:<id>:deposit:auth:<n>:v1`
...): a command retried after a crash between the call and the append gets the same
provider object back, and the aggregate records it once. Provider facts (webhooks) are in
`commands/webhooks.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from midas.domain.bookings import Booking
from midas.domain.payments import Payment, payment_id
from midas.eventstore import AggregateNotFound, AppendResult, Repository, Statement
from midas.http.problems import Problem
from midas.payment_providers.stripe_gateway import GatewayError
from midas.policy import reporting_rate

PROVIDER_PROBLEMS = {402: "The payment provider declined", 502: "The payment provider failed"}


def reference_statement(reference: str, booking_id: UUID | str) -> Statement:
    """Map a provider id to its booking, in the append that records it."""
    return Statement(
        "INSERT INTO pay_references (reference, booking_id) VALUES ($1, $2)"
        " ON CONFLICT (reference) DO NOTHING", (reference, UUID(str(booking_id))))


async def save(repo: Repository, *aggregates: Any, metadata: dict[str, Any],
               statements: tuple[Statement, ...] = ()) -> AppendResult | None:
    """Save, or nothing when no aggregate has anything new (an idempotent no-op)."""
    if not any(a.pending_events for a in aggregates):
        return None
    return await repo.save(*aggregates, metadata=metadata, statements=statements)


async def payment_of(repo: Repository, booking_id: UUID) -> Payment | None:
    try:
        return await repo.get(payment_id(booking_id), cls=Payment)
    except AggregateNotFound:
        return None


async def open_payment(repo: Repository, booking: Booking, provider: str,
                       reference: str | None, now: datetime) -> Payment:
    """The booking's payment, with the rate into the reporting currency in force today."""
    currency = booking.quote["currency"]
    return Payment.request(
        booking_id=booking.id, customer_id=booking.customer_id, amount=booking.total_due,
        currency=currency, provider=provider, reference=reference, at=now,
        deposit_amount=int(booking.quote.get("security_deposit", 0)), start=booking.starts_at,
        reporting=await reporting_rate(repo, currency, now),
        parts=_parts(booking.quote),
    )


def _parts(quote: dict[str, Any]) -> dict[str, int] | None:
    """What of the amount due is extras and pass-through money (None: all rental)."""
    extras, passing = int(quote.get("extras_total", 0)), int(quote.get("pass_through", 0))
    return {"extras": extras, "pass_through": passing} if extras or passing else None


def gateway_problem(exc: GatewayError) -> Problem:
    """A provider's refusal as the caller's answer: 402 declined, 502 failed."""
    return Problem(402 if exc.declined else 502, str(exc), title="Payment provider error")
