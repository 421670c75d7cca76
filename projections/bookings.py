"""The bookings read model: one row per booking, for customers' and staff's lists.

A batch reads which of its bookings exist, merges each booking's events in memory (held,
confirmed and checked out in one batch: one INSERT with the final status) and writes them
with a few statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from midas.eventstore import RecordedEvent
from projections.batch import RowChanges

BOOKINGS_TABLE = "bk_bookings"

_STATUS = {
    "Booking.Confirmed": "confirmed",
    "Booking.Expired": "expired",
    "Booking.CheckedOut": "active",
    "Booking.CheckedIn": "completed",
    "Booking.Cancelled": "cancelled",
}


class BookingsProjector:
    name = "bookings"
    tables = (BOOKINGS_TABLE,)
    handles = frozenset({"Booking.Held", "Booking.ConciergeAssigned", *_STATUS})

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        bookings = await RowChanges.load(conn, BOOKINGS_TABLE, "id",
                                         (e.stream_id for e in events))
        for event in events:
            if event.type == "Booking.Held":
                bookings.insert(event.stream_id, _held(event))
            else:
                bookings.update(event.stream_id, {
                    **_changes(event), "version": event.version,
                    "updated_at": event.recorded_at})
        await bookings.write(conn)


def _held(event: RecordedEvent) -> dict[str, Any]:
    d, q = event.data, event.data["quote"]
    return {
        "item_id": d["item_id"], "customer_id": d["customer_id"],  # uuid text
        "status": "held", "starts_at": _at(d["start"]), "ends_at": _at(d["end"]),
        "service_level": d["service_level"], "delivered_level": d["delivered_level"],
        "category": q["category"], "location": q["location_code"], "currency": q["currency"],
        "total_due": q["total_due"], "security_deposit": q["security_deposit"],
        "quote": orjson.dumps(q).decode(), "held_at": _at(d["held_at"]),
        "hold_expires_at": _at(d["hold_expires_at"]), "version": event.version,
        "updated_at": event.recorded_at,
    }


def _changes(event: RecordedEvent) -> dict[str, Any]:
    d = event.data
    if event.type == "Booking.ConciergeAssigned":
        return {"concierge_id": d["concierge_id"]}
    if event.type == "Booking.Confirmed":
        return {"status": "confirmed", "amount_paid": d["amount_paid"]}
    if event.type == "Booking.Cancelled":
        return {"status": "cancelled", "cancel_reason": d["reason"],
                "refund_percentage": d["refund_percentage"],
                "refund_amount": d["refund_amount"]}
    return {"status": _STATUS[event.type]}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)
