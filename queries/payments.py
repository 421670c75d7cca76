"""Payment queries: a booking's payments and balance (its customer, or staff), and the staff
list of disputes and failed payments."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import orjson
from aiohttp import web
from pydantic import BaseModel, Field

from midas.http.api import Api
from midas.http.auth import current_principal
from midas.http.consistency import ConsistentQuery
from midas.http.context import path_uuid
from midas.http.keys import DATABASE, GATE
from midas.http.problems import Problem
from projections.payments import BALANCES_TABLE, ENTRIES_TABLE

api = Api(tag="payments", kind="query")
READS = ("payments",)


class PaymentEntry(BaseModel):
    type: str
    amount: int | None
    currency: str | None
    provider: str | None
    reference: str | None
    detail: dict[str, Any]
    recorded_at: datetime
    position: int


class Balance(BaseModel):
    booking_id: UUID
    customer_id: UUID
    currency: str
    amount_due: int
    paid: int
    refunded: int
    net: int = Field(description="paid - refunded: the revenue kept")
    outstanding: int = Field(description="amount due - paid, at least 0")
    status: str
    provider: str | None
    deposit_state: str
    deposit_amount: int
    deposit_captured: int
    deposit_expires_at: datetime | None
    disputed: bool
    dispute_status: str | None
    last_failure: str | None


class BookingPayments(BaseModel):
    balance: Balance
    payments: list[PaymentEntry]


class IssueFilter(ConsistentQuery):
    kind: Literal["dispute", "failed", "all"] = "all"
    limit: int = Field(100, ge=1, le=500)


class Issue(BaseModel):
    booking_id: UUID
    customer_id: UUID
    type: str
    amount: int | None
    currency: str | None
    reference: str | None
    detail: dict[str, Any]
    recorded_at: datetime


class IssuePage(BaseModel):
    issues: list[Issue]
    disputed_bookings: list[UUID]


_BALANCE = ("booking_id, customer_id, currency, amount_due, paid, refunded, status, provider,"
            " deposit_state, deposit_amount, deposit_captured, deposit_expires_at, disputed,"
            " dispute_status, last_failure")


@api.get("/api/v1/bookings/{id}/payments", query=ConsistentQuery, response=BookingPayments,
         summary="A booking's payments and balance (its customer, or staff)")
async def get_booking_payments(request: web.Request, query: ConsistentQuery) -> web.Response:
    principal = current_principal(request)
    if principal is None:
        raise Problem(401, "Sign in to do this.")
    booking_id = path_uuid(request)
    await request.app[GATE].wait(READS, query.min_position)
    async with request.app[DATABASE].acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT {_BALANCE} FROM {BALANCES_TABLE} WHERE booking_id = $1", booking_id)
        if row is None or (not principal.is_staff
                           and row["customer_id"] != principal.account_id):
            raise web.HTTPNotFound()  # another customer's payments do not exist for them
        entries = await conn.fetch(
            "SELECT type, amount, currency, provider, reference, detail, recorded_at, position"
            f" FROM {ENTRIES_TABLE} WHERE booking_id = $1 ORDER BY position", booking_id)
    balance = dict(row)
    balance["net"] = balance["paid"] - balance["refunded"]
    balance["outstanding"] = max(balance["amount_due"] - balance["paid"], 0)
    view = BookingPayments(
        balance=Balance.model_validate(balance),
        payments=[PaymentEntry.model_validate({**dict(e), "detail": orjson.loads(e["detail"])})
                  for e in entries])
    return web.json_response(text=view.model_dump_json())


@api.get("/api/v1/payments/issues", query=IssueFilter, response=IssuePage,
         summary="Disputes and failed payments (staff)")
async def get_payment_issues(request: web.Request, query: IssueFilter) -> web.Response:
    types = {"dispute": ["Payment.DisputeOpened", "Payment.DisputeClosed"],
             "failed": ["Payment.Failed", "Payment.RefundFailed"]}
    wanted = types.get(query.kind) or [t for group in types.values() for t in group]
    await request.app[GATE].wait(READS, query.min_position)
    async with request.app[DATABASE].acquire() as conn:
        rows = await conn.fetch(
            "SELECT booking_id, customer_id, type, amount, currency, reference, detail,"
            f" recorded_at FROM {ENTRIES_TABLE} WHERE type = ANY($1::text[])"
            " ORDER BY position DESC LIMIT $2", wanted, query.limit)
        disputed = await conn.fetch(
            f"SELECT booking_id FROM {BALANCES_TABLE} WHERE disputed ORDER BY updated_at DESC")
    page = IssuePage(
        issues=[Issue.model_validate({**dict(r), "detail": orjson.loads(r["detail"])})
                for r in rows],
        disputed_bookings=[r["booking_id"] for r in disputed])
    return web.json_response(text=page.model_dump_json())
