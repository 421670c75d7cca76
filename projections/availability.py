"""The availability read model: every occupation of every item (bookings with their
buffer, maintenance windows, external blocks), straight from the item's own events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from midas.eventstore import RecordedEvent
from projections.batch import as_columns, insert_rows

OCCUPATIONS_TABLE = "avail_occupations"


class AvailabilityProjector:
    name = "availability"
    tables = (OCCUPATIONS_TABLE,)
    handles = frozenset({
        "Item.Reserved", "Item.Released", "Item.MaintenanceScheduled", "Item.MaintenanceRemoved",
        "Item.Blocked", "Item.Unblocked",
    })

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        changes = _Occupations()
        for event in events:
            d = event.data
            if event.type == "Item.Reserved":
                changes.occupy(event, d["booking_id"], "booking", d["start"], d["until"])
            elif event.type == "Item.MaintenanceScheduled":
                changes.occupy(event, d["window_id"], "maintenance", d["start"], d["end"],
                               d.get("note", ""))
            elif event.type == "Item.Blocked":
                changes.occupy(event, d["block_id"], "external_block", d["start"], d["end"],
                               d["source"])
            elif event.type == "Item.Unblocked":
                changes.free(event, d["block_id"])
            elif event.type == "Item.Released":
                changes.free(event, d["booking_id"])
            elif event.type == "Item.MaintenanceRemoved":
                changes.free(event, d["window_id"])
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
