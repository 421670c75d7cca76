"""The extras on offer (admins): add one, change one; each an event of the extras
catalogue (midas/domain/extras.py), in force at the next quote or hold."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from midas.domain.bookings import Booking
from midas.domain.catalogue import Category
from midas.domain.extras import (
    EXTRAS_ID,
    ExtraCapacity,
    ExtraExists,
    ExtraFull,
    ExtrasCatalogue,
    UnknownExtra,
    capacity_id,
)
from midas.eventstore import AggregateNotFound, AppendResult, Repository, retry_on_conflict
from midas.http.api import Api
from midas.http.consistency import command_response
from midas.http.context import command_metadata
from midas.http.fields import Amount, Line
from midas.http.keys import REPOSITORY
from midas.http.problems import Problem
from midas.policy import current_policy

api = Api(tag="extras", kind="command")
CODE = r"^[a-z][a-z0-9_]{1,39}$"
LocationCode = Annotated[str, Field(pattern=r"^[A-Z]{2}-[A-Z]{2}$", examples=["AE-DU"])]
ZoneName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", examples=["city"])]


class ExtraFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Line = Field(min_length=1, max_length=100, examples=["Chauffeur"])
    categories: list[Category] = Field(min_length=1, max_length=4)
    basis: Literal["per_booking", "per_day", "per_hour", "per_person", "percentage"]
    price: Amount = Field(0, description="Minor units of the booking's currency per unit"
                          " (not for a percentage).")
    percentage: Decimal | None = Field(None, gt=0, le=100, allow_inf_nan=False,
                                       max_digits=8, description="Of the rental.")
    tax: Literal["taxed", "exempt", "pass_through"] = "taxed"
    capacity: int | None = Field(None, ge=1, le=10_000,
                                 description="So many a day at each location; null: no limit.")
    locations: list[LocationCode] | None = Field(None, max_length=100,
                                                 description="null: everywhere.")
    zones: dict[ZoneName, Amount] | None = Field(
        None, max_length=50, description="Prices by zone (delivery to an address), in place"
        " of `price`; null: one price.")
    active: bool = True


class AddExtra(ExtraFields):
    code: str = Field(pattern=CODE, examples=["chauffeur"])


class ExtraResult(BaseModel):
    code: str
    position: int


# -- capacity: the ledgers a booking's extras take and give back ------------------------


class Ledgers:
    """The capacity ledgers one command reads and changes, each loaded once (so an extra
    given back and taken again in one append is one aggregate)."""

    def __init__(self, repo: Repository, *, exclusive: bool = True) -> None:
        self.repo, self.exclusive = repo, exclusive
        self.loaded: dict[tuple[str, str], ExtraCapacity | None] = {}

    async def get(self, code: str, location: str) -> ExtraCapacity | None:
        """The ledger of `code` at `location`; None while nothing was ever taken there."""
        key = (code, location)
        if key not in self.loaded:
            try:
                self.loaded[key] = await self.repo.get(
                    capacity_id(code, location), cls=ExtraCapacity, exclusive=self.exclusive)
            except AggregateNotFound:
                self.loaded[key] = None
        return self.loaded[key]

    async def open(self, code: str, location: str) -> ExtraCapacity:
        ledger = await self.get(code, location)
        if ledger is None:
            ledger = self.loaded[(code, location)] = ExtraCapacity(code=code, location=location)
        return ledger

    async def release(self, holder: UUID | str, quote: dict[str, Any]) -> None:
        """Give back what `holder` took for the extras of `quote`."""
        for line in quote.get("extras", []):
            ledger = await self.get(line["code"], quote["location_code"])
            if ledger is not None:
                ledger.release(holder)

    async def hand_over(self, hold: str, holder: UUID | str, quote: dict[str, Any],
                        days: list[date], now: datetime) -> None:
        """The places `hold` took for the extras of `quote` become `holder`'s (a change
        paid: the places were checked when held)."""
        for line in quote.get("extras", []):
            ledger = await self.get(line["code"], quote["location_code"])
            if ledger is not None and ledger.release(hold):
                ledger.take(holder, days, None, now.date())

    async def first_full(self, extras: ExtrasCatalogue, location: str, days: list[date],
                         codes: list[str], *, beside: UUID | str) -> ExtraFull | None:
        """The first extra of `codes` with a day already full (`beside`'s places aside)."""
        for code in codes:
            capacity = extras.extras[code]["capacity"] if code in extras.extras else None
            if capacity is None:
                continue
            ledger = await self.get(code, location)
            day = None if ledger is None else ledger.full_day(days, capacity, beside=beside)
            if day is not None:
                return ExtraFull(code, location, day, capacity)
        return None

    async def take(self, extras: ExtrasCatalogue, holder: UUID | str, location: str,
                   days: list[date], codes: list[str], now: datetime, *,
                   beside: UUID | str | None = None, checked: bool = True) -> None:
        """Take the days of each extra of `codes` that has a capacity (ExtraFull if one is
        full); `checked` False: the places were held already (a paid change)."""
        for code in codes:
            capacity = extras.extras[code]["capacity"] if code in extras.extras else None
            if capacity is None:
                continue
            ledger = await self.open(code, location)
            ledger.take(holder, days, capacity if checked else None, now.date(), beside=beside)

    def changed(self) -> list[ExtraCapacity]:
        return [ledger for ledger in self.loaded.values()
                if ledger is not None and ledger.pending_events]


async def take_capacity(
    repo: Repository, extras: ExtrasCatalogue, booking_id: UUID, location: str,
    days: list[date], codes: list[str], now: datetime,
) -> list[ExtraCapacity]:
    """Take the days of each chosen extra that has a capacity, in its ledger (the extra's
    consistency boundary, saved with the item and the booking); ExtraFull if a day is."""
    ledgers = Ledgers(repo)
    await ledgers.take(extras, booking_id, location, days, codes, now)
    return ledgers.changed()


async def release_capacity(repo: Repository, booking: Booking) -> list[ExtraCapacity]:
    """Give back the days the booking's extras took (those with a ledger), and those its
    change awaiting payment holds."""
    ledgers = Ledgers(repo)
    await ledgers.release(booking.id, booking.quote)
    pending = booking.pending_change
    if pending is not None:
        await ledgers.release(pending["hold_id"], pending["terms"]["quote"])
    return ledgers.changed()


# -- the catalogue (admins) -------------------------------------------------------------


async def change_extras(repo: Repository, change: Callable[[ExtrasCatalogue], object],
                        metadata: dict[str, Any]) -> AppendResult:
    async def attempt() -> AppendResult:
        try:
            extras = await repo.get(EXTRAS_ID, cls=ExtrasCatalogue, exclusive=True)
        except AggregateNotFound:
            extras = ExtrasCatalogue.start()
        change(extras)
        return await repo.save(extras, metadata=metadata)

    return await retry_on_conflict(attempt)


async def _data(request: web.Request, body: ExtraFields) -> dict[str, Any]:
    """The extra as plain data; locations not in force are a 422 naming them."""
    catalogue, _ = await current_policy(request.app[REPOSITORY])
    unknown = [n for n, code in enumerate(body.locations or [])
               if code not in catalogue.locations]
    if unknown:
        raise Problem(422, "unknown location", title="Invalid request", errors=[
            {"field": f"body.locations.{n}", "message": "unknown location",
             "type": "unknown_location"} for n in unknown])
    data = body.model_dump(mode="json")
    if body.percentage is not None:
        data["percentage"] = str(body.percentage)
    return data


@api.post("/api/v1/extras", summary="Add an extra to the catalogue", body=AddExtra,
          response=ExtraResult, problems={409: "An extra with this code exists already"})
async def post_extra(request: web.Request, body: AddExtra) -> web.Response:
    data = await _data(request, body)
    try:
        result = await change_extras(request.app[REPOSITORY], lambda e: e.add(data),
                                     command_metadata(request))
    except ExtraExists as exc:
        raise Problem(409, str(exc), title="Extra exists", errors=[
            {"field": "body.code", "message": "exists already", "type": "exists"}]) from None
    return command_response(result, {"code": body.code})


@api.put("/api/v1/extras/{code}", summary="Change an extra (what differs is recorded)",
         body=ExtraFields, response=ExtraResult,
         path_params={"code": Annotated[str, Field(pattern=CODE)]})
async def put_extra(request: web.Request, body: ExtraFields) -> web.Response:
    code = request.match_info["code"]
    data = await _data(request, body)
    try:
        result = await change_extras(request.app[REPOSITORY],
                                     lambda e: e.change(code, data),
                                     command_metadata(request))
    except UnknownExtra:
        raise web.HTTPNotFound() from None
    return command_response(result, {"code": code}, status=200)
