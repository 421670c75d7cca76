"""The calendar read model: one entry per booking, buffer, maintenance window and external
block, with the iCalendar SEQUENCE it has reached, for the feeds (issue 9).

A booking's SEQUENCE is its stream version - 1 (0 when held, raised by every later event).
Item-derived entries (buffers, maintenance, blocks) start at 0 and are raised on every
change; removing one keeps the row with status `removed`, so feeds can announce it as
CANCELLED with a higher SEQUENCE.

A batch reads the entries its events touch once, applies the events to them in memory and
writes each changed entry once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from midas.eventstore import RecordedEvent
from projections.batch import RowChanges

ENTRIES_TABLE = "cal_entries"

_BOOKING_STATUS = {
    "Booking.Confirmed": "confirmed",
    "Booking.Expired": "expired",
    "Booking.CheckedOut": "active",
    "Booking.CheckedIn": "completed",
    "Booking.Cancelled": "cancelled",
}
# Item events: the entry they change, and whether they add ("busy") or remove it.
_ITEM_ENTRIES = {
    "Item.Reserved": ("buffer", "booking_id", True),
    "Item.Released": ("buffer", "booking_id", False),
    "Item.MaintenanceScheduled": ("maintenance", "window_id", True),
    "Item.MaintenanceRemoved": ("maintenance", "window_id", False),
    "Item.Blocked": ("block", "block_id", True),
    "Item.Unblocked": ("block", "block_id", False),
}


class CalendarProjector:
    name = "calendar"
    tables = (ENTRIES_TABLE,)
    handles = frozenset({"Booking.Held", "Booking.ConciergeAssigned", *_BOOKING_STATUS,
                         *_ITEM_ENTRIES})

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        entries = await RowChanges.load(conn, ENTRIES_TABLE, "entry_id",
                                        (_entry_id(e) for e in events), ("status", "sequence"))
        for event in events:
            if event.type.startswith("Booking."):
                _booking(entries, event)
            else:
                _item(entries, event)
        await entries.write(conn)


def _entry_id(event: RecordedEvent) -> str:
    if event.type.startswith("Booking."):
        return f"booking-{event.stream_id}"
    prefix, id_field, _ = _ITEM_ENTRIES[event.type]
    return f"{prefix}-{event.data[id_field]}"


def _booking(entries: RowChanges, event: RecordedEvent) -> None:
    d, t, entry = event.data, event.type, _entry_id(event)
    if t == "Booking.Held":
        entries.insert(entry, {
            "item_id": d["item_id"], "kind": "booking", "booking_id": event.stream_id,
            "customer_id": d["customer_id"], "status": "held", "starts_at": _at(d["start"]),
            "ends_at": _at(d["end"]), "sequence": event.version - 1,
            "updated_at": event.recorded_at})
        return
    change = ({"concierge_id": d["concierge_id"]} if t == "Booking.ConciergeAssigned"
              else {"status": _BOOKING_STATUS[t]})
    entries.update(entry, {**change, "sequence": event.version - 1,
                           "updated_at": event.recorded_at})


def _item(entries: RowChanges, event: RecordedEvent) -> None:
    d, t, at, entry = event.data, event.type, event.recorded_at, _entry_id(event)
    if not _ITEM_ENTRIES[t][2]:
        _remove(entries, entry, at)
    elif t == "Item.Reserved":
        if d["until"] != d["end"]:
            _upsert(entries, entry, event, "buffer", _at(d["end"]), _at(d["until"]), "")
    elif t == "Item.MaintenanceScheduled":
        _upsert(entries, entry, event, "maintenance", _at(d["start"]), _at(d["end"]),
                d.get("note", ""))
    else:
        _upsert(entries, entry, event, "external_block", _at(d["start"]), _at(d["end"]),
                d.get("source", ""))


def _upsert(entries: RowChanges, entry: str, event: RecordedEvent, kind: str,
            starts: datetime, ends: datetime, note: Any) -> None:
    """A busy entry, new (SEQUENCE 0) or changed (SEQUENCE raised)."""
    busy = {"status": "busy", "starts_at": starts, "ends_at": ends, "note": note,
            "updated_at": event.recorded_at}
    row = entries.get(entry)
    if row is None:
        entries.insert(entry, {"item_id": event.stream_id, "kind": kind, **busy,
                               "sequence": 0})
    else:
        entries.update(entry, {**busy, "sequence": row["sequence"] + 1})


def _remove(entries: RowChanges, entry: str, at: datetime) -> None:
    """Kept with status `removed` and a raised SEQUENCE, for feeds to announce."""
    row = entries.get(entry)
    if row is not None and row["status"] != "removed":
        entries.update(entry, {"status": "removed", "sequence": row["sequence"] + 1,
                               "updated_at": at})


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)
