"""Inventory queries: list items with filters, one item by id."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from aiohttp import web
from pydantic import BaseModel, Field

from midas.domain.catalogue import Category
from midas.http.api import Api
from midas.http.consistency import ConsistentQuery
from midas.http.context import path_uuid
from midas.http.keys import GATE
from projections.inventory import ITEMS_TABLE

api = Api(tag="inventory", kind="query")
READS = ("inventory",)


class ItemView(BaseModel):
    id: UUID
    name: str
    category: str
    location: str
    rate: int
    rate_unit: str
    currency: str
    buffer_minutes: int
    minimum_minutes: int
    status: str
    attributes: dict[str, Any]
    photos: list[str]
    documents: list[dict[str, str]]
    version: int
    registered_at: datetime
    updated_at: datetime


class ItemPage(BaseModel):
    items: list[ItemView]
    next_after: UUID | None = Field(None, description="Pass as `after` for the next page.")


class ItemFilter(ConsistentQuery):
    category: Category | None = None
    location: str | None = Field(None, pattern=r"^[A-Z]{2}-[A-Z]{2}$")
    status: str | None = Field(None, pattern=r"^(active|inactive|retired)$")
    limit: int = Field(50, ge=1, le=500)
    after: UUID | None = Field(None, description="Return items with an id after this one.")


_COLUMNS = ", ".join(ItemView.model_fields)


def _view(row: Any) -> dict[str, Any]:
    view = dict(row)
    for column in ("attributes", "photos", "documents"):
        view[column] = orjson.loads(view[column])
    return view


@api.get("/api/v1/items", summary="List inventory items", query=ItemFilter, response=ItemPage)
async def list_items(request: web.Request, query: ItemFilter) -> web.Response:
    db = await request.app[GATE].reader(READS, query.min_position)
    async with db.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM {ITEMS_TABLE}"
            " WHERE ($1::text IS NULL OR category = $1) AND ($2::text IS NULL OR location = $2)"
            " AND ($3::text IS NULL OR status = $3) AND ($4::uuid IS NULL OR id > $4)"
            " ORDER BY id LIMIT $5",
            query.category, query.location, query.status, query.after, query.limit,
        )
    items = [_view(r) for r in rows]
    page = ItemPage.model_validate(
        {"items": items, "next_after": items[-1]["id"] if len(items) == query.limit else None}
    )
    return web.json_response(text=page.model_dump_json())


@api.get("/api/v1/items/{id}", summary="One inventory item", query=ConsistentQuery,
         response=ItemView)
async def get_item(request: web.Request, query: ConsistentQuery) -> web.Response:
    item_id = path_uuid(request)
    db = await request.app[GATE].reader(READS, query.min_position)
    async with db.acquire() as conn:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM {ITEMS_TABLE} WHERE id = $1", item_id)
    if row is None:
        raise web.HTTPNotFound()
    return web.json_response(text=ItemView.model_validate(_view(row)).model_dump_json())
