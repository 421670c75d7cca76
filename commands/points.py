"""Loyalty points as payment: a customer pays part of a held booking with points.

`POST /api/v1/bookings/{id}/points {points}` reserves the points on the customer's account
and lowers what is left to pay in money, in one atomic append of the account and the
booking: the account is the consistency boundary of the balance, so two redemptions
racing for one balance both load it, and the second to append finds a newer version,
reruns on the fresh balance and is refused (409) when it would go below zero.

The points then follow the booking (the `points_process` process manager): spent when it
is confirmed, given back when its hold expires or it is cancelled unpaid, and given back in
proportion to the refund when a paid booking is cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from commands.payment_store import payment_of
from midas.domain.accounts import Account
from midas.domain.bookings import Booking
from midas.domain.errors import DomainError, RuleViolation
from midas.domain.payments import currency_exponent
from midas.eventstore import (
    AggregateNotFound,
    AppendResult,
    Repository,
    retry_on_conflict,
)
from midas.http.api import Api
from midas.http.auth import current_principal
from midas.http.consistency import CommandResult, command_response
from midas.http.context import command_metadata, path_uuid
from midas.http.keys import CLOCK, REPOSITORY
from midas.http.problems import Problem
from midas.policy import current_rules

log = logging.getLogger(__name__)
api = Api(tag="bookings", kind="command")
Clock = Callable[[], datetime]


def points_value(points: int, currency: str, per_unit: int) -> int:
    """The money `points` stand for, in minor units: 100 points = 1 unit (USD: 1 point is a
    cent). Points worth a fraction of a minor unit are refused."""
    scaled = points * 10 ** currency_exponent(currency)
    if scaled % per_unit:
        raise RuleViolation(f"points are redeemed in multiples worth a whole minor unit of"
                            f" {currency}")
    return scaled // per_unit


async def redeem_points(
    repo: Repository, clock: Clock, booking_id: UUID, customer_id: UUID | None, points: int,
    per_unit: int, max_share: Decimal, metadata: dict[str, Any],
) -> tuple[Booking, AppendResult]:
    """Reserve `points` of the booking's customer for a held booking (a customer only on
    their own: others' ids are not found)."""

    async def attempt() -> tuple[Booking, AppendResult]:
        booking = await repo.get(booking_id, cls=Booking, exclusive=True)
        if customer_id is not None and booking.customer_id != str(customer_id):
            raise web.HTTPNotFound()
        if await payment_of(repo, booking_id) is not None:
            raise DomainError("a payment was already asked for: points can no longer be"
                              " chosen for this booking")
        now = clock()
        value = points_value(points, booking.quote["currency"], per_unit)
        booking.redeem_points(points, value, now, max_share=max_share)
        account = await repo.get(UUID(booking.customer_id), cls=Account, exclusive=True)
        account.reserve_points(str(booking.id), points, value)
        return booking, await repo.save(account, booking, metadata=metadata)

    return await retry_on_conflict(attempt)


async def follow_booking(repo: Repository, booking_id: UUID,
                  change: Callable[[Account], bool], metadata: dict[str, Any]) -> object:
    async def attempt() -> object:
        booking = await repo.get(booking_id, cls=Booking)
        if not booking.points_redeemed and not booking.changes_made:
            return None
        try:
            account = await repo.get(UUID(booking.customer_id), cls=Account, exclusive=True)
        except AggregateNotFound:
            return None  # no account of its own (never redeemed anything)
        if not change(account):
            return None
        return await repo.save(account, metadata=metadata)

    return await retry_on_conflict(attempt)


# -- HTTP ----------------------------------------------------------------------------------


class RedeemPoints(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: int = Field(ge=1, le=1_000_000_000,
                        description="Loyalty points to pay with (by default 100 points = 1"
                                    " unit of the booking's currency, at most 20 % of the"
                                    " rental: the booking rules in force).")


class PointsResult(CommandResult):
    """Points chosen for a held booking; amounts in minor units of `currency`."""

    booking_id: str
    points: int
    points_value: int
    amount_due: int
    currency: str


@api.post("/api/v1/bookings/{id}/points", body=RedeemPoints, status=200,
          response=PointsResult,
          summary="Pay part of a held booking with loyalty points, before paying the rest")
async def post_points(request: web.Request, body: RedeemPoints) -> web.Response:
    principal = current_principal(request)
    if principal is None:
        raise Problem(401, "Sign in to do this.")
    booking_id = path_uuid(request)
    rule = (await current_rules(request.app[REPOSITORY])).points
    booking, result = await redeem_points(
        request.app[REPOSITORY], request.app[CLOCK], booking_id,
        None if principal.is_staff else principal.account_id, body.points,
        rule.points_per_unit, rule.max_share, command_metadata(request))
    return command_response(result, {
        "booking_id": str(booking_id), "points": booking.points_redeemed,
        "points_value": booking.points_credit, "amount_due": booking.total_due,
        "currency": booking.quote["currency"]}, status=200)
