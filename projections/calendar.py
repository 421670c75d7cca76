"""The calendar read model: one entry per booking, buffer, maintenance window and external
block, with the iCalendar SEQUENCE it has reached, for the feeds (issue 9).

A booking's SEQUENCE is its stream version - 1 (0 when held, raised by every later event).
Item-derived entries (buffers, maintenance, blocks) start at 0 and are raised on every
change; removing one keeps the row with status `removed`, so feeds can announce it as
CANCELLED with a higher SEQUENCE.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from midas.eventstore import RecordedEvent

ENTRIES_TABLE = "cal_entries"

_BOOKING_STATUS = {
    "Booking.Confirmed": "confirmed",
    "Booking.Expired": "expired",
    "Booking.CheckedOut": "active",
    "Booking.CheckedIn": "completed",
    "Booking.Cancelled": "cancelled",
}

_UPSERT = (
    f"INSERT INTO {ENTRIES_TABLE} (entry_id, item_id, kind, status, starts_at, ends_at, note,"
    " sequence, updated_at) VALUES ($1, $2, $3, 'busy', $4, $5, $6, 0, $7)"
    " ON CONFLICT (entry_id) DO UPDATE SET status = 'busy', starts_at = EXCLUDED.starts_at,"
    f" ends_at = EXCLUDED.ends_at, note = EXCLUDED.note, sequence = {ENTRIES_TABLE}.sequence + 1,"
    " updated_at = EXCLUDED.updated_at"
)
_REMOVE = (
    f"UPDATE {ENTRIES_TABLE} SET status = 'removed', sequence = sequence + 1, updated_at = $2"
    " WHERE entry_id = $1 AND status <> 'removed'"
)


class CalendarProjector:
    name = "calendar"
    tables = (ENTRIES_TABLE,)
    handles = frozenset({
        "Booking.Held", "Booking.ConciergeAssigned", *_BOOKING_STATUS,
        "Item.Reserved", "Item.Released", "Item.MaintenanceScheduled",
        "Item.MaintenanceRemoved", "Item.Blocked", "Item.Unblocked",
    })

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            d, t, at = event.data, event.type, event.recorded_at
            if t == "Booking.Held":
                await conn.execute(
                    f"INSERT INTO {ENTRIES_TABLE} (entry_id, item_id, kind, booking_id,"
                    " customer_id, status, starts_at, ends_at, sequence, updated_at)"
                    " VALUES ($1, $2::uuid, 'booking', $3, $4::uuid, 'held', $5, $6, $7, $8)"
                    " ON CONFLICT DO NOTHING",
                    f"booking-{event.stream_id}", d["item_id"], event.stream_id,
                    d["customer_id"], _at(d["start"]), _at(d["end"]), event.version - 1, at)
            elif t == "Booking.ConciergeAssigned":
                await conn.execute(
                    f"UPDATE {ENTRIES_TABLE} SET concierge_id = $2::uuid, sequence = $3,"
                    " updated_at = $4 WHERE entry_id = $1",
                    f"booking-{event.stream_id}", d["concierge_id"], event.version - 1, at)
            elif t in _BOOKING_STATUS:
                await conn.execute(
                    f"UPDATE {ENTRIES_TABLE} SET status = $2, sequence = $3, updated_at = $4"
                    " WHERE entry_id = $1",
                    f"booking-{event.stream_id}", _BOOKING_STATUS[t], event.version - 1, at)
            elif t == "Item.Reserved":
                if d["until"] != d["end"]:
                    await conn.execute(_UPSERT, f"buffer-{d['booking_id']}", event.stream_id,
                                       "buffer", _at(d["end"]), _at(d["until"]), "", at)
            elif t == "Item.Released":
                await conn.execute(_REMOVE, f"buffer-{d['booking_id']}", at)
            elif t == "Item.MaintenanceScheduled":
                await conn.execute(_UPSERT, f"maintenance-{d['window_id']}", event.stream_id,
                                   "maintenance", _at(d["start"]), _at(d["end"]),
                                   d.get("note", ""), at)
            elif t == "Item.MaintenanceRemoved":
                await conn.execute(_REMOVE, f"maintenance-{d['window_id']}", at)
            elif t == "Item.Blocked":
                await conn.execute(_UPSERT, f"block-{d['block_id']}", event.stream_id,
                                   "external_block", _at(d["start"]), _at(d["end"]),
                                   d.get("source", ""), at)
            elif t == "Item.Unblocked":
                await conn.execute(_REMOVE, f"block-{d['block_id']}", at)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)
