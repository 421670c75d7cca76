"""Calendar queries: iCalendar feeds per item, customer and concierge; staff
views of subscriptions, refused blocks (conflicts) and integration errors."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from midas.calendar.feeds import etag_matches, etag_of, render, token_matches
from midas.http.api import Api
from midas.http.auth import current_principal
from midas.http.consistency import ConsistentQuery
from midas.http.context import path_uuid
from midas.http.fields import Line, Position
from midas.http.headers import NO_STORE
from midas.http.keys import CLOCK, DATABASE, GATE, SETTINGS
from projections.calendar import ENTRIES_TABLE
from projections.inventory import ITEMS_TABLE
from queries import policy

api = Api(tag="calendar", kind="query")
FEED_BASE = "/api/v1/calendar/feeds"
CALENDAR_TYPE = "text/calendar"
ITEM_READS = ("calendar", "inventory", *policy.READS)  # an item's feed: its name and zone


class FeedQuery(BaseModel):
    # Calendar apps may add their own parameters: ignored.
    model_config = ConfigDict(extra="ignore")

    token: Line | None = Field(None, max_length=200, description="The owner's secret feed"
                               " token (calendar apps cannot send a bearer token).")
    min_position: Position | None = None


async def _allowed(request: web.Request, owner: str, owner_id: UUID, token: str | None) -> bool:
    principal = current_principal(request)
    if principal is not None and ((principal.is_staff and owner != "concierge")
                                  or principal.role.value in ("admin", "super_admin")
                                  or principal.account_id == owner_id):
        return True
    if not token:
        return False
    async with request.app[DATABASE].acquire() as conn:
        stored = await conn.fetchval(
            "SELECT token_hash FROM cal_feed_tokens WHERE owner_kind = $1 AND owner_id = $2",
            owner, owner_id)
    return token_matches(token, stored)


async def _feed(
    request: web.Request, query: FeedQuery, owner: str, where: str, name: str,
    zones: dict[Any, ZoneInfo] | None = None,
) -> web.Response:
    owner_id = path_uuid(request)
    if not await _allowed(request, owner, owner_id, query.token):
        raise web.HTTPNotFound()  # a wrong or revoked token reveals nothing
    db = await request.app[GATE].reader(("calendar",), query.min_position)
    since = request.app[CLOCK]() - timedelta(days=request.app[SETTINGS].calendar_feed_past_days)
    async with db.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT * FROM {ENTRIES_TABLE} WHERE {where} AND ends_at > $2"
            " ORDER BY starts_at, entry_id", owner_id, since)
    body = render(name, [dict(row) for row in rows], zones)
    etag = etag_of(body)
    headers = {"ETag": etag, "Cache-Control": NO_STORE}  # personal data; the URL a token
    if etag_matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=CALENDAR_TYPE, charset="utf-8",
                        headers=headers)


@api.get(f"{FEED_BASE}/items/{{id}}/feed.ics", summary="An item's calendar (staff, or its "
         "feed token): bookings, buffers, maintenance and external blocks",
         query=FeedQuery, content_type=CALENDAR_TYPE)
async def item_feed(request: web.Request, query: FeedQuery) -> web.Response:
    item_id = path_uuid(request)
    db = await request.app[GATE].reader(ITEM_READS, query.min_position)
    async with db.acquire() as conn:
        item = await conn.fetchrow(f"SELECT name, location FROM {ITEMS_TABLE} WHERE id = $1",
                                   item_id)
        if item is None:
            raise web.HTTPNotFound()
        zone = await policy.location_zone(conn, item["location"])
    return await _feed(request, query, "item", "item_id = $1", f"Midas: {item['name']}",
                       {item_id: zone})


@api.get(f"{FEED_BASE}/customers/{{id}}/feed.ics", summary="A customer's bookings (the "
         "customer, staff, or the customer's feed token)", query=FeedQuery,
         content_type=CALENDAR_TYPE)
async def customer_feed(request: web.Request, query: FeedQuery) -> web.Response:
    return await _feed(request, query, "customer", "kind = 'booking' AND customer_id = $1",
                       "Midas: my bookings")


@api.get(f"{FEED_BASE}/concierges/{{id}}/feed.ics", summary="The bookings assigned to a "
         "concierge (the concierge, admins, or the concierge's feed token)",
         query=FeedQuery, content_type=CALENDAR_TYPE)
async def concierge_feed(request: web.Request, query: FeedQuery) -> web.Response:
    return await _feed(request, query, "concierge", "kind = 'booking' AND concierge_id = $1",
                       "Midas: assigned bookings")


# -- staff views ---------------------------------------------------------------------------


class SubscriptionView(BaseModel):
    id: UUID
    item_id: UUID
    name: str
    url: str | None = Field(None, description="None for the item's uploaded .ics")
    refresh_minutes: int
    next_poll_at: datetime
    last_polled_at: datetime | None
    last_synced_at: datetime | None
    last_error: str | None
    active_blocks: int
    refused_blocks: int


class Subscriptions(BaseModel):
    subscriptions: list[SubscriptionView]


@api.get("/api/v1/calendar/items/{id}/subscriptions", summary="An item's external "
         "calendars and their sync state", query=ConsistentQuery, response=Subscriptions)
async def subscriptions(request: web.Request, query: ConsistentQuery) -> web.Response:
    item_id = path_uuid(request)
    async with request.app[DATABASE].acquire() as conn:
        rows = await conn.fetch(
            "SELECT s.*, (SELECT count(*) FROM cal_sub_blocks b WHERE b.subscription_id = s.id"
            " AND b.state = 'active') AS active_blocks,"
            " (SELECT count(*) FROM cal_sub_blocks b WHERE b.subscription_id = s.id"
            " AND b.state = 'refused') AS refused_blocks"
            " FROM cal_subscriptions s WHERE s.item_id = $1 ORDER BY s.created_at, s.id",
            item_id)
    views = [SubscriptionView(**{**dict(r), "refresh_minutes": r["poll_interval_s"] // 60})
             for r in rows]
    return web.json_response(text=Subscriptions(subscriptions=views).model_dump_json())


class ConflictQuery(ConsistentQuery):
    item_id: UUID | None = None
    include_resolved: bool = False
    limit: int = Field(100, ge=1, le=1000)


class ConflictView(BaseModel):
    id: int
    item_id: UUID
    subscription_id: UUID
    block_id: UUID
    uid: str
    start: datetime
    end: datetime
    summary: str
    conflicts: list[dict[str, Any]]
    detected_at: datetime
    resolved_at: datetime | None


class Conflicts(BaseModel):
    conflicts: list[ConflictView]


@api.get("/api/v1/calendar/conflicts", summary="Imported blocks the item refused (they "
         "overlap a booking or another occupation)", query=ConflictQuery, response=Conflicts)
async def conflicts(request: web.Request, query: ConflictQuery) -> web.Response:
    async with request.app[DATABASE].acquire() as conn:
        rows = await conn.fetch(
            "SELECT * FROM cal_conflicts WHERE ($1::uuid IS NULL OR item_id = $1)"
            " AND ($2 OR resolved_at IS NULL) ORDER BY detected_at DESC, id DESC LIMIT $3",
            query.item_id, query.include_resolved, query.limit)
    views = [ConflictView(**{**dict(r), "start": r["starts_at"], "end": r["ends_at"],
                             "conflicts": _json(r["conflicts"])}) for r in rows]
    return web.json_response(text=Conflicts(conflicts=views).model_dump_json())


class ErrorQuery(ConsistentQuery):
    item_id: UUID | None = None
    subscription_id: UUID | None = None
    limit: int = Field(100, ge=1, le=1000)


class IntegrationError(BaseModel):
    id: int
    subscription_id: UUID
    item_id: UUID
    kind: str
    message: str
    occurred_at: datetime


class IntegrationErrors(BaseModel):
    errors: list[IntegrationError]


@api.get("/api/v1/calendar/integration-errors", summary="Rejected external calendars "
         "(timeouts, size, HTTP errors, malformed documents)", query=ErrorQuery,
         response=IntegrationErrors)
async def integration_errors(request: web.Request, query: ErrorQuery) -> web.Response:
    async with request.app[DATABASE].acquire() as conn:
        rows = await conn.fetch(
            "SELECT * FROM cal_integration_errors WHERE ($1::uuid IS NULL OR item_id = $1)"
            " AND ($2::uuid IS NULL OR subscription_id = $2)"
            " ORDER BY occurred_at DESC, id DESC LIMIT $3",
            query.item_id, query.subscription_id, query.limit)
    body = IntegrationErrors(errors=[IntegrationError(**dict(r)) for r in rows])
    return web.json_response(text=body.model_dump_json())


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value
