"""The bookings read model: one row per booking, for customers' and staff's lists."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
import orjson

from midas.eventstore import RecordedEvent

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
        for event in events:
            d = event.data
            if event.type == "Booking.Held":
                await _held(conn, event)
            elif event.type == "Booking.ConciergeAssigned":
                await _update(conn, event, "concierge_id = $3::uuid", d["concierge_id"])
            elif event.type == "Booking.Confirmed":
                await _update(conn, event, "status = 'confirmed', amount_paid = $3",
                              d["amount_paid"])
            elif event.type == "Booking.Cancelled":
                await _update(
                    conn, event,
                    "status = 'cancelled', cancel_reason = $3, refund_percentage = $4,"
                    " refund_amount = $5",
                    d["reason"], d["refund_percentage"], d["refund_amount"],
                )
            else:
                await _update(conn, event, "status = $3", _STATUS[event.type])


async def _held(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    d, q = event.data, event.data["quote"]
    await conn.execute(
        f"INSERT INTO {BOOKINGS_TABLE} (id, item_id, customer_id, status, starts_at, ends_at,"
        " service_level, delivered_level, category, location, currency, total_due,"
        " security_deposit, quote, held_at, hold_expires_at, version, updated_at)"
        " VALUES ($1,$2::uuid,$3::uuid,'held',$4,$5,$6,$7,$8,$9,$10,$11,$12,$13::jsonb,$14,$15,"
        "$16,$17) ON CONFLICT DO NOTHING",
        event.stream_id, d["item_id"], d["customer_id"], _at(d["start"]), _at(d["end"]),
        d["service_level"], d["delivered_level"], q["category"], q["location_code"],
        q["currency"], q["total_due"], q["security_deposit"], orjson.dumps(q).decode(),
        _at(d["held_at"]), _at(d["hold_expires_at"]), event.version, event.recorded_at,
    )


async def _update(
    conn: asyncpg.Connection, event: RecordedEvent, assignments: str, *values: object
) -> None:
    await conn.execute(
        f"UPDATE {BOOKINGS_TABLE} SET {assignments}, version = $2,"
        f" updated_at = ${3 + len(values)} WHERE id = $1",
        event.stream_id, event.version, *values, event.recorded_at,
    )


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)
