"""Staff view of recorded errors and alerts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from midas.error_reports import ALERTS_TABLE, REPORTS_TABLE, Category, Severity
from midas.http.api import Api
from midas.http.fields import Instant
from midas.http.keys import CLOCK, DATABASE, SETTINGS

api = Api(tag="errors", kind="query")


class ErrorFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    category: Category | None = None
    severity: Severity | None = None
    source: str | None = Field(None, pattern="^(server|client)$")
    since: Instant | None = Field(None, description="Default: the last 24 hours.")
    limit: int = Field(100, ge=1, le=1000)


class ErrorView(BaseModel):
    id: int
    occurred_at: datetime
    source: str
    category: str
    severity: str
    message: str
    request_id: str | None
    account_id: UUID | None
    context: dict[str, Any]
    amount_at_risk: int | None
    currency: str | None


class AlertView(BaseModel):
    id: int
    category: str
    title: str
    raised_at: datetime
    webhook_status: str


class ErrorsPage(BaseModel):
    errors: list[ErrorView]
    counts: dict[str, int] = Field(description="Per category since `since`.")
    window_counts: dict[str, int] = Field(description="Per category in the alert window.")
    window_minutes: int
    alerts: list[AlertView]


@api.get("/api/v1/admin/errors", query=ErrorFilter, response=ErrorsPage,
         summary="Recent errors, counts per category and recent alerts (staff)")
async def list_errors(request: web.Request, query: ErrorFilter) -> web.Response:
    now, settings = request.app[CLOCK](), request.app[SETTINGS]
    since = query.since or now - timedelta(hours=24)
    window_start = now - timedelta(seconds=settings.error_window_s)
    async with request.app[DATABASE].acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, occurred_at, source, category, severity, message, request_id,"
            f" account_id, context, amount_at_risk, currency FROM {REPORTS_TABLE}"
            " WHERE occurred_at >= $1 AND ($2::text IS NULL OR category = $2)"
            " AND ($3::text IS NULL OR severity = $3) AND ($4::text IS NULL OR source = $4)"
            " ORDER BY occurred_at DESC, id DESC LIMIT $5",
            since, query.category, query.severity, query.source, query.limit,
        )
        counts = await _counts(conn, since)
        window = await _counts(conn, window_start)
        alerts = await conn.fetch(
            f"SELECT id, category, title, raised_at, webhook_status FROM {ALERTS_TABLE}"
            " WHERE raised_at >= $1 ORDER BY id DESC LIMIT 100", since)
    page = ErrorsPage(
        errors=[ErrorView.model_validate({**dict(r), "context": _json(r["context"])})
                for r in rows],
        counts=counts, window_counts=window, window_minutes=settings.error_window_s // 60,
        alerts=[AlertView.model_validate(dict(a)) for a in alerts],
    )
    return web.json_response(text=page.model_dump_json())


async def _counts(conn: Any, since: datetime) -> dict[str, int]:
    rows = await conn.fetch(
        f"SELECT category, count(*) AS n FROM {REPORTS_TABLE} WHERE occurred_at >= $1"
        " GROUP BY category", since)
    return {r["category"]: r["n"] for r in rows}


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value
