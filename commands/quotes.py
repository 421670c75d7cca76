"""Quotes (the line-by-line price of an item for an interval) and the pricing policy
(admin-managed seasons and tax rates per location)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from midas.domain.catalogue import DEFAULT_CATALOGUE, Catalogue, Category, RateUnit, ServiceLevel
from midas.domain.inventory import Item
from midas.domain.pricing import Quote, quote
from midas.domain.pricing_policy import POLICY_ID, PricingPolicy
from midas.eventstore import AggregateNotFound, AppendResult, Repository, retry_on_conflict
from midas.http.api import Api
from midas.http.consistency import command_response
from midas.http.context import command_metadata
from midas.http.keys import REPOSITORY
from midas.http.problems import Problem
from midas.policy import current_policy

api = Api(tag="pricing", kind="command")
LOCATION = r"^[A-Z]{2}-[A-Z]{2}$"


class Stay(BaseModel):
    """An item, an interval [start, end) with time zones, and a service level."""

    model_config = ConfigDict(extra="forbid")

    item_id: UUID
    start: AwareDatetime
    end: AwareDatetime
    service_level: ServiceLevel = ServiceLevel.STANDARD

    @model_validator(mode="after")
    def _end_after_start(self) -> Stay:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > timedelta(days=366):
            raise ValueError("a booking lasts at most a year")
        return self


def price(item: Item, start: datetime, end: datetime, level: ServiceLevel,
          catalogue: Catalogue) -> Quote:
    """The quote of `item` with its own rate, unit, minimum and currency."""
    return quote(
        start, end,
        category=Category(item.category), location_code=item.location, rate=item.rate,
        service_level=level, catalogue=catalogue, rate_unit=RateUnit(item.rate_unit),
        minimum=timedelta(minutes=item.minimum_minutes), currency=item.currency,
    )


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


async def quote_stay(repo: Repository, stay: Stay) -> tuple[Quote, int]:
    item = await load_item(repo, stay.item_id)
    catalogue, version = await current_policy(repo)
    return price(item, stay.start, stay.end, stay.service_level, catalogue), version


@api.post("/api/v1/quotes", summary="Price an item for an interval and service level",
          body=Stay, status=200)
async def post_quote(request: web.Request, body: Stay) -> web.Response:
    result, version = await quote_stay(request.app[REPOSITORY], body)
    return web.json_response({**result.to_dict(), "policy_version": version})


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


def _location(request: web.Request) -> str:
    code = request.match_info["code"]
    if code not in DEFAULT_CATALOGUE.locations:
        raise web.HTTPNotFound()
    return code


@api.put("/api/v1/pricing/locations/{code}/seasons", summary="Set a location's seasons",
         body=SetSeasons)
async def put_seasons(request: web.Request, body: SetSeasons) -> web.Response:
    code = _location(request)
    seasons = [s.model_dump() for s in body.seasons]
    result = await change_policy(request.app[REPOSITORY],
                                 lambda p: p.set_seasons(code, seasons), command_metadata(request))
    return command_response(result, {"location": code}, status=200)


@api.put("/api/v1/pricing/locations/{code}/tax-rate", summary="Set a location's tax rate",
         body=SetTaxRate)
async def put_tax_rate(request: web.Request, body: SetTaxRate) -> web.Response:
    code = _location(request)
    result = await change_policy(request.app[REPOSITORY],
                                 lambda p: p.set_tax_rate(code, body.rate),
                                 command_metadata(request))
    return command_response(result, {"location": code}, status=200)
