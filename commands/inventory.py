"""Inventory commands: register an item, change its rate, deactivate it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from midas.domain.catalogue import DEFAULT_CATALOGUE, Catalogue, Category, RateUnit, UnknownLocation
from midas.domain.inventory import Item
from midas.eventstore import AppendResult, Repository, retry_on_conflict
from midas.http.api import Api
from midas.http.consistency import command_response
from midas.http.context import command_metadata, path_uuid
from midas.http.keys import REPOSITORY
from midas.http.problems import Problem

api = Api(tag="inventory", kind="command")

AttributeValue = StrictBool | StrictInt | StrictStr | Decimal | None


class RegisterItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    category: Category
    location: str = Field(pattern=r"^[A-Z]{2}-[A-Z]{2}$", examples=["AE-DU"])
    rate: int = Field(gt=0, description="Price per rate unit, in minor units (cents).")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    rate_unit: RateUnit | None = None
    buffer_minutes: int | None = Field(None, ge=0, le=7 * 24 * 60)
    minimum_minutes: int | None = Field(None, ge=0, le=365 * 24 * 60)
    attributes: dict[str, AttributeValue] = Field(
        default_factory=dict, description="Free-form specs; decimals are kept as strings."
    )


class ChangeRate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate: int = Field(gt=0, description="New price per rate unit, in minor units.")


class ItemCommandResult(BaseModel):
    id: UUID
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
        item = await repo.get(item_id, cls=Item)
        item.change_rate(cmd.rate)
        return await repo.save(item, metadata=metadata)

    return await retry_on_conflict(attempt)


async def deactivate_item(
    repo: Repository, item_id: UUID, metadata: dict[str, Any]
) -> AppendResult:
    async def attempt() -> AppendResult:
        item = await repo.get(item_id, cls=Item)
        item.deactivate()
        return await repo.save(item, metadata=metadata)

    return await retry_on_conflict(attempt)


@api.post("/api/v1/items", summary="Register an inventory item", body=RegisterItem,
          response=ItemCommandResult)
async def post_item(request: web.Request, body: RegisterItem) -> web.Response:
    item_id, result = await register_item(
        request.app[REPOSITORY], body, command_metadata(request)
    )
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


def _minutes(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(minutes=value)


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value
