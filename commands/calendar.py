"""Calendar sync commands: feed tokens, external calendar subscriptions,
.ics uploads and "sync now"."""

from __future__ import annotations

from typing import Literal
from uuid import UUID, uuid4, uuid5

from aiohttp import web
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field
from yarl import URL

from midas.calendar.feeds import new_token, token_hash
from midas.calendar.importer import FeedError, sync_blocks
from midas.domain.inventory import Item
from midas.eventstore import AggregateNotFound
from midas.http.api import Api
from midas.http.auth import ADMINS, current_principal, require_principal
from midas.http.context import path_uuid
from midas.http.fields import Line
from midas.http.keys import (
    CALENDAR_POLLER,
    CLOCK,
    DATABASE,
    GOOGLE_CALENDAR,
    REPOSITORY,
    SETTINGS,
)
from midas.http.problems import Problem
from midas.security.outbound import OutboundRefused

api = Api(tag="calendar", kind="command")
FEED_BASE = "/api/v1/calendar/feeds"
UPLOAD_NAMESPACE = UUID("9b0d7f2e-5a43-4c1e-9d4b-0c6a1f3e8a71")


class FeedToken(BaseModel):
    owner: Literal["item", "customer", "concierge"]
    owner_id: UUID
    token: str = Field(description="Shown once; only its hash is stored. Rotating replaces it.")
    url: str = Field(description="The feed's path with the token, for calendar apps.")


class Revoked(BaseModel):
    owner: str
    owner_id: UUID
    revoked: bool


async def _item_exists(request: web.Request, item_id: UUID) -> None:
    try:
        await request.app[REPOSITORY].get(item_id, cls=Item)
    except AggregateNotFound:
        raise web.HTTPNotFound() from None


def _may_manage(request: web.Request, owner: str, owner_id: UUID) -> None:
    """Items: admins. Customers and concierges: themselves, or admins (404 otherwise)."""
    principal = require_principal(request)
    if principal.role in ADMINS:
        return
    if owner != "item" and principal.account_id == owner_id:
        return
    raise web.HTTPNotFound()


async def _rotate(request: web.Request, owner: str, plural: str) -> web.Response:
    owner_id = path_uuid(request)
    _may_manage(request, owner, owner_id)
    if owner == "item":
        await _item_exists(request, owner_id)
    token = new_token()
    async with request.app[DATABASE].acquire() as conn:
        await conn.execute(
            "INSERT INTO cal_feed_tokens (owner_kind, owner_id, token_hash, created_at)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (owner_kind, owner_id) DO UPDATE"
            " SET token_hash = EXCLUDED.token_hash, created_at = EXCLUDED.created_at",
            owner, owner_id, token_hash(token), request.app[CLOCK]())
    body = FeedToken(owner=owner, owner_id=owner_id, token=token,
                     url=f"{FEED_BASE}/{plural}/{owner_id}/feed.ics?token={token}")
    return web.json_response(text=body.model_dump_json(), status=201,
                             headers={"Cache-Control": "no-store"})


async def _revoke(request: web.Request, owner: str) -> web.Response:
    owner_id = path_uuid(request)
    _may_manage(request, owner, owner_id)
    async with request.app[DATABASE].acquire() as conn:
        status = await conn.execute(
            "DELETE FROM cal_feed_tokens WHERE owner_kind = $1 AND owner_id = $2",
            owner, owner_id)
    body = Revoked(owner=owner, owner_id=owner_id, revoked=status != "DELETE 0")
    return web.json_response(text=body.model_dump_json())


@api.post(f"{FEED_BASE}/items/{{id}}/token", summary="Create or rotate an item's feed token",
          response=FeedToken, idempotent=False)
async def post_item_feed_token(request: web.Request) -> web.Response:
    return await _rotate(request, "item", "items")


@api.delete(f"{FEED_BASE}/items/{{id}}/token", summary="Revoke an item's feed token",
            response=Revoked)
async def delete_item_feed_token(request: web.Request) -> web.Response:
    return await _revoke(request, "item")


@api.post(f"{FEED_BASE}/customers/{{id}}/token", summary="Create or rotate a customer's feed "
          "token (the customer or an admin)", response=FeedToken, idempotent=False)
async def post_customer_feed_token(request: web.Request) -> web.Response:
    return await _rotate(request, "customer", "customers")


@api.delete(f"{FEED_BASE}/customers/{{id}}/token", summary="Revoke a customer's feed token",
            response=Revoked)
async def delete_customer_feed_token(request: web.Request) -> web.Response:
    return await _revoke(request, "customer")


@api.post(f"{FEED_BASE}/concierges/{{id}}/token", summary="Create or rotate a concierge's "
          "feed token (the concierge or an admin)", response=FeedToken, idempotent=False)
async def post_concierge_feed_token(request: web.Request) -> web.Response:
    return await _rotate(request, "concierge", "concierges")


@api.delete(f"{FEED_BASE}/concierges/{{id}}/token", summary="Revoke a concierge's feed token",
            response=Revoked)
async def delete_concierge_feed_token(request: web.Request) -> web.Response:
    return await _revoke(request, "concierge")


# -- external calendars in ---------------------------------------------------------------


class Subscribe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Line = Field(min_length=1, max_length=200, examples=["Owner's calendar"])
    url: AnyHttpUrl
    refresh_minutes: int | None = Field(None, ge=1, le=7 * 24 * 60)


class Subscription(BaseModel):
    id: UUID
    item_id: UUID


class SyncOutcome(BaseModel):
    subscription_id: UUID
    status: Literal["synced", "not_modified", "error"]
    added: int = 0
    removed: int = 0
    refused: int = 0
    unchanged: int = 0
    position: int = 0
    error: str | None = None
    detail: str | None = None


@api.post("/api/v1/calendar/items/{id}/subscriptions", summary="Subscribe an item to an "
          "external calendar (ICS URL); its busy events become blocks", body=Subscribe,
          response=Subscription)
async def post_subscription(request: web.Request, body: Subscribe) -> web.Response:
    item_id = path_uuid(request)
    await _item_exists(request, item_id)
    await _check_url(request, str(body.url))
    settings, now = request.app[SETTINGS], request.app[CLOCK]()
    refresh = body.refresh_minutes or settings.calendar_refresh_minutes
    subscription_id = uuid4()
    async with request.app[DATABASE].acquire() as conn:
        await conn.execute(
            "INSERT INTO cal_subscriptions (id, item_id, name, url, poll_interval_s,"
            " next_poll_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
            subscription_id, item_id, body.name, str(body.url), refresh * 60, now)
    return web.json_response({"id": str(subscription_id), "item_id": str(item_id)}, status=201)


async def _check_url(request: web.Request, url: str) -> None:
    """422 for a URL leading to an address that is not public (fetches check it again)."""
    try:
        await request.app[CALENDAR_POLLER].guard.check(URL(url))
    except OutboundRefused as exc:
        raise Problem(422, "The request has invalid fields.", title="Invalid request",
                      errors=[{"field": "body.url", "message": str(exc),
                               "type": "url_not_public"}]) from None


@api.delete("/api/v1/calendar/subscriptions/{id}", summary="Unsubscribe: the blocks the "
            "subscription made are removed", response=SyncOutcome)
async def delete_subscription(request: web.Request) -> web.Response:
    subscription_id = path_uuid(request)
    db, now = request.app[DATABASE], request.app[CLOCK]()
    async with db.acquire() as conn:
        item_id = await conn.fetchval(
            "SELECT item_id FROM cal_subscriptions WHERE id = $1", subscription_id)
    if item_id is None:
        raise web.HTTPNotFound()
    result = await sync_blocks(request.app[REPOSITORY], db, subscription_id=subscription_id,
                               item_id=item_id, periods=[], now=now,
                               actor=_actor(request))
    async with db.acquire() as conn:
        await conn.execute("DELETE FROM cal_subscriptions WHERE id = $1", subscription_id)
    outcome = SyncOutcome(subscription_id=subscription_id, status="synced", **result.__dict__)
    return web.json_response(text=outcome.model_dump_json())


@api.post("/api/v1/calendar/subscriptions/{id}/poll", summary="Fetch and sync a "
          "subscription now (unconditional GET)", response=SyncOutcome, status=200,
          problems={422: "The calendar cannot be used (`error` names why)"})
async def post_poll(request: web.Request) -> web.Response:
    """A calendar that cannot be fetched or read is recorded on the subscription (its
    blocks stay as they were) and answered 422, its `error` one of http, network,
    timeout, too_large, malformed, item."""
    subscription_id = path_uuid(request)
    try:
        result = await request.app[CALENDAR_POLLER].poll_one(subscription_id)
    except LookupError:
        raise web.HTTPNotFound() from None
    if result["status"] == "error":  # recorded on the subscription; the blocks unchanged
        raise _unusable(result["error"], result["detail"])
    outcome = SyncOutcome(subscription_id=subscription_id, **result)
    return web.json_response(text=outcome.model_dump_json())


def _unusable(kind: str, detail: str) -> Problem:
    return Problem(422, f"the calendar cannot be used: {detail}", title="Invalid calendar",
                   error=kind)


@api.post("/api/v1/calendar/items/{id}/import", summary="Upload an .ics file (text/calendar): "
          "it replaces the blocks of the item's previous upload", response=SyncOutcome,
          status=200, idempotent=False,
          problems={413: "The file is too large",
                    422: "The calendar cannot be used (`error` names why)"})
async def post_import(request: web.Request) -> web.Response:
    item_id = path_uuid(request)
    await _item_exists(request, item_id)
    settings, now, db = request.app[SETTINGS], request.app[CLOCK](), request.app[DATABASE]
    data = await request.read()
    if len(data) > settings.calendar_max_bytes:
        raise Problem(413, f"at most {settings.calendar_max_bytes} bytes")
    subscription_id = uuid5(UPLOAD_NAMESPACE, str(item_id))
    async with db.acquire() as conn:
        await conn.execute(
            "INSERT INTO cal_subscriptions (id, item_id, name, url, poll_interval_s,"
            " next_poll_at, created_at) VALUES ($1, $2, 'uploaded .ics', NULL, 0, $3, $3)"
            " ON CONFLICT DO NOTHING", subscription_id, item_id, now)
    poller = request.app[CALENDAR_POLLER]
    try:
        result = await poller.apply(subscription_id, item_id, data, now)
    except FeedError as exc:
        async with db.acquire() as conn:
            await poller.record_error(
                conn, {"id": subscription_id, "item_id": item_id}, exc, now)
        raise _unusable(exc.kind, str(exc)) from None
    async with db.acquire() as conn:
        await conn.execute(
            "UPDATE cal_subscriptions SET last_synced_at = $2, last_error = NULL WHERE id = $1",
            subscription_id, now)
    outcome = SyncOutcome(subscription_id=subscription_id, status="synced", **result.__dict__)
    return web.json_response(text=outcome.model_dump_json())


def _actor(request: web.Request) -> str:
    principal = current_principal(request)
    return str(principal.account_id) if principal else "calendar-sync"


# -- Google Calendar push ----------------------------------------------------------------


class GoogleTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calendar_id: Line = Field(min_length=1, max_length=300,
                             examples=["owner@group.calendar.google.com"])


class GoogleTargetSet(BaseModel):
    item_id: UUID
    calendar_id: str | None


class GoogleSync(BaseModel):
    status: Literal["synced", "error"]
    pushed: int = 0
    deleted: int = 0
    added: int = 0
    removed: int = 0
    refused: int = 0
    full_resync: bool = False
    error: str | None = None
    detail: str | None = None


@api.put("/api/v1/calendar/items/{id}/google", summary="Push the item's bookings to a "
         "Google calendar (and take events made there as blocks)", body=GoogleTarget,
         response=GoogleTargetSet)
async def put_google(request: web.Request, body: GoogleTarget) -> web.Response:
    item_id = path_uuid(request)
    await _item_exists(request, item_id)
    async with request.app[DATABASE].acquire() as conn, conn.transaction():
        previous = await conn.fetchval(
            "SELECT calendar_id FROM cal_google_targets WHERE item_id = $1", item_id)
        if previous != body.calendar_id:  # another calendar: start over
            await conn.execute("DELETE FROM cal_google_events WHERE item_id = $1", item_id)
            await conn.execute("DELETE FROM cal_google_remote WHERE item_id = $1", item_id)
        await conn.execute(
            "INSERT INTO cal_google_targets (item_id, calendar_id, next_sync_at)"
            " VALUES ($1, $2, $3) ON CONFLICT (item_id) DO UPDATE SET calendar_id ="
            " EXCLUDED.calendar_id, sync_token = CASE WHEN cal_google_targets.calendar_id ="
            " EXCLUDED.calendar_id THEN cal_google_targets.sync_token END,"
            " next_sync_at = EXCLUDED.next_sync_at",
            item_id, body.calendar_id, request.app[CLOCK]())
    out = GoogleTargetSet(item_id=item_id, calendar_id=body.calendar_id)
    return web.json_response(text=out.model_dump_json())


@api.delete("/api/v1/calendar/items/{id}/google", summary="Stop pushing the item to Google "
            "(events there are left as they are)", response=GoogleTargetSet)
async def delete_google(request: web.Request) -> web.Response:
    item_id = path_uuid(request)
    async with request.app[DATABASE].acquire() as conn, conn.transaction():
        for table in ("cal_google_targets", "cal_google_events", "cal_google_remote"):
            await conn.execute(f"DELETE FROM {table} WHERE item_id = $1", item_id)
    out = GoogleTargetSet(item_id=item_id, calendar_id=None)
    return web.json_response(text=out.model_dump_json())


@api.post("/api/v1/calendar/items/{id}/google/sync", summary="Push and pull the item's "
          "Google calendar now", response=GoogleSync, status=200)
async def post_google_sync(request: web.Request) -> web.Response:
    item_id = path_uuid(request)
    try:
        outcome = await request.app[GOOGLE_CALENDAR].sync_item(item_id)
    except LookupError:
        raise web.HTTPNotFound() from None
    return web.json_response(text=GoogleSync(**outcome).model_dump_json())
