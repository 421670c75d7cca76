"""The APA top-up: after a charter whose provisioning allowance was overspent, the customer
pays the difference.

The statement (`POST /api/v1/bookings/{id}/apa-statement`) records the top-up owed; the
APA process then asks for it: a PaymentIntent under the key `booking:<id>:apa-topup:v1`
(asked again after a crash, Stripe answers the same intent), recorded on the booking's
payment as asked-for pass-through money, then confirmed off-session on the card that paid
the charter when one is on file. A card that declines leaves the intent for the customer
to pay in the browser (`POST /api/v1/bookings/{id}/apa-top-up`). Stripe's webhook reports
the success like any payment; the process records it on the booking's statement.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel

from commands.payment_store import payment_of, reference_statement
from midas.domain.bookings import Booking
from midas.domain.errors import InvalidState
from midas.eventstore import AppendResult, Repository, retry_on_conflict
from midas.http.api import Api
from midas.http.auth import current_principal
from midas.http.consistency import command_response
from midas.http.context import command_metadata, path_uuid
from midas.http.keys import CLOCK, REPOSITORY, STRIPE
from midas.http.problems import Problem
from midas.payment_providers.stripe_gateway import GatewayError, Intent, StripeGateway

log = logging.getLogger(__name__)
api = Api(tag="payments", kind="command")
Clock = Callable[[], datetime]
PURPOSE = "apa_top_up"


def top_up_key(booking_id: UUID | str, step: str = "") -> str:
    return f"booking:{booking_id}:apa-topup{':' + step if step else ''}:v1"


async def ask_top_up(repo: Repository, gateway: StripeGateway, clock: Clock,
                     booking_id: UUID, metadata: dict[str, Any]
                     ) -> tuple[Intent | None, AppendResult | None]:
    """The top-up's intent (created, or the same one again), recorded on the booking's
    payment as asked-for pass-through money. (None, None): no top-up is owed, or the booking
    has no payment on record to add it to (paid outside the providers)."""
    booking = await repo.get(booking_id, cls=Booking)
    statement = getattr(booking, "apa", None)
    payment = await payment_of(repo, booking_id)
    if statement is None or not statement["top_up"] or payment is None:
        return None, None
    amount = int(statement["top_up"])
    intent = await gateway.create_intent(
        amount=amount, currency=booking.quote["currency"], key=top_up_key(booking_id),
        metadata={"booking_id": str(booking_id), "kind": PURPOSE})

    async def attempt() -> AppendResult | None:
        fresh = await payment_of(repo, booking_id)
        if fresh is None or not fresh.ask(intent.id, amount, PURPOSE, clock(),
                                          parts={"extras": 0, "pass_through": amount}):
            return None
        return await repo.save(fresh, metadata=metadata,
                               statements=(reference_statement(intent.id, booking_id),))

    return intent, await retry_on_conflict(attempt)


async def collect_top_up(repo: Repository, gateway: StripeGateway, clock: Clock,
                         booking_id: UUID, metadata: dict[str, Any]) -> object:
    """Ask for the top-up and charge it off-session on the card that paid, if known."""
    intent, result = await ask_top_up(repo, gateway, clock, booking_id, metadata)
    payment = await payment_of(repo, booking_id)
    if intent is None or payment is None or not payment.payment_method or (
            intent.status not in ("requires_payment_method", "requires_confirmation")):
        return result
    try:
        await gateway.confirm_with(
            intent.id, payment.payment_method,
            attach_key=top_up_key(booking_id, f"attach:{payment.payment_method}"),
            confirm_key=top_up_key(booking_id, f"confirm:{payment.payment_method}"))
    except GatewayError as exc:
        if exc.transient:
            raise  # the process runs the reaction again
        log.warning("APA top-up not charged on the card on file",
                    extra={"booking": str(booking_id)})
    return result


async def record_top_up_paid(repo: Repository, clock: Clock, booking_id: UUID,
                             reference: str, amount: int, metadata: dict[str, Any]
                             ) -> AppendResult | None:
    async def attempt() -> AppendResult | None:
        booking = await repo.get(booking_id, cls=Booking, exclusive=True)
        if not booking.pay_apa_top_up(amount, reference, clock()):
            return None
        return await repo.save(booking, metadata=metadata)

    return await retry_on_conflict(attempt)


# -- HTTP ----------------------------------------------------------------------------------


class TopUpPayment(BaseModel):
    booking_id: str
    provider: str
    payment_intent: str
    client_secret: str
    amount: int
    currency: str
    status: str
    position: int | None = None


@api.post("/api/v1/bookings/{id}/apa-top-up", status=200, response=TopUpPayment,
          problems={409: "No top-up is owed", 402: "The payment provider declined",
                    502: "The payment provider failed"},
          summary="Pay the APA top-up: its PaymentIntent and client secret (its customer,"
                  " or staff)")
async def post_apa_top_up(request: web.Request) -> web.Response:
    principal = current_principal(request)
    if principal is None:
        raise Problem(401, "Sign in to do this.")
    booking_id, repo = path_uuid(request), request.app[REPOSITORY]
    booking = await repo.get(booking_id, cls=Booking)
    if not principal.is_staff and booking.customer_id != str(principal.account_id):
        raise web.HTTPNotFound()
    statement = getattr(booking, "apa", None) or {}
    if int(statement.get("top_up_paid", 0)) >= int(statement.get("top_up", 0)):
        raise InvalidState("the booking's APA", "owing nothing", "pay a top-up")
    try:
        intent, result = await ask_top_up(repo, request.app[STRIPE], request.app[CLOCK],
                                          booking_id, command_metadata(request))
    except GatewayError as exc:
        raise Problem(402 if exc.declined else 502, str(exc),
                      title="Payment provider error") from None
    if intent is None:  # owed, but paid outside the providers: staff collect it by hand
        raise Problem(409, "The booking was not paid through a provider: its top-up is"
                           " collected by staff.", title="No payment on record")
    answer = {"booking_id": str(booking_id), "provider": "stripe",
              "payment_intent": intent.id, "client_secret": intent.client_secret or "",
              "amount": intent.amount, "currency": booking.quote["currency"],
              "status": intent.status}
    if result is None:
        return web.json_response(answer)
    return command_response(result, answer, status=200)
