"""Booking queries: a customer's own bookings; staff lists with filters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal
from uuid import UUID

import orjson
from aiohttp import web
from pydantic import BaseModel, Field

from midas.domain.catalogue import Category
from midas.domain.refunds import CancellationReason, refund_amount, refund_percentage_at
from midas.http.api import Api
from midas.http.auth import Principal, current_principal
from midas.http.consistency import ConsistentQuery
from midas.http.context import path_uuid
from midas.http.fields import Instant
from midas.http.keys import CLOCK, GATE, REPOSITORY
from midas.http.problems import Problem
from midas.policy import current_policy
from projections.bookings import BOOKINGS_TABLE

api = Api(tag="bookings", kind="query")
READS = ("bookings",)
CONCIERGE_ALERT = timedelta(hours=48)  # unassigned VVIP bookings this close are flagged

Status = Literal["held", "confirmed", "active", "completed", "expired", "cancelled"]


class BookingView(BaseModel):
    id: UUID
    item_id: UUID
    customer_id: UUID
    status: str
    starts_at: Instant
    ends_at: Instant
    service_level: str
    delivered_level: str
    category: str
    location: str
    currency: str
    total_due: int
    security_deposit: int
    amount_paid: int
    refund_percentage: str | None
    refund_amount: int | None
    cancel_reason: str | None
    concierge_id: UUID | None
    hold_expires_at: Instant
    held_at: Instant
    version: int
    needs_concierge: bool = Field(
        description="VVIP, no concierge yet, starting within 48 h (staff alert).")
    quote: dict[str, Any] | None = None
    apa: dict[str, int] | None = Field(
        None, description="The APA statement once settled: collected, spent, refund,"
                          " top_up (owed) and top_up_paid.")


class BookingPage(BaseModel):
    bookings: list[BookingView]


class BookingFilter(ConsistentQuery):
    status: Status | None = None
    item_id: UUID | None = None
    customer_id: UUID | None = Field(None, description="Staff only; customers see their own.")
    from_: Instant | None = Field(None, alias="from",
                                        description="Bookings ending after this instant.")
    to: Instant | None = Field(None, description="Bookings starting before this instant.")
    needs_concierge: bool | None = None
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=100_000)


_COLUMNS = ", ".join(
    name for name in BookingView.model_fields if name not in ("needs_concierge", "quote", "apa"))
_NEEDS_CONCIERGE = (
    "(delivered_level = 'vvip' AND concierge_id IS NULL AND status IN ('held', 'confirmed')"
    " AND starts_at <= $1::timestamptz + $2::interval)"
)


def _principal(request: web.Request) -> Principal:
    principal = current_principal(request)
    if principal is None:
        raise Problem(401, "Sign in to do this.")
    return principal


@api.get("/api/v1/bookings", summary="Bookings: a customer's own, or all with filters (staff)",
         query=BookingFilter, response=BookingPage)
async def list_bookings(request: web.Request, query: BookingFilter) -> web.Response:
    principal = _principal(request)
    customer = query.customer_id if principal.is_staff else principal.account_id
    db = await request.app[GATE].reader(READS, query.min_position)
    async with db.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS}, {_NEEDS_CONCIERGE} AS needs_concierge FROM {BOOKINGS_TABLE}"
            " WHERE ($3::text IS NULL OR status = $3) AND ($4::uuid IS NULL OR item_id = $4)"
            " AND ($5::uuid IS NULL OR customer_id = $5)"
            " AND ($6::timestamptz IS NULL OR ends_at > $6)"
            " AND ($7::timestamptz IS NULL OR starts_at < $7)"
            f" AND ($8::bool IS NULL OR {_NEEDS_CONCIERGE} = $8)"
            " ORDER BY starts_at, id LIMIT $9 OFFSET $10",
            request.app[CLOCK](), CONCIERGE_ALERT, query.status, query.item_id, customer,
            query.from_, query.to, query.needs_concierge, query.limit, query.offset,
        )
    page = BookingPage(bookings=[BookingView.model_validate(dict(r)) for r in rows])
    return web.json_response(text=page.model_dump_json())


@api.get("/api/v1/bookings/{id}", summary="One booking with its quote", query=ConsistentQuery,
         response=BookingView)
async def get_booking(request: web.Request, query: ConsistentQuery) -> web.Response:
    principal = _principal(request)
    booking_id = path_uuid(request)
    db = await request.app[GATE].reader(READS, query.min_position)
    async with db.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS}, quote, apa, {_NEEDS_CONCIERGE} AS needs_concierge"
            f" FROM {BOOKINGS_TABLE} WHERE id = $3",
            request.app[CLOCK](), CONCIERGE_ALERT, booking_id,
        )
    if row is None or (not principal.is_staff and row["customer_id"] != principal.account_id):
        raise web.HTTPNotFound()  # another customer's booking does not exist for them
    view = dict(row)
    view["quote"] = orjson.loads(view["quote"])
    view["apa"] = orjson.loads(view["apa"]) if view["apa"] else None
    return web.json_response(text=BookingView.model_validate(view).model_dump_json())


class RefundPreview(BaseModel):
    id: UUID
    status: str
    reason: CancellationReason
    amount_paid: int
    currency: str
    refund_percentage: str
    refund_amount: int
    at: Instant = Field(description="the instant the refund is worked out for (now)")


class PreviewQuery(ConsistentQuery):
    reason: CancellationReason = CancellationReason.CUSTOMER


@api.get("/api/v1/bookings/{id}/refund-preview", query=PreviewQuery, response=RefundPreview,
         summary="The refund a cancellation now would give, by the policy in force"
                 " (nothing is changed)",
         problems={403: "Only staff preview a cancellation by the business"})
async def get_refund_preview(request: web.Request, query: PreviewQuery) -> web.Response:
    principal = _principal(request)
    booking_id = path_uuid(request)
    db = await request.app[GATE].reader(READS, query.min_position)
    async with db.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT id, customer_id, status, category, starts_at, amount_paid, currency"
            f" FROM {BOOKINGS_TABLE} WHERE id = $1", booking_id)
    if row is None or (not principal.is_staff and row["customer_id"] != principal.account_id):
        raise web.HTTPNotFound()
    if query.reason is not CancellationReason.CUSTOMER and not principal.is_staff:
        raise Problem(403, "Only staff cancel on behalf of the business.")
    now = request.app[CLOCK]()
    catalogue, _ = await current_policy(request.app[REPOSITORY])
    percentage = refund_percentage_at(Category(row["category"]), row["starts_at"], now,
                                      catalogue, reason=query.reason)
    preview = RefundPreview(
        id=row["id"], status=row["status"], reason=query.reason,
        amount_paid=row["amount_paid"], currency=row["currency"],
        refund_percentage=str(percentage),
        refund_amount=refund_amount(row["amount_paid"], percentage), at=now)
    return web.json_response(text=preview.model_dump_json())
