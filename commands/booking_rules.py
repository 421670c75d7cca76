"""The booking rules as admins set them: each change an event of the `BookingRules`
aggregate (midas/domain/booking_rules.py) naming the actor, in force at the next command
of every process, with no restart. Setting a rule to what it is records nothing."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from midas.domain.booking_rules import (
    MAX_ALERT_HOURS,
    MAX_BALANCE_DAYS,
    MAX_GRACE_DAYS,
    MAX_NOTICE_HOURS,
    MAX_POINTS_PER_UNIT,
    MAX_REMINDER_DAYS,
    RULES_ID,
    BookingRules,
    CollectionTerms,
    InvalidRule,
)
from midas.domain.catalogue import Category
from midas.eventstore import AggregateNotFound, AppendResult, Repository, retry_on_conflict
from midas.http.api import Api
from midas.http.consistency import CommandResult, command_response
from midas.http.context import command_metadata
from midas.http.fields import one_of
from midas.http.keys import REPOSITORY
from midas.http.problems import Problem

api = Api(tag="booking rules", kind="command")


class SetChangeNotice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hours: int = Field(ge=0, le=MAX_NOTICE_HOURS, examples=[72], description=(
        "Customers change their own bookings until this many hours before the start."))


class SetPaymentSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_share: Decimal = Field(gt=0, le=1, allow_inf_nan=False, max_digits=6,
                                 examples=["0.50"], description=(
                                     "The share of the total paid at booking; 1: all of it."))
    balance_days_before: int | None = Field(
        ge=1, le=MAX_BALANCE_DAYS, examples=[30],
        description="Days before the start the balance is due; null when the first share"
                    " is 1.")


class SetCollection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reminder_days: int = Field(ge=0, le=MAX_REMINDER_DAYS, examples=[7], description=(
        "A reminder this many days before a later instalment's due date (and one on it)."))
    alert_after_hours: int = Field(ge=0, le=MAX_ALERT_HOURS, examples=[72], description=(
        "Unpaid this many hours after its due date: the concierge is alerted."))
    grace_days: int = Field(ge=0, le=MAX_GRACE_DAYS, examples=[5], description=(
        "Unpaid this many days after its due date: cancelled for client default."))


class SetPointsPayment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points_per_unit: int = Field(ge=1, le=MAX_POINTS_PER_UNIT, examples=[100], description=(
        "Points that make one unit of the booking's currency."))
    max_share: Decimal = Field(ge=0, le=1, allow_inf_nan=False, max_digits=6,
                               examples=["0.20"], description=(
                                   "The largest share of the rental points may pay."))


class RulesResult(CommandResult):
    rule: str


async def change_rules(repo: Repository, change: Callable[[BookingRules], None],
                       metadata: dict[str, object]) -> AppendResult:
    """Apply `change` to the rules in force (recording the defaults first, the first
    time), and save what it recorded."""

    async def attempt() -> AppendResult:
        try:
            rules = await repo.get(RULES_ID, cls=BookingRules, exclusive=True)
        except AggregateNotFound:
            rules = BookingRules.start()
        try:
            change(rules)
        except InvalidRule as exc:
            raise Problem(422, str(exc), title="Invalid request", errors=[
                {"field": f"body.{exc.field}", "message": str(exc),
                 "type": "value_error"}]) from None
        return await repo.save(rules, metadata=metadata)

    return await retry_on_conflict(attempt)


async def _set(request: web.Request, rule: str,
               change: Callable[[BookingRules], None]) -> web.Response:
    result = await change_rules(request.app[REPOSITORY], change, command_metadata(request))
    return command_response(result, {"rule": rule}, status=200)


@api.put("/api/v1/booking-rules/change-notice", body=SetChangeNotice, response=RulesResult,
         summary="Set how long before the start customers may change their bookings")
async def put_change_notice(request: web.Request, body: SetChangeNotice) -> web.Response:
    return await _set(request, "change_notice",
                      lambda rules: rules.set_change_notice(body.hours))


@api.put("/api/v1/booking-rules/payment-schedules/{category}", body=SetPaymentSchedule,
         response=RulesResult, path_params={"category": one_of(c.value for c in Category)},
         summary="Set a category's payment schedule for bookings planned from now on")
async def put_payment_schedule(request: web.Request, body: SetPaymentSchedule
                               ) -> web.Response:
    category = request.match_info["category"]
    return await _set(request, f"payment_schedule:{category}",
                      lambda rules: rules.set_payment_schedule(
                          category, body.first_share, body.balance_days_before))


@api.put("/api/v1/booking-rules/collection", body=SetCollection, response=RulesResult,
         summary="Set when later instalments are reminded, alerted and defaulted, for"
                 " schedules planned from now on")
async def put_collection(request: web.Request, body: SetCollection) -> web.Response:
    terms = CollectionTerms(body.reminder_days, body.alert_after_hours, body.grace_days)
    return await _set(request, "collection", lambda rules: rules.set_collection(terms))


@api.put("/api/v1/booking-rules/points", body=SetPointsPayment, response=RulesResult,
         summary="Set what points are worth as payment, and the share they may pay")
async def put_points(request: web.Request, body: SetPointsPayment) -> web.Response:
    return await _set(request, "points", lambda rules: rules.set_points_payment(
        body.points_per_unit, body.max_share))
