"""Locations as data: admins add a location or change one, each change an event of the
pricing policy (see midas/domain/pricing_policy.py), in force at the next command of every
process, with no restart."""

from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from commands.quotes import SeasonIn, change_policy
from midas.domain.pricing_policy import LocationExists, PricingPolicy
from midas.http.api import Api
from midas.http.consistency import command_response
from midas.http.context import command_metadata
from midas.http.fields import Line, LocationCode
from midas.http.keys import REPOSITORY
from midas.http.problems import Problem

api = Api(tag="locations", kind="command")
LOCATION = r"^[A-Z]{2}-[A-Z]{2}$"


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown IANA time zone") from None
    return value


class LocationFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Line = Field(min_length=1, max_length=100, examples=["Monaco"])
    time_zone: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$",
                           examples=["Europe/Monaco"], description="An IANA time zone.")
    tax_rate: Decimal = Field(ge=0, lt=1, allow_inf_nan=False, max_digits=12,
                              description="A fraction as a string, e.g. \"0.20\".")
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["EUR"],
                          description="ISO 4217: the currency items here are priced in.")
    seasons: list[SeasonIn] = Field(default_factory=list, max_length=50)

    _valid_zone = field_validator("time_zone")(_zone)


class AddLocation(LocationFields):
    code: str = Field(pattern=LOCATION, examples=["MC-MO"])


class LocationResult(BaseModel):
    code: str
    position: int


@api.post("/api/v1/locations", summary="Add a location (in force at once, no restart)",
          body=AddLocation, response=LocationResult,
          problems={409: "A location with this code exists already"})
async def post_location(request: web.Request, body: AddLocation) -> web.Response:
    seasons = [s.model_dump() for s in body.seasons]

    def add(policy: PricingPolicy) -> None:
        policy.add_location(code=body.code, name=body.name, time_zone=body.time_zone,
                            tax_rate=body.tax_rate, currency=body.currency, seasons=seasons)

    try:
        result = await change_policy(request.app[REPOSITORY], add, command_metadata(request))
    except LocationExists as exc:
        raise Problem(409, str(exc), title="Location exists", errors=[
            {"field": "body.code", "message": "exists already", "type": "exists"}]) from None
    return command_response(result, {"code": body.code})


@api.put("/api/v1/locations/{code}", summary="Change a location: name, time zone, tax rate, "
         "currency and seasons (what differs is recorded)", body=LocationFields,
         response=LocationResult, path_params={"code": LocationCode})
async def put_location(request: web.Request, body: LocationFields) -> web.Response:
    code = request.match_info["code"]
    seasons = [s.model_dump() for s in body.seasons]

    def change(policy: PricingPolicy) -> None:
        if code not in policy.locations:
            raise web.HTTPNotFound()
        policy.change_location(code, name=body.name, time_zone=body.time_zone,
                               currency=body.currency)
        if Decimal(policy.locations[code]["tax_rate"]) != body.tax_rate:
            policy.set_tax_rate(code, body.tax_rate)
        if policy.seasons.get(code, []) != seasons:
            policy.set_seasons(code, seasons)

    result = await change_policy(request.app[REPOSITORY], change, command_metadata(request))
    return command_response(result, {"code": code}, status=200)
