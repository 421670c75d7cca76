"""Availability queries: search free items with their price, and an item's calendar."""

from __future__ import annotations

import time
import weakref
from datetime import timedelta
from typing import Any
from uuid import UUID

import orjson
from aiohttp import web
from pydantic import BaseModel, Field, model_validator

from midas.domain.catalogue import Catalogue, Category, RateUnit, ServiceLevel
from midas.domain.pricing import quote
from midas.http.api import Api
from midas.http.auth import current_principal
from midas.http.consistency import ConsistentQuery
from midas.http.context import path_uuid
from midas.http.fields import Instant
from midas.http.keys import GATE
from projections.availability import OCCUPATIONS_TABLE
from projections.inventory import ITEMS_TABLE
from queries import policy

api = Api(tag="availability", kind="query")
READS = ("inventory", "availability", *policy.READS)
MAX_CANDIDATES = 500
_POLICY_CACHE: weakref.WeakKeyDictionary[Any, tuple[float, Catalogue]] = (
    weakref.WeakKeyDictionary())


class Interval(ConsistentQuery):
    start: Instant
    end: Instant

    @model_validator(mode="after")
    def _end_after_start(self) -> Interval:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > timedelta(days=366):
            raise ValueError("at most a year at a time")
        return self


class Search(Interval):
    category: Category | None = None
    location: str | None = Field(None, pattern=r"^[A-Z]{2}-[A-Z]{2}$")
    service_level: ServiceLevel = ServiceLevel.STANDARD
    limit: int = Field(50, ge=1, le=200)


class Offer(BaseModel):
    item_id: UUID
    name: str
    category: str
    location: str
    rate: int
    rate_unit: str
    currency: str
    attributes: dict[str, Any]
    price_from: int = Field(description="Total due at the service level asked, in cents.")
    billable_units: int


class SearchResult(BaseModel):
    items: list[Offer]


@api.get("/api/v1/availability", summary="Items free over [start, end), cheapest first",
         query=Search, response=SearchResult)
async def search(request: web.Request, query: Search) -> web.Response:
    db = await request.app[GATE].reader(READS, query.min_position)
    async with db.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT i.* FROM {ITEMS_TABLE} i WHERE i.status = 'active'"
            " AND ($1::text IS NULL OR i.category = $1) AND ($2::text IS NULL OR i.location = $2)"
            f" AND NOT EXISTS (SELECT 1 FROM {OCCUPATIONS_TABLE} o WHERE o.item_id = i.id"
            "   AND o.starts_at < $4::timestamptz + make_interval(mins => i.buffer_minutes)"
            "   AND o.ends_at > $3::timestamptz)"
            " ORDER BY i.rate, i.id LIMIT $5",
            query.category, query.location, query.start, query.end, MAX_CANDIDATES,
        )
        catalogue = await _catalogue(db, conn)
    offers = []
    for row in _cheapest_per_kind(rows, query.limit):
        priced = quote(
            query.start, query.end, category=Category(row["category"]),
            location_code=row["location"], rate=row["rate"], service_level=query.service_level,
            catalogue=catalogue, rate_unit=RateUnit(row["rate_unit"]),
            minimum=timedelta(minutes=row["minimum_minutes"]), currency=row["currency"],
        )
        offers.append({
            "item_id": str(row["id"]), "name": row["name"], "category": row["category"],
            "location": row["location"], "rate": row["rate"], "rate_unit": row["rate_unit"],
            "currency": row["currency"], "attributes": _json(row["attributes"]),
            "price_from": priced.total_due, "billable_units": priced.billable_units,
        })
    offers.sort(key=lambda offer: (offer["price_from"], offer["name"], offer["item_id"]))
    return web.json_response(body=orjson.dumps({"items": offers[: query.limit]}))


def _cheapest_per_kind(rows: list[Any], limit: int) -> list[Any]:
    """Rows worth pricing: within one kind of item (category, location, unit, minimum,
    currency) the total due never falls as the rate rises, so only the `limit` cheapest
    rates of each kind can make the page. `rows` come sorted by rate."""
    taken: dict[tuple[Any, ...], int] = {}
    kept = []
    for row in rows:
        kind = (row["category"], row["location"], row["rate_unit"], row["minimum_minutes"],
                row["currency"])
        if taken.get(kind, 0) < limit:
            taken[kind] = taken.get(kind, 0) + 1
            kept.append(row)
    return kept


_POLICY_TTL_S = 1.0


async def _catalogue(db: Any, conn: Any) -> Catalogue:
    """The pricing policy for "price from" figures (its read model), cached a second per
    database read (quotes and bookings always load it fresh)."""
    cached = _POLICY_CACHE.get(db)
    now = time.monotonic()
    if cached is None or now - cached[0] > _POLICY_TTL_S:
        catalogue, _ = await policy.catalogue(conn)
        cached = _POLICY_CACHE[db] = (now, catalogue)
    return cached[1]


class CalendarQuery(ConsistentQuery):
    from_: Instant = Field(alias="from")
    to: Instant

    @model_validator(mode="after")
    def _ordered(self) -> CalendarQuery:
        if self.to <= self.from_:
            raise ValueError("to must be after from")
        if self.to - self.from_ > timedelta(days=400):
            raise ValueError("at most 400 days at a time")
        return self


class Busy(BaseModel):
    start: Instant
    end: Instant
    kind: str | None = Field(None, description="booking or maintenance (staff only)")
    id: str | None = Field(None, description="booking or window id (staff only)")


class Calendar(BaseModel):
    item_id: UUID
    busy: list[Busy]


@api.get("/api/v1/items/{id}/calendar", summary="An item's busy intervals over a range",
         query=CalendarQuery, response=Calendar)
async def calendar(request: web.Request, query: CalendarQuery) -> web.Response:
    item_id = path_uuid(request)
    db = await request.app[GATE].reader(READS, query.min_position)
    async with db.acquire() as conn:
        exists = await conn.fetchval(f"SELECT 1 FROM {ITEMS_TABLE} WHERE id = $1", item_id)
        if exists is None:
            raise web.HTTPNotFound()
        rows = await conn.fetch(
            f"SELECT occupation_id, kind, starts_at, ends_at FROM {OCCUPATIONS_TABLE}"
            " WHERE item_id = $1 AND starts_at < $3 AND ends_at > $2 ORDER BY starts_at",
            item_id, query.from_, query.to,
        )
    principal = current_principal(request)
    if principal is not None and principal.is_staff:
        busy = [Busy(start=r["starts_at"], end=r["ends_at"], kind=r["kind"],
                     id=r["occupation_id"]) for r in rows]
    else:
        busy = [Busy(start=s, end=e) for s, e in _merged(rows)]
    body = Calendar(item_id=item_id, busy=busy)
    return web.json_response(text=body.model_dump_json(exclude_none=True))


def _merged(rows: list[Any]) -> list[tuple[Any, Any]]:
    """Busy/free only: touching or overlapping intervals merged, nothing about why."""
    merged: list[list[Any]] = []
    for row in rows:
        if merged and row["starts_at"] <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], row["ends_at"])
        else:
            merged.append([row["starts_at"], row["ends_at"]])
    return [(start, end) for start, end in merged]


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value
