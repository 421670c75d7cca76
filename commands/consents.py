"""Consents: a person gives or withdraws their marketing consent; marketing emails'
one-click unsubscribe link (RFC 8058) withdraws it without signing in.

The terms consent is recorded at registration and cannot be withdrawn on its own: it is
the basis of the account, so withdrawing it means closing the account (deactivation) or
asking for erasure. See docs/security.md, "Consent and personal data".
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from html import escape
from typing import Annotated, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from commands.accounts import may_manage, reach
from midas.domain.accounts import Account
from midas.eventstore import AggregateNotFound, AppendResult, Repository, retry_on_conflict
from midas.http.api import Api
from midas.http.auth import require_principal
from midas.http.consistency import command_response
from midas.http.context import command_metadata, path_uuid
from midas.http.keys import CLOCK, DATABASE, REPOSITORY, SETTINGS
from midas.http.problems import Problem
from midas.notifications import marketing
from midas.notifications.marketing import VERSION_PATTERN
from midas.security.unsubscribe import TOKEN_LENGTH, tokens_from

api = Api(tag="accounts", kind="command")
unsubscribe_api = Api(tag="notifications", kind="command")
NO_STORE = {"Cache-Control": "no-store"}
# The unsubscribe pages: the token is in the URL, so no referrer leaves them, and search
# engines keep out.
PAGE_HEADERS = {**NO_STORE, "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


class GiveMarketing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=40, pattern=VERSION_PATTERN,
                         description="Marketing terms version (printable ASCII).")
    accepted: Literal[True]


class ConsentResult(BaseModel):
    id: UUID
    changed: bool = Field(description="False when the consent already stood as asked.")
    position: int


async def change_marketing(
    repo: Repository, account_id: UUID, change: Callable[[Account], bool],
    metadata: dict[str, object],
) -> AppendResult | None:
    """Apply ``change`` and save it with the consent gate row; None if nothing changed."""

    async def attempt() -> AppendResult | None:
        account = await repo.get(account_id, cls=Account)
        if not change(account):
            return None
        return await repo.save(account, metadata=metadata,
                               statements=marketing.consent_state(account))

    return await retry_on_conflict(attempt)


@api.post("/api/v1/accounts/{id}/consents/marketing", body=GiveMarketing,
          response=ConsentResult, status=200,
          summary="Give one's own consent to marketing emails (the person only)")
async def post_marketing_consent(request: web.Request, body: GiveMarketing) -> web.Response:
    principal, account_id = require_principal(request), path_uuid(request)
    reach(principal, account_id)
    now = request.app[CLOCK]()

    def give(account: Account) -> bool:
        if account.id != principal.account_id:
            raise Problem(403, "Only the person themselves can give consent to marketing.")
        return account.give_marketing_consent(body.version, now)

    result = await change_marketing(request.app[REPOSITORY], account_id, give,
                                    command_metadata(request))
    return await _result(request, account_id, result)


@api.delete("/api/v1/accounts/{id}/consents/marketing", response=ConsentResult,
            summary="Withdraw a marketing consent (the person; admins on a customer's"
                    " request)")
async def delete_marketing_consent(request: web.Request) -> web.Response:
    principal, account_id = require_principal(request), path_uuid(request)
    reach(principal, account_id)
    now = request.app[CLOCK]()

    def withdraw(account: Account) -> bool:
        may_manage(principal, account)
        via = "account" if account.id == principal.account_id else "staff"
        return account.withdraw_marketing_consent(now, via)

    result = await change_marketing(request.app[REPOSITORY], account_id, withdraw,
                                    command_metadata(request))
    return await _result(request, account_id, result)


@api.delete("/api/v1/accounts/{id}/consents/terms", status=409,
            summary="Always refused (409): the terms consent is withdrawn by closing the"
                    " account")
async def delete_terms_consent(request: web.Request) -> web.Response:
    principal, account_id = require_principal(request), path_uuid(request)
    reach(principal, account_id)
    await request.app[REPOSITORY].get(account_id, cls=Account)  # 404 when unknown
    raise Problem(
        409, "The privacy terms are the basis of the account and cannot be withdrawn on"
        " their own: to stop the processing, deactivate the account (POST"
        f" /api/v1/accounts/{account_id}/deactivate) or ask for the erasure of its personal"
        " data. Marketing consent is withdrawn on its own at"
        f" /api/v1/accounts/{account_id}/consents/marketing.",
        title="The terms consent cannot be withdrawn on its own")


async def _result(request: web.Request, account_id: UUID,
                  result: AppendResult | None) -> web.Response:
    if result is not None:
        return command_response(result, {"id": str(account_id), "changed": True}, status=200)
    async with request.app[DATABASE].acquire() as conn:
        last = await conn.fetchval("SELECT max(position) FROM events WHERE stream_id = $1",
                                   account_id)
    return command_response(AppendResult([last or 0]),
                            {"id": str(account_id), "changed": False}, status=200)


# -- the one-click unsubscribe link ---------------------------------------------------------


# The link's token: URL-safe base64 of its fixed length (anything else is 404).
UnsubscribeToken = Annotated[str, Field(pattern=f"^[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}$")]


def _account_of(request: web.Request) -> UUID:
    """The token's account; 404 for anything not issued by this service."""
    account = tokens_from(request.app[SETTINGS]).account_of(request.match_info["token"])
    if account is None:
        raise web.HTTPNotFound()
    return account


def _page(request: web.Request, heading: str, body: str) -> web.Response:
    brand = escape(request.app[SETTINGS].brand_name)
    html = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"robots\" content=\"noindex\">"
            f"<title>{brand}: {escape(heading)}</title></head>\n<body>"
            f"<h1>{escape(heading)}</h1>\n{body}\n</body></html>\n")
    return web.Response(text=html, content_type="text/html", headers=PAGE_HEADERS)


@unsubscribe_api.get(marketing.UNSUBSCRIBE_PATH, content_type="text/html",
                     path_params={"token": UnsubscribeToken},
                     summary="The unsubscribe link opened in a browser: a confirmation page"
                             " (changes nothing)")
async def get_unsubscribe(request: web.Request) -> web.Response:
    _account_of(request)
    brand = escape(request.app[SETTINGS].brand_name)
    return _page(request, f"Unsubscribe from {brand} marketing emails?", (
        "<p>Emails about your bookings and payments will still be sent.</p>\n"
        '<form method="post" action="">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'))


@unsubscribe_api.post(marketing.UNSUBSCRIBE_PATH, content_type="text/html", status=200,
                      path_params={"token": UnsubscribeToken},
                      summary="One-click unsubscribe (RFC 8058): withdraws the marketing"
                              " consent of the link's recipient; no sign-in")
async def post_unsubscribe(request: web.Request) -> web.Response:
    account_id = _account_of(request)
    now = request.app[CLOCK]()
    with suppress(AggregateNotFound):  # one answer whatever the state: the link tells nothing
        await change_marketing(request.app[REPOSITORY], account_id,
                               lambda a: a.withdraw_marketing_consent(now, "unsubscribe_link"),
                               command_metadata(request))
    return _page(request, "You are unsubscribed",
                 "<p>You will receive no more marketing emails. Emails about your bookings"
                 " and payments will still be sent.</p>")
