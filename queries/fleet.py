"""Staff reads over the whole fleet: the timeline of many items at once, the work
waiting for staff (bookings by state, deposits to authorise, balances due, VVIP bookings
without a concierge), and the trends of the staff console's Today page (net revenue per
day, the booking funnel, utilisation by category).

The timeline draws, per item, the bookings on hold, confirmed or active (their own start
and end, without the buffer the availability model adds), maintenance windows and
external blocks, over ``[from, to)``. Items come grouped by category and location.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, Field, model_validator

from midas.domain.catalogue import Category
from midas.http.api import Api
from midas.http.consistency import ConsistentQuery
from midas.http.fields import Instant
from midas.http.keys import CLOCK, GATE, SETTINGS
from projections.availability import OCCUPATIONS_TABLE
from projections.bookings import BOOKINGS_TABLE
from projections.inventory import ITEMS_TABLE
from projections.kpis import BOOKINGS_TABLE as KPI_BOOKINGS
from projections.payment_ledger import BALANCES_TABLE
from queries.bookings import CONCIERGE_ALERT
from queries.dashboard import live_counts
from queries.reports import ON_BOOKS, daily_totals, financial_row, midnight, operational_row, ratio

api = Api(tag="fleet", kind="query")
ON_TIMELINE = ("held", "confirmed", "active")
MAX_DAYS = 93
HUNDREDTH = Decimal("0.01")
DEPOSIT_OVERDUE = timedelta(days=1)  # confirmed, started this long ago, not checked out


class TimelineQuery(ConsistentQuery):
    from_: Instant = Field(alias="from", description="first instant shown (included)")
    to: Instant = Field(description="end of the range (excluded)")
    category: Category | None = None
    location: str | None = Field(None, pattern=r"^[A-Z]{2}-[A-Z]{2}$")
    limit: int = Field(200, ge=1, le=500, description="items per page")
    offset: int = Field(0, ge=0, le=100_000)

    model_config = {"extra": "forbid", "populate_by_name": True}

    @model_validator(mode="after")
    def _ordered(self) -> TimelineQuery:
        if self.to <= self.from_:
            raise ValueError("`to` must be after `from`")
        if self.to - self.from_ > timedelta(days=MAX_DAYS):
            raise ValueError(f"at most {MAX_DAYS} days at a time")
        return self


class Bar(BaseModel):
    id: str = Field(description="the booking's id, or the window's or block's")
    kind: str = Field(description="booking | maintenance | external_block")
    state: str = Field(description="held | confirmed | active | maintenance | external_block")
    start: Instant
    end: Instant
    note: str = ""


class TimelineItem(BaseModel):
    id: UUID
    name: str
    category: str
    location: str
    status: str
    bars: list[Bar]


class FleetTimeline(BaseModel):
    from_: Instant = Field(alias="from")
    to: Instant
    items: list[TimelineItem]
    more: bool = Field(description="more items after this page (raise `offset`)")

    model_config = {"populate_by_name": True}


async def timeline(conn: Any, q: TimelineQuery) -> FleetTimeline:
    items = await conn.fetch(
        f"SELECT id, name, category, location, status FROM {ITEMS_TABLE}"
        " WHERE status <> 'inactive' AND ($1::text IS NULL OR category = $1)"
        " AND ($2::text IS NULL OR location = $2)"
        " ORDER BY category, location, name, id LIMIT $3 OFFSET $4",
        q.category.value if q.category else None, q.location, q.limit + 1, q.offset)
    more = len(items) > q.limit
    items = items[: q.limit]
    ids = [r["id"] for r in items]
    bars: dict[UUID, list[Bar]] = {i: [] for i in ids}
    bookings = await conn.fetch(
        f"SELECT id, item_id, status, starts_at, ends_at FROM {BOOKINGS_TABLE}"
        " WHERE item_id = ANY($1::uuid[]) AND status = ANY($2::text[])"
        " AND starts_at < $4 AND ends_at > $3 ORDER BY starts_at",
        ids, list(ON_TIMELINE), q.from_, q.to)
    for r in bookings:
        bars[r["item_id"]].append(Bar(id=str(r["id"]), kind="booking", state=r["status"],
                                      start=r["starts_at"], end=r["ends_at"]))
    windows = await conn.fetch(
        f"SELECT item_id, occupation_id, kind, starts_at, ends_at, note FROM {OCCUPATIONS_TABLE}"
        " WHERE item_id = ANY($1::uuid[]) AND kind <> 'booking'"
        " AND starts_at < $3 AND ends_at > $2 ORDER BY starts_at",
        ids, q.from_, q.to)
    for r in windows:
        bars[r["item_id"]].append(Bar(id=r["occupation_id"], kind=r["kind"], state=r["kind"],
                                      start=r["starts_at"], end=r["ends_at"], note=r["note"]))
    return FleetTimeline(from_=q.from_, to=q.to, more=more, items=[
        TimelineItem(id=r["id"], name=r["name"], category=r["category"],
                     location=r["location"], status=r["status"],
                     bars=sorted(bars[r["id"]], key=lambda b: b.start)) for r in items])


@api.get("/api/v1/fleet/timeline", query=TimelineQuery, response=FleetTimeline,
         summary="Items by category and location with their bookings, maintenance and"
                 " blocks over a range (staff)")
async def get_timeline(request: web.Request, query: TimelineQuery) -> web.Response:
    db = await request.app[GATE].reader(("inventory", "bookings", "availability"),
                                        query.min_position)
    async with db.acquire() as conn:
        view = await timeline(conn, query)
    return web.json_response(text=view.model_dump_json(by_alias=True))


# -- the work waiting for staff ------------------------------------------------------------


class Money(BaseModel):
    currency: str
    count: int
    amount: int


class Workload(BaseModel):
    at: Instant
    bookings_by_state: dict[str, int] = Field(description="bookings now in each state")
    deposits_to_authorise: list[Money] = Field(
        description="confirmed bookings starting within the deposit lead time (or"
                    " started in the last 24 h) whose deposit is not held (none yet, or"
                    " lapsed)")
    balances_due: list[Money] = Field(
        description="bookings on hold or confirmed with less paid than due: the"
                    " difference")
    unassigned_vvip: int = Field(
        description="VVIP bookings without a concierge starting within 48 h")


async def workload(conn: Any, now: Any, deposit_days: int) -> Workload:
    states = await live_counts(conn)  # kept by the KPI projection, not counted here
    deposits = await conn.fetch(
        f"SELECT b.currency, count(*) AS count, sum(b.security_deposit)::bigint AS amount"
        f" FROM {BOOKINGS_TABLE} b LEFT JOIN {BALANCES_TABLE} p ON p.booking_id = b.id"
        " WHERE b.status = 'confirmed' AND b.security_deposit > 0"
        " AND b.starts_at > $1::timestamptz - $3::interval"
        " AND b.starts_at <= $1::timestamptz + $2::interval"
        " AND coalesce(p.deposit_state, 'none') IN ('none', 'lapsed')"
        " GROUP BY b.currency ORDER BY b.currency", now, timedelta(days=deposit_days),
        DEPOSIT_OVERDUE)
    due = await conn.fetch(
        f"SELECT currency, count(*) AS count, sum(total_due - amount_paid)::bigint AS amount"
        f" FROM {BOOKINGS_TABLE} WHERE status IN ('held', 'confirmed')"
        " AND amount_paid < total_due GROUP BY currency ORDER BY currency")
    vvip = await conn.fetchval(
        f"SELECT count(*) FROM {BOOKINGS_TABLE} WHERE status IN ('held', 'confirmed')"
        " AND delivered_level = 'vvip' AND concierge_id IS NULL"
        " AND starts_at <= $1::timestamptz + $2::interval", now, CONCIERGE_ALERT)
    return Workload(at=now, bookings_by_state={k: v for k, v in sorted(states.items()) if v},
                    deposits_to_authorise=[Money(**dict(r)) for r in deposits],
                    balances_due=[Money(**dict(r)) for r in due], unassigned_vvip=vvip)


@api.get("/api/v1/admin/workload", query=ConsistentQuery, response=Workload,
         summary="Bookings by state, deposits to authorise, balances due, VVIP bookings"
                 " without a concierge (staff)")
async def get_workload(request: web.Request, query: ConsistentQuery) -> web.Response:
    db = await request.app[GATE].reader(("bookings", "payments", "kpis"), query.min_position)
    settings = request.app[SETTINGS]
    async with db.acquire() as conn:
        view = await workload(conn, request.app[CLOCK](),
                              settings.deposit_authorise_days_before)
    return web.json_response(text=view.model_dump_json())


# -- trends: the Today page's charts ------------------------------------------------------


class TrendsQuery(ConsistentQuery):
    days: int = Field(90, ge=1, le=366, description="revenue per day over this many days,"
                                                    " today included")
    window: int = Field(30, ge=1, le=366, description="funnel and utilisation over this"
                                                      " many days, today included")


class DayRevenue(BaseModel):
    day: str
    currency: str
    gross: int
    refunds: int
    net: int


class Funnel(BaseModel):
    currency: str
    held: int
    confirmed: int
    completed: int
    cancelled: int
    expired: int


class CategoryUtilisation(BaseModel):
    category: str
    items: int
    occupied_hours: str
    available_hours: str
    utilisation: str | None = Field(description="occupied / available hours, 4 decimals")


class Trends(BaseModel):
    days_from: str = Field(description="first day of `revenue_by_day`")
    window_from: str = Field(description="first day of the funnel and utilisation")
    to: str = Field(description="the day after the last (today + 1)")
    revenue_by_day: list[DayRevenue] = Field(description="days with revenue only")
    funnel: list[Funnel]
    utilisation_by_category: list[CategoryUtilisation]


_UTILISATION_BY_CATEGORY = (
    # As the operational report's utilisation (per item, summed by the item's category):
    # occupied hours of confirmed, active and completed bookings / the period's hours
    # less maintenance, over the items in service and those booked in the period. (An
    # item's category never changes, so the union keeps one row per item.)
    "WITH items AS ("
    f"  SELECT id AS item_id, category FROM {ITEMS_TABLE} WHERE status <> 'inactive'"
    f"  UNION SELECT item_id, category FROM {KPI_BOOKINGS}"
    "   WHERE ends_at > $1 AND starts_at < $2),"
    " occupied AS ("
    "  SELECT item_id, sum(extract(epoch FROM LEAST(ends_at, $2) - GREATEST(starts_at, $1)))"
    f"   AS seconds FROM {KPI_BOOKINGS} WHERE ends_at > $1 AND starts_at < $2"
    "   AND status = ANY($3::text[]) GROUP BY item_id),"
    " maintenance AS ("
    "  SELECT item_id, sum(extract(epoch FROM LEAST(ends_at, $2) - GREATEST(starts_at, $1)))"
    f"   AS seconds FROM {OCCUPATIONS_TABLE} WHERE kind = 'maintenance'"
    "   AND starts_at < $2 AND ends_at > $1 GROUP BY item_id)"
    " SELECT i.category, count(*) AS items,"
    " sum(coalesce(o.seconds, 0))::float8 AS occupied,"
    " sum(coalesce(m.seconds, 0))::float8 AS maintenance FROM items i"
    " LEFT JOIN occupied o USING (item_id) LEFT JOIN maintenance m USING (item_id)"
    " GROUP BY 1 ORDER BY 1"
)


async def utilisation_by_category(conn: Any, start: datetime, end: datetime
                                  ) -> list[CategoryUtilisation]:
    rows = await conn.fetch(_UTILISATION_BY_CATEGORY, start, end, list(ON_BOOKS))
    period = int((end - start).total_seconds())
    out = []
    for r in rows:
        available = r["items"] * period - int(r["maintenance"])
        out.append(CategoryUtilisation(
            category=r["category"], items=r["items"],
            occupied_hours=str((Decimal(int(r["occupied"])) / 3600).quantize(HUNDREDTH)),
            available_hours=str((Decimal(available) / 3600).quantize(HUNDREDTH)),
            utilisation=ratio(int(r["occupied"]), available)))
    return out


async def trends(conn: Any, today: date, days: int, window: int) -> Trends:
    end = today + timedelta(days=1)
    first, window_first = end - timedelta(days=days), end - timedelta(days=window)
    revenue = [financial_row(r) for r in await daily_totals(conn, first, end, "day")]
    funnel = [operational_row(r) for r in await daily_totals(conn, window_first, end)]
    return Trends(
        days_from=first.isoformat(), window_from=window_first.isoformat(), to=end.isoformat(),
        revenue_by_day=[DayRevenue(day=r["key"], currency=r["currency"], gross=r["gross"],
                                   refunds=r["refunds"], net=r["net"]) for r in revenue],
        funnel=[Funnel(**{k: r[k] for k in Funnel.model_fields}) for r in funnel],
        utilisation_by_category=await utilisation_by_category(
            conn, midnight(window_first), midnight(end)))


@api.get("/api/v1/admin/trends", query=TrendsQuery, response=Trends,
         summary="Net revenue per day, the booking funnel and utilisation by category"
                 " (staff)")
async def get_trends(request: web.Request, query: TrendsQuery) -> web.Response:
    db = await request.app[GATE].reader(("kpis", "inventory", "availability"),
                                        query.min_position)
    today = request.app[CLOCK]().astimezone(UTC).date()
    async with db.acquire() as conn:
        view = await trends(conn, today, query.days, query.window)
    return web.json_response(text=view.model_dump_json())
