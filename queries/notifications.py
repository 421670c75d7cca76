"""Staff queries of the email outbox and delivery analytics.

Addresses are masked (``j***@example.com``); customers' emails show their account id. Bodies
are never stored, so never shown: the template and its cause (dedupe key) say what it was.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, Field

from midas.http.api import Api
from midas.http.consistency import ConsistentQuery
from midas.http.fields import Line, RowId
from midas.http.keys import DATABASE, GATE
from midas.notifications.outbox import OUTBOX_TABLE, STATS_TABLE, mask
from projections.notifications import NAME

api = Api(tag="notifications", kind="query")
READS = (NAME,)

Status = Literal["pending", "sent", "bounced", "dead", "skipped"]


class OutboxFilter(ConsistentQuery):
    status: Status | None = None
    template: Line | None = Field(None, max_length=60)
    account_id: UUID | None = None
    limit: int = Field(50, ge=1, le=500)
    before_id: RowId | None = Field(None, description="Page: rows older than this id.")


class OutboxEntry(BaseModel):
    id: int
    dedupe_key: str
    template: str
    recipient: str
    account_id: UUID | None
    status: str
    attempts: int
    next_attempt_at: datetime
    provider: str | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    opened_at: datetime | None


class OutboxPage(BaseModel):
    entries: list[OutboxEntry]
    counts: dict[str, int] = Field(description="All rows per status.")


class ProviderStats(BaseModel):
    provider: str
    template: str
    sent: int
    failed: int
    bounced: int
    opened: int


class DeliveryStats(BaseModel):
    stats: list[ProviderStats]


@api.get("/api/v1/admin/notifications/outbox", query=OutboxFilter, response=OutboxPage,
         summary="The email outbox: pending, sent, bounced, dead-lettered (staff)")
async def list_outbox(request: web.Request, query: OutboxFilter) -> web.Response:
    db = await request.app[GATE].reader(READS, query.min_position)
    async with db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, dedupe_key, template, recipient, account_id, status, attempts,"
            " next_attempt_at, provider, last_error, created_at, sent_at, opened_at"
            f" FROM {OUTBOX_TABLE} WHERE ($1::text IS NULL OR status = $1)"
            " AND ($2::text IS NULL OR template = $2) AND ($3::uuid IS NULL OR account_id = $3)"
            " AND ($4::bigint IS NULL OR id < $4) ORDER BY id DESC LIMIT $5",
            query.status, query.template, query.account_id, query.before_id, query.limit,
        )
        counts = {r["status"]: r["n"] for r in await conn.fetch(
            f"SELECT status, count(*) AS n FROM {OUTBOX_TABLE} GROUP BY status")}
    entries = [OutboxEntry.model_validate({**dict(r), "recipient": mask(r["recipient"])})
               for r in rows]
    page = OutboxPage(entries=entries, counts=counts)
    return web.json_response(text=page.model_dump_json())


@api.get("/api/v1/admin/notifications/stats", response=DeliveryStats,
         summary="Delivery analytics per provider and template (staff)")
async def delivery_stats(request: web.Request) -> web.Response:
    async with request.app[DATABASE].acquire() as conn:
        rows = await conn.fetch(
            f"SELECT provider, template, sent, failed, bounced, opened FROM {STATS_TABLE}"
            " ORDER BY provider, template")
    stats = DeliveryStats(stats=[ProviderStats.model_validate(dict(r)) for r in rows])
    return web.json_response(text=stats.model_dump_json())
