"""Payment queries: a booking's payments and balance (its customer, or staff), and the staff
list of disputes and failed payments."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import orjson
from aiohttp import web
from pydantic import BaseModel, Field

from midas.domain.payment_events import (
    PAYMENT_DISPUTE_CLOSED,
    PAYMENT_DISPUTE_OPENED,
    PAYMENT_FAILED,
    PAYMENT_REFUND_FAILED,
)
from midas.http.api import Api
from midas.http.auth import current_principal
from midas.http.consistency import ConsistentQuery
from midas.http.context import path_uuid
from midas.http.keys import GATE
from midas.http.problems import Problem
from projections.instalments import DISPUTES_TABLE, INSTALMENTS_TABLE
from projections.payment_ledger import BALANCES_TABLE, ENTRIES_TABLE

api = Api(tag="payments", kind="query")
READS = ("payments", "instalments")


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


class Dispute(BaseModel):
    """A dispute (chargeback, PayPal reversal) of the payment that paid an instalment."""

    reference: str = Field(description="The provider's dispute id (PayPal: the payment's).")
    amount: int
    currency: str
    reason: str
    status: Literal["open", "won", "lost"] = Field(
        description="open, or its outcome: won (the money stays), lost (taken back)")
    opened_at: datetime
    closed_at: datetime | None


class Instalment(BaseModel):
    number: int
    amount: int
    currency: str
    due_at: datetime
    state: str
    overdue: bool
    disputes: list[Dispute] = Field(
        default_factory=list, description="Disputes of the payment that paid it.")


class BookingPayments(BaseModel):
    balance: Balance
    payments: list[PaymentEntry]
    instalments: list[Instalment] = Field(
        default_factory=list, description="The payment schedule, once a payment was asked.")


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
    db = await request.app[GATE].reader(READS, query.min_position)
    async with db.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT {_BALANCE} FROM {BALANCES_TABLE} WHERE booking_id = $1", booking_id)
        if row is None or (not principal.is_staff
                           and row["customer_id"] != principal.account_id):
            raise web.HTTPNotFound()  # another customer's payments do not exist for them
        entries = await conn.fetch(
            "SELECT type, amount, currency, provider, reference, detail, recorded_at, position"
            f" FROM {ENTRIES_TABLE} WHERE booking_id = $1 ORDER BY position", booking_id)
        instalments = await conn.fetch(
            "SELECT number, amount, currency, due_at, state, overdue, reference"
            f" FROM {INSTALMENTS_TABLE} WHERE booking_id = $1 ORDER BY number", booking_id)
        disputes = await conn.fetch(
            "SELECT reference, charge, amount, currency, reason, status, opened_at,"
            f" closed_at FROM {DISPUTES_TABLE} WHERE booking_id = $1 ORDER BY opened_at",
            booking_id)
    balance = dict(row)
    balance["net"] = balance["paid"] - balance["refunded"]
    balance["outstanding"] = max(balance["amount_due"] - balance["paid"], 0)
    view = BookingPayments(
        balance=Balance.model_validate(balance),
        payments=[PaymentEntry.model_validate({**dict(e), "detail": orjson.loads(e["detail"])})
                  for e in entries],
        instalments=[Instalment.model_validate({
            **dict(i), "disputes": [dict(d) for d in disputes
                                    if i["reference"] and d["charge"] == i["reference"]]})
            for i in instalments])
    return web.json_response(text=view.model_dump_json())


@api.get("/api/v1/payments/issues", query=IssueFilter, response=IssuePage,
         summary="Disputes and failed payments (staff)")
async def get_payment_issues(request: web.Request, query: IssueFilter) -> web.Response:
    types: dict[str, list[str]] = {"dispute": [PAYMENT_DISPUTE_OPENED, PAYMENT_DISPUTE_CLOSED],
             "failed": [PAYMENT_FAILED, PAYMENT_REFUND_FAILED]}
    wanted = types.get(query.kind) or [t for group in types.values() for t in group]
    db = await request.app[GATE].reader(READS, query.min_position)
    async with db.acquire() as conn:
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
