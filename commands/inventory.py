"""Inventory commands: register items, rates, status, maintenance windows and plans, and
bulk operations (each reporting per item what was done or refused)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    model_validator,
)

from commands.quotes import DiscountTier
from midas.domain.catalogue import DEFAULT_CATALOGUE, Catalogue, Category, RateUnit, UnknownLocation
from midas.domain.errors import DomainError
from midas.domain.inventory import BreaksBooking, Item, Unavailable
from midas.eventstore import AggregateNotFound, AppendResult, Repository, retry_on_conflict
from midas.http.api import Api
from midas.http.consistency import command_response
from midas.http.context import command_metadata, path_uuid
from midas.http.fields import BigInt, FreeText, Instant, Line, Rate
from midas.http.keys import CLOCK, DATABASE, REPOSITORY
from midas.http.problems import Problem
from midas.limits import in_bigint
from midas.policy import current_policy

api = Api(tag="inventory", kind="command")



def _attribute_kind(value: Any) -> str:
    """Which kind an attribute value is read as: integers beyond 64 bits as decimals."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else "boolean"
    if isinstance(value, int):
        return "integer" if in_bigint(value) else "decimal"
    return "text" if isinstance(value, str) else "decimal"


AttributeName = Annotated[Line, Field(min_length=1, max_length=100)]
AttributeValue = Annotated[
    Annotated[StrictBool, Tag("boolean")]
    | Annotated[BigInt, Field(strict=True), Tag("integer")]
    | Annotated[Line, Field(strict=True, max_length=1000), Tag("text")]
    | Annotated[Decimal, Field(allow_inf_nan=False, max_digits=40), Tag("decimal")]
    | Annotated[None, Tag("null")],
    Discriminator(_attribute_kind),
]


class RegisterItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Line = Field(min_length=1, max_length=200)
    category: Category
    location: str = Field(pattern=r"^[A-Z]{2}-[A-Z]{2}$", examples=["AE-DU"])
    rate: Rate = Field(description="Price per rate unit, in minor units (cents).")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$",
                                 description="ISO 4217; by default the location's currency.")
    rate_unit: RateUnit | None = None
    buffer_minutes: int | None = Field(None, ge=0, le=7 * 24 * 60)
    minimum_minutes: int | None = Field(None, ge=0, le=365 * 24 * 60)
    attributes: dict[AttributeName, AttributeValue] = Field(
        default_factory=dict, max_length=100,
        description="Free-form specs (at most 100); decimals are kept as strings.",
    )


class ChangeRate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate: Rate = Field(description="New price per rate unit, in minor units.")


class ItemCommandResult(BaseModel):
    id: UUID
    position: int


class WindowResult(BaseModel):
    id: UUID = Field(description="The maintenance window's or block's id.")
    item_id: UUID
    position: int


async def register_item(
    repo: Repository, cmd: RegisterItem, metadata: dict[str, Any],
    catalogue: Catalogue = DEFAULT_CATALOGUE,
) -> tuple[UUID, AppendResult]:
    try:
        item = Item.register(
            catalogue,
            name=cmd.name,
            category=cmd.category,
            location=cmd.location,
            rate=cmd.rate,
            currency=cmd.currency,
            rate_unit=cmd.rate_unit,
            buffer=_minutes(cmd.buffer_minutes),
            minimum=_minutes(cmd.minimum_minutes),
            attributes={k: _plain(v) for k, v in cmd.attributes.items()},
        )
    except UnknownLocation as exc:
        raise Problem(
            422, str(exc), title="Invalid request",
            errors=[{"field": "body.location", "message": "unknown location",
                     "type": "unknown_location"}],
        ) from None
    return item.id, await repo.save(item, metadata=metadata)


async def change_rate(
    repo: Repository, item_id: UUID, cmd: ChangeRate, metadata: dict[str, Any]
) -> AppendResult:
    async def attempt() -> AppendResult:
        item = await repo.get(item_id, cls=Item, exclusive=True)
        item.change_rate(cmd.rate)
        return await repo.save(item, metadata=metadata)

    return await retry_on_conflict(attempt)


async def deactivate_item(
    repo: Repository, item_id: UUID, metadata: dict[str, Any]
) -> AppendResult:
    async def attempt() -> AppendResult:
        item = await repo.get(item_id, cls=Item, exclusive=True)
        item.deactivate()
        return await repo.save(item, metadata=metadata)

    return await retry_on_conflict(attempt)


@api.post("/api/v1/items", summary="Register an inventory item", body=RegisterItem,
          response=ItemCommandResult, example={
              "name": "Ferrari Roma", "category": "car", "location": "US-CA", "rate": 150000,
              "attributes": {"seats": 4, "colour": "Rosso Corsa"}})
async def post_item(request: web.Request, body: RegisterItem) -> web.Response:
    repo = request.app[REPOSITORY]
    catalogue, _ = await current_policy(repo)
    item_id, result = await register_item(repo, body, command_metadata(request), catalogue)
    return command_response(result, {"id": str(item_id)})


@api.put("/api/v1/items/{id}/rate", summary="Change an item's rate", body=ChangeRate,
         response=ItemCommandResult)
async def put_rate(request: web.Request, body: ChangeRate) -> web.Response:
    item_id = path_uuid(request)
    result = await change_rate(request.app[REPOSITORY], item_id, body, command_metadata(request))
    return command_response(result, {"id": str(item_id)}, status=200)


@api.post("/api/v1/items/{id}/deactivate", summary="Deactivate an item",
          response=ItemCommandResult, status=200)
async def post_deactivate(request: web.Request) -> web.Response:
    item_id = path_uuid(request)
    result = await deactivate_item(request.app[REPOSITORY], item_id, command_metadata(request))
    return command_response(result, {"id": str(item_id)}, status=200)


# -- status, maintenance, plans ---------------------------------------------------------


class ChangeStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["active", "inactive", "retired"]


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: Instant
    end: Instant
    note: FreeText = Field("", max_length=500)

    @model_validator(mode="after")
    def _end_after_start(self) -> Window:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class MaintenancePlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    every_days: int | None = Field(None, ge=1, le=3650)
    every_rental_hours: int | None = Field(None, ge=1, le=100_000)
    duration_minutes: int = Field(ge=1, le=60 * 24 * 60)

    @model_validator(mode="after")
    def _one_trigger(self) -> MaintenancePlan:
        if (self.every_days is None) == (self.every_rental_hours is None):
            raise ValueError("give exactly one of every_days and every_rental_hours")
        return self


async def on_item(
    repo: Repository, item_id: UUID, change: Callable[[Item], object],
    metadata: dict[str, Any],
) -> AppendResult:
    """Load the item, apply `change`, save; rerun on a version race."""

    async def attempt() -> AppendResult:
        item = await repo.get(item_id, cls=Item, exclusive=True)
        change(item)
        return await repo.save(item, metadata=metadata)

    return await retry_on_conflict(attempt)


def conflict_problem(exc: Unavailable) -> Problem:
    """409 naming what is in the way (these routes are for staff)."""
    return Problem(409, str(exc), title="Not available", conflicts=[
        {"kind": o.kind.value, "id": str(o.id), "start": o.interval.start.isoformat(),
         "end": o.interval.end.isoformat()} for o in exc.conflicts])


# -- editing an item: every field, each change an event -------------------------------


class Rename(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Line = Field(min_length=1, max_length=200)


class SetAttributes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attributes: dict[AttributeName, AttributeValue] = Field(
        max_length=100, description="The whole map (replaces the item's attributes).")


class ChangeBuffer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    buffer_minutes: int = Field(ge=0, le=7 * 24 * 60)


class ChangeMinimum(BaseModel):
    model_config = ConfigDict(extra="forbid")

    minimum_minutes: int = Field(ge=0, le=365 * 24 * 60)


class Move(BaseModel):
    model_config = ConfigDict(extra="forbid")

    location: str = Field(pattern=r"^[A-Z]{2}-[A-Z]{2}$", examples=["MC-MO"])
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$",
                                 description="ISO 4217; by default the new location's.")


Link = Annotated[str, Field(min_length=9, max_length=2000, pattern=r"^https://[^\s]+$",
                            examples=["https://media.example.com/villa/1.jpg"])]


class Document(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Line = Field(min_length=1, max_length=200)
    url: Link


class SetMedia(BaseModel):
    model_config = ConfigDict(extra="forbid")

    photos: list[Link] = Field(default_factory=list, max_length=50)
    documents: list[Document] = Field(default_factory=list, max_length=50)


def breaks_booking_problem(exc: BreaksBooking) -> Problem:
    """409 naming the bookings the edit would break and what is in their way."""
    problem = conflict_problem(exc)
    problem.extra["bookings"] = exc.bookings
    return problem


async def _edit(request: web.Request, change: Callable[[Item], object]) -> web.Response:
    item_id = path_uuid(request)
    try:
        result = await on_item(request.app[REPOSITORY], item_id, change,
                               command_metadata(request))
    except BreaksBooking as exc:
        raise breaks_booking_problem(exc) from None
    return command_response(result, {"id": str(item_id)}, status=200)


@api.put("/api/v1/items/{id}/name", summary="Rename an item", body=Rename,
         response=ItemCommandResult)
async def put_name(request: web.Request, body: Rename) -> web.Response:
    return await _edit(request, lambda item: item.rename(body.name))


@api.put("/api/v1/items/{id}/attributes", summary="Replace an item's attributes",
         body=SetAttributes, response=ItemCommandResult)
async def put_attributes(request: web.Request, body: SetAttributes) -> web.Response:
    attributes = {k: _plain(v) for k, v in body.attributes.items()}
    return await _edit(request, lambda item: item.set_attributes(attributes))


@api.put("/api/v1/items/{id}/buffer", summary="Change the buffer after each booking (current"
         " and future bookings too)", body=ChangeBuffer, response=ItemCommandResult,
         problems={409: "A longer buffer would overlap what follows a booking (named)"})
async def put_buffer(request: web.Request, body: ChangeBuffer) -> web.Response:
    now = request.app[CLOCK]()
    return await _edit(request, lambda item: item.change_buffer(
        timedelta(minutes=body.buffer_minutes), now))


@api.put("/api/v1/items/{id}/minimum", summary="Change the minimum billed duration",
         body=ChangeMinimum, response=ItemCommandResult)
async def put_minimum(request: web.Request, body: ChangeMinimum) -> web.Response:
    return await _edit(request, lambda item: item.change_minimum(
        timedelta(minutes=body.minimum_minutes)))


@api.put("/api/v1/items/{id}/location", summary="Move an item to another location",
         body=Move, response=ItemCommandResult,
         problems={409: "The item has current or future bookings (named)"})
async def put_item_location(request: web.Request, body: Move) -> web.Response:
    catalogue, _ = await current_policy(request.app[REPOSITORY])
    place = catalogue.locations.get(body.location)
    if place is None:
        raise Problem(422, f"unknown location {body.location!r}", title="Invalid request",
                      errors=[{"field": "body.location", "message": "unknown location",
                               "type": "unknown_location"}])
    now, currency = request.app[CLOCK](), body.currency or place.currency
    return await _edit(request, lambda item: item.move(place.code, currency, now))


@api.put("/api/v1/items/{id}/media", summary="Replace an item's photo and document links",
         body=SetMedia, response=ItemCommandResult)
async def put_media(request: web.Request, body: SetMedia) -> web.Response:
    documents = [d.model_dump() for d in body.documents]
    return await _edit(request, lambda item: item.set_media(list(body.photos), documents))


class SetItemDiscounts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tiers: list[DiscountTier] | None = Field(
        max_length=20, description="The item's own discounts by length of stay; null: its"
        " category's, [] for none.")


@api.put("/api/v1/items/{id}/duration-discounts", summary="Set an item's own discounts by"
         " length of stay", body=SetItemDiscounts, response=ItemCommandResult)
async def put_item_discounts(request: web.Request, body: SetItemDiscounts) -> web.Response:
    tiers = None if body.tiers is None else [t.model_dump(mode="json") for t in body.tiers]
    if tiers is not None and len({t["min_nights"] for t in tiers}) != len(tiers):
        raise Problem(422, "one tier per min_nights", title="Invalid request", errors=[
            {"field": "body.tiers", "message": "one tier per min_nights",
             "type": "value_error"}])
    return await _edit(request, lambda item: item.set_duration_discounts(tiers))


# Bulk routes come first: /items/bulk/... must not be taken for /items/{id}/....
# -- bulk operations ------------------------------------------------------------------


class ItemSelection(BaseModel):
    """Either explicit ids or a filter over the inventory (category and/or location)."""

    model_config = ConfigDict(extra="forbid")

    item_ids: list[UUID] | None = Field(None, max_length=1000)
    category: Category | None = None
    location: str | None = Field(None, pattern=r"^[A-Z]{2}-[A-Z]{2}$")

    @model_validator(mode="after")
    def _something_selected(self) -> ItemSelection:
        if self.item_ids is None and self.category is None and self.location is None:
            raise ValueError("select items by item_ids, category or location")
        return self


class BulkRates(ItemSelection):
    percentage: Decimal = Field(gt=-100, le=1000, description="+10 raises rates by 10 %.")


class BulkStatus(ItemSelection):
    status: Literal["active", "inactive", "retired"]


class BulkMaintenance(ItemSelection):
    start: Instant
    end: Instant
    note: FreeText = Field("", max_length=500)


class BulkOutcome(BaseModel):
    item_id: UUID
    outcome: Literal["done", "unchanged", "refused"]
    detail: str | None = None
    position: int | None = None


class BulkResult(BaseModel):
    results: list[BulkOutcome]


async def _selected(request: web.Request, selection: ItemSelection) -> list[UUID]:
    if selection.item_ids is not None:
        return list(dict.fromkeys(selection.item_ids))
    async with request.app[DATABASE].acquire() as conn:
        rows = await conn.fetch(
            "SELECT id FROM inv_items WHERE ($1::text IS NULL OR category = $1)"
            " AND ($2::text IS NULL OR location = $2) AND status <> 'retired' ORDER BY id",
            selection.category, selection.location)
    return [row["id"] for row in rows]


async def _bulk(
    request: web.Request, selection: ItemSelection, change: Callable[[Item], object]
) -> web.Response:
    repo, metadata = request.app[REPOSITORY], command_metadata(request)
    outcomes = []
    for item_id in await _selected(request, selection):
        try:
            result = await on_item(repo, item_id, change, metadata)
        except (DomainError, AggregateNotFound, ValueError) as exc:
            detail = "no such item" if isinstance(exc, AggregateNotFound) else str(exc)
            outcomes.append(BulkOutcome(item_id=item_id, outcome="refused", detail=detail))
            continue
        done = result.last_position > 0
        outcomes.append(BulkOutcome(item_id=item_id, outcome="done" if done else "unchanged",
                                    position=result.last_position or None))
    position = max((o.position or 0 for o in outcomes), default=0)
    body = BulkResult(results=outcomes).model_dump(mode="json")
    return web.json_response({**body, "position": position},
                             headers={"Midas-Position": str(position)})


@api.post("/api/v1/items/bulk/rates", summary="Change rates by a percentage", body=BulkRates,
          response=BulkResult, status=200)
async def post_bulk_rates(request: web.Request, body: BulkRates) -> web.Response:
    factor = 1 + body.percentage / 100

    def change(item: Item) -> None:
        item.change_rate(int((item.rate * factor).quantize(Decimal(1), ROUND_HALF_UP)))

    return await _bulk(request, body, change)


@api.post("/api/v1/items/bulk/status", summary="Change the status of many items",
          body=BulkStatus, response=BulkResult, status=200)
async def post_bulk_status(request: web.Request, body: BulkStatus) -> web.Response:
    now = request.app[CLOCK]()
    return await _bulk(request, body, lambda item: item.change_status(body.status, now))


@api.post("/api/v1/items/bulk/maintenance", summary="Schedule one maintenance window on "
          "many items", body=BulkMaintenance, response=BulkResult, status=200)
async def post_bulk_maintenance(request: web.Request, body: BulkMaintenance) -> web.Response:
    if body.end <= body.start:
        raise Problem(422, "end must be after start", title="Invalid request",
                      errors=[{"field": "body.end", "message": "must be after start",
                               "type": "value_error"}])
    return await _bulk(request, body, lambda item: item.schedule_maintenance(
        uuid4(), body.start, body.end, body.note))


@api.put("/api/v1/items/{id}/status", summary="Change an item's status", body=ChangeStatus,
         response=ItemCommandResult)
async def put_status(request: web.Request, body: ChangeStatus) -> web.Response:
    item_id, now = path_uuid(request), request.app[CLOCK]()
    try:
        result = await on_item(request.app[REPOSITORY], item_id,
                               lambda item: item.change_status(body.status, now),
                               command_metadata(request))
    except Unavailable as exc:
        raise conflict_problem(exc) from None
    return command_response(result, {"id": str(item_id)}, status=200)


@api.post("/api/v1/items/{id}/maintenance", summary="Schedule a maintenance window",
          body=Window, response=WindowResult)
async def post_maintenance(request: web.Request, body: Window) -> web.Response:
    item_id, window_id = path_uuid(request), uuid4()
    try:
        result = await on_item(
            request.app[REPOSITORY], item_id,
            lambda item: item.schedule_maintenance(window_id, body.start, body.end, body.note),
            command_metadata(request))
    except Unavailable as exc:
        raise conflict_problem(exc) from None
    return command_response(result, {"id": str(window_id), "item_id": str(item_id)})


@api.delete("/api/v1/items/{id}/maintenance/{window_id}", summary="Remove a maintenance window",
            response=WindowResult)
async def delete_maintenance(request: web.Request) -> web.Response:
    item_id, window_id = path_uuid(request), path_uuid(request, "window_id")
    result = await on_item(request.app[REPOSITORY], item_id,
                           lambda item: item.remove_maintenance(window_id),
                           command_metadata(request))
    return command_response(result, {"id": str(window_id), "item_id": str(item_id)},
                            status=200)


class ExternalBlock(Window):
    source: Line = Field(min_length=1, max_length=200, examples=["owner calendar"])


@api.post("/api/v1/items/{id}/blocks", summary="Block an item (an external calendar)",
          body=ExternalBlock, response=WindowResult)
async def post_block(request: web.Request, body: ExternalBlock) -> web.Response:
    item_id, block_id = path_uuid(request), uuid4()
    try:
        result = await on_item(
            request.app[REPOSITORY], item_id,
            lambda item: item.block(block_id, body.start, body.end, body.source),
            command_metadata(request))
    except Unavailable as exc:
        raise conflict_problem(exc) from None
    return command_response(result, {"id": str(block_id), "item_id": str(item_id)})


@api.delete("/api/v1/items/{id}/blocks/{block_id}", summary="Remove an external block",
            response=WindowResult)
async def delete_block(request: web.Request) -> web.Response:
    item_id, block_id = path_uuid(request), path_uuid(request, "block_id")
    result = await on_item(request.app[REPOSITORY], item_id,
                           lambda item: item.unblock(block_id), command_metadata(request))
    return command_response(result, {"id": str(block_id), "item_id": str(item_id)}, status=200)


@api.put("/api/v1/items/{id}/maintenance-plan", summary="Plan maintenance every N days or "
         "after N rental hours (the next window is placed in the first free slot)",
         body=MaintenancePlan, response=ItemCommandResult)
async def put_maintenance_plan(request: web.Request, body: MaintenancePlan) -> web.Response:
    item_id, now, window_id = path_uuid(request), request.app[CLOCK](), uuid4()
    result = await on_item(
        request.app[REPOSITORY], item_id,
        lambda item: item.set_maintenance_plan(
            every_days=body.every_days, every_rental_hours=body.every_rental_hours,
            duration_minutes=body.duration_minutes, at=now, window_id=window_id),
        command_metadata(request))
    return command_response(result, {"id": str(item_id)}, status=200)


def _minutes(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(minutes=value)


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value
