"""The calendar read model: one entry per booking, buffer, maintenance window and external
block, with the iCalendar SEQUENCE it has reached, for the feeds.

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

from midas.domain.booking_events import (
    BOOKING_CHANGED,
    BOOKING_CONCIERGE_ASSIGNED,
    BOOKING_HELD,
    STATUS_AFTER,
)
from midas.domain.item_events import (
    ITEM_BLOCKED,
    ITEM_BUFFER_CHANGED,
    ITEM_MAINTENANCE_REMOVED,
    ITEM_MAINTENANCE_SCHEDULED,
    ITEM_RELEASED,
    ITEM_RESERVED,
    ITEM_UNBLOCKED,
)
from midas.eventstore import RecordedEvent
from projections.batch import RowChanges

ENTRIES_TABLE = "cal_entries"

_BOOKING_EVENTS = frozenset({BOOKING_HELD, BOOKING_CONCIERGE_ASSIGNED, BOOKING_CHANGED,
                             *STATUS_AFTER})
# Item events: the kind of entry they change, and whether they add ("busy") or remove it.
_ITEM_ENTRIES: dict[str, tuple[str, bool]] = {
    ITEM_RESERVED: ("buffer", True),
    ITEM_RELEASED: ("buffer", False),
    ITEM_MAINTENANCE_SCHEDULED: ("maintenance", True),
    ITEM_MAINTENANCE_REMOVED: ("maintenance", False),
    ITEM_BLOCKED: ("block", True),
    ITEM_UNBLOCKED: ("block", False),
}


class CalendarProjector:
    name = "calendar"
    tables = (ENTRIES_TABLE,)
    handles = frozenset({*_BOOKING_EVENTS, *_ITEM_ENTRIES, ITEM_BUFFER_CHANGED})

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        entries = await RowChanges.load(conn, ENTRIES_TABLE, "entry_id",
                                        (i for e in events for i in _entry_ids(e)),
                                        ("status", "sequence"))
        for event in events:
            if event.type in _BOOKING_EVENTS:
                _booking(entries, event)
            elif event.type == ITEM_BUFFER_CHANGED:
                _buffers(entries, event)
            else:
                _item(entries, event)
        await entries.write(conn)


def _entry_ids(event: RecordedEvent) -> list[str]:
    if event.type == ITEM_BUFFER_CHANGED:
        return [f"buffer-{b['booking_id']}" for b in ITEM_BUFFER_CHANGED.of(event)["bookings"]]
    return [_entry_id(event)]


def _buffers(entries: RowChanges, event: RecordedEvent) -> None:
    """A new buffer: each current booking's buffer entry moves its end (or goes, at 0)."""
    for booking in ITEM_BUFFER_CHANGED.of(event)["bookings"]:
        entry = f"buffer-{booking['booking_id']}"
        if booking["until"] != booking["end"]:
            _upsert(entries, entry, event, "buffer", _at(booking["end"]),
                    _at(booking["until"]), "")
        else:
            _remove(entries, entry, event.recorded_at)


def _entry_id(event: RecordedEvent) -> str:
    if event.type in _BOOKING_EVENTS:
        return f"booking-{event.stream_id}"
    return f"{_ITEM_ENTRIES[event.type][0]}-{_item_subject(event)}"


def _item_subject(event: RecordedEvent) -> str:
    """The booking, maintenance window or block an item event is about."""
    t = event.type
    if t == ITEM_RESERVED:
        return ITEM_RESERVED.of(event)["booking_id"]
    if t == ITEM_RELEASED:
        return ITEM_RELEASED.of(event)["booking_id"]
    if t == ITEM_MAINTENANCE_SCHEDULED:
        return ITEM_MAINTENANCE_SCHEDULED.of(event)["window_id"]
    if t == ITEM_MAINTENANCE_REMOVED:
        return ITEM_MAINTENANCE_REMOVED.of(event)["window_id"]
    if t == ITEM_BLOCKED:
        return ITEM_BLOCKED.of(event)["block_id"]
    return ITEM_UNBLOCKED.of(event)["block_id"]


def _booking(entries: RowChanges, event: RecordedEvent) -> None:
    t, entry = event.type, _entry_id(event)
    if t == BOOKING_HELD:
        d = BOOKING_HELD.of(event)
        entries.insert(entry, {
            "item_id": d["item_id"], "kind": "booking", "booking_id": event.stream_id,
            "customer_id": d["customer_id"], "status": "held", "starts_at": _at(d["start"]),
            "ends_at": _at(d["end"]), "sequence": event.version - 1,
            "updated_at": event.recorded_at})
        return
    if t == BOOKING_CHANGED:  # same UID, higher SEQUENCE: calendars move the event
        terms = BOOKING_CHANGED.of(event)["terms"]
        entries.update(entry, {"item_id": terms["item_id"], "starts_at": _at(terms["start"]),
                               "ends_at": _at(terms["end"]), "sequence": event.version - 1,
                               "updated_at": event.recorded_at})
        return
    change = ({"concierge_id": BOOKING_CONCIERGE_ASSIGNED.of(event)["concierge_id"]}
              if t == BOOKING_CONCIERGE_ASSIGNED else {"status": STATUS_AFTER[t]})
    entries.update(entry, {**change, "sequence": event.version - 1,
                           "updated_at": event.recorded_at})


def _item(entries: RowChanges, event: RecordedEvent) -> None:
    t, at, entry = event.type, event.recorded_at, _entry_id(event)
    if not _ITEM_ENTRIES[t][1]:
        _remove(entries, entry, at)
    elif t == ITEM_RESERVED:
        r = ITEM_RESERVED.of(event)
        if r["until"] != r["end"]:
            _upsert(entries, entry, event, "buffer", _at(r["end"]), _at(r["until"]), "")
    elif t == ITEM_MAINTENANCE_SCHEDULED:
        m = ITEM_MAINTENANCE_SCHEDULED.of(event)
        _upsert(entries, entry, event, "maintenance", _at(m["start"]), _at(m["end"]),
                m.get("note", ""))
    else:
        b = ITEM_BLOCKED.of(event)
        _upsert(entries, entry, event, "external_block", _at(b["start"]), _at(b["end"]),
                b.get("source", ""))


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
