"""The loyalty process manager: tier raises and loyalty points as reactions.

A process manager with state tables of its own (``loy_bookings``, ``loy_spend``,
``loy_reporting_spend``), written in its batch's transaction, that issues the commands of
``commands.customers`` on the customer's ``Account``:

- ``Payment.Succeeded`` / ``Payment.Refunded`` move the customer's lifetime net spend per
  currency (``loy_spend``) and in the reporting currency (``loy_reporting_spend``: each
  amount converted at the rate recorded with its payment, or counted as it is when paid in
  that currency); reaching a threshold of ``tier_currency``, the reporting currency,
  raises the tier (never lowered automatically). A customer paying in two currencies
  reaches it with both.
- ``Booking.CheckedIn`` (completion) awards floor(whole units of rental + insurance x the
  tier multiplier); a refund of a completed booking takes back points in proportion to
  the amount refunded of the amount paid (refunds before completion are taken back at once).

The Account aggregate makes each effect idempotent (one award per booking, a cumulative
revocation, a tier only ever raised), so a replayed or retried batch changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

import asyncpg
from aiohttp import web

from commands.customers import award_points, raise_tier, revoke_points
from midas import tracing
from midas.domain.accounts import TIERS
from midas.domain.booking_events import BOOKING_CHANGED, BOOKING_CHECKED_IN, BOOKING_HELD
from midas.domain.errors import DomainError
from midas.domain.payment_events import PAYMENT_REFUNDED, PAYMENT_SUCCEEDED, payment_facts
from midas.domain.payments import currency_exponent
from midas.eventstore import RecordedEvent, Repository
from midas.eventstore.repository import AggregateNotFound
from midas.http.keys import REPOSITORY, SETTINGS
from process_managers import caused_by
from projections.batch import insert_rows
from projections.loyalty_tables import BOOKINGS_TABLE, REPORTING_SPEND_TABLE, SPEND_TABLE

log = logging.getLogger(__name__)
ACTOR = "loyalty"
_HELD_COLUMNS = ("booking_id", "customer_id", "currency", "base")


def manager(app: web.Application) -> LoyaltyProcess:
    settings = app[SETTINGS]
    return LoyaltyProcess(lambda: app[REPOSITORY], settings.loyalty_multipliers,
                          settings.tier_thresholds, settings.tier_currency)


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
    traces_events = True  # each reaction is a span in the trace of its event
    tables = (BOOKINGS_TABLE, SPEND_TABLE, REPORTING_SPEND_TABLE)
    handles = frozenset({BOOKING_HELD, BOOKING_CHANGED, BOOKING_CHECKED_IN, PAYMENT_SUCCEEDED,
                         PAYMENT_REFUNDED})

    def __init__(self, repo: Callable[[], Repository], multipliers: Mapping[str, str],
                 thresholds: Mapping[str, int], tier_currency: str = "USD") -> None:
        self._repo = repo
        self._multipliers = dict(multipliers)
        self._thresholds = dict(thresholds)
        self._currency = tier_currency

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        held: list[tuple[Any, ...]] = []  # written together, before any later reaction
        for event in events:
            if event.type == BOOKING_HELD:
                d = BOOKING_HELD.of(event)
                q = d["quote"]
                held.append((event.stream_id, UUID(d["customer_id"]), q["currency"],
                             int(q["rental"]) + int(q["insurance"])))
                continue
            await insert_rows(conn, BOOKINGS_TABLE, _HELD_COLUMNS, held)
            held = []
            try:
                with tracing.event_span(f"{self.name} {event.type}", event.metadata, {
                        "midas.event.position": event.position}):
                    await self._apply(conn, event)
            except (DomainError, AggregateNotFound) as exc:
                # No such account (or the rule no longer allows it): nothing to do.
                log.info("loyalty reaction skipped", extra={
                    "position": event.position, "type": event.type, "reason": str(exc)})
        await insert_rows(conn, BOOKINGS_TABLE, _HELD_COLUMNS, held)

    async def _apply(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        t = event.type
        if t == BOOKING_CHANGED:  # points follow the changed rental + insurance
            q = BOOKING_CHANGED.of(event)["terms"]["quote"]
            await conn.execute(f"UPDATE {BOOKINGS_TABLE} SET base = $2 WHERE booking_id = $1",
                               event.stream_id, int(q["rental"]) + int(q["insurance"]))
            return
        if t == BOOKING_CHECKED_IN:
            row = await conn.fetchrow(
                f"UPDATE {BOOKINGS_TABLE} SET completed = true WHERE booking_id = $1"
                " RETURNING customer_id, currency, base, paid, refunded", event.stream_id)
            if row is None:
                return
            units = row["base"] // 10 ** currency_exponent(row["currency"])
            await award_points(self._repo(), row["customer_id"], event.stream_id, units,
                               row["refunded"], row["paid"], self._multipliers,
                               caused_by(ACTOR, "booking completed", event))
        else:
            succeeded, d = t == PAYMENT_SUCCEEDED, payment_facts(event)
            column = "paid" if succeeded else "refunded"
            booking, amount = UUID(d["booking_id"]), int(d["amount"])
            customer, currency = UUID(d["customer_id"]), d["currency"]
            await conn.execute(
                f"INSERT INTO {SPEND_TABLE} (customer_id, currency, {column}) VALUES ($1,$2,$3)"
                f" ON CONFLICT (customer_id, currency) DO UPDATE"
                f" SET {column} = {SPEND_TABLE}.{column} + EXCLUDED.{column}",
                customer, currency, amount)
            row = await conn.fetchrow(
                f"UPDATE {BOOKINGS_TABLE} SET {column} = {column} + $2 WHERE booking_id = $1"
                " RETURNING completed, paid, refunded", booking, amount)
            # Paid in the reporting currency, or converted at the payment's recorded rate
            # (no rate recorded: counted in its own currency only).
            recorded = (PAYMENT_SUCCEEDED.of(event) if succeeded
                        else PAYMENT_REFUNDED.of(event)).get("reporting")
            in_currency, in_amount = ((recorded["currency"], recorded["amount"]) if recorded
                                      else (currency, amount))
            spend = await conn.fetchrow(
                f"INSERT INTO {REPORTING_SPEND_TABLE} (customer_id, currency, {column})"
                f" VALUES ($1,$2,$3) ON CONFLICT (customer_id, currency) DO UPDATE"
                f" SET {column} = {REPORTING_SPEND_TABLE}.{column} + EXCLUDED.{column}"
                " RETURNING paid - refunded AS net", customer, in_currency,
                int(in_amount))
            if succeeded:
                if in_currency == self._currency:
                    tier = tier_for(spend["net"], self._thresholds)
                    if tier != "standard":
                        await raise_tier(self._repo(), customer, tier, spend["net"],
                                         self._currency,
                                         caused_by(ACTOR, "spend threshold", event))
            elif row is not None and row["completed"]:
                await revoke_points(self._repo(), customer, booking, row["refunded"],
                                    row["paid"], caused_by(ACTOR, "refund", event))
