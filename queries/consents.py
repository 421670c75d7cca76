"""A person's consents: the terms agreed at registration, and marketing (given or
withdrawn, from the gate table written with the consent events). Customers read only
their own (anyone else's id is 404); staff read anyone's."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, Field

from midas.http.api import Api
from midas.http.auth import Principal, Role, require_principal
from midas.http.consistency import ConsistentQuery
from midas.http.context import path_uuid
from midas.http.keys import GATE
from midas.notifications.marketing import CONSENTS_TABLE
from projections.accounts import ACCOUNTS_TABLE

api = Api(tag="accounts", kind="query")
NO_STORE = {"Cache-Control": "no-store"}


class TermsConsent(BaseModel):
    version: str | None = Field(description="Privacy terms version agreed at registration.")
    given_at: datetime | None
    withdrawable: bool = Field(False, description="Withdrawn only by closing the account.")


class MarketingConsent(BaseModel):
    given: bool = Field(description="True when marketing emails may be sent now.")
    version: str | None
    given_at: datetime | None
    withdrawn_at: datetime | None
    withdrawn_via: str | None = Field(description="account, staff or unsubscribe_link")


class Consents(BaseModel):
    terms: TermsConsent
    marketing: MarketingConsent


class ConsentsView(Consents):
    account_id: UUID


def own_or_hidden(principal: Principal, account_id: UUID) -> bool:
    """True when the principal asks about themselves; others' ids are 404 to customers
    and auditors."""
    if principal.account_id == account_id:
        return True
    if principal.role in (Role.CUSTOMER, Role.AUDITOR):
        raise web.HTTPNotFound()
    return False


async def consents_of(conn: Any, account_id: UUID) -> Consents | None:
    """None when the accounts read model has no such account (yet)."""
    terms = await conn.fetchrow(
        f"SELECT consent_version, consent_at FROM {ACCOUNTS_TABLE} WHERE id = $1", account_id)
    if terms is None:
        return None
    row = await conn.fetchrow(
        f"SELECT version, given_at, withdrawn_at, withdrawn_via FROM {CONSENTS_TABLE}"
        " WHERE account_id = $1", account_id)
    marketing = MarketingConsent(
        given=row is not None and row["withdrawn_at"] is None,
        version=row and row["version"], given_at=row and row["given_at"],
        withdrawn_at=row and row["withdrawn_at"], withdrawn_via=row and row["withdrawn_via"])
    return Consents(terms=TermsConsent(version=terms["consent_version"],
                                       given_at=terms["consent_at"]), marketing=marketing)


@api.get("/api/v1/accounts/{id}/consents", query=ConsistentQuery, response=ConsentsView,
         summary="The terms and marketing consents of an account (own, or staff)")
async def get_consents(request: web.Request, query: ConsistentQuery) -> web.Response:
    principal, account_id = require_principal(request), path_uuid(request)
    own_or_hidden(principal, account_id)
    db = await request.app[GATE].reader(("accounts",), query.min_position)
    async with db.acquire() as conn:
        consents = await consents_of(conn, account_id)
    if consents is None:
        raise web.HTTPNotFound()
    view = ConsentsView(account_id=account_id, **dict(consents))
    return web.json_response(text=view.model_dump_json(), headers=NO_STORE)
