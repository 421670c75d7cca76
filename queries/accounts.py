"""Account queries: staff search accounts; everyone reads their own account."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, Field

from midas.http.api import Api
from midas.http.auth import Role, require_principal
from midas.http.consistency import ConsistentQuery
from midas.http.context import path_uuid
from midas.http.fields import Line
from midas.http.keys import GATE
from projections.accounts import ACCOUNTS_TABLE

api = Api(tag="accounts", kind="query")
READS = ("accounts",)


class AccountView(BaseModel):
    id: UUID
    email: str
    name: str
    phone: str | None
    role: str
    status: str
    google_linked: bool
    email_verified: bool
    pending_email: str | None = Field(
        description="A new email awaiting verification; it takes effect once verified.")
    consent_version: str | None
    consent_at: datetime | None
    version: int
    registered_at: datetime
    updated_at: datetime


class AccountPage(BaseModel):
    accounts: list[AccountView]
    next_after: UUID | None = Field(None, description="Pass as `after` for the next page.")


class AccountFilter(ConsistentQuery):
    q: Line | None = Field(None, min_length=1, max_length=200,
                          description="Part of the email or the name (case-insensitive).")
    role: Role | None = None
    status: str | None = Field(None, pattern=r"^(active|deactivated|erased)$")
    limit: int = Field(50, ge=1, le=500)
    after: UUID | None = Field(None, description="Return accounts with an id after this one.")


_COLUMNS = ", ".join(AccountView.model_fields)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@api.get("/api/v1/accounts", summary="Search accounts (staff)", query=AccountFilter,
         response=AccountPage)
async def list_accounts(request: web.Request, query: AccountFilter) -> web.Response:
    db = await request.app[GATE].reader(READS, query.min_position)
    async with db.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM {ACCOUNTS_TABLE}"
            " WHERE ($1::text IS NULL OR email ILIKE $1 OR name ILIKE $1)"
            " AND ($2::text IS NULL OR role = $2) AND ($3::text IS NULL OR status = $3)"
            " AND ($4::uuid IS NULL OR id > $4) ORDER BY id LIMIT $5",
            _like(query.q) if query.q else None, query.role.value if query.role else None,
            query.status, query.after, query.limit,
        )
    accounts: list[dict[str, Any]] = [dict(r) for r in rows]
    page = AccountPage.model_validate({
        "accounts": accounts,
        "next_after": accounts[-1]["id"] if len(accounts) == query.limit else None,
    })
    return web.json_response(text=page.model_dump_json())


@api.get("/api/v1/accounts/{id}", summary="One account (customers: only their own)",
         query=ConsistentQuery, response=AccountView)
async def get_account(request: web.Request, query: ConsistentQuery) -> web.Response:
    principal, account_id = require_principal(request), path_uuid(request)
    if principal.role == Role.CUSTOMER and principal.account_id != account_id:
        raise web.HTTPNotFound()
    db = await request.app[GATE].reader(READS, query.min_position)
    async with db.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM {ACCOUNTS_TABLE} WHERE id = $1", account_id
        )
    if row is None:
        raise web.HTTPNotFound()
    return web.json_response(text=AccountView.model_validate(dict(row)).model_dump_json())
