"""The notifications process manager: events -> outbox rows, committed with its checkpoint.

A projector like any other, so the runner applies each batch and moves the checkpoint in one
transaction: an email decided here is never lost and, with its deterministic dedupe key
(``type:stream:version``; ``reminder:booking``), never queued twice, even on a rebuild (the
outbox is not among its tables, so a rebuild re-inserts nothing). A customer's email names
the account only (``@account``): the address and name are read at delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from midas.eventstore import RecordedEvent
from midas.notifications.outbox import (
    ACCOUNT,
    BOOKINGS_TABLE,
    LEGAL,
    TIMERS_TABLE,
    booking_context,
    enqueue,
    enqueue_for_booking,
    reminder_key,
    unknown_booking,
)

log = logging.getLogger(__name__)
NAME = "notifications"
REMINDER_BEFORE = timedelta(hours=24)
IMMEDIATELY = datetime(2000, 1, 1, tzinfo=UTC)  # new rows are due at once, whatever the clock

_TIMER_ENDERS = frozenset({"Booking.Cancelled", "Booking.Expired", "Booking.CheckedOut",
                           "Booking.CheckedIn"})


class NotificationsProjector:
    name = NAME
    # The outbox is deliberately not here: a rebuild must never empty it (or resend).
    tables = (BOOKINGS_TABLE, TIMERS_TABLE)
    handles = frozenset({
        "Account.Registered",
        "Booking.Held", "Booking.Confirmed", "Booking.Cancelled", "Booking.Expired",
        "Booking.CheckedOut", "Booking.CheckedIn", "Booking.ConciergeAssigned",
        "Payment.Failed", "Payment.Refunded", "Payment.DisputeOpened",
    })

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            try:
                await self._apply(conn, event)
            except (KeyError, TypeError, ValueError):
                # A malformed event must not stall every later email: skip it, loudly.
                log.exception("notification skipped: unexpected event data",
                              extra={"position": event.position, "type": event.type})

    async def _apply(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        d, key = event.data, cause_key(event)
        if event.type == "Account.Registered":
            await enqueue(conn, key, "welcome", ACCOUNT, event.stream_id, {}, IMMEDIATELY)
            return
        if event.type == "Booking.Held":
            await _remember(conn, event)
            await self._to_customer(conn, key, "booking_held", event.stream_id)
        elif event.type == "Booking.Confirmed":
            await self._to_customer(conn, key, "booking_confirmed", event.stream_id,
                                    amount_paid=d["amount_paid"])
            due = datetime.fromisoformat(d["start"]) - REMINDER_BEFORE
            if due > datetime.fromisoformat(d["at"]):
                await conn.execute(
                    f"INSERT INTO {TIMERS_TABLE} (id, booking_id, due_at) VALUES ($1, $2, $3)"
                    " ON CONFLICT (id) DO NOTHING",
                    reminder_key(event.stream_id), event.stream_id, due,
                )
        elif event.type == "Booking.ConciergeAssigned":
            booking = await booking_context(conn, event.stream_id)
            if booking and booking[1].get("delivered_level") == "vvip":
                name = await conn.fetchval(
                    "SELECT name FROM acc_accounts WHERE id = $1", UUID(d["concierge_id"]))
                await self._to_customer(conn, key, "concierge_assigned", event.stream_id,
                                        concierge_name=name or "Your concierge")
        elif event.type == "Payment.Failed":
            await self._to_customer(conn, key, "payment_failed", UUID(d["booking_id"]),
                                    customer_id=d.get("customer_id"), amount=d.get("amount"),
                                    currency=d.get("currency"), reason=d.get("reason"))
        elif event.type == "Payment.Refunded":
            await self._to_customer(conn, key, "refund_processed", UUID(d["booking_id"]),
                                    customer_id=d.get("customer_id"), amount=d.get("amount"),
                                    currency=d.get("currency"))
        elif event.type == "Payment.DisputeOpened":
            booking = await booking_context(conn, UUID(d["booking_id"]))
            context = {**(booking[1] if booking else unknown_booking(d["booking_id"])),
                       "customer_id": d.get("customer_id"), "amount": d.get("amount"),
                       "reason": d.get("reason")}
            if d.get("currency"):
                context["currency"] = d["currency"]
            await enqueue(conn, key, "dispute_opened", LEGAL, None, context, IMMEDIATELY)
        if event.type == "Booking.Cancelled":
            await self._to_customer(conn, key, "booking_cancelled", event.stream_id,
                                    refund_amount=d["refund_amount"],
                                    refund_percentage=d["refund_percentage"])
        if event.type in _TIMER_ENDERS or event.type == "Booking.Cancelled":
            await conn.execute(f"DELETE FROM {TIMERS_TABLE} WHERE id = $1",
                               reminder_key(event.stream_id))

    async def _to_customer(
        self, conn: asyncpg.Connection, key: str, template: str, booking_id: UUID,
        customer_id: str | None = None, **extra: Any,
    ) -> None:
        await enqueue_for_booking(conn, key, template, booking_id, customer_id, extra,
                                  IMMEDIATELY)


def cause_key(event: RecordedEvent) -> str:
    return f"{event.type}:{event.stream_id}:{event.version}"


async def _remember(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    d, quote = event.data, event.data["quote"]
    item_id = UUID(d["item_id"])
    item_name = await conn.fetchval("SELECT name FROM inv_items WHERE id = $1", item_id)
    context = {
        "booking_id": str(event.stream_id), "item_id": str(item_id),
        "item_name": item_name or quote.get("category", "your booking"),
        "category": quote.get("category"), "location": quote.get("location_code"),
        "time_zone": quote.get("time_zone", "UTC"), "currency": quote.get("currency", "USD"),
        "start": d["start"], "end": d["end"], "hold_expires_at": d["hold_expires_at"],
        "total_due": quote.get("total_due"), "security_deposit": quote.get("security_deposit"),
        "delivered_level": d.get("delivered_level"),
    }
    await conn.execute(
        f"INSERT INTO {BOOKINGS_TABLE} (booking_id, customer_id, context)"
        " VALUES ($1, $2, $3::jsonb) ON CONFLICT (booking_id) DO NOTHING",
        event.stream_id, UUID(d["customer_id"]), orjson.dumps(context).decode(),
    )
