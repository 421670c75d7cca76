"""The availability read model: every occupation of every item (bookings with their
buffer, maintenance windows, external blocks), straight from the item's own events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from midas.eventstore import RecordedEvent

OCCUPATIONS_TABLE = "avail_occupations"


class AvailabilityProjector:
    name = "availability"
    tables = (OCCUPATIONS_TABLE,)
    handles = frozenset({
        "Item.Reserved", "Item.Released", "Item.MaintenanceScheduled", "Item.MaintenanceRemoved",
        "Item.Blocked", "Item.Unblocked",
    })

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            d = event.data
            if event.type == "Item.Reserved":
                await _occupy(conn, event, d["booking_id"], "booking", d["start"], d["until"])
            elif event.type == "Item.MaintenanceScheduled":
                await _occupy(conn, event, d["window_id"], "maintenance", d["start"], d["end"],
                              d.get("note", ""))
            elif event.type == "Item.Blocked":
                await _occupy(conn, event, d["block_id"], "external_block", d["start"], d["end"],
                              d["source"])
            elif event.type == "Item.Unblocked":
                await _free(conn, event, d["block_id"])
            elif event.type == "Item.Released":
                await _free(conn, event, d["booking_id"])
            elif event.type == "Item.MaintenanceRemoved":
                await _free(conn, event, d["window_id"])


async def _occupy(
    conn: asyncpg.Connection, event: RecordedEvent, occupation_id: str, kind: str,
    start: str, end: str, note: str = "",
) -> None:
    await conn.execute(
        f"INSERT INTO {OCCUPATIONS_TABLE} (item_id, occupation_id, kind, starts_at, ends_at, note)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        event.stream_id, occupation_id, kind, datetime.fromisoformat(start),
        datetime.fromisoformat(end), note,
    )


async def _free(conn: asyncpg.Connection, event: RecordedEvent, occupation_id: str) -> None:
    await conn.execute(
        f"DELETE FROM {OCCUPATIONS_TABLE} WHERE item_id = $1 AND occupation_id = $2",
        event.stream_id, occupation_id,
    )
