"""The admin dashboard (issue 7): today, this month, and live figures, per currency.

"Today" and "this month" are UTC calendar days of the KPI table (whose days are each
booking location's local dates); live figures read the current state of bookings.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from midas.http.api import Api
from midas.http.consistency import ConsistentQuery
from midas.http.keys import CLOCK, DATABASE, GATE
from projections.inventory import ITEMS_TABLE
from projections.kpis import BOOKINGS_TABLE, LIVE_TABLE
from queries.reports import daily_totals, deposits_held, financial_row, operational_row, ratio

api = Api(tag="reports", kind="query")


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


async def dashboard(conn: Any, now: datetime) -> dict[str, Any]:
    today = now.date()
    month = today.replace(day=1)
    counts = await live_counts(conn)
    occupied = await items_occupied(conn, now)
    items = await conn.fetchval(
        f"SELECT count(*) FROM {ITEMS_TABLE} WHERE status <> 'inactive'") or 0
    disputes = await conn.fetchval(
        "SELECT count(*) FROM pay_balances WHERE dispute_status = 'open'")
    today_rows = _period(await daily_totals(conn, today, today + timedelta(days=1)))
    return {
        "at": now.isoformat(),
        "today": today_rows,
        "this_month": _period(await daily_totals(conn, month, today + timedelta(days=1))),
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


@api.get("/api/v1/admin/dashboard", query=ConsistentQuery,
         summary="Today, this month and live figures (staff)")
async def get_dashboard(request: web.Request, query: ConsistentQuery) -> web.Response:
    await request.app[GATE].wait(("kpis", "payments"), query.min_position)
    async with request.app[DATABASE].acquire() as conn:
        view = await dashboard(conn, request.app[CLOCK]())
    return web.json_response(view)
