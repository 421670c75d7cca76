"""Quotes (the line-by-line price of an item for an interval) and the pricing policy
(admin-managed seasons and tax rates per location)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, NotRequired
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator, with_config
from typing_extensions import TypedDict  # pydantic validates only this one on 3.11

from midas.domain.catalogue import (
    Catalogue,
    Category,
    RateUnit,
    ServiceLevel,
    UnknownLocation,
    Weekday,
)
from midas.domain.extras import ChoiceRefused, ExtrasCatalogue
from midas.domain.inventory import Item
from midas.domain.pricing import Quote, quote
from midas.domain.pricing_policy import POLICY_ID, PricingPolicy, parse_discounts
from midas.domain.stay_rules import StayRefused, check_stay
from midas.eventstore import AggregateNotFound, AppendResult, Repository, retry_on_conflict
from midas.http.api import Api
from midas.http.auth import current_principal
from midas.http.consistency import CommandResult, command_response, dumps
from midas.http.context import command_metadata
from midas.http.fields import CurrencyCode, Day, Instant, LocationCode, one_of
from midas.http.keys import CLOCK, REPOSITORY
from midas.http.problems import Problem
from midas.policy import current_extras, current_policy

api = Api(tag="pricing", kind="command")
LOCATION = r"^[A-Z]{2}-[A-Z]{2}$"


@with_config(ConfigDict(extra="forbid"))
class ExtraIn(TypedDict):
    """An extra chosen. A typed dict, not a model: the body of every quote and hold with
    extras makes one per extra, and a dict is made in less time than a model instance."""

    code: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,39}$", examples=["chauffeur"])]
    quantity: NotRequired[Annotated[int, Field(
        ge=1, le=100, description="How many (persons for a per-person extra); 1 if absent.")]]
    zone: NotRequired[Annotated[str | None, Field(
        pattern=r"^[a-z][a-z0-9_]{0,39}$", examples=["city"],
        description="For an extra priced by zone (delivery).")]]


class Stay(BaseModel):
    """An item, an interval [start, end) with time zones, a service level and extras."""

    model_config = ConfigDict(extra="forbid")

    item_id: UUID
    start: Instant
    end: Instant
    service_level: ServiceLevel = ServiceLevel.STANDARD
    extras: list[ExtraIn] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _end_after_start(self) -> Stay:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > timedelta(days=366):
            raise ValueError("a booking lasts at most a year")
        return self


# A typical stay: two days of an item, a month ahead (the examples of quotes and holds).
STAY_EXAMPLE = {"item_id": "3f2c9a4e-8b1d-4c6a-9e0f-5a7b2c1d4e6f",
                "start": "2027-01-15T10:00:00Z", "end": "2027-01-17T10:00:00Z",
                "service_level": "standard"}


class QuoteLineView(BaseModel):
    starts_at: str = Field(description="The unit's start (ISO 8601, UTC).")
    local_date: str = Field(description="Its date in the location's time zone.")
    season: str
    rate: int
    multiplier: str
    amount: int


class QuoteView(BaseModel):
    """A priced stay; amounts in minor units of ``currency``, rates as decimal text."""

    category: str
    location_code: str
    time_zone: str
    currency: str
    start: str
    end: str
    rate: int
    rate_unit: str
    lines: list[QuoteLineView]
    rental_subtotal: int
    service_level: str
    service_multiplier: str
    rental: int
    insurance_rate: str
    insurance: int
    tax_rate: str
    tax: int
    total_due: int
    security_deposit: int


class PricedStay(QuoteView):
    policy_version: int = Field(description="The pricing policy's version it was priced at.")


class PolicyResult(CommandResult):
    location: str


class DiscountsResult(CommandResult):
    category: str


class ExchangeRateResult(CommandResult):
    currency: str
    reporting_currency: str


def price(item: Item, start: datetime, end: datetime, level: ServiceLevel,
          catalogue: Catalogue, chosen: list[ExtraIn] | None = None,
          extras: ExtrasCatalogue | None = None) -> Quote:
    """The quote of `item` with its own rate, unit, minimum, currency and duration
    discounts (its category's when it has none of its own), and the `chosen` extras priced
    from `extras`: one the catalogue cannot price is a 422 naming `body.extras.<n>`."""
    own = getattr(item, "duration_discounts", None)
    try:
        return quote(
            start, end,
            category=Category(item.category), location_code=item.location, rate=item.rate,
            service_level=level, catalogue=catalogue, rate_unit=RateUnit(item.rate_unit),
            minimum=timedelta(minutes=item.minimum_minutes), currency=item.currency,
            duration_discounts=None if own is None else parse_discounts(own),
            extras=chosen or (), offered=None if extras is None else extras.extras,
        )
    except ChoiceRefused as exc:
        code = chosen[exc.index]["code"] if chosen else ""
        detail = f"extra {code!r}: {exc.reason}" if exc.field == "code" else exc.reason
        raise Problem(422, detail, title="Invalid request", errors=[
            {"field": f"body.extras.{exc.index}.{exc.field}", "message": exc.reason,
             "type": exc.kind}]) from None


def check_rules(priced: Quote, catalogue: Catalogue, now: datetime, *, staff: bool) -> None:
    """Refuse the stay of `priced` if the stay rules forbid it: a 422 naming the rule and
    the dates (staff override the advance notice)."""
    first = priced.lines[0]  # every quote has a unit: the arrival's date and season
    try:
        check_stay(catalogue.stay_rules, category=priced.category,
                   location=priced.location_code, start=priced.start, end=priced.end,
                   arrival=first.local_date, nights=priced.nights, season=first.season,
                   now=now, override_notice=staff)
    except StayRefused as exc:
        field = "body.end" if exc.rule == "minimum_stay" else "body.start"
        raise Problem(422, str(exc), title="Refused by a stay rule", rule=exc.rule,
                      dates=exc.dates, errors=[{"field": field, "message": str(exc),
                                                "type": exc.rule}]) from None


async def load_item(
    repo: Repository, item_id: UUID, field: str = "body.item_id", *, exclusive: bool = False
) -> Item:
    """The item named in a body; an unknown id is a field error (422), not a 404.
    ``exclusive``: for a command that changes and saves it (see Repository.get)."""
    try:
        return await repo.get(item_id, cls=Item, exclusive=exclusive)
    except AggregateNotFound:
        raise Problem(422, "No such item.", title="Invalid request", errors=[
            {"field": field, "message": "unknown item", "type": "unknown_item"}]) from None


async def quote_stay(
    repo: Repository, stay: Stay, now: datetime, *, staff: bool = False
) -> tuple[Quote, int]:
    item = await load_item(repo, stay.item_id)
    catalogue, version = await current_policy(repo)
    extras = await current_extras(repo) if stay.extras else None
    priced = price(item, stay.start, stay.end, stay.service_level, catalogue, stay.extras,
                   extras)
    check_rules(priced, catalogue, now, staff=staff)
    return priced, version


@api.post("/api/v1/quotes", summary="Price an item for an interval and service level",
          body=Stay, status=200, response=PricedStay, example=STAY_EXAMPLE,
          problems={422: "Invalid fields, or a stay rule refuses the stay (named, with"
                    " the dates)"})
async def post_quote(request: web.Request, body: Stay) -> web.Response:
    principal = current_principal(request)
    staff = principal is not None and principal.is_staff
    result, version = await quote_stay(request.app[REPOSITORY], body, request.app[CLOCK](),
                                       staff=staff)
    return web.json_response({**result.to_dict(), "policy_version": version}, dumps=dumps)


# -- pricing policy (admins) -----------------------------------------------------------


class SeasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["peak", "high", "low", "other"]
    first: str = Field(pattern=r"^\d{2}-\d{2}$", examples=["12-15"])
    last: str = Field(pattern=r"^\d{2}-\d{2}$", examples=["01-10"])


class SetSeasons(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seasons: list[SeasonIn] = Field(max_length=50)


class SetTaxRate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate: Decimal = Field(ge=0, lt=1, description="A fraction as a string, e.g. \"0.05\".")


async def change_policy(
    repo: Repository, change: Any, metadata: dict[str, Any]
) -> AppendResult:
    async def attempt() -> AppendResult:
        try:
            policy = await repo.get(POLICY_ID, cls=PricingPolicy)
        except AggregateNotFound:
            policy = PricingPolicy.start()
        change(policy)
        return await repo.save(policy, metadata=metadata)

    return await retry_on_conflict(attempt)


async def _location(request: web.Request) -> str:
    code = request.match_info["code"]
    catalogue, _ = await current_policy(request.app[REPOSITORY])
    if code not in catalogue.locations:
        raise web.HTTPNotFound()
    return code


@api.put("/api/v1/pricing/locations/{code}/seasons", summary="Set a location's seasons",
         body=SetSeasons, response=PolicyResult, path_params={"code": LocationCode})
async def put_seasons(request: web.Request, body: SetSeasons) -> web.Response:
    code = await _location(request)
    seasons = [s.model_dump() for s in body.seasons]
    result = await change_policy(request.app[REPOSITORY],
                                 lambda p: p.set_seasons(code, seasons), command_metadata(request))
    return command_response(result, {"location": code}, status=200)


@api.put("/api/v1/pricing/locations/{code}/tax-rate", summary="Set a location's tax rate",
         body=SetTaxRate, response=PolicyResult, path_params={"code": LocationCode})
async def put_tax_rate(request: web.Request, body: SetTaxRate) -> web.Response:
    code = await _location(request)
    result = await change_policy(request.app[REPOSITORY],
                                 lambda p: p.set_tax_rate(code, body.rate),
                                 command_metadata(request))
    return command_response(result, {"location": code}, status=200)


# -- duration pricing and stay rules (admins) ---------------------------------------------


class DiscountTier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_nights: int = Field(ge=1, le=366, examples=[7])
    percentage: Decimal = Field(ge=0, lt=100, allow_inf_nan=False, max_digits=8,
                                description="Off the rental, e.g. \"10\" for 10 %.")


class SetDurationDiscounts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tiers: list[DiscountTier] = Field(max_length=20, description="[] for no discount.")

    @model_validator(mode="after")
    def _one_per_length(self) -> SetDurationDiscounts:
        if len({t.min_nights for t in self.tiers}) != len(self.tiers):
            raise ValueError("one tier per min_nights")
        return self


class MinimumStayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: Category
    season: Literal["peak", "high", "low", "other"]
    nights: int = Field(ge=1, le=366)
    location: str | None = Field(None, pattern=LOCATION, description="None: everywhere.")


class ChangeoverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: Category
    season: Literal["peak", "high", "low", "other"]
    weekday: Weekday
    location: str | None = Field(None, pattern=LOCATION, description="None: everywhere.")


class SetStayRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    minimum_stays: list[MinimumStayIn] = Field(default_factory=list, max_length=100)
    changeovers: list[ChangeoverIn] = Field(default_factory=list, max_length=100)
    advance_notice_hours: int = Field(0, ge=0, le=24 * 366, description=(
        "Customers' stays start at least this many hours ahead (staff may override)."))
    horizon_days: int | None = Field(None, ge=1, le=3660, description=(
        "Stays start at most this many days ahead; null: no limit."))


def _unknown_location(exc: UnknownLocation) -> Problem:
    return Problem(422, str(exc), title="Invalid request", errors=[
        {"field": "body", "message": f"unknown location {exc.code}",
         "type": "unknown_location"}])


@api.put("/api/v1/pricing/duration-discounts/{category}", summary="Set a category's"
         " discounts by length of stay", body=SetDurationDiscounts, response=DiscountsResult,
         path_params={"category": one_of(c.value for c in Category)})
async def put_duration_discounts(request: web.Request, body: SetDurationDiscounts) -> web.Response:
    try:
        category = Category(request.match_info["category"])
    except ValueError:
        raise web.HTTPNotFound() from None
    tiers = [t.model_dump(mode="json") for t in body.tiers]
    result = await change_policy(request.app[REPOSITORY],
                                 lambda p: p.set_duration_discounts(category, tiers),
                                 command_metadata(request))
    return command_response(result, {"category": category.value}, status=200)


@api.put("/api/v1/pricing/stay-rules", summary="Set the stay rules (minimum stays,"
         " changeover days, advance notice, furthest bookable date)", body=SetStayRules,
         response=CommandResult)
async def put_stay_rules(request: web.Request, body: SetStayRules) -> web.Response:
    rules = body.model_dump(mode="json")
    try:
        result = await change_policy(request.app[REPOSITORY],
                                     lambda p: p.set_stay_rules(rules), command_metadata(request))
    except UnknownLocation as exc:
        raise _unknown_location(exc) from None
    return command_response(result, {}, status=200)


# -- currencies (admins) ------------------------------------------------------------------


class SetExchangeRate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    valid_from: Day = Field(description="The first day (UTC) the rate is used for payments.")
    rate: Decimal = Field(gt=0, allow_inf_nan=False, max_digits=20, decimal_places=10,
                          description="One unit of the currency in the reporting currency,"
                          " e.g. \"1.0850\".")


@api.put("/api/v1/pricing/exchange-rates/{currency}", summary="Set a dated rate of a"
         " currency into the reporting currency", body=SetExchangeRate, response=ExchangeRateResult,
         path_params={"currency": CurrencyCode})
async def put_exchange_rate(request: web.Request, body: SetExchangeRate) -> web.Response:
    currency = request.match_info["currency"]
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise web.HTTPNotFound()
    repo = request.app[REPOSITORY]
    catalogue, _ = await current_policy(repo)
    if currency == catalogue.reporting_currency:
        raise Problem(422, f"{currency} is the reporting currency: its rate is 1",
                      title="Invalid request", errors=[
                          {"field": "path.currency", "message": "the reporting currency",
                           "type": "value_error"}])
    result = await change_policy(
        repo, lambda p: p.set_exchange_rate(currency, body.valid_from, body.rate,
                                            catalogue.reporting_currency),
        command_metadata(request))
    return command_response(result, {"currency": currency,
                                     "reporting_currency": catalogue.reporting_currency},
                            status=200)
