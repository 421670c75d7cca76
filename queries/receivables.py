"""Revenue earned, money received and money still to come, per currency: earned is the
total due of the bookings delivered (completed, with their changes); received is what was
paid less what was refunded; and the later instalments still open, due within the next 30,
60 and 90 days (those already overdue included, and counted apart)."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from pydantic import BaseModel

from midas.http.api import Api
from midas.http.consistency import ConsistentQuery
from midas.http.keys import CLOCK, GATE
from projections.bookings import BOOKINGS_TABLE
from projections.instalments import INSTALMENTS_TABLE
from projections.payment_ledger import BALANCES_TABLE

api = Api(tag="reports", kind="query")
READS = ("payments", "instalments", "bookings")
HORIZONS = (30, 60, 90)


class Receivables(BaseModel):
    currency: str
    earned: int
    received: int
    overdue: int
    due_30_days: int
    due_60_days: int
    due_90_days: int


class ReceivablesReport(BaseModel):
    as_of: str
    currencies: list[Receivables]


@api.get("/api/v1/reports/receivables", query=ConsistentQuery, response=ReceivablesReport,
         summary="Revenue earned and money received; open instalments due within 30 / 60 /"
                 " 90 days")
async def get_receivables(request: web.Request, query: ConsistentQuery) -> web.Response:
    now = request.app[CLOCK]()
    db = await request.app[GATE].reader(READS, query.min_position)
    async with db.acquire() as conn:
        received = {r["currency"]: int(r["received"]) for r in await conn.fetch(
            f"SELECT currency, sum(paid - refunded) AS received FROM {BALANCES_TABLE}"
            " GROUP BY currency")}
        earned = {r["currency"]: int(r["earned"]) for r in await conn.fetch(
            f"SELECT currency, sum(total_due) AS earned FROM {BOOKINGS_TABLE}"
            " WHERE status = 'completed' GROUP BY currency")}
        rows = await conn.fetch(
            "SELECT currency, sum(amount) FILTER (WHERE due_at < $1) AS overdue,"
            " sum(amount) FILTER (WHERE due_at < $2) AS d30,"
            " sum(amount) FILTER (WHERE due_at < $3) AS d60,"
            " sum(amount) FILTER (WHERE due_at < $4) AS d90"
            f" FROM {INSTALMENTS_TABLE} WHERE state IN ('planned', 'requested')"
            " AND number > 1 GROUP BY currency",
            now, *(now + timedelta(days=d) for d in HORIZONS))
    due = {r["currency"]: r for r in rows}
    report = ReceivablesReport(as_of=now.isoformat(), currencies=[
        Receivables(currency=c, earned=earned.get(c, 0), received=received.get(c, 0),
                    overdue=int((due.get(c) or {}).get("overdue") or 0),
                    due_30_days=int((due.get(c) or {}).get("d30") or 0),
                    due_60_days=int((due.get(c) or {}).get("d60") or 0),
                    due_90_days=int((due.get(c) or {}).get("d90") or 0))
        for c in sorted(set(received) | set(due) | set(earned))])
    return web.json_response(text=report.model_dump_json())
