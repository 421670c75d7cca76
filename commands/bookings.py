"""Booking commands: hold an item, confirm, check out, check in, cancel, force majeure,
assign a concierge; and the lifecycle timers the scheduler runs (hold expiry, automatic
check-out and check-in).

The item is the consistency boundary: every command that takes or frees an item saves the
item's event and the booking's in one atomic append, retried on fresh state after a
version race (a concurrent reservation then finds the overlap and is refused).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from commands.quotes import Stay, load_item, price
from midas.domain.accounts import Account
from midas.domain.bookings import Booking
from midas.domain.catalogue import ServiceLevel
from midas.domain.inventory import Item, Unavailable
from midas.domain.lifecycle import BookingState, InvalidTransition
from midas.domain.pricing import effective_service_level
from midas.domain.refunds import CancellationReason
from midas.eventstore import AggregateNotFound, AppendResult, Repository, retry_on_conflict
from midas.http.api import Api
from midas.http.auth import Principal, current_principal
from midas.http.consistency import command_response
from midas.http.context import command_metadata, path_uuid
from midas.http.keys import CLOCK, REPOSITORY, SETTINGS
from midas.http.problems import Problem
from midas.policy import current_policy
from midas.scheduler import TaskHandler

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


# -- use cases ---------------------------------------------------------------------------


async def hold_booking(
    repo: Repository, clock: Clock, customer_id: UUID, cmd: HoldBooking,
    metadata: dict[str, Any], tier: ServiceLevel = ServiceLevel.STANDARD,
) -> tuple[Booking, AppendResult]:
    async def attempt() -> tuple[Booking, AppendResult]:
        item = await load_item(repo, cmd.item_id, exclusive=True)
        catalogue, version = await current_policy(repo)
        now = clock()
        booking = Booking.hold(
            item_id=item.id, customer_id=customer_id,
            quote=price(item, cmd.start, cmd.end, cmd.service_level, catalogue),
            delivered_level=effective_service_level(cmd.service_level, tier),
            policy_version=version, at=now, hold_expiry=catalogue.hold_expiry,
        )
        item.reserve(booking.id, cmd.start, cmd.end, now)
        return booking, await repo.save(item, booking, metadata=metadata)

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
    return await repo.save(item, booking, metadata=metadata)


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
        return await repo.save(item, booking, metadata=metadata)

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
        return booking, await repo.save(item, booking, metadata=metadata)

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


def scheduler_tasks(app: web.Application) -> dict[str, TaskHandler]:
    """The due-task kinds of the booking lifecycle and the commands they run."""
    metadata = {"actor": "scheduler", "actor_role": None}
    repo = app[REPOSITORY]

    async def run_expire(booking_id: UUID, now: datetime) -> object:
        return await expire_hold(repo, booking_id, now, {**metadata, "cause": "hold expiry"})

    async def run_check_out(booking_id: UUID, now: datetime) -> object:
        if not app[SETTINGS].auto_check_out:
            return None
        return await check_out(repo, booking_id, now, {**metadata, "cause": "start reached"})

    async def run_check_in(booking_id: UUID, now: datetime) -> object:
        return await check_in(repo, booking_id, now, {**metadata, "cause": "end passed"})

    return {"expire_hold": run_expire, "check_out": run_check_out, "check_in": run_check_in}


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


@api.post("/api/v1/bookings", summary="Book an item (a hold until paid)", body=HoldBooking)
async def post_booking(request: web.Request, body: HoldBooking) -> web.Response:
    principal = _principal(request)
    repo = request.app[REPOSITORY]
    try:
        booking, result = await hold_booking(
            repo, request.app[CLOCK], principal.account_id, body,
            command_metadata(request), tier=await customer_tier(repo, principal.account_id),
        )
    except Unavailable as exc:
        raise _unavailable(exc, principal) from None
    return command_response(result, {
        "id": str(booking.id), "status": booking.state, "item_id": booking.item_id,
        "hold_expires_at": booking.hold_expires_at, "quote": booking.quote,
    })


def _transition_route(path: str, summary: str, run: Callable[..., Any]) -> None:
    async def handler(request: web.Request) -> web.Response:
        booking_id = path_uuid(request)
        result = await run(request, booking_id)
        return command_response(result, {"id": str(booking_id)}, status=200)

    handler.__name__ = f"post_{path.rsplit('/', 1)[-1].replace('-', '_')}"
    api.post(f"/api/v1/bookings/{{id}}/{path}", summary=summary, status=200)(handler)


def _app_now(request: web.Request) -> datetime:
    return request.app[CLOCK]()


_transition_route("confirm", "Confirm a held booking (staff; payments later)",
                  lambda r, b: confirm(r.app[REPOSITORY], r.app[CLOCK], b, command_metadata(r)))
_transition_route("check-out", "Hand the item over: confirmed -> active",
                  lambda r, b: check_out(r.app[REPOSITORY], b, _app_now(r), command_metadata(r)))
_transition_route("check-in", "Take the item back: active -> completed",
                  lambda r, b: check_in(r.app[REPOSITORY], b, _app_now(r), command_metadata(r)))


@api.post("/api/v1/bookings/{id}/cancel", summary="Cancel a booking (refund per policy)",
          body=CancelBooking, status=200)
async def post_cancel(request: web.Request, body: CancelBooking) -> web.Response:
    principal = _principal(request)
    if body.reason is not CancellationReason.CUSTOMER and not principal.is_staff:
        raise Problem(403, "Only staff cancel on behalf of the business.")
    if body.reason is CancellationReason.FORCE_MAJEURE:
        raise Problem(422, "Declare force majeure with its own command.", errors=[
            {"field": "body.reason", "message": "use force-majeure", "type": "value_error"}])
    return await _cancel(request, body.reason, None if principal.is_staff else principal)


@api.post("/api/v1/bookings/{id}/force-majeure", summary="Declare force majeure (100 % refund)",
          status=200)
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
         body=AssignConcierge)
async def put_concierge(request: web.Request, body: AssignConcierge) -> web.Response:
    booking_id = path_uuid(request)
    result = await assign_concierge(request.app[REPOSITORY], booking_id, body.concierge_id,
                                    command_metadata(request))
    return command_response(result, {"id": str(booking_id)}, status=200)
