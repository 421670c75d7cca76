"""GDPR: erasure of an account's personal data by crypto-shredding.

The events stay exactly as stored (the hash chain keeps verifying); their personal
fields are encrypted with the account's key, which the erasure deletes in the same
transaction as the ``Account.Erased`` event. See docs/privacy.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, Field

from midas.domain.accounts import ERASED, Account
from midas.domain.errors import RuleViolation
from midas.error_reports import REPORTS_TABLE
from midas.eventstore import AppendResult, Repository, Statement, retry_on_conflict
from midas.http.api import Api
from midas.http.auth import require_principal
from midas.http.consistency import command_response
from midas.http.context import command_metadata, path_uuid
from midas.http.keys import ACCESS, DATABASE, REPOSITORY
from midas.http.security_events import record_for
from midas.security import credentials, pii, sessions
from midas.security.events import Kind

api = Api(tag="accounts", kind="command")


class ErasureResult(BaseModel):
    id: UUID
    position: int
    erased_now: bool = Field(description="False if the account had been erased already.")


def erase_error_reports(account_id: UUID) -> Statement:
    """Error reports stay counted (time, category, severity) but lose their free text: a
    client app's message or context may quote the person's data."""
    return Statement(f"UPDATE {REPORTS_TABLE} SET message = $2, context = '{{}}'::jsonb"
                     " WHERE account_id = $1", (account_id, ERASED))


# Modules keeping personal data of an account outside the log (state tables that are
# not rebuilt from events: notification outboxes, payment details...) register here what
# erases it; it runs in the append transaction of ``Account.Erased``.
ERASERS: list[Callable[[UUID], Statement]] = [erase_error_reports]


def erasure_statements(account_id: UUID) -> list[Statement]:
    """What changes with the ``Account.Erased`` event, in its append transaction."""
    return [
        *(eraser(account_id) for eraser in ERASERS),
        pii.shred_key(account_id),
        credentials.erase(account_id),
        sessions.revoke_all(account_id),
        # Snapshots are a cache; personal aggregates are not snapshotted any more, but
        # one taken before this scheme would hold the clear state.
        Statement("DELETE FROM snapshots WHERE stream_id = $1", (account_id,)),
    ]


async def erase_account(
    repo: Repository, account_id: UUID, metadata: dict[str, Any], *, actor: UUID | None = None
) -> AppendResult | None:
    """Erase an account's personal data; None if it was erased already (idempotent)."""

    async def attempt() -> AppendResult | None:
        account = await repo.get(account_id, cls=Account)
        if actor is not None and account.id == actor:
            raise RuleViolation("a super admin cannot erase their own account")
        if not account.erase():
            return None
        return await repo.save(account, metadata=metadata,
                               statements=erasure_statements(account_id))

    try:
        return await retry_on_conflict(attempt)
    finally:
        forget = getattr(repo.field_codec, "forget", None)
        if forget is not None:
            forget(account_id)


@api.post("/api/v1/accounts/{id}/erase",
          summary="Erase an account's personal data (GDPR, super admin)",
          response=ErasureResult, status=200)
async def post_account_erase(request: web.Request) -> web.Response:
    principal, account_id = require_principal(request), path_uuid(request)
    result = await erase_account(request.app[REPOSITORY], account_id,
                                 command_metadata(request), actor=principal.account_id)
    request.app[ACCESS].forget()
    erased_now = result is not None
    if erased_now:
        await record_for(request, Kind.ERASURE, account_id=account_id)
    if result is None:  # erased before: answer with where its last event is
        async with request.app[DATABASE].acquire() as conn:
            last = await conn.fetchval(
                "SELECT max(position) FROM events WHERE stream_id = $1", account_id
            )
        result = AppendResult([last or 0])
    return command_response(result, {"id": str(account_id), "erased_now": erased_now},
                            status=200)
