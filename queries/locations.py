"""Locations in force: each with its name, time zone, tax rate, currency and seasons.

Read from the pricing policy itself (a handful of locations, held by one aggregate the
repository caches), as quotes read them: a list is never behind a quote.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from midas.domain.catalogue import Catalogue, Location
from midas.http.api import Api
from midas.http.fields import LocationCode
from midas.http.keys import REPOSITORY
from midas.policy import current_policy

api = Api(tag="locations", kind="query")


class SeasonView(BaseModel):
    kind: str
    first: str
    last: str


class LocationView(BaseModel):
    code: str
    name: str
    time_zone: str
    tax_rate: str
    currency: str
    seasons: list[SeasonView]


class LocationList(BaseModel):
    locations: list[LocationView]
    policy_version: int


def _view(catalogue: Catalogue, place: Location) -> dict[str, object]:
    return {"code": place.code, "name": place.name or place.code,
            "time_zone": place.time_zone, "tax_rate": str(place.tax_rate),
            "currency": place.currency,
            "seasons": [{"kind": s.kind.value, "first": str(s.first), "last": str(s.last)}
                        for s in catalogue.seasons.get(place.code, ())]}


@api.get("/api/v1/locations", summary="The locations in force", response=LocationList)
async def list_locations(request: web.Request) -> web.Response:
    catalogue, version = await current_policy(request.app[REPOSITORY])
    places = sorted(catalogue.locations.values(), key=lambda place: place.code)
    return web.json_response({"locations": [_view(catalogue, p) for p in places],
                              "policy_version": version})


@api.get("/api/v1/locations/{code}", summary="One location in force", response=LocationView,
         path_params={"code": LocationCode})
async def get_location(request: web.Request) -> web.Response:
    catalogue, _ = await current_policy(request.app[REPOSITORY])
    place = catalogue.locations.get(request.match_info["code"])
    if place is None:
        raise web.HTTPNotFound()
    return web.json_response(_view(catalogue, place))
