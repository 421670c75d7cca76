"""Refunds: the cancellation table's refund, a refund decided by staff, the unspent
provisioning allowance (APA) given back; each asked for once, under its key, and carried
out with the provider that took the money (`execute_refund`, run by the payments process
manager when the request is recorded, and by the `refund_retry` timer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from commands.payment_store import PROVIDER_PROBLEMS, payment_of, save
from midas.domain.bookings import Booking
from midas.domain.payments import Payment, payment_id
from midas.eventstore import AppendResult, Repository, retry_on_conflict
from midas.http.api import Api
from midas.http.consistency import CommandResult, command_response
from midas.http.context import command_metadata, path_uuid
from midas.http.fields import Amount, Line, PositiveAmount
from midas.http.keys import CLOCK, REPOSITORY
from midas.http.problems import Problem
from midas.payment_providers.paypal_gateway import PayPalGateway
from midas.payment_providers.stripe_gateway import GatewayError, RefundResult, StripeGateway

log = logging.getLogger(__name__)
api = Api(tag="payments", kind="command")
Clock = Callable[[], datetime]


async def refund_cancellation(
    repo: Repository, clock: Clock, booking_id: UUID, amount: int, metadata: dict[str, Any]
) -> AppendResult | None:
    """Booking.Cancelled carries the policy refund: ask for it (once, by its key)."""

    async def attempt() -> AppendResult | None:
        payment = await payment_of(repo, booking_id)
        if payment is None or payment.net_paid <= 0:
            return None
        key = f"booking:{booking_id}:refund:cancel:v1"
        refundable = min(amount, payment.refundable)
        if refundable <= 0 or key in payment.refunds_requested:
            return None
        payment.request_refund(key, refundable, "cancellation policy", clock())
        return await save(repo, payment, metadata=metadata)

    return await retry_on_conflict(attempt)


async def execute_refund(
    repo: Repository, gateway: StripeGateway, clock: Clock, booking_id: UUID, key: str,
    metadata: dict[str, Any], *, raise_transient: bool = False,
    paypal: PayPalGateway | None = None,
) -> AppendResult | None:
    """Carry out a requested refund with the provider that took the money (Stripe, or
    PayPal's REST refund of the IPN's capture), under the request's key.

    A transient provider failure records nothing: the `refund_retry` timer tries again
    (and raises, so the scheduler backs off); other refusals record `RefundFailed`."""
    payment = await repo.get(payment_id(booking_id), cls=Payment)
    if key in payment.refunds_done or key not in payment.refunds_requested:
        return None
    amount = payment.refunds_requested[key]
    intent = payment.settled[-1] if payment.settled else payment.reference
    # Paid in instalments: the refund goes against each payment, newest first, each part
    # under its own key (the last part under the request's), so a retry repeats none.
    parts = payment.refund_parts(amount) if payment.settled else [(intent or "", amount)]
    outcome: list[tuple[str, int, str]] | str
    if payment.provider not in ("stripe", "paypal") or not intent or (
            payment.provider == "paypal" and (paypal is None or not paypal.configured)):
        outcome = f"{payment.provider} refunds are made by staff in the provider's console"
    else:
        outcome = []
        try:
            for n, (charge, part) in enumerate(parts):
                part_key = key if n == len(parts) - 1 else f"{key}:part:{n + 1}"
                refund: RefundResult
                if payment.provider == "paypal" and paypal is not None:
                    refund = await paypal.refund(charge, part, payment.currency, part_key)
                else:
                    refund = await gateway.refund(charge, part, part_key,
                                                  {"booking_id": str(booking_id), "key": key})
                outcome.append((refund.id, refund.amount, charge))
        except GatewayError as exc:
            if exc.transient:
                if raise_transient:
                    raise
                log.warning("refund postponed", extra={"booking": str(booking_id)})
                return None
            outcome = str(exc)

    async def attempt() -> AppendResult | None:
        fresh = await repo.get(payment_id(booking_id), cls=Payment)
        if isinstance(outcome, list):
            for n, (refund_id, refunded, charge) in enumerate(outcome):
                last = n == len(outcome) - 1
                fresh.refunded_by_provider(refund_id, refunded, clock(),
                                           key=key if last else None,
                                           charge=charge)
        else:
            fresh.refund_failed(key, outcome, clock())
        return await save(repo, fresh, metadata=metadata)

    return await retry_on_conflict(attempt)


async def request_refund(
    repo: Repository, clock: Clock, booking_id: UUID, amount: int, reason: str,
    metadata: dict[str, Any],
) -> AppendResult | None:
    """A partial (or full) refund decided by staff; the process manager carries it out."""

    async def attempt() -> AppendResult | None:
        payment = await repo.get(payment_id(booking_id), cls=Payment)
        n = len(payment.refunds_requested) + 1
        payment.request_refund(f"booking:{booking_id}:refund:staff:{n}:v1", amount,
                               f"staff: {reason}", clock())
        return await save(repo, payment, metadata=metadata)

    return await retry_on_conflict(attempt)


async def settle_apa(
    repo: Repository, clock: Clock, booking_id: UUID, spent: int, metadata: dict[str, Any],
) -> tuple[dict[str, int], AppendResult]:
    """The APA statement: recorded on the booking, and the unspent allowance asked back
    from the provider (all of it pass-through money) in the same append; the process
    manager carries the refund out."""

    async def attempt() -> tuple[dict[str, int], AppendResult]:
        booking = await repo.get(booking_id, cls=Booking, exclusive=True)
        statement = booking.reconcile_apa(spent, clock())
        changed: list[Any] = [booking]
        if statement["refund"]:
            payment = await repo.get(payment_id(booking_id), cls=Payment, exclusive=True)
            payment.request_refund(f"booking:{booking_id}:refund:apa:v1", statement["refund"],
                                   "unspent provisioning allowance", clock(),
                                   parts={"pass_through": statement["refund"]})
            changed.append(payment)
        return statement, await repo.save(*changed, metadata=metadata)

    return await retry_on_conflict(attempt)


# -- routes ----------------------------------------------------------------------------------


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: PositiveAmount = Field(description="Minor units to refund.")
    reason: Line = Field(min_length=1, max_length=500)


class RefundAccepted(BaseModel):
    booking_id: UUID
    amount: int
    position: int


@api.post("/api/v1/bookings/{id}/refunds", body=RefundRequest, status=202,
          response=RefundAccepted,
          problems=PROVIDER_PROBLEMS,
          summary="Refund part or all of what was paid (carried out with the provider)")
async def post_refund(request: web.Request, body: RefundRequest) -> web.Response:
    booking_id = path_uuid(request)
    result = await request_refund(request.app[REPOSITORY], request.app[CLOCK], booking_id,
                                  body.amount, body.reason, command_metadata(request))
    if result is None:
        raise Problem(409, "Nothing to refund.")
    return command_response(result, {"booking_id": str(booking_id), "amount": body.amount},
                            status=202)


class ApaStatement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spent: Amount = Field(description="Spent of the allowance, minor units of its currency.")


class ApaStatementResult(CommandResult):
    """The APA statement, in minor units of the booking's currency."""

    booking_id: str
    collected: int
    spent: int
    refund: int = Field(description="Refunded to the customer (unspent allowance).")
    top_up: int = Field(description="Owed by the customer (overspend).")


@api.post("/api/v1/bookings/{id}/apa-statement", body=ApaStatement, status=200,
          response=ApaStatementResult,
          summary="Settle the APA after the charter: the unspent part refunded, an overspend"
          " owed (recorded)")
async def post_apa_statement(request: web.Request, body: ApaStatement) -> web.Response:
    booking_id = path_uuid(request)
    statement, result = await settle_apa(request.app[REPOSITORY], request.app[CLOCK],
                                         booking_id, body.spent, command_metadata(request))
    return command_response(result, {"booking_id": str(booking_id), **statement}, status=200)
