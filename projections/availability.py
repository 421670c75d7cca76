"""The availability read model: every occupation of every item (bookings with their
buffer, maintenance windows, external blocks), straight from the item's own events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

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
from projections.batch import as_columns, insert_rows

OCCUPATIONS_TABLE = "avail_occupations"


class AvailabilityProjector:
    name = "availability"
    tables = (OCCUPATIONS_TABLE,)
    handles = frozenset({
        ITEM_RESERVED, ITEM_RELEASED, ITEM_MAINTENANCE_SCHEDULED, ITEM_MAINTENANCE_REMOVED,
        ITEM_BLOCKED, ITEM_UNBLOCKED, ITEM_BUFFER_CHANGED,
    })

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        changes = _Occupations()
        for event in events:
            t = event.type
            if t == ITEM_RESERVED:
                r = ITEM_RESERVED.of(event)
                changes.occupy(event, r["booking_id"], "booking", r["start"], r["until"])
            elif t == ITEM_MAINTENANCE_SCHEDULED:
                m = ITEM_MAINTENANCE_SCHEDULED.of(event)
                changes.occupy(event, m["window_id"], "maintenance", m["start"], m["end"],
                               m.get("note", ""))
            elif t == ITEM_BLOCKED:
                b = ITEM_BLOCKED.of(event)
                changes.occupy(event, b["block_id"], "external_block", b["start"], b["end"],
                               b["source"])
            elif t == ITEM_UNBLOCKED:
                changes.free(event, ITEM_UNBLOCKED.of(event)["block_id"])
            elif t == ITEM_RELEASED:
                changes.free(event, ITEM_RELEASED.of(event)["booking_id"])
            elif t == ITEM_MAINTENANCE_REMOVED:
                changes.free(event, ITEM_MAINTENANCE_REMOVED.of(event)["window_id"])
            elif t == ITEM_BUFFER_CHANGED:  # bookings' occupations end elsewhere
                for booking in ITEM_BUFFER_CHANGED.of(event)["bookings"]:
                    changes.free(event, booking["booking_id"])
                    changes.occupy(event, booking["booking_id"], "booking", booking["start"],
                                   booking["until"])
        await changes.write(conn)


class _Occupations:
    """A batch's occupations, written with one DELETE and one INSERT.

    Applied one by one, each event was an INSERT .. ON CONFLICT DO NOTHING or a DELETE of
    its row. Per row the batch comes to the same: the row is deleted if any event freed
    it, then inserted with the first values occupied after the last free, if any (an
    insert over an existing row still does nothing).
    """

    def __init__(self) -> None:
        self._freed: dict[tuple[UUID, str], None] = {}
        self._occupied: dict[tuple[UUID, str], tuple[Any, ...]] = {}

    def occupy(self, event: RecordedEvent, occupation_id: str, kind: str, start: str,
               end: str, note: str = "") -> None:
        key = (event.stream_id, occupation_id)
        self._occupied.setdefault(key, (*key, kind, datetime.fromisoformat(start),
                                        datetime.fromisoformat(end), note))

    def free(self, event: RecordedEvent, occupation_id: str) -> None:
        key = (event.stream_id, occupation_id)
        self._occupied.pop(key, None)
        self._freed[key] = None

    async def write(self, conn: asyncpg.Connection) -> None:
        if self._freed:
            items, ids = as_columns(list(self._freed))
            await conn.execute(
                f"DELETE FROM {OCCUPATIONS_TABLE} o USING unnest($1::uuid[], $2::text[])"
                " AS f(item_id, occupation_id)"
                " WHERE o.item_id = f.item_id AND o.occupation_id = f.occupation_id",
                items, ids)
        await insert_rows(conn, OCCUPATIONS_TABLE, _COLUMNS, list(self._occupied.values()))


_COLUMNS = ("item_id", "occupation_id", "kind", "starts_at", "ends_at", "note")
