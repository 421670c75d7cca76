"""The admin dashboard: today, this month, and live figures, per currency.

The KPI table's days are each booking location's local dates, so "today" is each
location's own today (Los Angeles' day begins eight hours after London's) and "this month"
each location's month up to its today (UTC's for a location the policy does not know);
live figures read the current state of bookings.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from midas.http.api import Api
from midas.http.consistency import ConsistentQuery
from midas.http.keys import CLOCK, GATE
from projections.inventory import ITEMS_TABLE
from projections.kpis import BOOKINGS_TABLE, LIVE_TABLE
from queries.policy import READS as POLICY_READS
from queries.policy import catalogue
from queries.reports import (
    DepositsHeld,
    Ratio,
    deposits_held,
    financial_row,
    local_totals,
    operational_row,
    ratio,
)

api = Api(tag="reports", kind="query")


class PeriodFigures(BaseModel):
    currency: str
    gross: int
    refunds: int
    net: int
    disputes: int
    disputed_amount: int
    disputes_lost: int
    held: int
    confirmed: int
    cancelled: int
    expired: int
    completed: int
    conversion: Ratio
    average_booking_value: int | None


class Revenue(BaseModel):
    currency: str
    gross: int
    refunds: int
    net: int


class LiveFigures(BaseModel):
    active_rentals: int
    pending_holds: int
    revenue_today: list[Revenue]
    items: int
    items_occupied: int
    utilisation_now: Ratio
    deposits_held: list[DepositsHeld]
    open_disputes: int


class Dashboard(BaseModel):
    at: datetime
    today: list[PeriodFigures]
    this_month: list[PeriodFigures]
    live: LiveFigures


def _period(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        f, o = financial_row(r), operational_row(r)
        out.append({**{k: v for k, v in f.items() if k != "key"},
                    **{k: v for k, v in o.items() if k not in ("key", "currency")}})
    return out


async def live_counts(conn: Any) -> dict[str, int]:
    """Bookings now in each status (kept by the KPI projection, not counted here)."""
    rows = await conn.fetch(f"SELECT status, bookings FROM {LIVE_TABLE}")
    return {r["status"]: r["bookings"] for r in rows}


async def items_occupied(conn: Any, now: datetime) -> int:
    # Bookings on the books not ended by now: a short range of the partial index
    # kpi_bookings_on_books_until, whatever the plan (custom or generic) chooses.
    return await conn.fetchval(
        f"SELECT count(DISTINCT item_id) FROM {BOOKINGS_TABLE}"
        " WHERE status IN ('confirmed', 'active') AND ends_at > $1 AND starts_at <= $1",
        now)


async def local_days(conn: Any, now: datetime) -> dict[str, date]:
    """Each location's date at ``now`` in its own time zone."""
    found, _ = await catalogue(conn)
    return {code: now.astimezone(place.zone).date() for code, place in found.locations.items()}


async def dashboard(conn: Any, now: datetime) -> dict[str, Any]:
    counts = await live_counts(conn)
    occupied = await items_occupied(conn, now)
    items = await conn.fetchval(
        f"SELECT count(*) FROM {ITEMS_TABLE} WHERE status <> 'inactive'") or 0
    disputes = await conn.fetchval(
        "SELECT count(*) FROM pay_balances WHERE dispute_status = 'open'")
    days, utc = await local_days(conn, now), now.astimezone(UTC).date()
    today_rows = _period(await local_totals(
        conn, {c: (d, d) for c, d in days.items()}, (utc, utc)))
    return {
        "at": now.isoformat(),
        "today": today_rows,
        "this_month": _period(await local_totals(
            conn, {c: (d.replace(day=1), d) for c, d in days.items()},
            (utc.replace(day=1), utc))),
        "live": {
            "active_rentals": counts.get("active", 0),
            "pending_holds": counts.get("held", 0),
            "revenue_today": [{"currency": r["currency"], "gross": r["gross"],
                               "refunds": r["refunds"], "net": r["net"]} for r in today_rows],
            "items": items,
            "items_occupied": occupied,
            "utilisation_now": ratio(occupied, items),
            "deposits_held": await deposits_held(conn),
            "open_disputes": disputes,
        },
    }


@api.get("/api/v1/admin/dashboard", query=ConsistentQuery, response=Dashboard,
         summary="Today, this month and live figures (staff)")
async def get_dashboard(request: web.Request, query: ConsistentQuery) -> web.Response:
    db = await request.app[GATE].reader(("kpis", "payments", *POLICY_READS), query.min_position)
    async with db.acquire() as conn:
        view = await dashboard(conn, request.app[CLOCK]())
    return web.json_response(view)
