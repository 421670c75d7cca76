"""Payment commands: pay for a hold, refunds, the security deposit, and the reactions the
payments process manager and the scheduler run.

Every call to Stripe carries an idempotency key derived from the command
(`booking:<id>:charge:v1`, `booking:<id>:refund:cancel:v1`, `booking:<id>:deposit:auth:<n>:v1`
...): a command retried after a crash between the call and the append gets the same
Stripe object back, and the aggregate records it once. Provider facts (webhooks) are in
`commands/webhooks.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from midas.config import Settings
from midas.domain.bookings import Booking
from midas.domain.errors import DomainError, InvalidState, RuleViolation
from midas.domain.inventory import Item
from midas.domain.lifecycle import BookingState
from midas.domain.payments import Payment, payment_id
from midas.eventstore import (
    AggregateNotFound,
    AppendResult,
    RecordedEvent,
    Repository,
    Statement,
    retry_on_conflict,
)
from midas.http.api import Api
from midas.http.auth import current_principal
from midas.http.consistency import command_response
from midas.http.context import command_metadata, path_uuid
from midas.http.keys import CLOCK, LIMITER, REPOSITORY, SETTINGS
from midas.http.problems import Problem
from midas.http.ratelimit import client_ip, enforce
from midas.payments.stripe_gateway import GatewayError, StripeGateway

log = logging.getLogger(__name__)
api = Api(tag="payments", kind="command")
Clock = Callable[[], datetime]
STRIPE = web.AppKey("stripe_gateway", StripeGateway)
PM_METADATA = {"actor": "payments", "actor_role": None}


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


def open_payment(booking: Booking, provider: str, reference: str | None,
                 now: datetime) -> Payment:
    return Payment.request(
        booking_id=booking.id, customer_id=booking.customer_id, amount=booking.total_due,
        currency=booking.quote["currency"], provider=provider, reference=reference, at=now,
        deposit_amount=int(booking.quote.get("security_deposit", 0)), start=booking.starts_at,
    )


# -- paying for a hold ----------------------------------------------------------------------


async def start_payment(
    repo: Repository, gateway: StripeGateway, clock: Clock, booking_id: UUID,
    customer_id: UUID | None, metadata: dict[str, Any],
) -> tuple[str, str, AppendResult | None, Booking]:
    """Create (or find again) the PaymentIntent for a held booking's total due.

    Returns the intent id and its client secret (for the customer only, never recorded).
    """
    booking = await repo.get(booking_id, cls=Booking)
    if customer_id is not None and booking.customer_id != str(customer_id):
        raise web.HTTPNotFound()
    if booking.status is not BookingState.HELD:
        raise InvalidState("the booking", booking.state, "be paid")
    intent = await gateway.create_intent(
        amount=booking.total_due, currency=booking.quote["currency"],
        key=f"booking:{booking_id}:charge:v1",
        metadata={"booking_id": str(booking_id), "kind": "charge"},
    )

    async def attempt() -> AppendResult | None:
        payment = await payment_of(repo, booking_id)
        if payment is None:
            payment = open_payment(booking, "stripe", intent.id, clock())
        else:
            payment.record_reference("stripe", intent.id, clock())
        return await save(repo, payment, metadata=metadata,
                          statements=(reference_statement(intent.id, booking_id),))

    result = await retry_on_conflict(attempt)
    return intent.id, intent.client_secret or "", result, booking


# -- process manager reactions ---------------------------------------------------------------


async def settle_payment(
    repo: Repository, clock: Clock, booking_id: UUID, metadata: dict[str, Any]
) -> AppendResult | None:
    """A payment succeeded: confirm the booking; after an expired hold, confirm only if
    the item is still free (reserved again atomically), else refund in full."""

    async def attempt() -> AppendResult | None:
        payment = await repo.get(payment_id(booking_id), cls=Payment)
        booking = await repo.get(booking_id, cls=Booking)
        now = clock()
        paid = payment.net_paid
        if booking.status is BookingState.HELD:
            booking.confirm_payment(now, paid)
            return await save(repo, booking, metadata=metadata)
        if booking.status is BookingState.EXPIRED:
            item = await repo.get(UUID(booking.item_id), cls=Item)
            try:
                item.reserve(booking.id, booking.starts_at, booking.ends_at, now)
            except DomainError:
                cause = "paid after the hold expired; the item was taken"
            else:
                booking.confirm_payment(now, paid, reinstated=True)
                return await save(repo, item, booking, metadata=metadata)
        elif booking.status is BookingState.CANCELLED and booking.amount_paid == 0:
            # Cancelled unpaid, then paid. (Cancelled after payment: the cancellation
            # refund applies, and a replay of this event must not refund the rest.)
            cause = "paid after the booking was cancelled"
        else:
            return None  # confirmed already (a late duplicate): never move backwards
        if paid <= 0:
            return None
        payment.request_refund(f"booking:{booking_id}:refund:unplaced:v1", paid, cause, now)
        return await save(repo, payment, metadata=metadata)

    return await retry_on_conflict(attempt)


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
) -> AppendResult | None:
    """Carry out a requested refund with the provider, under the request's key.

    A transient provider failure records nothing: the `refund_retry` timer tries again
    (and raises, so the scheduler backs off); other refusals record `RefundFailed`."""
    payment = await repo.get(payment_id(booking_id), cls=Payment)
    if key in payment.refunds_done or key not in payment.refunds_requested:
        return None
    amount = payment.refunds_requested[key]
    intent = payment.settled[-1] if payment.settled else payment.reference
    outcome: tuple[str, int] | str
    if payment.provider != "stripe" or not intent:
        outcome = f"{payment.provider} refunds are made by staff in the provider's console"
    else:
        try:
            refund = await gateway.refund(intent, amount, key,
                                          {"booking_id": str(booking_id), "key": key})
            outcome = (refund.id, refund.amount)
        except GatewayError as exc:
            if exc.transient:
                if raise_transient:
                    raise
                log.warning("refund postponed", extra={"booking": str(booking_id)})
                return None
            outcome = str(exc)

    async def attempt() -> AppendResult | None:
        fresh = await repo.get(payment_id(booking_id), cls=Payment)
        if isinstance(outcome, tuple):
            fresh.refunded_by_provider(outcome[0], outcome[1], clock(), key=key)
        else:
            fresh.refund_failed(key, outcome, clock())
        return await save(repo, fresh, metadata=metadata)

    return await retry_on_conflict(attempt)


# -- the security deposit ------------------------------------------------------------------


def _deposit_key(booking_id: UUID, step: str) -> str:
    return f"booking:{booking_id}:deposit:{step}:v1"


async def authorise_deposit(
    repo: Repository, gateway: StripeGateway, settings: Settings, booking_id: UUID,
    now: datetime, metadata: dict[str, Any],
) -> AppendResult | None:
    """Hold the deposit on the card (manual capture), no earlier than N days before start."""
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
        manual_capture=True, confirm=True)
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
        manual_capture=True, confirm=True)
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


# -- wiring for the process manager and the scheduler ---------------------------------------


def _meta(cause: str, event: RecordedEvent | None = None) -> dict[str, Any]:
    meta = {**PM_METADATA, "cause": cause}
    if event is not None:  # deterministic command ids: the causing event
        meta["causation_id"] = f"{event.stream_id}:{event.version}"
        meta["correlation_id"] = event.metadata.get("correlation_id") or meta["causation_id"]
    return meta


def process_handlers(app: web.Application) -> dict[str, Callable[[RecordedEvent],
                                                                   Awaitable[object]]]:
    """What the payments process manager does for each event type it reacts to."""

    def repo() -> Repository:
        return app[REPOSITORY]

    def clock() -> datetime:
        return app[CLOCK]()

    async def on_succeeded(event: RecordedEvent) -> object:
        return await settle_payment(repo(), clock, UUID(event.data["booking_id"]),
                                    _meta("payment succeeded", event))

    async def on_refund_requested(event: RecordedEvent) -> object:
        return await execute_refund(repo(), app[STRIPE], clock,
                                    UUID(event.data["booking_id"]), event.data["reference"],
                                    _meta("refund requested", event))

    async def on_cancelled(event: RecordedEvent) -> object:
        booking_id = event.stream_id
        try:
            await release_deposit(repo(), app[STRIPE], booking_id, clock(),
                                  "booking cancelled", _meta("booking cancelled", event))
        except GatewayError:  # the hold then lapses by itself (its lapse timer records it)
            log.warning("deposit not released", extra={"booking": str(booking_id)})
        amount = int(event.data.get("refund_amount") or 0)
        if amount > 0:
            return await refund_cancellation(repo(), clock, booking_id, amount,
                                             _meta("booking cancelled", event))
        return None

    return {"Payment.Succeeded": on_succeeded, "Payment.RefundRequested": on_refund_requested,
            "Booking.Cancelled": on_cancelled}


def scheduler_tasks(app: web.Application) -> dict[str, Callable[[UUID, datetime],
                                                                Awaitable[object]]]:
    """Deposit timers (rows written by the due_tasks projection; see docs/payments.md)."""

    async def run_authorise(booking_id: UUID, now: datetime) -> object:
        return await authorise_deposit(app[REPOSITORY], app[STRIPE], app[SETTINGS],
                                       booking_id, now, _meta("deposit due"))

    async def run_reauthorise(booking_id: UUID, now: datetime) -> object:
        return await reauthorise_deposit(app[REPOSITORY], app[STRIPE], app[SETTINGS],
                                         booking_id, now, _meta("deposit hold ageing"))

    async def run_lapse(booking_id: UUID, now: datetime) -> object:
        return await lapse_deposit(app[REPOSITORY], booking_id, now, _meta("deposit hold over"))

    async def run_release(booking_id: UUID, now: datetime) -> object:
        return await release_deposit(app[REPOSITORY], app[STRIPE], booking_id, now,
                                     "checked in, no damages recorded", _meta("checked in"))

    async def run_refund_retry(booking_id: UUID, now: datetime) -> object:
        payment = await payment_of(app[REPOSITORY], booking_id)
        if payment is None:
            return None
        for key in [k for k in payment.refunds_requested if k not in payment.refunds_done]:
            await execute_refund(app[REPOSITORY], app[STRIPE], lambda: now, booking_id, key,
                                 _meta("refund retry"), raise_transient=True)
        return None

    return {"deposit_authorise": run_authorise, "deposit_reauthorise": run_reauthorise,
            "deposit_lapse": run_lapse, "deposit_release": run_release,
            "refund_retry": run_refund_retry}


# -- routes ----------------------------------------------------------------------------------


class CaptureDeposit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(gt=0, description="Minor units to capture for recorded damages.")
    reason: str = Field(min_length=1, max_length=500)


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(gt=0, description="Minor units to refund.")
    reason: str = Field(min_length=1, max_length=500)


def _gateway_problem(exc: GatewayError) -> Problem:
    return Problem(402 if exc.declined else 502, str(exc), title="Payment provider error")


@api.post("/api/v1/bookings/{id}/payments", idempotent=False,
          summary="Pay for a held booking: the Stripe PaymentIntent and its client secret")
async def post_payment(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    await enforce(request.app[LIMITER], f"payments:ip:{client_ip(request, settings)}",
                  settings.payment_rate_limit, settings.payment_rate_window_s,
                  "payment requests")
    principal = current_principal(request)
    if principal is None:
        raise Problem(401, "Sign in to do this.")
    booking_id = path_uuid(request)
    try:
        intent_id, secret, result, booking = await start_payment(
            request.app[REPOSITORY], request.app[STRIPE], request.app[CLOCK], booking_id,
            None if principal.is_staff else principal.account_id, command_metadata(request))
    except GatewayError as exc:
        raise _gateway_problem(exc) from None
    body = {"booking_id": str(booking_id), "provider": "stripe", "payment_intent": intent_id,
            "client_secret": secret, "amount": booking.total_due,
            "currency": booking.quote["currency"]}
    if result is None:
        return web.json_response(body, status=201)
    return command_response(result, body)


@api.post("/api/v1/bookings/{id}/refunds", body=RefundRequest, status=202,
          summary="Refund part or all of what was paid (carried out with the provider)")
async def post_refund(request: web.Request, body: RefundRequest) -> web.Response:
    booking_id = path_uuid(request)
    result = await request_refund(request.app[REPOSITORY], request.app[CLOCK], booking_id,
                                  body.amount, body.reason, command_metadata(request))
    if result is None:
        raise Problem(409, "Nothing to refund.")
    return command_response(result, {"booking_id": str(booking_id), "amount": body.amount},
                            status=202)


@api.post("/api/v1/bookings/{id}/deposit/capture", body=CaptureDeposit, status=200,
          summary="Capture part of the security deposit for recorded damages")
async def post_capture_deposit(request: web.Request, body: CaptureDeposit) -> web.Response:
    booking_id = path_uuid(request)
    try:
        result = await capture_deposit(
            request.app[REPOSITORY], request.app[STRIPE], booking_id, body.amount,
            body.reason, request.app[CLOCK](), command_metadata(request))
    except GatewayError as exc:
        raise _gateway_problem(exc) from None
    if result is None:
        raise Problem(409, "The deposit was captured already.", state="captured")
    return command_response(result, {"booking_id": str(booking_id), "captured": body.amount},
                            status=200)


@api.post("/api/v1/bookings/{id}/deposit/release", status=200,
          summary="Release the security deposit hold now")
async def post_release_deposit(request: web.Request) -> web.Response:
    booking_id = path_uuid(request)
    try:
        result = await release_deposit(
            request.app[REPOSITORY], request.app[STRIPE], booking_id, request.app[CLOCK](),
            "released by staff", command_metadata(request))
    except GatewayError as exc:
        raise _gateway_problem(exc) from None
    if result is None:
        raise Problem(409, "No deposit hold to release.")
    return command_response(result, {"booking_id": str(booking_id)}, status=200)
