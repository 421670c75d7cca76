"""Customer commands (issue 7): concierge notes, an admin's tier decision, a message to a
segment; and the Account commands the loyalty process manager issues (points, tier raises).
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
from midas.eventstore import AppendResult, RecordedEvent, Repository, retry_on_conflict
from midas.http.api import Api
from midas.http.auth import require_principal
from midas.http.consistency import command_response
from midas.http.context import command_metadata, path_uuid
from midas.http.keys import CLOCK, DATABASE, REPOSITORY, SETTINGS
from midas.notifications.outbox import ACCOUNT, enqueue

api = Api(tag="customers", kind="command")
# Who is in a segment now: ``queries.customers.segment_members``, wired by midas.app
# (commands do not import the read side). (conn, segment, now) -> rows with customer_id.
SEGMENT_MEMBERS = web.AppKey("segment_members", Callable[..., Awaitable[list[Any]]])
PM_METADATA = {"actor": "loyalty", "actor_role": None}
IMMEDIATELY = datetime(2000, 1, 1, tzinfo=UTC)
SEGMENT_TEMPLATE = "segment_message"


# -- the loyalty process manager's commands -----------------------------------------------


def _meta(cause: RecordedEvent, what: str) -> dict[str, Any]:
    causation = f"{cause.stream_id}:{cause.version}"  # deterministic: the causing event
    return {**PM_METADATA, "cause": what, "causation_id": causation,
            "correlation_id": cause.metadata.get("correlation_id") or causation}


async def _change(repo: Repository, account_id: UUID, change: Callable[[Account], bool],
                  metadata: dict[str, Any]) -> AppendResult | None:
    async def attempt() -> AppendResult | None:
        account = await repo.get(account_id, cls=Account)
        if not change(account):
            return None
        return await repo.save(account, metadata=metadata)

    return await retry_on_conflict(attempt)


class AccountLoyalty:
    """``projections.loyalty.LoyaltyActions`` on the Account aggregate."""

    def __init__(self, repo: Callable[[], Repository], multipliers: Mapping[str, str]) -> None:
        self._repo = repo
        self._multipliers = dict(multipliers)

    async def award(self, customer: UUID, booking: UUID, whole_units: int, refunded: int,
                    paid: int, cause: RecordedEvent) -> object:
        def change(account: Account) -> bool:
            awarded = account.award_points(str(booking), whole_units, self._multipliers)
            revoked = refunded > 0 and account.revoke_points(str(booking), refunded, paid)
            return awarded or revoked

        return await _change(self._repo(), customer, change, _meta(cause, "booking completed"))

    async def revoke(self, customer: UUID, booking: UUID, refunded: int, paid: int,
                     cause: RecordedEvent) -> object:
        return await _change(self._repo(), customer,
                             lambda a: a.revoke_points(str(booking), refunded, paid),
                             _meta(cause, "refund"))

    async def raise_tier(self, customer: UUID, tier: str, net_spend: int, currency: str,
                         cause: RecordedEvent) -> object:
        return await _change(self._repo(), customer,
                             lambda a: a.raise_tier(tier, "lifetime net spend", net_spend,
                                                    currency),
                             _meta(cause, "spend threshold"))


# -- HTTP --------------------------------------------------------------------------------


class AddNote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000)


class SetTier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier: str = Field(pattern="^(" + "|".join(TIERS) + ")$")
    reason: str = Field(min_length=1, max_length=500)


class SegmentMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=20_000)


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
    queued: int


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
          response=MessageResult, status=202,
          summary="Email every active customer of a segment, through the outbox (admin)")
async def post_segment_message(request: web.Request, body: SegmentMessage) -> web.Response:
    segment = request.match_info["segment"]
    if segment not in SEGMENTS:
        raise web.HTTPNotFound()
    message_id = uuid.uuid4()
    limit = request.app[SETTINGS].segment_message_limit
    async with request.app[DATABASE].acquire() as conn:
        members = (await request.app[SEGMENT_MEMBERS](conn, segment, request.app[CLOCK]())
                   )[:limit]
        async with conn.transaction():
            for row in members:
                customer = row["customer_id"]
                await enqueue(conn, f"segment:{message_id}:{customer}", SEGMENT_TEMPLATE,
                              ACCOUNT, customer,
                              {"subject": body.subject, "body": body.body,
                               "segment": segment}, IMMEDIATELY)
    return web.json_response({"message_id": str(message_id), "segment": segment,
                              "queued": len(members)}, status=202)
