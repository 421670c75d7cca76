"""Email verification: links sent by email, their confirmation and resends, and an address
taken from an unverified claim by the account that proved control of it.

Rules and reasons: docs/security.md, "Account linking and email verification".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from commands.account_store import change_account, save_accounts
from midas.config import Settings
from midas.domain.accounts import Account, EmailTaken, VerificationRefused
from midas.eventstore import AppendResult, Repository, Statement, retry_on_conflict
from midas.http.api import Api
from midas.http.auth import require_principal
from midas.http.consistency import command_response
from midas.http.context import command_metadata
from midas.http.keys import ACCESS, CLOCK, DATABASE, LIMITER, REPOSITORY, SETTINGS
from midas.http.ratelimit import RATE_LIMITED, enforce
from midas.security import credentials, sessions, verification

api = Api(tag="auth", kind="command", idempotent=False)  # the body holds a link's token

# Why an address left an account (the ``reason`` of ``Account.EmailReleased``).
BY_GOOGLE = "verified_by_google"
BY_EMAIL_CHANGE = "verified_by_email_change"
BY_LAPSE = "registered_after_lapse"


class VerifyEmail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr = Field(min_length=1, max_length=256,
                             description="The token in the fragment of the emailed link.")


class EmailVerifiedResult(BaseModel):
    id: UUID
    position: int
    email: str = Field(description="The account's email, now verified.")


class LinkSent(BaseModel):
    id: UUID
    position: int


# -- links -------------------------------------------------------------------------------


def new_link(settings: Settings, now: datetime) -> tuple[UUID, datetime]:
    """A new verification's id and expiry."""
    return verification.new_id(), now + timedelta(seconds=settings.email_verification_ttl_s)


def link_statements(
    settings: Settings, account: Account, verification_id: UUID, email: str,
    expires_at: datetime,
) -> list[Statement]:
    """The link's row; for another address than the current one, the current one is told."""
    previous = account.email if email != account.email else None
    return verification.issue(settings, verification_id, account.id, email, previous,
                              expires_at)


async def limit_links(request: web.Request, account_id: UUID) -> None:
    """Verification emails an account asks for (resends, email changes): per window."""
    settings = request.app[SETTINGS]
    await enforce(request.app[LIMITER], f"verification-email:account:{account_id}",
                  settings.verification_email_limit, settings.verification_email_window_s,
                  "verification emails")


def request_change(
    settings: Settings, account: Account, email: str, now: datetime
) -> list[Statement]:
    """A pending email change and its link to the new address (nothing if it is the same)."""
    verification_id, expires_at = new_link(settings, now)
    new_email = account.request_email_change(str(verification_id), email, expires_at)
    if new_email is None:
        return []
    return link_statements(settings, account, verification_id, new_email, expires_at)


# -- addresses held by unverified claims ----------------------------------------------------


def give_up(holder: Account, claimed_by: UUID, reason: str) -> list[Statement]:
    """``holder`` (unverified) gives its email up to ``claimed_by``, which proved control
    of it: the account is deactivated, its password, Google link, sessions and links end.
    These statements go before the claimant's, so the address is free when it is taken."""
    holder.release_email(reason, str(claimed_by))
    return [credentials.release(holder.id), sessions.revoke_all(holder.id),
            verification.revoke_all(holder.id)]


async def save_claiming(
    app: web.Application, account: Account, statements: list[Statement],
    holder: Account | None, reason: str, metadata: dict[str, Any],
) -> AppendResult:
    """Save ``account`` with its email claim; an unverified ``holder`` of the address gives
    it up in the same append (``give_up``)."""
    repo = app[REPOSITORY]
    if holder is None:
        return await save_accounts(repo, [account], statements, metadata)
    released = give_up(holder, account.id, reason)
    result = await save_accounts(repo, [holder, account], released + statements, metadata)
    app[ACCESS].forget()  # the holder is inactive now: this process at once
    return result


async def unverified_holder(
    repo: Repository, conn: asyncpg.Connection, email: str, account_id: UUID
) -> Account | None:
    """Another account holding ``email`` that would give it up to a proven claim; None if
    nobody else holds it; ``EmailTaken`` if a verified or staff account does."""
    holder_id = await credentials.email_owner(conn, email)
    if holder_id is None or holder_id == account_id:
        return None
    holder = await repo.get(holder_id, cls=Account)
    if not holder.is_customer or holder.email_verified:
        raise EmailTaken()
    return holder


async def confirm(
    request: web.Request, link: verification.Link, metadata: dict[str, Any]
) -> tuple[Account, AppendResult]:
    """Verify with ``link``: the email (a pending change's) becomes the verified one."""
    app, now = request.app, request.app[CLOCK]()
    repo = app[REPOSITORY]

    async def attempt() -> tuple[Account, AppendResult]:
        account = await repo.get(link.account_id, cls=Account)
        account.verify_email(str(link.verification_id), now)
        statements = [verification.mark_used(link.verification_id),
                      credentials.set_fields(account.id, email=account.email,
                                             email_verified=True)]
        async with app[DATABASE].acquire() as conn:
            holder = await unverified_holder(repo, conn, account.email, account.id)
        return account, await save_claiming(app, account, statements, holder, BY_EMAIL_CHANGE,
                                            metadata)

    return await retry_on_conflict(attempt)


# -- routes ------------------------------------------------------------------------------


@api.post("/api/v1/auth/verify-email", summary="Confirm an email with its link's token",
          body=VerifyEmail, response=EmailVerifiedResult, status=200,
          problems={410: "The link is not valid (any more) for this account: used, expired,"
                         " replaced by a newer one, or another account's"})
async def post_verify_email(request: web.Request, body: VerifyEmail) -> web.Response:
    principal = require_principal(request)
    async with request.app[DATABASE].acquire() as conn:
        link = await verification.find(conn, body.token.get_secret_value())
    # A link works only in a session of its own account: clicking a link that someone
    # else's registration sent to one's address verifies nothing.
    if link is None or link.account_id != principal.account_id:
        raise VerificationRefused()
    account, result = await confirm(request, link, command_metadata(request))
    request.app[ACCESS].forget()  # holds read the verified flag from the access cache
    return command_response(result, {"id": str(account.id), "email": account.email},
                            status=200)


@api.post("/api/v1/auth/verify-email/resend", summary="Send a new verification link",
          response=LinkSent, status=200,
          problems={**RATE_LIMITED, 404: "No such account (it was removed)",
                    409: "The email is verified already, or there is nothing to confirm"})
async def post_verify_email_resend(request: web.Request) -> web.Response:
    principal, app = require_principal(request), request.app
    settings, now = app[SETTINGS], app[CLOCK]()
    await limit_links(request, principal.account_id)

    def resend(account: Account) -> list[Statement]:
        verification_id, expires_at = new_link(settings, now)
        email = account.request_email_verification(str(verification_id), expires_at)
        return link_statements(settings, account, verification_id, email, expires_at)

    result = await change_account(app[REPOSITORY], principal.account_id, resend,
                                  command_metadata(request))
    return command_response(result, {"id": str(principal.account_id)}, status=200)
