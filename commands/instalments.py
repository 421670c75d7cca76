"""Payment schedules at work: the first instalment at booking, the later ones when due.

The plan (`midas.domain.schedule.plan`, by the booking rules in force) is recorded when the
hold is first paid for, with the rules' collection terms: the PaymentIntent of
`POST /bookings/{id}/payments` asks for the first instalment only, and its payment confirms
the booking. Each later instalment has timers (`due_tasks`, set by the recorded terms): a
reminder days before its due date; at the due date a PaymentIntent
(`booking:<id>:instalment:<n>:v1`) and a second reminder; unpaid hours after it, an alert to
the concierge; unpaid after the grace, the booking is cancelled for client default: what
was paid is forfeited (no refund table), the deposit hold released. Staff may move a due
date, waive or split an instalment, and waive the forfeit (a refund of what was paid):
each an event naming the actor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from commands.payment_store import payment_of, reference_statement
from midas.config import Settings
from midas.domain.bookings import Booking
from midas.domain.inventory import Item
from midas.domain.lifecycle import BookingState
from midas.domain.refunds import CancellationReason
from midas.domain.schedule import PaymentSchedule, plan, schedule_id
from midas.eventstore import (
    AggregateNotFound,
    AppendResult,
    Repository,
    retry_on_conflict,
)
from midas.http.api import Api
from midas.http.consistency import CommandResult, command_response
from midas.http.context import command_metadata, path_uuid
from midas.http.fields import Instant, Line, PositiveAmount
from midas.http.keys import REPOSITORY
from midas.http.problems import Problem
from midas.payment_providers.stripe_gateway import StripeGateway
from midas.policy import current_policy, current_rules

log = logging.getLogger(__name__)
api = Api(tag="payments", kind="command")
Clock = Callable[[], datetime]
TIMER_KINDS = ("instalment_remind", "instalment_due", "instalment_overdue",
               "instalment_default")


async def schedule_of(repo: Repository, booking_id: UUID) -> PaymentSchedule | None:
    try:
        return await repo.get(schedule_id(booking_id), cls=PaymentSchedule)
    except AggregateNotFound:
        return None


async def _planned(repo: Repository, booking: Booking, now: datetime) -> PaymentSchedule:
    """The schedule by the booking rules in force now, with their collection terms."""
    rules = await current_rules(repo)
    return PaymentSchedule(
        booking_id=str(booking.id), customer_id=booking.customer_id,
        currency=booking.quote["currency"], at=now.isoformat(),
        instalments=plan(booking.category.value, booking.total_due, booking.starts_at,
                         datetime.fromisoformat(booking.held_at), rules.schedules),
        terms=rules.collection.to_dict())


async def first_instalment(repo: Repository, clock: Clock, booking_id: UUID) -> int:
    """The first instalment's amount: of the recorded schedule, else of the plan the
    first payment request will record (`record_request`)."""
    schedule = await schedule_of(repo, booking_id)
    if schedule is None:
        schedule = await _planned(repo, await repo.get(booking_id, cls=Booking), clock())
    return int(schedule.instalment(1)["amount"])


async def record_request(repo: Repository, clock: Clock, booking_id: UUID, number: int,
                         reference: str, metadata: dict[str, Any], *,
                         plan_missing: bool = False) -> None:
    """Instalment `number` was asked for under `reference`; the first request
    (`plan_missing`) also records the plan, by the booking rules in force, in the same
    append."""

    async def attempt() -> None:
        schedule = await schedule_of(repo, booking_id)
        if schedule is None:
            if not plan_missing:
                return
            schedule = await _planned(repo, await repo.get(booking_id, cls=Booking), clock())
        schedule.request(number, reference, clock())
        if schedule.pending_events:
            await repo.save(schedule, metadata=metadata,
                            statements=(reference_statement(reference, booking_id),))

    await retry_on_conflict(attempt)


# -- reactions and timers ------------------------------------------------------------------


async def payable_amounts(repo: Repository, clock: Clock, booking: Booking) -> set[int]:
    """What a payment for the booking may be: its total due, or an open instalment."""
    schedule = await schedule_of(repo, booking.id) or await _planned(repo, booking, clock())
    return {booking.total_due, *(int(i["amount"]) for i in schedule.open())}


async def settle(repo: Repository, clock: Clock, booking_id: UUID, reference: str,
                 amount: int, metadata: dict[str, Any], *, plan_missing: bool = False
                 ) -> object:
    """A payment settles its instalment; a booking paid without asking first (a PayPal
    IPN) gets its schedule planned (`plan_missing`) by the same append."""

    async def attempt() -> object:
        schedule = await schedule_of(repo, booking_id)
        if schedule is None and plan_missing:
            schedule = await _planned(repo, await repo.get(booking_id, cls=Booking), clock())
        if schedule is None or schedule.settle(reference, amount, clock()) is None:
            return None
        return await repo.save(schedule, metadata=metadata)

    return await retry_on_conflict(attempt)


async def refund_forfeit(repo: Repository, clock: Clock, booking_id: UUID,
                         metadata: dict[str, Any]) -> object:
    async def attempt() -> object:
        payment = await payment_of(repo, booking_id)
        key = f"booking:{booking_id}:refund:forfeit-waived:v1"
        if payment is None or key in payment.refunds_requested or payment.refundable <= 0:
            return None
        payment.request_refund(key, payment.refundable, "forfeit waived by staff", clock())
        return await repo.save(payment, metadata=metadata)

    return await retry_on_conflict(attempt)


def _due(i: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(i["due_at"])


async def run_timer(repo: Repository, gateway: StripeGateway, settings: Settings,
                    kind: str, booking_id: UUID, now: datetime) -> object:
    """Whatever the timer of `kind` has to do for the booking's later instalments now."""
    metadata = {"actor": "scheduler", "actor_role": None, "cause": kind}
    booking = await repo.get(booking_id, cls=Booking)
    schedule = await schedule_of(repo, booking_id)
    if schedule is None or schedule.defaulted or booking.status is not BookingState.CONFIRMED:
        return None
    if kind == "instalment_due":
        for i in [i for i in schedule.later_open() if _due(i) <= now]:
            intent = await gateway.create_intent(
                amount=i["amount"], currency=schedule.currency,
                key=f"booking:{booking_id}:instalment:{i['number']}:v1",
                metadata={"booking_id": str(booking_id), "kind": "instalment",
                          "instalment": str(i["number"])})
            await record_request(repo, lambda: now, booking_id, i["number"], intent.id,
                                 metadata)
        kind = "instalment_remind_due"

    async def attempt() -> object:
        fresh = await repo.get(schedule_id(booking_id), cls=PaymentSchedule)
        aggregates: list[Any] = [fresh]
        for i in fresh.later_open():
            if kind == "instalment_remind" and _due(i) - timedelta(
                    days=fresh.terms.reminder_days) <= now < _due(i):
                fresh.remind(i["number"], "before", now)
            elif kind == "instalment_remind_due" and now >= _due(i):
                fresh.remind(i["number"], "due", now)
            elif kind == "instalment_overdue" and now >= _due(i) + timedelta(
                    hours=fresh.terms.alert_after_hours):
                fresh.mark_overdue(i["number"], now)
            elif kind == "instalment_default" and now >= _due(i) + timedelta(
                    days=fresh.terms.grace_days) and fresh.default(i["number"], now):
                b = await repo.get(booking_id, cls=Booking, exclusive=True)
                catalogue, _ = await current_policy(repo)
                b.cancel(now, catalogue, CancellationReason.CLIENT_DEFAULT)
                item = await repo.get(UUID(b.item_id), cls=Item, exclusive=True)
                item.release(b.id, "cancelled", now)
                aggregates += [b, item]
                break
        if not any(a.pending_events for a in aggregates):
            return None
        return await repo.save(*aggregates, metadata=metadata)

    return await retry_on_conflict(attempt)


# -- staff routes --------------------------------------------------------------------------


class MoveDueDate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    due_at: Instant


class Waive(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Line = Field(min_length=1, max_length=500)


class Part(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: PositiveAmount
    due_at: Instant


class Split(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parts: list[Part] = Field(min_length=2, max_length=12)


async def _edit(request: web.Request, change: Callable[[PaymentSchedule, str], None]
                ) -> web.Response:
    booking_id = path_uuid(request)
    metadata = command_metadata(request)
    actor = str(metadata.get("actor"))

    async def attempt() -> AppendResult:
        schedule = await schedule_of(request.app[REPOSITORY], booking_id)
        if schedule is None:
            raise web.HTTPNotFound()
        change(schedule, actor)
        return await request.app[REPOSITORY].save(schedule, metadata=metadata)

    result = await retry_on_conflict(attempt)
    return command_response(result, {"booking_id": str(booking_id)}, status=200)


class ScheduleResult(CommandResult):
    booking_id: str


# An instalment's number in its booking's schedule (1 is the first).
InstalmentNumber = Annotated[int, Field(ge=1, le=1000)]


def _number(request: web.Request) -> int:
    try:
        number = int(request.match_info["n"])
    except ValueError:
        number = 0
    if not 1 <= number <= 1000:
        raise Problem(422, "Not an instalment number.", title="Invalid request", errors=[
            {"field": "path.n", "message": "an instalment number", "type": "value_error"}])
    return number


@api.post("/api/v1/bookings/{id}/instalments/{n}/due-date", body=MoveDueDate, status=200,
          response=ScheduleResult, path_params={"n": InstalmentNumber},
          summary="Move an instalment's due date (staff)")
async def post_move_due(request: web.Request, body: MoveDueDate) -> web.Response:
    n = _number(request)
    return await _edit(request, lambda s, actor: s.move_due(n, body.due_at, actor))


@api.post("/api/v1/bookings/{id}/instalments/{n}/waive", body=Waive, status=200,
          response=ScheduleResult, path_params={"n": InstalmentNumber},
          summary="Waive an instalment (staff)")
async def post_waive(request: web.Request, body: Waive) -> web.Response:
    n = _number(request)
    return await _edit(request, lambda s, actor: s.waive(n, actor, body.reason))


@api.post("/api/v1/bookings/{id}/instalments/{n}/split", body=Split, status=200,
          response=ScheduleResult, path_params={"n": InstalmentNumber},
          summary="Split an instalment into parts with their own due dates (staff)")
async def post_split(request: web.Request, body: Split) -> web.Response:
    n = _number(request)
    return await _edit(request, lambda s, actor: s.split(
        n, [p.amount for p in body.parts], [p.due_at for p in body.parts], actor))


@api.post("/api/v1/bookings/{id}/forfeit/waive", body=Waive, status=200,
          response=ScheduleResult,
          summary="Waive the forfeit of a booking cancelled for client default: refund"
                  " what was paid (staff)")
async def post_waive_forfeit(request: web.Request, body: Waive) -> web.Response:
    return await _edit(request, lambda s, actor: s.waive_forfeit(actor, body.reason))
