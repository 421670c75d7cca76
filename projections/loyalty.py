"""The loyalty process manager (issue 7): tier raises and loyalty points as reactions.

A projector with its own checkpoint and state tables (``loy_bookings``, ``loy_spend``) that
issues commands on the customer's ``Account`` through ``LoyaltyActions`` (wired by
``midas.app`` from ``commands.customers``):

- ``Payment.Succeeded`` / ``Payment.Refunded`` move the customer's lifetime net spend in
  ``tier_currency``; reaching a threshold raises the tier (never lowered automatically).
- ``Booking.CheckedIn`` (completion) awards floor(whole units of rental + insurance x the
  tier multiplier); a refund of a completed booking takes back points in proportion to
  the amount refunded of the amount paid (refunds before completion are taken back at once).

The Account aggregate makes each effect idempotent (one award per booking, a cumulative
revocation, a tier only ever raised), so a replayed or retried batch changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from uuid import UUID

import asyncpg

from midas.domain.accounts import TIERS
from midas.domain.errors import DomainError
from midas.domain.payments import currency_exponent
from midas.eventstore import RecordedEvent
from midas.eventstore.repository import AggregateNotFound
from projections.batch import insert_rows

log = logging.getLogger(__name__)
BOOKINGS_TABLE, SPEND_TABLE = "loy_bookings", "loy_spend"
_HELD_COLUMNS = ("booking_id", "customer_id", "currency", "base")


class LoyaltyActions(Protocol):
    async def award(self, customer: UUID, booking: UUID, whole_units: int, refunded: int,
                    paid: int, cause: RecordedEvent) -> object: ...

    async def revoke(self, customer: UUID, booking: UUID, refunded: int, paid: int,
                     cause: RecordedEvent) -> object: ...

    async def raise_tier(self, customer: UUID, tier: str, net_spend: int, currency: str,
                         cause: RecordedEvent) -> object: ...


def tier_for(net_spend: int, thresholds: Mapping[str, int]) -> str:
    """The highest tier whose threshold the net spend has reached."""
    reached = "standard"
    for tier in TIERS[1:]:
        if tier in thresholds and net_spend >= thresholds[tier]:
            reached = tier
    return reached


class LoyaltyProcess:
    name = "loyalty"
    wants_metadata = True  # its commands carry the causing event's correlation id
    tables = (BOOKINGS_TABLE, SPEND_TABLE)
    handles = frozenset({"Booking.Held", "Booking.CheckedIn", "Payment.Succeeded",
                         "Payment.Refunded"})

    def __init__(self, actions: LoyaltyActions, thresholds: Mapping[str, int],
                 tier_currency: str = "USD") -> None:
        self._actions = actions
        self._thresholds = dict(thresholds)
        self._currency = tier_currency

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        held: list[tuple[Any, ...]] = []  # written together, before any later reaction
        for event in events:
            if event.type == "Booking.Held":
                q = event.data["quote"]
                held.append((event.stream_id, UUID(event.data["customer_id"]), q["currency"],
                             int(q["rental"]) + int(q["insurance"])))
                continue
            await insert_rows(conn, BOOKINGS_TABLE, _HELD_COLUMNS, held)
            held = []
            try:
                await self._apply(conn, event)
            except (DomainError, AggregateNotFound) as exc:
                # No such account (or the rule no longer allows it): nothing to do.
                log.info("loyalty reaction skipped", extra={
                    "position": event.position, "type": event.type, "reason": str(exc)})
        await insert_rows(conn, BOOKINGS_TABLE, _HELD_COLUMNS, held)

    async def _apply(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        d, t = event.data, event.type
        if t == "Booking.CheckedIn":
            row = await conn.fetchrow(
                f"UPDATE {BOOKINGS_TABLE} SET completed = true WHERE booking_id = $1"
                " RETURNING customer_id, currency, base, paid, refunded", event.stream_id)
            if row is None:
                return
            units = row["base"] // 10 ** currency_exponent(row["currency"])
            await self._actions.award(row["customer_id"], event.stream_id, units,
                                      row["refunded"], row["paid"], event)
        else:
            succeeded = t == "Payment.Succeeded"
            column = "paid" if succeeded else "refunded"
            booking, amount = UUID(d["booking_id"]), int(d["amount"])
            customer, currency = UUID(d["customer_id"]), d["currency"]
            spend = await conn.fetchrow(
                f"INSERT INTO {SPEND_TABLE} (customer_id, currency, {column}) VALUES ($1,$2,$3)"
                f" ON CONFLICT (customer_id, currency) DO UPDATE"
                f" SET {column} = {SPEND_TABLE}.{column} + EXCLUDED.{column}"
                " RETURNING paid - refunded AS net", customer, currency, amount)
            row = await conn.fetchrow(
                f"UPDATE {BOOKINGS_TABLE} SET {column} = {column} + $2 WHERE booking_id = $1"
                " RETURNING completed, paid, refunded", booking, amount)
            if succeeded:
                if currency == self._currency:
                    tier = tier_for(spend["net"], self._thresholds)
                    if tier != "standard":
                        await self._actions.raise_tier(customer, tier, spend["net"], currency,
                                                       event)
            elif row is not None and row["completed"]:
                await self._actions.revoke(customer, booking, row["refunded"], row["paid"],
                                           event)
