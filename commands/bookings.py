"""Booking commands: hold an item, confirm, check out, check in, cancel, force majeure,
assign a concierge; and the lifecycle timers the scheduler runs (hold expiry, automatic
check-out and check-in).

The item is the consistency boundary: every command that takes or frees an item saves the
item's event and the booking's in one atomic append, retried on fresh state after a
version race (a concurrent reservation then finds the overlap and is refused).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from commands.extras import release_capacity, take_capacity
from commands.payment_store import save
from commands.quotes import (
    STAY_EXAMPLE,
    QuoteView,
    Stay,
    check_rules,
    load_item,
    price,
)
from midas.domain.accounts import Account
from midas.domain.bookings import Booking
from midas.domain.catalogue import ServiceLevel
from midas.domain.errors import DomainError
from midas.domain.extras import (
    ExtraCapacity,
    ExtraFull,
    stay_days,
)
from midas.domain.inventory import Item, Unavailable
from midas.domain.lifecycle import BookingState, InvalidTransition
from midas.domain.payments import Payment, payment_id
from midas.domain.pricing import effective_service_level
from midas.domain.refunds import CancellationReason
from midas.eventstore import AggregateNotFound, AppendResult, Repository, retry_on_conflict
from midas.http.api import Api
from midas.http.auth import Principal, current_principal
from midas.http.consistency import CommandResult, command_response
from midas.http.context import command_metadata, path_uuid
from midas.http.keys import ACCESS, CLOCK, REPOSITORY, SETTINGS
from midas.http.problems import Problem
from midas.policy import current_extras, current_policy

api = Api(tag="bookings", kind="command")
Clock = Callable[[], datetime]


class HoldBooking(Stay):
    """Book an item for [start, end) at a service level: a hold, until paid."""


class CancelBooking(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: CancellationReason = CancellationReason.CUSTOMER


class AssignConcierge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    concierge_id: UUID


class Held(CommandResult):
    id: UUID
    status: str
    item_id: UUID
    hold_expires_at: datetime = Field(description="Unpaid by then, the hold expires.")
    quote: QuoteView


class BookingResult(CommandResult):
    id: UUID


class Cancelled(CommandResult):
    id: UUID
    status: str
    refund_percentage: str = Field(description="Of the amount paid, as decimal text.")
    refund_amount: int = Field(description="Minor units refunded.")


# -- use cases ---------------------------------------------------------------------------


async def hold_booking(
    repo: Repository, clock: Clock, customer_id: UUID, cmd: HoldBooking,
    metadata: dict[str, Any], tier: ServiceLevel = ServiceLevel.STANDARD, *,
    staff: bool = False,
) -> tuple[Booking, AppendResult]:
    """Hold an item: the stay rules checked (staff override the notice), priced, the item
    reserved and the booking held in one atomic append."""

    async def attempt() -> tuple[Booking, AppendResult]:
        item = await load_item(repo, cmd.item_id, exclusive=True)
        catalogue, version = await current_policy(repo)
        now = clock()
        extras = await current_extras(repo) if cmd.extras else None
        priced = price(item, cmd.start, cmd.end, cmd.service_level, catalogue, cmd.extras,
                       extras)
        check_rules(priced, catalogue, now, staff=staff)
        ledgers: list[ExtraCapacity] = []
        limited: list[str] = []  # the chosen extras with a capacity
        if extras is not None:
            limited = [e["code"] for e in cmd.extras
                       if extras.extras[e["code"]]["capacity"] is not None]
        booking = Booking.hold(
            item_id=item.id, customer_id=customer_id, quote=priced,
            delivered_level=effective_service_level(cmd.service_level, tier),
            policy_version=version, at=now, hold_expiry=catalogue.hold_expiry,
        )
        item.reserve(booking.id, cmd.start, cmd.end, now)
        if extras is not None and limited:  # their ledgers, in the same append
            ledgers = await take_capacity(repo, extras, booking.id, item.location,
                                           stay_days(cmd.start, cmd.end,
                                                     ZoneInfo(priced.time_zone)),
                                           limited, now)
        return booking, await repo.save(item, booking, *ledgers, metadata=metadata)

    return await retry_on_conflict(attempt)


async def customer_tier(repo: Repository, customer_id: UUID) -> ServiceLevel:
    """The customer's tier, from their account (a tier above the chosen level is delivered
    free); accounts without one (staff, unknown) book at standard."""
    try:
        account = await repo.get(customer_id, cls=Account)
    except AggregateNotFound:
        return ServiceLevel.STANDARD
    return ServiceLevel(getattr(account, "tier", ServiceLevel.STANDARD))


async def confirm(
    repo: Repository, clock: Clock, booking_id: UUID, metadata: dict[str, Any]
) -> AppendResult:
    async def attempt() -> AppendResult:
        booking = await repo.get(booking_id, cls=Booking, exclusive=True)
        now = clock()
        if booking.status is BookingState.HELD and booking.hold_lapsed(now):
            # The timer has not run yet: record the expiry now, then refuse.
            await _expire(repo, booking, now, metadata)
            raise InvalidTransition(BookingState.EXPIRED, BookingState.CONFIRMED)
        booking.confirm(now)
        return await repo.save(booking, metadata=metadata)

    return await retry_on_conflict(attempt)


async def confirm_paid(
    repo: Repository, clock: Clock, booking_id: UUID, metadata: dict[str, Any]
) -> AppendResult | None:
    """The booking's payment succeeded: confirm it; after an expired hold, confirm only if
    the item and its extras are still free (taken again in the same append), else ask for
    a full refund."""

    async def attempt() -> AppendResult | None:
        payment = await repo.get(payment_id(booking_id), cls=Payment)
        booking = await repo.get(booking_id, cls=Booking, exclusive=True)
        now = clock()
        paid = payment.net_paid
        if booking.status is BookingState.HELD:
            booking.confirm_payment(now, paid)
            return await save(repo, booking, metadata=metadata)
        if booking.status is BookingState.EXPIRED:
            item = await repo.get(UUID(booking.item_id), cls=Item, exclusive=True)
            try:
                item.reserve(booking.id, booking.starts_at, booking.ends_at, now)
                ledgers = await _retake_extras(repo, booking, now)
            except DomainError:
                cause = "paid after the hold expired; the item or an extra was taken"
            else:
                booking.confirm_payment(now, paid, reinstated=True)
                return await save(repo, item, booking, *ledgers, metadata=metadata)
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


async def _retake_extras(repo: Repository, booking: Booking, now: datetime) -> list[Any]:
    """The places a reinstated booking's extras take again (ExtraFull when one is gone)."""
    codes = [line["code"] for line in booking.quote.get("extras", [])]
    if not codes:
        return []
    extras = await current_extras(repo)
    days = stay_days(booking.starts_at, booking.ends_at, ZoneInfo(booking.quote["time_zone"]))
    known = [code for code in codes if code in extras.extras]
    return await take_capacity(repo, extras, booking.id, booking.quote["location_code"],
                               days, known, now)


async def expire_hold(
    repo: Repository, booking_id: UUID, now: datetime, metadata: dict[str, Any]
) -> AppendResult | None:
    async def attempt() -> AppendResult | None:
        booking = await repo.get(booking_id, cls=Booking, exclusive=True)
        return await _expire(repo, booking, now, metadata)

    return await retry_on_conflict(attempt)


async def _expire(
    repo: Repository, booking: Booking, now: datetime, metadata: dict[str, Any]
) -> AppendResult | None:
    if not booking.expire(now):
        return None
    item = await repo.get(UUID(booking.item_id), cls=Item, exclusive=True)
    item.release(booking.id, "expired", now)
    ledgers = await release_capacity(repo, booking)
    return await repo.save(item, booking, *ledgers, metadata=metadata)


async def check_out(
    repo: Repository, booking_id: UUID, now: datetime, metadata: dict[str, Any]
) -> AppendResult:
    async def attempt() -> AppendResult:
        booking = await repo.get(booking_id, cls=Booking, exclusive=True)
        booking.check_out(now)
        return await repo.save(booking, metadata=metadata)

    return await retry_on_conflict(attempt)


async def check_in(
    repo: Repository, booking_id: UUID, now: datetime, metadata: dict[str, Any]
) -> AppendResult:
    async def attempt() -> AppendResult:
        booking = await repo.get(booking_id, cls=Booking, exclusive=True)
        booking.check_in(now)
        item = await repo.get(UUID(booking.item_id), cls=Item, exclusive=True)
        item.release(booking.id, "completed", now, rental_minutes=booking.rental_minutes())
        ledgers = await release_capacity(repo, booking)
        return await repo.save(item, booking, *ledgers, metadata=metadata)

    return await retry_on_conflict(attempt)


async def cancel(
    repo: Repository, booking_id: UUID, now: datetime, reason: CancellationReason,
    metadata: dict[str, Any], *, customer_id: UUID | None = None,
) -> tuple[Booking, AppendResult]:
    """Cancel (a customer only their own: others' ids are not found)."""

    async def attempt() -> tuple[Booking, AppendResult]:
        booking = await _owned(repo, booking_id, customer_id)
        catalogue, _ = await current_policy(repo)
        booking.cancel(now, catalogue, reason)
        item = await repo.get(UUID(booking.item_id), cls=Item, exclusive=True)
        item.release(booking.id, "cancelled", now)
        ledgers = await release_capacity(repo, booking)
        return booking, await repo.save(item, booking, *ledgers, metadata=metadata)

    return await retry_on_conflict(attempt)


async def assign_concierge(
    repo: Repository, booking_id: UUID, concierge_id: UUID, metadata: dict[str, Any]
) -> AppendResult:
    async def attempt() -> AppendResult:
        booking = await repo.get(booking_id, cls=Booking, exclusive=True)
        booking.assign_concierge(concierge_id)
        return await repo.save(booking, metadata=metadata)

    return await retry_on_conflict(attempt)


async def _owned(repo: Repository, booking_id: UUID, customer_id: UUID | None) -> Booking:
    booking = await repo.get(booking_id, cls=Booking, exclusive=True)
    if customer_id is not None and booking.customer_id != str(customer_id):
        raise web.HTTPNotFound()
    return booking


# -- routes ------------------------------------------------------------------------------


def _principal(request: web.Request) -> Principal:
    principal = current_principal(request)
    if principal is None:
        raise Problem(401, "Sign in to do this.")
    return principal


def _unavailable(exc: Unavailable, principal: Principal) -> Problem:
    """409 naming what is in the way; a customer sees when, not whose booking."""
    conflicts = [
        {"kind": o.kind.value, "start": o.interval.start.isoformat(),
         "end": o.interval.end.isoformat(), **({"id": str(o.id)} if principal.is_staff else {})}
        for o in exc.conflicts
    ]
    detail = str(exc) if principal.is_staff else "The item is not free for that interval."
    return Problem(409, detail, title="Not available", conflicts=conflicts)


@api.post("/api/v1/bookings", summary="Book an item (a hold until paid)", body=HoldBooking,
          response=Held, example=STAY_EXAMPLE,
          problems={422: "Invalid fields, or a stay rule refuses the stay (named, with"
                    " the dates)"})
async def post_booking(request: web.Request, body: HoldBooking) -> web.Response:
    principal = _principal(request)
    repo = request.app[REPOSITORY]
    access = await request.app[ACCESS].access(principal.account_id, principal.token_id)
    if access is None or not access.email_verified:  # cached: the middleware just asked
        raise Problem(403, "Verify your email address before holding a booking (see the"
                          " link we sent, or ask for a new one).", title="Email not verified")
    _require_within_horizon(body, request.app[CLOCK](), request.app[SETTINGS].booking_horizon_days)
    try:
        booking, result = await hold_booking(
            repo, request.app[CLOCK], principal.account_id, body,
            command_metadata(request), tier=await customer_tier(repo, principal.account_id),
            staff=principal.is_staff,
        )
    except Unavailable as exc:
        raise _unavailable(exc, principal) from None
    except ExtraFull as exc:
        raise extra_full(exc) from None
    return command_response(result, {
        "id": str(booking.id), "status": booking.state, "item_id": booking.item_id,
        "hold_expires_at": booking.hold_expires_at, "quote": booking.quote,
    })


def extra_full(exc: ExtraFull) -> Problem:
    """409 naming the extra, its location and the day with no place left."""
    return Problem(409, str(exc), title="Extra fully booked", extra=exc.code,
                   location=exc.location, day=exc.day.isoformat())


def _require_within_horizon(body: HoldBooking, now: datetime, days: int) -> None:
    """A hold ends at most `days` from now (MIDAS_BOOKING_HORIZON_DAYS)."""
    if body.end > now + timedelta(days=days):
        raise Problem(422, f"A booking ends at most {days} days ahead.", title="Invalid request",
                      errors=[{"field": "body.end", "type": "beyond_booking_horizon",
                               "message": f"ends more than {days} days from now"}])


def _transition_route(path: str, summary: str, run: Callable[..., Any]) -> None:
    async def handler(request: web.Request) -> web.Response:
        booking_id = path_uuid(request)
        result = await run(request, booking_id)
        return command_response(result, {"id": str(booking_id)}, status=200)

    handler.__name__ = f"post_{path.rsplit('/', 1)[-1].replace('-', '_')}"
    api.post(f"/api/v1/bookings/{{id}}/{path}", summary=summary, status=200,
             response=BookingResult)(handler)


def _app_now(request: web.Request) -> datetime:
    return request.app[CLOCK]()


_transition_route("confirm", "Confirm a held booking paid outside the service (staff)",
                  lambda r, b: confirm(r.app[REPOSITORY], r.app[CLOCK], b, command_metadata(r)))
_transition_route("check-out", "Hand the item over: confirmed -> active",
                  lambda r, b: check_out(r.app[REPOSITORY], b, _app_now(r), command_metadata(r)))
_transition_route("check-in", "Take the item back: active -> completed",
                  lambda r, b: check_in(r.app[REPOSITORY], b, _app_now(r), command_metadata(r)))


@api.post("/api/v1/bookings/{id}/cancel", summary="Cancel a booking (refund per policy)",
          body=CancelBooking, status=200, response=Cancelled, example={"reason": "customer"},
          problems={403: "Only staff cancel on behalf of the business"})
async def post_cancel(request: web.Request, body: CancelBooking) -> web.Response:
    principal = _principal(request)
    if body.reason is not CancellationReason.CUSTOMER and not principal.is_staff:
        raise Problem(403, "Only staff cancel on behalf of the business.")
    if body.reason is CancellationReason.FORCE_MAJEURE:
        raise Problem(422, "Declare force majeure with its own command.", errors=[
            {"field": "body.reason", "message": "use force-majeure", "type": "value_error"}])
    return await _cancel(request, body.reason, None if principal.is_staff else principal)


@api.post("/api/v1/bookings/{id}/force-majeure", summary="Declare force majeure (100 % refund)",
          status=200, response=Cancelled)
async def post_force_majeure(request: web.Request) -> web.Response:
    return await _cancel(request, CancellationReason.FORCE_MAJEURE, None)


async def _cancel(
    request: web.Request, reason: CancellationReason, customer: Principal | None
) -> web.Response:
    booking_id = path_uuid(request)
    booking, result = await cancel(
        request.app[REPOSITORY], booking_id, _app_now(request), reason,
        command_metadata(request), customer_id=customer.account_id if customer else None,
    )
    return command_response(result, {
        "id": str(booking_id), "status": booking.state,
        "refund_percentage": booking.refund[0] if booking.refund else "0",
        "refund_amount": booking.refund[1] if booking.refund else 0,
    }, status=200)


@api.put("/api/v1/bookings/{id}/concierge", summary="Assign a concierge to a booking",
         body=AssignConcierge, response=BookingResult)
async def put_concierge(request: web.Request, body: AssignConcierge) -> web.Response:
    booking_id = path_uuid(request)
    result = await assign_concierge(request.app[REPOSITORY], booking_id, body.concierge_id,
                                    command_metadata(request))
    return command_response(result, {"id": str(booking_id)}, status=200)
