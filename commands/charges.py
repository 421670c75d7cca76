"""Paying for a held booking: the Stripe PaymentIntent for its total due (or its first
instalment), created once under the booking's key, confirmed in the customer's browser
(Stripe.js) or on the server with a PaymentMethod. The booking is confirmed when Stripe
reports the payment (`process_managers.payments`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from commands import instalments
from commands.payment_store import (
    PROVIDER_PROBLEMS,
    gateway_problem,
    open_payment,
    payment_of,
    reference_statement,
    save,
)
from midas.domain.bookings import Booking
from midas.domain.errors import InvalidState
from midas.domain.lifecycle import BookingState
from midas.eventstore import AggregateNotFound, AppendResult, Repository, retry_on_conflict
from midas.http.api import Api
from midas.http.auth import current_principal
from midas.http.consistency import command_response
from midas.http.context import command_metadata, path_uuid
from midas.http.keys import CLOCK, LIMITER, REPOSITORY, SETTINGS, STRIPE
from midas.http.problems import Problem
from midas.http.ratelimit import RATE_LIMITED, client_ip, enforce
from midas.payment_providers.stripe_gateway import GatewayError, Intent, StripeGateway

api = Api(tag="payments", kind="command")
Clock = Callable[[], datetime]


async def start_payment(
    repo: Repository, gateway: StripeGateway, clock: Clock, booking_id: UUID,
    customer_id: UUID | None, metadata: dict[str, Any], amount: int | None = None,
) -> tuple[Intent, AppendResult | None, Booking]:
    """Create (or find again) the PaymentIntent for a held booking's total due (or its
    first instalment, `amount`): the one recorded already, else one created under the
    booking's key (a retry after a crash gets the same intent back from Stripe).

    The intent's client secret is for the customer only, never recorded.
    """
    booking = await repo.get(booking_id, cls=Booking)
    if customer_id is not None and booking.customer_id != str(customer_id):
        raise web.HTTPNotFound()
    if booking.status is not BookingState.HELD:
        raise InvalidState("the booking", booking.state, "be paid")
    recorded = await payment_of(repo, booking_id)
    if recorded is not None and recorded.provider == "stripe" and recorded.reference:
        intent = await gateway.retrieve(recorded.reference)
    else:
        intent = await gateway.create_intent(
            amount=amount or booking.total_due, currency=booking.quote["currency"],
            key=f"booking:{booking_id}:charge:v1",
            metadata={"booking_id": str(booking_id), "kind": "charge"},
        )

    async def attempt() -> AppendResult | None:
        payment = await payment_of(repo, booking_id)
        if payment is None:
            payment = await open_payment(repo, booking, "stripe", intent.id, clock())
        else:
            payment.record_reference("stripe", intent.id, clock())
        return await save(repo, payment, metadata=metadata,
                          statements=(reference_statement(intent.id, booking_id),))

    result = await retry_on_conflict(attempt)
    return intent, result, booking


CONFIRMABLE = ("requires_payment_method", "requires_confirmation")


async def pay_with_method(
    repo: Repository, gateway: StripeGateway, clock: Clock, booking_id: UUID,
    customer_id: UUID | None, payment_method: str, metadata: dict[str, Any],
    amount: int | None = None,
) -> tuple[Intent, AppendResult | None, Booking]:
    """Pay a held booking on the server with a Stripe PaymentMethod (from Stripe.js, or a
    test card such as `pm_card_visa`): the booking's one intent (`start_payment`),
    confirmed with it unless it is already paid or under way. Success is recorded from
    Stripe's webhook, as for a payment confirmed by the customer's browser."""
    intent, result, booking = await start_payment(repo, gateway, clock, booking_id,
                                                  customer_id, metadata, amount)
    if intent.status in CONFIRMABLE:
        key = f"booking:{booking_id}:charge:{{step}}:{payment_method}:v1"
        intent = await gateway.confirm_with(intent.id, payment_method,
                                            attach_key=key.format(step="attach"),
                                            confirm_key=key.format(step="confirm"))
    return intent, result, booking


# -- routes ----------------------------------------------------------------------------------


class PaymentStarted(BaseModel):
    booking_id: UUID
    provider: Literal["stripe"]
    payment_intent: str
    client_secret: str = Field(description="For Stripe.js to confirm the payment in the"
                                           " customer's browser.")
    amount: int
    currency: str
    position: int | None = Field(None, description="Present when this call recorded the"
                                                   " payment's start.")


class PaymentAnswer(BaseModel):
    booking_id: UUID
    provider: Literal["stripe"]
    payment_intent: str
    status: str = Field(description="The intent's status: `succeeded`, `processing`,"
                                    " `requires_action`, ...")
    amount: int
    currency: str
    position: int | None = None


async def _payer(request: web.Request) -> tuple[Any, UUID, int | None]:
    """Who pays which booking, and its first instalment: a payment request is rate-limited
    per client address and needs a signed-in principal."""
    settings = request.app[SETTINGS]
    await enforce(request.app[LIMITER], f"payments:ip:{client_ip(request, settings)}",
                  settings.payment_rate_limit, settings.payment_rate_window_s,
                  "payment requests")
    principal = current_principal(request)
    if principal is None:
        raise Problem(401, "Sign in to do this.")
    booking_id = path_uuid(request)
    return principal, booking_id, await _first_instalment(request, booking_id, principal)


async def _first_instalment(request: web.Request, booking_id: UUID, principal: Any
                            ) -> int | None:
    """The first instalment of the booking's payment schedule (`commands.instalments`),
    for a held booking its customer (or staff) may pay; None otherwise (the usual 404/409
    follow)."""
    try:
        booking = await request.app[REPOSITORY].get(booking_id, cls=Booking)
    except AggregateNotFound:
        return None
    if booking.status is not BookingState.HELD or (
            not principal.is_staff and booking.customer_id != str(principal.account_id)):
        return None
    return await instalments.first_instalment(request.app[REPOSITORY], request.app[CLOCK],
                                              booking_id)


async def _instalment_requested(request: web.Request, booking_id: UUID, intent: Intent
                                ) -> None:
    await instalments.record_request(request.app[REPOSITORY], request.app[CLOCK], booking_id,
                                     1, intent.id, command_metadata(request),
                                     plan_missing=True)


@api.post("/api/v1/bookings/{id}/payments", idempotent=False, response=PaymentStarted,
          problems={**RATE_LIMITED, **PROVIDER_PROBLEMS},
          summary="Pay for a held booking: the Stripe PaymentIntent and its client secret")
async def post_payment(request: web.Request) -> web.Response:
    principal, booking_id, first = await _payer(request)
    try:
        intent, result, booking = await start_payment(
            request.app[REPOSITORY], request.app[STRIPE], request.app[CLOCK], booking_id,
            None if principal.is_staff else principal.account_id, command_metadata(request),
            first)
    except GatewayError as exc:
        raise gateway_problem(exc) from None
    await _instalment_requested(request, booking_id, intent)
    body = {"booking_id": str(booking_id), "provider": "stripe", "payment_intent": intent.id,
            "client_secret": intent.client_secret or "", "amount": intent.amount,
            "currency": booking.quote["currency"]}
    if result is None:
        return web.json_response(body, status=201)
    return command_response(result, body)


class PayWithMethod(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_method: str = Field(
        pattern=r"^pm_[A-Za-z0-9_]{1,100}$", examples=["pm_card_visa"],
        description="A Stripe PaymentMethod id: from Stripe.js, or a Stripe test card"
                    " (`pm_card_visa`; `pm_card_chargeCustomerFail` is declined).")


@api.post("/api/v1/bookings/{id}/payments/confirm", body=PayWithMethod, status=200,
          response=PaymentAnswer, example={"payment_method": "pm_card_visa"},
          summary="Pay a held booking with a Stripe PaymentMethod, confirmed on the server")
async def post_payment_confirm(request: web.Request, body: PayWithMethod) -> web.Response:
    """The booking is confirmed once Stripe reports the payment (its webhook); answers the
    intent's status (`succeeded`, `processing`, or `requires_action` for a card that needs
    the customer's authentication, finished with Stripe.js and the client secret)."""
    principal, booking_id, first = await _payer(request)
    try:
        intent, result, booking = await pay_with_method(
            request.app[REPOSITORY], request.app[STRIPE], request.app[CLOCK], booking_id,
            None if principal.is_staff else principal.account_id, body.payment_method,
            command_metadata(request), first)
    except GatewayError as exc:
        raise gateway_problem(exc) from None
    await _instalment_requested(request, booking_id, intent)
    answer = {"booking_id": str(booking_id), "provider": "stripe", "payment_intent": intent.id,
              "status": intent.status, "amount": intent.amount,
              "currency": booking.quote["currency"]}
    if result is None:
        return web.json_response(answer, status=200)
    return command_response(result, answer, status=200)
