"""The security deposit: held on the card that paid (manual capture) a few days before the
start, held again before the hold lapses when the rental outlasts it, released after the
check-in (or when the booking is cancelled or changes its deposit), and captured in part
for recorded damages. The timers are in `process_managers.payments`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from commands.payment_store import (
    PROVIDER_PROBLEMS,
    gateway_problem,
    payment_of,
    reference_statement,
    save,
)
from midas.config import Settings
from midas.domain.bookings import Booking
from midas.domain.errors import RuleViolation
from midas.domain.lifecycle import BookingState
from midas.domain.payments import Payment, payment_id
from midas.eventstore import AppendResult, Repository, retry_on_conflict
from midas.http.api import Api
from midas.http.consistency import command_response
from midas.http.context import command_metadata, path_uuid
from midas.http.fields import Line, PositiveAmount
from midas.http.keys import CLOCK, REPOSITORY, STRIPE
from midas.http.problems import Problem
from midas.payment_providers.stripe_gateway import GatewayError, StripeGateway

log = logging.getLogger(__name__)
api = Api(tag="payments", kind="command")


def _deposit_key(booking_id: UUID, step: str) -> str:
    return f"booking:{booking_id}:deposit:{step}:v1"


async def authorise_deposit(
    repo: Repository, gateway: StripeGateway, settings: Settings, booking_id: UUID,
    now: datetime, metadata: dict[str, Any],
) -> AppendResult | None:
    """Hold the deposit on the card that paid (manual capture, off-session), no earlier
    than N days before start."""
    booking = await repo.get(booking_id, cls=Booking)
    payment = await payment_of(repo, booking_id)
    if booking.status not in (BookingState.CONFIRMED, BookingState.ACTIVE) or payment is None:
        return None
    if payment.deposit_state != "none":
        return None
    earliest = booking.starts_at - timedelta(days=settings.deposit_authorise_days_before)
    if now < earliest:
        raise RuleViolation("too early to authorise the deposit")
    amount = int(booking.quote.get("security_deposit", 0))
    if amount <= 0:
        return None
    intent = await gateway.create_intent(
        amount=amount, currency=payment.currency, key=_deposit_key(booking_id, "auth:1"),
        metadata={"booking_id": str(booking_id), "kind": "deposit"},
        manual_capture=True, confirm=True, payment_method=payment.payment_method)
    if intent.status != "requires_capture":
        raise GatewayError(f"deposit not authorised (status {intent.status})")

    async def attempt() -> AppendResult | None:
        fresh = await repo.get(payment_id(booking_id), cls=Payment)
        fresh.authorise_deposit(intent.id, amount, now,
                                timedelta(days=settings.deposit_hold_days))
        return await save(repo, fresh, metadata=metadata,
                          statements=(reference_statement(intent.id, booking_id),))

    return await retry_on_conflict(attempt)


async def reauthorise_deposit(
    repo: Repository, gateway: StripeGateway, settings: Settings, booking_id: UUID,
    now: datetime, metadata: dict[str, Any],
) -> AppendResult | None:
    """Before the hold lapses, hold again (new intent) when the rental outlasts it."""
    booking = await repo.get(booking_id, cls=Booking)
    payment = await payment_of(repo, booking_id)
    if payment is None or payment.deposit_state != "authorised" or booking.status not in (
            BookingState.CONFIRMED, BookingState.ACTIVE):
        return None
    expires = datetime.fromisoformat(payment.deposit_expires_at or now.isoformat())
    needed_until = booking.ends_at + timedelta(hours=settings.deposit_release_after_hours)
    if expires >= needed_until or now >= expires:
        return None  # covers the rental already, or lapsed (the lapse timer records it)
    n = payment.deposit_authorisations + 1
    old = payment.deposit_reference
    intent = await gateway.create_intent(
        amount=payment.deposit_amount, currency=payment.currency,
        key=_deposit_key(booking_id, f"auth:{n}"),
        metadata={"booking_id": str(booking_id), "kind": "deposit"},
        manual_capture=True, confirm=True, payment_method=payment.payment_method)
    if intent.status != "requires_capture":
        raise GatewayError(f"deposit not re-authorised (status {intent.status})")

    async def attempt() -> AppendResult | None:
        fresh = await repo.get(payment_id(booking_id), cls=Payment)
        fresh.reauthorise_deposit(intent.id, now, timedelta(days=settings.deposit_hold_days))
        return await save(repo, fresh, metadata=metadata,
                          statements=(reference_statement(intent.id, booking_id),))

    result = await retry_on_conflict(attempt)
    if old:
        try:
            await gateway.cancel(old, _deposit_key(booking_id, f"cancel:{n - 1}"))
        except GatewayError:
            log.warning("previous deposit hold not cancelled", extra={"booking": str(booking_id)})
    return result


async def lapse_deposit(
    repo: Repository, booking_id: UUID, now: datetime, metadata: dict[str, Any]
) -> AppendResult | None:
    """The hold's time is up and it was not renewed: record the lapse."""

    async def attempt() -> AppendResult | None:
        payment = await payment_of(repo, booking_id)
        if payment is None or not payment.deposit_reference or payment.deposit_state != (
                "authorised") or not payment.deposit_lapsed_at(now):
            return None
        payment.lapse_deposit(payment.deposit_reference, now)
        return await save(repo, payment, metadata=metadata)

    return await retry_on_conflict(attempt)


async def release_deposit(
    repo: Repository, gateway: StripeGateway, booking_id: UUID, now: datetime, reason: str,
    metadata: dict[str, Any],
) -> AppendResult | None:
    payment = await payment_of(repo, booking_id)
    if payment is None or payment.deposit_state != "authorised" or not payment.deposit_reference:
        return None
    if not payment.deposit_lapsed_at(now):
        await gateway.cancel(payment.deposit_reference, _deposit_key(booking_id, "release"))

    async def attempt() -> AppendResult | None:
        fresh = await repo.get(payment_id(booking_id), cls=Payment)
        if fresh.deposit_lapsed_at(now) and fresh.deposit_reference:
            fresh.lapse_deposit(fresh.deposit_reference, now)
        else:
            fresh.release_deposit(now, reason)
        return await save(repo, fresh, metadata=metadata)

    return await retry_on_conflict(attempt)


async def capture_deposit(
    repo: Repository, gateway: StripeGateway, booking_id: UUID, amount: int, reason: str,
    now: datetime, metadata: dict[str, Any],
) -> AppendResult | None:
    """Capture part of the deposit for recorded damages; never after the hold lapsed."""
    payment = await repo.get(payment_id(booking_id), cls=Payment)
    payment.check_capturable(amount, now)
    await gateway.capture(payment.deposit_reference or "", amount,
                          _deposit_key(booking_id, "capture"))

    async def attempt() -> AppendResult | None:
        fresh = await repo.get(payment_id(booking_id), cls=Payment)
        if fresh.deposit_state == "captured":
            return None
        fresh.capture_deposit(amount, reason, now)
        return await save(repo, fresh, metadata=metadata)

    return await retry_on_conflict(attempt)


# -- routes ----------------------------------------------------------------------------------


class CaptureDeposit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: PositiveAmount = Field(description="Minor units to capture for recorded damages.")
    reason: Line = Field(min_length=1, max_length=500)


class DepositCaptured(BaseModel):
    booking_id: UUID
    captured: int
    position: int


class DepositReleased(BaseModel):
    booking_id: UUID
    position: int


@api.post("/api/v1/bookings/{id}/deposit/capture", body=CaptureDeposit, status=200,
          response=DepositCaptured,
          problems=PROVIDER_PROBLEMS,
          summary="Capture part of the security deposit for recorded damages")
async def post_capture_deposit(request: web.Request, body: CaptureDeposit) -> web.Response:
    booking_id = path_uuid(request)
    try:
        result = await capture_deposit(
            request.app[REPOSITORY], request.app[STRIPE], booking_id, body.amount,
            body.reason, request.app[CLOCK](), command_metadata(request))
    except GatewayError as exc:
        raise gateway_problem(exc) from None
    if result is None:
        raise Problem(409, "The deposit was captured already.", state="captured")
    return command_response(result, {"booking_id": str(booking_id), "captured": body.amount},
                            status=200)


@api.post("/api/v1/bookings/{id}/deposit/release", status=200, response=DepositReleased,
          problems=PROVIDER_PROBLEMS,
          summary="Release the security deposit hold now")
async def post_release_deposit(request: web.Request) -> web.Response:
    booking_id = path_uuid(request)
    try:
        result = await release_deposit(
            request.app[REPOSITORY], request.app[STRIPE], booking_id, request.app[CLOCK](),
            "released by staff", command_metadata(request))
    except GatewayError as exc:
        raise gateway_problem(exc) from None
    if result is None:
        raise Problem(409, "No deposit hold to release.")
    return command_response(result, {"booking_id": str(booking_id)}, status=200)
