"""Customer queries: search, the 360 view, loyalty points.

Segments are computed here, at query time, from the profile's stored facts by the rules
in ``midas.domain.segments`` (time-dependent ones need no timer that way).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from aiohttp import web
from pydantic import BaseModel, Field

from midas.domain.accounts import TIERS
from midas.domain.segments import (
    SEGMENTS,
    CustomerFacts,
    SegmentRules,
    primary,
    segments_of,
    threshold_from_ranked,
)
from midas.http.api import Api
from midas.http.auth import require_principal
from midas.http.consistency import ConsistentQuery
from midas.http.context import path_uuid
from midas.http.fields import Amount, Line
from midas.http.keys import CLOCK, GATE
from projections.accounts import ACCOUNTS_TABLE
from projections.loyalty_tables import REPORTING_SPEND_TABLE
from projections.payment_ledger import ENTRIES_TABLE
from projections.profiles import (
    BOOKINGS_TABLE,
    FAVOURITES_TABLE,
    NOTES_TABLE,
    POINTS_TABLE,
    PROFILES_TABLE,
    SPEND_TABLE,
)

api = Api(tag="customers", kind="query")
READS = ("profiles",)
RULES = SegmentRules()


class Spend(BaseModel):
    currency: str
    paid: int
    refunded: int
    net: int = Field(description="lifetime net spend: paid - refunded")
    bookings: int
    average_booking_value: int = Field(description="net / confirmed bookings (rounded down)")


class LifetimeValue(BaseModel):
    currency: str
    net: int = Field(description="paid - refunded, converted at each payment's recorded rate")


class Profile(BaseModel):
    customer_id: UUID
    name: str | None
    email: str | None
    status: str
    registered_at: datetime | None
    tier: str
    tier_reason: str | None
    points: int
    bookings_by_state: dict[str, int]
    bookings: int
    confirmed: int
    completed: int
    cancelled: int
    expired: int
    cancellation_rate: str = Field(description="cancelled / (holds - expired), 4 decimals")
    first_booking_at: datetime | None
    last_booking_at: datetime | None
    spend: list[Spend]
    lifetime_value: list[LifetimeValue] = Field(default_factory=list, description=(
        "Net spend in the reporting currency (what tiers count), each payment converted at"
        " the rate it recorded; spend with no rate recorded stays in its own currency."))
    favourite_categories: list[str]
    favourite_locations: list[str]
    segments: list[str]
    segment: str | None


class PointsEntry(BaseModel):
    booking_id: UUID | None
    kind: str
    points: int
    balance: int
    multiplier: str | None
    recorded_at: datetime


class Points(BaseModel):
    customer_id: UUID
    balance: int
    tier: str
    history: list[PointsEntry]


class Note(BaseModel):
    note_id: UUID
    author_id: UUID | None
    text: str
    recorded_at: datetime


class Customer360(BaseModel):
    profile: Profile
    bookings: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    points: list[PointsEntry]
    notes: list[Note] | None = Field(None, description="staff only")


class Search(ConsistentQuery):
    q: Line | None = Field(None, max_length=200, description="part of the name or email")
    segment: str | None = Field(None, pattern="^(" + "|".join(SEGMENTS) + ")$")
    tier: str | None = Field(None, pattern="^(" + "|".join(TIERS) + ")$")
    currency: str = Field("USD", pattern="^[A-Z]{3}$")
    min_spend: Amount | None = Field(None, description="net spend in `currency`, minor units")
    max_spend: Amount | None = None
    limit: int = Field(100, ge=1, le=1000)


class SearchPage(BaseModel):
    customers: list[Profile]


def cancellation_rate(f: asyncpg.Record | dict[str, Any]) -> str:
    base = f["bookings"] - f["expired"]
    rate = Decimal(f["cancelled"]) / base if base > 0 else Decimal(0)
    return str(rate.quantize(Decimal("0.0001")))


async def vip_thresholds(conn: Any) -> dict[str, int]:
    """Per currency, the lowest net spend inside the top share of spenders."""
    out: dict[str, int] = {}
    rows = await conn.fetch(
        f"SELECT currency, array_agg(paid - refunded ORDER BY paid - refunded DESC) AS spends"
        f" FROM {SPEND_TABLE} WHERE paid - refunded > 0 GROUP BY currency")
    for r in rows:
        threshold = threshold_from_ranked(list(r["spends"]), RULES)
        if threshold is not None:
            out[r["currency"]] = threshold
    return out


_PROFILE_SQL = (
    "SELECT p.*, a.name, a.email, coalesce((SELECT json_agg(json_build_object("
    "'currency', s.currency, 'paid', s.paid, 'refunded', s.refunded,"
    " 'bookings', s.bookings) ORDER BY s.currency)"
    f" FROM {SPEND_TABLE} s WHERE s.customer_id = p.customer_id), '[]') AS spend"
    f" FROM {PROFILES_TABLE} p LEFT JOIN {ACCOUNTS_TABLE} a ON a.id = p.customer_id"
)


async def load_profiles(conn: Any, where: str = "", *args: Any, limit: int | None = None
                        ) -> list[asyncpg.Record]:
    sql = _PROFILE_SQL + (f" WHERE {where}" if where else "") + " ORDER BY p.customer_id"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return await conn.fetch(sql, *args)


def facts_of(row: Any) -> CustomerFacts:
    spend = _spend(row)
    return CustomerFacts(
        tier=row["tier"], confirmed=row["confirmed"], completed=row["completed"],
        first_booking_at=row["first_booking_at"], last_booking_at=row["last_booking_at"],
        net_spend={s["currency"]: s["paid"] - s["refunded"] for s in spend})


def _spend(row: Any) -> list[dict[str, Any]]:
    value = row["spend"]
    return orjson.loads(value) if isinstance(value, str) else list(value)


def segment_names(row: Any, now: datetime, thresholds: dict[str, int]) -> list[str]:
    return segments_of(facts_of(row), now, thresholds, RULES)


async def profile_of(conn: Any, row: Any, now: datetime, thresholds: dict[str, int],
                     detail: bool = True) -> Profile:
    states: dict[str, int] = {}
    categories: list[str] = []
    locations: list[str] = []
    lifetime: list[LifetimeValue] = []
    if detail:
        states = {r["status"]: r["n"] for r in await conn.fetch(
            f"SELECT status, count(*) AS n FROM {BOOKINGS_TABLE} WHERE customer_id = $1"
            " GROUP BY status", row["customer_id"])}
        favourites = await conn.fetch(
            f"SELECT kind, value FROM {FAVOURITES_TABLE} WHERE customer_id = $1"
            " ORDER BY n DESC, value", row["customer_id"])
        categories = [f["value"] for f in favourites if f["kind"] == "category"][:3]
        locations = [f["value"] for f in favourites if f["kind"] == "location"][:3]
        lifetime = [LifetimeValue(currency=r["currency"], net=r["net"])
                    for r in await conn.fetch(
                        f"SELECT currency, paid - refunded AS net FROM {REPORTING_SPEND_TABLE}"
                        " WHERE customer_id = $1 ORDER BY currency", row["customer_id"])]
    segments = segment_names(row, now, thresholds)
    spend = [Spend(currency=s["currency"], paid=s["paid"], refunded=s["refunded"],
                   net=s["paid"] - s["refunded"], bookings=s["bookings"],
                   average_booking_value=(s["paid"] - s["refunded"]) // s["bookings"]
                   if s["bookings"] else 0) for s in _spend(row)]
    return Profile(
        customer_id=row["customer_id"], name=row["name"], email=row["email"],
        status=row["status"], registered_at=row["registered_at"], tier=row["tier"],
        tier_reason=row["tier_reason"], points=row["points"], bookings_by_state=states,
        bookings=row["bookings"], confirmed=row["confirmed"], completed=row["completed"],
        cancelled=row["cancelled"], expired=row["expired"],
        cancellation_rate=cancellation_rate(row), first_booking_at=row["first_booking_at"],
        last_booking_at=row["last_booking_at"], spend=spend, lifetime_value=lifetime,
        favourite_categories=categories, favourite_locations=locations,
        segments=segments, segment=primary(segments))


async def segment_members(conn: Any, segment: str, now: datetime) -> list[asyncpg.Record]:
    """Every profile in ``segment`` now (active accounts only: for messages)."""
    thresholds = await vip_thresholds(conn)
    rows = await load_profiles(conn, "p.status = 'active'")
    return [r for r in rows if segment in segment_names(r, now, thresholds)]


@api.get("/api/v1/customers", query=Search, response=SearchPage,
         summary="Search customers by name, email, segment, tier, spend (staff)")
async def get_customers(request: web.Request, query: Search) -> web.Response:
    db = await request.app[GATE].reader(READS, query.min_position)
    now = request.app[CLOCK]()
    where: list[str] = ["true"]
    args: list[Any] = []
    if query.q:
        args.append(f"%{query.q.replace('%', '').replace('_', '')}%")
        where.append(f"(a.name ILIKE ${len(args)} OR a.email ILIKE ${len(args)})")
    if query.tier:
        args.append(query.tier)
        where.append(f"p.tier = ${len(args)}")
    if query.min_spend is not None or query.max_spend is not None:
        args.append(query.currency)
        spend = (f"coalesce((SELECT paid - refunded FROM {SPEND_TABLE} s WHERE"
                 f" s.customer_id = p.customer_id AND s.currency = ${len(args)}), 0)")
        if query.min_spend is not None:
            args.append(query.min_spend)
            where.append(f"{spend} >= ${len(args)}")
        if query.max_spend is not None:
            args.append(query.max_spend)
            where.append(f"{spend} <= ${len(args)}")
    async with db.acquire() as conn:
        thresholds = await vip_thresholds(conn)
        rows = await load_profiles(conn, " AND ".join(where), *args,
                                   limit=None if query.segment else query.limit)
        if query.segment:
            rows = [r for r in rows if query.segment in segment_names(r, now, thresholds)]
        found = [await profile_of(conn, r, now, thresholds, detail=False)
                 for r in rows[:query.limit]]
    return web.json_response(text=SearchPage(customers=found).model_dump_json())


async def _one(request: web.Request, conn: Any, customer: UUID) -> Any:
    principal = require_principal(request)
    if not principal.is_staff and principal.account_id != customer:
        raise web.HTTPNotFound()  # another customer's profile does not exist for them
    rows = await load_profiles(conn, "p.customer_id = $1", customer)
    if not rows:
        raise web.HTTPNotFound()
    return rows[0]


async def _points(conn: Any, customer: UUID) -> list[PointsEntry]:
    return [PointsEntry.model_validate(dict(r)) for r in await conn.fetch(
        f"SELECT booking_id, kind, points, balance, multiplier, recorded_at FROM {POINTS_TABLE}"
        " WHERE customer_id = $1 ORDER BY position", customer)]


@api.get("/api/v1/customers/{id}", query=ConsistentQuery, response=Customer360,
         summary="A customer's 360 view: profile, bookings, payments, points, notes")
async def get_customer(request: web.Request, query: ConsistentQuery) -> web.Response:
    customer = path_uuid(request)
    db = await request.app[GATE].reader(("profiles", "bookings", "payments"), query.min_position)
    principal = require_principal(request)
    async with db.acquire() as conn:
        row = await _one(request, conn, customer)
        profile = await profile_of(conn, row, request.app[CLOCK](), await vip_thresholds(conn))
        bookings = [dict(r) for r in await conn.fetch(
            "SELECT booking_id, item_id, category, location, currency, total_due, status,"
            f" held_at, starts_at, ends_at, paid, refunded FROM {BOOKINGS_TABLE}"
            " WHERE customer_id = $1 ORDER BY held_at DESC", customer)]
        payments = [dict(r) for r in await conn.fetch(
            "SELECT e.booking_id, e.type, e.amount, e.currency, e.provider, e.recorded_at"
            f" FROM {ENTRIES_TABLE} e WHERE e.customer_id = $1 ORDER BY e.position",
            customer)]
        notes = None
        if principal.is_staff:
            notes = [Note.model_validate(dict(r)) for r in await conn.fetch(
                f"SELECT note_id, author_id, text, recorded_at FROM {NOTES_TABLE}"
                " WHERE customer_id = $1 ORDER BY recorded_at DESC", customer)]
        points = await _points(conn, customer)
    view = Customer360(profile=profile, bookings=bookings, payments=payments, points=points,
                       notes=notes)
    return web.json_response(text=view.model_dump_json())


@api.get("/api/v1/customers/{id}/points", query=ConsistentQuery, response=Points,
         summary="A customer's loyalty points balance and history (own, or staff)")
async def get_customer_points(request: web.Request, query: ConsistentQuery) -> web.Response:
    customer = path_uuid(request)
    db = await request.app[GATE].reader(READS, query.min_position)
    async with db.acquire() as conn:
        row = await _one(request, conn, customer)
        history = await _points(conn, customer)
    view = Points(customer_id=customer, balance=row["points"], tier=row["tier"],
                  history=history)
    return web.json_response(text=view.model_dump_json())
