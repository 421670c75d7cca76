"""Business reports: financial, operational and customer, as JSON or CSV.

Ranges are days ``[from, to)`` (``to`` excluded); a KPI's day is the local date of its
event in the booking location's time zone (see projections/kpis.py). Every amount is per
currency. CSV (``?format=csv`` or ``Accept: text/csv``) carries the report's ``rows``.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field, model_validator

from midas.http.api import Api
from midas.http.consistency import ConsistentQuery
from midas.http.fields import Day
from midas.http.keys import CLOCK, GATE
from projections.inventory import ITEMS_TABLE
from projections.kpis import BOOKINGS_TABLE, DAILY_TABLE, TOTALS_TABLE
from projections.payment_ledger import BALANCES_TABLE
from queries.customers import load_profiles, segment_names, vip_thresholds

api = Api(tag="reports", kind="query")
READS = ("kpis",)
GROUPS = {
    "day": "day::text", "month": "to_char(day, 'YYYY-MM')", "category": "category",
    "location": "location", "item": "item_id::text", "total": "'total'",
}
SUMS = (
    "sum(gross)::bigint AS gross, sum(refunds)::bigint AS refunds, sum(held)::bigint AS held,"
    " sum(confirmed)::bigint AS confirmed, sum(confirmed_value)::bigint AS confirmed_value,"
    " sum(cancelled)::bigint AS cancelled, sum(expired)::bigint AS expired,"
    " sum(completed)::bigint AS completed, sum(disputes)::bigint AS disputes,"
    " sum(disputed_amount)::bigint AS disputed_amount,"
    " sum(disputes_lost)::bigint AS disputes_lost, sum(extras)::bigint AS extras,"
    " sum(pass_through)::bigint AS pass_through")
FORECAST_DAYS = (30, 60, 90)
ON_BOOKS = ("confirmed", "active", "completed")


class Range(ConsistentQuery):
    from_: Day = Field(alias="from", description="first day (included)")
    to: Day = Field(description="day after the last (excluded)")
    group: Literal["day", "month", "category", "location", "item", "total"] = "day"
    format: Literal["json", "csv"] | None = None

    model_config = {"extra": "forbid", "populate_by_name": True}

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.to <= self.from_:
            raise ValueError("`to` must be after `from`")
        if (self.to - self.from_).days > 3660:
            raise ValueError("at most ten years at a time")
        return self


# -- the answers (JSON; CSV carries their ``rows``) ----------------------------------------

Ratio = str | None  # a decimal fraction as text ("0.25"); None when there is no base


class FinancialRow(BaseModel):
    currency: str
    key: str = Field(description="The group's key: a day, a month, a category, ...")
    gross: int
    refunds: int
    net: int
    disputes: int
    disputed_amount: int
    disputes_lost: int


class FinancialTotal(BaseModel):
    currency: str
    gross: int
    refunds: int
    net: int
    disputes: int
    disputed_amount: int
    disputes_lost: int
    previous_net: int = Field(description="Net of the period of the same length before.")
    net_growth: Ratio


class DepositsHeld(BaseModel):
    currency: str
    count: int
    amount: int


class ForecastLine(BaseModel):
    days: int
    currency: str
    on_the_books: int
    previous_period_at_same_point: int
    pace: Ratio


class FinancialReport(BaseModel):
    report: Literal["financial"]
    from_: date = Field(alias="from")
    to: date
    group: str
    rows: list[FinancialRow]
    totals: list[FinancialTotal]
    deposits_held: list[DepositsHeld]
    forecast: list[ForecastLine]


class OperationalRow(BaseModel):
    currency: str
    key: str
    held: int
    confirmed: int
    cancelled: int
    expired: int
    completed: int
    conversion: Ratio
    average_booking_value: int | None


class OperationalTotal(BaseModel):
    currency: str
    held: int
    confirmed: int
    cancelled: int
    expired: int
    completed: int
    conversion: Ratio
    average_booking_value: int | None
    previous_confirmed: int
    confirmed_growth: Ratio


class Utilisation(BaseModel):
    item_id: str
    occupied_hours: str
    available_hours: str
    utilisation: Ratio


class OperationalReport(BaseModel):
    report: Literal["operational"]
    from_: date = Field(alias="from")
    to: date
    group: str
    rows: list[OperationalRow]
    totals: list[OperationalTotal]
    utilisation: list[Utilisation]
    conversion_basis: str


class CustomerCount(BaseModel):
    dimension: Literal["segment", "tier"]
    key: str
    customers: int


class CustomerReport(BaseModel):
    report: Literal["customers"]
    from_: date = Field(alias="from")
    to: date
    rows: list[CustomerCount]
    registered_in_period: int
    vip_thresholds: dict[str, int] = Field(
        description="Per currency, the net spend from which a customer is a VIP.")


def ratio(num: int, den: int) -> str | None:
    if den == 0:
        return None
    return str((Decimal(num) / Decimal(den)).quantize(Decimal("0.0001")))


def growth(current: int, previous: int) -> str | None:
    return ratio(current - previous, previous) if previous else None


# -- figures (shared with the dashboard) -------------------------------------------------


async def daily_totals(conn: Any, start: date, end: date, group: str = "total"
                       ) -> list[dict[str, Any]]:
    # Totals per currency come from the small per-day table; other groups from kpi_daily.
    table = TOTALS_TABLE if group in ("total", "day", "month") else DAILY_TABLE
    rows = await conn.fetch(
        f"SELECT currency, {GROUPS[group]} AS key, {SUMS}"
        f" FROM {table} WHERE day >= $1 AND day < $2 AND currency <> ''"
        " GROUP BY 1, 2 ORDER BY 1, 2", start, end)
    return [dict(r) for r in rows]


async def local_totals(conn: Any, spans: dict[str, tuple[date, date]],
                       elsewhere: tuple[date, date]) -> list[dict[str, Any]]:
    """Totals per currency over each location's own span of local days (first and last
    included), and ``elsewhere`` for a location not in ``spans``: the dashboard's "today"
    is each location's today."""
    codes = list(spans)
    firsts, lasts = [spans[c][0] for c in codes], [spans[c][1] for c in codes]
    rows = await conn.fetch(
        f"SELECT k.currency, 'total' AS key, {SUMS} FROM {DAILY_TABLE} k"
        " LEFT JOIN unnest($1::text[], $2::date[], $3::date[]) AS l(location, first, last)"
        " ON k.location = l.location"
        " WHERE k.day BETWEEN $4 AND $5 AND k.currency <> ''"
        " AND k.day BETWEEN coalesce(l.first, $6) AND coalesce(l.last, $7)"
        " GROUP BY 1 ORDER BY 1", codes, firsts, lasts, min([*firsts, elsewhere[0]]),
        max([*lasts, elsewhere[1]]), *elsewhere)
    return [dict(r) for r in rows]


def financial_row(r: dict[str, Any]) -> dict[str, Any]:
    """Net money split into rental, extras and pass-through money (not revenue)."""
    net, extras, passing = r["gross"] - r["refunds"], r["extras"], r["pass_through"]
    return {"currency": r["currency"], "key": r["key"], "gross": r["gross"],
            "refunds": r["refunds"], "net": net, "revenue": net - passing,
            "rental": net - extras - passing, "extras": extras, "pass_through": passing,
            "disputes": r["disputes"], "disputed_amount": r["disputed_amount"],
            "disputes_lost": r["disputes_lost"]}


def operational_row(r: dict[str, Any]) -> dict[str, Any]:
    return {"currency": r["currency"], "key": r["key"], "held": r["held"],
            "confirmed": r["confirmed"], "cancelled": r["cancelled"], "expired": r["expired"],
            "completed": r["completed"], "conversion": ratio(r["confirmed"], r["held"]),
            "average_booking_value": r["confirmed_value"] // r["confirmed"]
            if r["confirmed"] else None}


async def on_the_books(conn: Any, at: datetime, start: datetime, end: datetime
                       ) -> dict[str, int]:
    """Amount paid of bookings confirmed by ``at`` and not cancelled by then, starting
    in [start, end): revenue on the books as it stood at ``at``."""
    rows = await conn.fetch(
        f"SELECT currency, sum(amount_paid)::bigint AS amount FROM {BOOKINGS_TABLE}"
        " WHERE confirmed_at IS NOT NULL AND confirmed_at <= $1"
        " AND (cancelled_at IS NULL OR cancelled_at > $1)"
        " AND starts_at >= $2 AND starts_at < $3 GROUP BY currency ORDER BY currency",
        at, start, end)
    return {r["currency"]: r["amount"] for r in rows}


async def forecast(conn: Any, now: datetime) -> list[dict[str, Any]]:
    out = []
    for days in FORECAST_DAYS:
        span = timedelta(days=days)
        current = await on_the_books(conn, now, now, now + span)
        previous = await on_the_books(conn, now - span, now - span, now)
        for currency in sorted(set(current) | set(previous)):
            cur, prev = current.get(currency, 0), previous.get(currency, 0)
            out.append({"days": days, "currency": currency, "on_the_books": cur,
                        "previous_period_at_same_point": prev, "pace": ratio(cur, prev)})
    return out


async def deposits_held(conn: Any) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT currency, count(*) AS count, sum(deposit_amount)::bigint AS amount"
        f" FROM {BALANCES_TABLE} WHERE deposit_state = 'authorised' GROUP BY currency"
        " ORDER BY currency")
    return [dict(r) for r in rows]


async def utilisation(conn: Any, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per item: occupied hours (confirmed, active, completed bookings) / available hours
    (the period minus maintenance)."""
    rows = await conn.fetch(
        "WITH items AS ("
        f"  SELECT id AS item_id FROM {ITEMS_TABLE} WHERE status <> 'inactive'"
        f"  UNION SELECT item_id FROM {BOOKINGS_TABLE} WHERE starts_at < $2 AND ends_at > $1),"
        " occupied AS ("
        "  SELECT item_id, sum(extract(epoch FROM LEAST(ends_at, $2) - GREATEST(starts_at, $1)))"
        f"   AS seconds FROM {BOOKINGS_TABLE} WHERE status = ANY($3::text[])"
        "   AND starts_at < $2 AND ends_at > $1 GROUP BY item_id),"
        " maintenance AS ("
        "  SELECT item_id, sum(extract(epoch FROM LEAST(ends_at, $2) - GREATEST(starts_at, $1)))"
        "   AS seconds FROM avail_occupations WHERE kind = 'maintenance'"
        "   AND starts_at < $2 AND ends_at > $1 GROUP BY item_id)"
        " SELECT i.item_id, coalesce(o.seconds, 0)::float8 AS occupied,"
        " coalesce(m.seconds, 0)::float8 AS maintenance FROM items i"
        " LEFT JOIN occupied o USING (item_id) LEFT JOIN maintenance m USING (item_id)"
        " ORDER BY i.item_id", start, end, list(ON_BOOKS))
    period = (end - start).total_seconds()
    out = []
    for r in rows:
        occupied_h = Decimal(int(r["occupied"])) / 3600
        available_h = Decimal(int(period - r["maintenance"])) / 3600
        out.append({"item_id": str(r["item_id"]),
                    "occupied_hours": str(occupied_h.quantize(Decimal("0.01"))),
                    "available_hours": str(available_h.quantize(Decimal("0.01"))),
                    "utilisation": ratio(int(r["occupied"]), int(period - r["maintenance"]))})
    return out


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


# -- reports -----------------------------------------------------------------------------


async def financial_report(conn: Any, q: Range, now: datetime) -> dict[str, Any]:
    rows = [financial_row(r) for r in await daily_totals(conn, q.from_, q.to, q.group)]
    length = q.to - q.from_
    current = {r["currency"]: r for r in await daily_totals(conn, q.from_, q.to)}
    previous = {r["currency"]: r for r in await daily_totals(conn, q.from_ - length, q.from_)}
    totals = []
    for currency in sorted(set(current) | set(previous)):
        cur = financial_row(current.get(currency) or _zero(currency))
        prev = financial_row(previous.get(currency) or _zero(currency))
        totals.append({**{k: v for k, v in cur.items() if k != "key"},
                       "previous_net": prev["net"], "net_growth": growth(cur["net"],
                                                                         prev["net"])})
    return {"report": "financial", "from": q.from_.isoformat(), "to": q.to.isoformat(),
            "group": q.group, "rows": rows, "totals": totals,
            "deposits_held": await deposits_held(conn), "forecast": await forecast(conn, now)}


async def operational_report(conn: Any, q: Range) -> dict[str, Any]:
    rows = [operational_row(r) for r in await daily_totals(conn, q.from_, q.to, q.group)]
    length = q.to - q.from_
    current = {r["currency"]: r for r in await daily_totals(conn, q.from_, q.to)}
    previous = {r["currency"]: r for r in await daily_totals(conn, q.from_ - length, q.from_)}
    totals = []
    for currency in sorted(set(current) | set(previous)):
        cur = operational_row(current.get(currency) or _zero(currency))
        prev = operational_row(previous.get(currency) or _zero(currency))
        totals.append({**{k: v for k, v in cur.items() if k != "key"},
                       "previous_confirmed": prev["confirmed"],
                       "confirmed_growth": growth(cur["confirmed"], prev["confirmed"])})
    return {"report": "operational", "from": q.from_.isoformat(), "to": q.to.isoformat(),
            "group": q.group, "rows": rows, "totals": totals,
            "utilisation": await utilisation(conn, midnight(q.from_), midnight(q.to)),
            "conversion_basis": "confirmations / holds in the period (quotes are not"
                                " recorded as events)"}


async def customer_report(conn: Any, q: Range, now: datetime) -> dict[str, Any]:
    thresholds = await vip_thresholds(conn)
    segments: dict[str, int] = {}
    tiers: dict[str, int] = {}
    registered = 0
    start, end = midnight(q.from_), midnight(q.to)
    for row in await load_profiles(conn):
        for name in segment_names(row, now, thresholds):
            segments[name] = segments.get(name, 0) + 1
        tiers[row["tier"]] = tiers.get(row["tier"], 0) + 1
        if row["registered_at"] is not None and start <= row["registered_at"] < end:
            registered += 1
    rows = [{"dimension": "segment", "key": k, "customers": v} for k, v in sorted(
        segments.items())] + [{"dimension": "tier", "key": k, "customers": v}
                              for k, v in sorted(tiers.items())]
    return {"report": "customers", "from": q.from_.isoformat(), "to": q.to.isoformat(),
            "rows": rows, "registered_in_period": registered,
            "vip_thresholds": thresholds}


def _zero(currency: str) -> dict[str, Any]:
    return {"currency": currency, "key": "total", "gross": 0, "refunds": 0, "held": 0,
            "confirmed": 0, "confirmed_value": 0, "cancelled": 0, "expired": 0,
            "completed": 0, "disputes": 0, "disputed_amount": 0, "disputes_lost": 0,
            "extras": 0, "pass_through": 0}


def respond(request: web.Request, q: Range, report: dict[str, Any]) -> web.Response:
    wants_csv = q.format == "csv" or (
        q.format is None and "text/csv" in request.headers.get("Accept", ""))
    if not wants_csv:
        return web.json_response(report)
    out = io.StringIO()
    rows = report["rows"]
    fields = list(rows[0]) if rows else ["currency", "key"]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    name = f"{report['report']}-{report['from']}-{report['to']}.csv"
    return web.Response(text=out.getvalue(), content_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{name}"'})


@api.get("/api/v1/reports/financial", query=Range, response=FinancialReport,
         also_as=("text/csv",),
         summary="Revenue (gross, refunds, net), disputes, deposits held, growth, forecast")
async def get_financial_report(request: web.Request, query: Range) -> web.Response:
    db = await request.app[GATE].reader(("kpis", "payments"), query.min_position)
    async with db.acquire() as conn:
        report = await financial_report(conn, query, request.app[CLOCK]())
    return respond(request, query, report)


@api.get("/api/v1/reports/operational", query=Range, response=OperationalReport,
         also_as=("text/csv",),
         summary="Bookings by state, conversion, average booking value, utilisation")
async def get_operational_report(request: web.Request, query: Range) -> web.Response:
    db = await request.app[GATE].reader(("kpis", "availability"), query.min_position)
    async with db.acquire() as conn:
        report = await operational_report(conn, query)
    return respond(request, query, report)


@api.get("/api/v1/reports/customers", query=Range, response=CustomerReport,
         also_as=("text/csv",),
         summary="Customers by segment and tier, registrations in the period")
async def get_customer_report(request: web.Request, query: Range) -> web.Response:
    db = await request.app[GATE].reader(("profiles",), query.min_position)
    async with db.acquire() as conn:
        report = await customer_report(conn, query, request.app[CLOCK]())
    return respond(request, query, report)
