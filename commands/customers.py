"""Customer commands: concierge notes, an admin's tier decision, a message to a segment;
and the Account commands the loyalty process manager issues (points, tier raises).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from midas.domain.accounts import TIERS, Account
from midas.domain.segments import SEGMENTS
from midas.eventstore import AppendResult, Repository, retry_on_conflict
from midas.http.api import Api
from midas.http.auth import require_principal
from midas.http.consistency import command_response
from midas.http.context import command_metadata, path_uuid
from midas.http.fields import FreeText, Line, one_of
from midas.http.keys import CLOCK, DATABASE, REPOSITORY, SETTINGS
from midas.notifications.marketing import consenting_among
from midas.notifications.outbox import ACCOUNT, enqueue

api = Api(tag="customers", kind="command")
# Who is in a segment now: ``queries.customers.segment_members``, wired by midas.app
# (commands do not import the read side). (conn, segment, now) -> rows with customer_id.
SEGMENT_MEMBERS: web.AppKey[Callable[..., Awaitable[list[Any]]]] = web.AppKey(
    "segment_members")
IMMEDIATELY = datetime(2000, 1, 1, tzinfo=UTC)
SEGMENT_TEMPLATE = "segment_message"


# -- the loyalty process manager's commands -----------------------------------------------


async def _change(repo: Repository, account_id: UUID, change: Callable[[Account], bool],
                  metadata: dict[str, Any]) -> AppendResult | None:
    async def attempt() -> AppendResult | None:
        account = await repo.get(account_id, cls=Account)
        if not change(account):
            return None
        return await repo.save(account, metadata=metadata)

    return await retry_on_conflict(attempt)


async def award_points(repo: Repository, customer: UUID, booking: UUID, whole_units: int,
                       refunded: int, paid: int, multipliers: Mapping[str, str],
                       metadata: dict[str, Any]) -> AppendResult | None:
    """Points for a completed booking (once), less what a refund before completion took."""

    def change(account: Account) -> bool:
        awarded = account.award_points(str(booking), whole_units, multipliers)
        revoked = refunded > 0 and account.revoke_points(str(booking), refunded, paid)
        return awarded or revoked

    return await _change(repo, customer, change, metadata)


async def revoke_points(repo: Repository, customer: UUID, booking: UUID, refunded: int,
                        paid: int, metadata: dict[str, Any]) -> AppendResult | None:
    """Take back a completed booking's points in proportion to what was refunded."""
    return await _change(repo, customer,
                         lambda a: a.revoke_points(str(booking), refunded, paid), metadata)


async def raise_tier(repo: Repository, customer: UUID, tier: str, net_spend: int,
                     currency: str, metadata: dict[str, Any]) -> AppendResult | None:
    """Raise the customer's tier for their lifetime net spend (never lowered here)."""
    return await _change(repo, customer,
                         lambda a: a.raise_tier(tier, "lifetime net spend", net_spend,
                                                currency), metadata)


# -- HTTP --------------------------------------------------------------------------------


class AddNote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: FreeText = Field(min_length=1, max_length=4000)


class SetTier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier: str = Field(pattern="^(" + "|".join(TIERS) + ")$")
    reason: Line = Field(min_length=1, max_length=500)


class SegmentMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: Line = Field(min_length=1, max_length=200)
    body: FreeText = Field(min_length=1, max_length=20_000)


class NoteResult(BaseModel):
    id: UUID
    note_id: UUID
    position: int


class TierResult(BaseModel):
    id: UUID
    tier: str
    changed: bool
    position: int


class MessageResult(BaseModel):
    message_id: UUID
    segment: str
    queued: int = Field(description="members who agree to marketing: one email each")
    without_consent: int = Field(description="members left out: no marketing consent")


@api.post("/api/v1/customers/{id}/notes", body=AddNote, response=NoteResult,
          summary="Add a concierge note about a customer (staff)")
async def post_customer_note(request: web.Request, body: AddNote) -> web.Response:
    principal, customer = require_principal(request), path_uuid(request)
    note_id = uuid.uuid4()

    def change(account: Account) -> bool:
        account.add_note(str(note_id), body.text, str(principal.account_id))
        return True

    result = await _change(request.app[REPOSITORY], customer, change,
                           command_metadata(request))
    assert result is not None
    return command_response(result, {"id": str(customer), "note_id": str(note_id)})


@api.put("/api/v1/customers/{id}/tier", body=SetTier, response=TierResult,
         summary="Set a customer's tier, with a reason (admin)")
async def put_customer_tier(request: web.Request, body: SetTier) -> web.Response:
    customer = path_uuid(request)
    result = await _change(request.app[REPOSITORY], customer,
                           lambda a: a.set_tier(body.tier, body.reason),
                           command_metadata(request))
    if result is None:
        async with request.app[DATABASE].acquire() as conn:
            last = await conn.fetchval(
                "SELECT max(position) FROM events WHERE stream_id = $1", customer)
        result = AppendResult([last or 0])
        return command_response(result, {"id": str(customer), "tier": body.tier,
                                         "changed": False}, status=200)
    return command_response(result, {"id": str(customer), "tier": body.tier,
                                     "changed": True}, status=200)


@api.post("/api/v1/customers/segments/{segment}/messages", body=SegmentMessage,
          response=MessageResult, status=202, path_params={"segment": one_of(SEGMENTS)},
          summary="Email the active customers of a segment who agree to marketing, through"
                  " the outbox (admin)")
async def post_segment_message(request: web.Request, body: SegmentMessage) -> web.Response:
    segment = request.match_info["segment"]
    if segment not in SEGMENTS:
        raise web.HTTPNotFound()
    message_id = uuid.uuid4()
    limit = request.app[SETTINGS].segment_message_limit
    async with request.app[DATABASE].acquire() as conn:
        members = [r["customer_id"] for r in
                   await request.app[SEGMENT_MEMBERS](conn, segment, request.app[CLOCK]())]
        consenting = await consenting_among(conn, members)
        recipients = [c for c in members if c in consenting][:limit]
        async with conn.transaction():
            for customer in recipients:
                await enqueue(conn, f"segment:{message_id}:{customer}", SEGMENT_TEMPLATE,
                              ACCOUNT, customer,
                              {"subject": body.subject, "body": body.body,
                               "segment": segment}, IMMEDIATELY)
    return web.json_response({"message_id": str(message_id), "segment": segment,
                              "queued": len(recipients),
                              "without_consent": len(members) - len(consenting)}, status=202)
