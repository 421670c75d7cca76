"""The inventory read model: one row per item, for listing and filtering."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import orjson

from midas.domain.item_events import (
    ITEM_ATTRIBUTES_SET,
    ITEM_BUFFER_CHANGED,
    ITEM_DEACTIVATED,
    ITEM_MEDIA_SET,
    ITEM_MINIMUM_CHANGED,
    ITEM_MOVED,
    ITEM_RATE_CHANGED,
    ITEM_REGISTERED,
    ITEM_RENAMED,
    ITEM_STATUS_CHANGED,
)
from midas.eventstore import RecordedEvent

ITEMS_TABLE = "inv_items"


class InventoryProjector:
    name = "inventory"
    tables = (ITEMS_TABLE,)
    handles = frozenset({
        ITEM_REGISTERED, ITEM_RATE_CHANGED, ITEM_DEACTIVATED, ITEM_STATUS_CHANGED,
        ITEM_RENAMED, ITEM_ATTRIBUTES_SET, ITEM_BUFFER_CHANGED, ITEM_MINIMUM_CHANGED,
        ITEM_MOVED, ITEM_MEDIA_SET,
    })

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            if event.type == ITEM_REGISTERED:
                await self._registered(conn, event)
            elif event.type == ITEM_RATE_CHANGED:
                await self._update(conn, event, "rate = $3", ITEM_RATE_CHANGED.of(event)["rate"])
            elif event.type == ITEM_DEACTIVATED:
                await self._update(conn, event, "status = $3", "inactive")
            elif event.type == ITEM_STATUS_CHANGED:
                await self._update(conn, event, "status = $3",
                                   ITEM_STATUS_CHANGED.of(event)["status"])
            elif event.type in _EDITS:
                await self._edit(conn, event)

    async def _registered(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        d = ITEM_REGISTERED.of(event)
        await conn.execute(
            f"INSERT INTO {ITEMS_TABLE} (id, name, category, location, rate, rate_unit,"
            " currency, buffer_minutes, minimum_minutes, status, attributes, version,"
            " registered_at, updated_at)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,'active',$10::jsonb,$11,$12,$12)",
            event.stream_id, d["name"], d["category"], d["location"], d["rate"],
            d["rate_unit"], d["currency"], d["buffer_minutes"], d["minimum_minutes"],
            orjson.dumps(d["attributes"]).decode(), event.version, event.recorded_at,
        )

    async def _edit(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        columns = _EDITS[event.type](event)
        values = [orjson.dumps(value).decode() if cast == "jsonb" else value
                  for value, cast in columns.values()]
        assignments = ", ".join(f"{column} = ${n}::{cast}" for n, (column, (_, cast)) in
                                enumerate(columns.items(), start=4))
        await conn.execute(
            f"UPDATE {ITEMS_TABLE} SET {assignments}, version = $2, updated_at = $3"
            " WHERE id = $1",
            event.stream_id, event.version, event.recorded_at, *values,
        )

    async def _update(
        self, conn: asyncpg.Connection, event: RecordedEvent, assignment: str, value: object
    ) -> None:
        await conn.execute(
            f"UPDATE {ITEMS_TABLE} SET {assignment}, version = $2, updated_at = $4"
            " WHERE id = $1",
            event.stream_id, event.version, value, event.recorded_at,
        )


# Edits of an item: the columns each sets, to which of its values, cast to which type.
_EDITS: dict[str, Callable[[RecordedEvent], dict[str, tuple[Any, str]]]] = {
    ITEM_RENAMED: lambda e: {"name": (ITEM_RENAMED.of(e)["name"], "text")},
    ITEM_ATTRIBUTES_SET: lambda e: {
        "attributes": (ITEM_ATTRIBUTES_SET.of(e)["attributes"], "jsonb")},
    ITEM_BUFFER_CHANGED: lambda e: {
        "buffer_minutes": (ITEM_BUFFER_CHANGED.of(e)["buffer_minutes"], "int")},
    ITEM_MINIMUM_CHANGED: lambda e: {
        "minimum_minutes": (ITEM_MINIMUM_CHANGED.of(e)["minimum_minutes"], "int")},
    ITEM_MOVED: lambda e: {"location": (ITEM_MOVED.of(e)["location"], "text"),
                           "currency": (ITEM_MOVED.of(e)["currency"], "text")},
    ITEM_MEDIA_SET: lambda e: {"photos": (ITEM_MEDIA_SET.of(e)["photos"], "jsonb"),
                               "documents": (ITEM_MEDIA_SET.of(e)["documents"], "jsonb")},
}
